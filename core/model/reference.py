"""References users type: registry names, OCI layout dirs and pasted buildx cache strings.

Registry names are normalised like Docker does (`docker.io`, `library/`); loopback hosts
speak plain HTTP, everything else HTTPS unless asked otherwise.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from cachescope.core.errors import FormatError, InvalidReference
from cachescope.core.model.digest import Digest

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
DEFAULT_TAG: Final = "latest"

_TAG_RE: Final = re.compile(r"[\w][\w.-]{0,127}")
_REPO_COMPONENT_RE: Final = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST_RE: Final = re.compile(r"(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::\d{1,5})?")

# Options BuildKit accepts per cache backend and direction (buildkit-cache-format.md, 8.1/8.2).
_COMMON_TO: Final = {
    "mode",
    "ignore-error",
    "oci-mediatypes",
    "image-manifest",
    "compression",
    "compression-level",
    "force-compression",
}
KNOWN_OPTIONS: Final[dict[tuple[str, str], frozenset[str]]] = {
    ("registry", "to"): frozenset({"ref", "registry.insecure"} | _COMMON_TO),
    ("registry", "from"): frozenset({"ref", "registry.insecure"}),
    ("local", "to"): frozenset({"dest", "tag", "reset"} | _COMMON_TO),
    ("local", "from"): frozenset({"src", "tag", "digest"}),
}


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses, with or without a port."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class RegistryRef:
    """A repository in a registry, optionally narrowed to a tag or digest."""

    host: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None
    plain_http: bool = False

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest if pinned, else the tag (default `latest`)."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def base_url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.api_host}"

    def with_tag(self, tag: str | None) -> RegistryRef:
        return RegistryRef(self.host, self.repository, tag, None, self.plain_http)

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True, slots=True)
class RegistryHost:
    """A registry as a whole, for listing its catalog."""

    host: str
    plain_http: bool = False

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    @property
    def base_url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.api_host}"

    def __str__(self) -> str:
        return self.host


@dataclass(frozen=True, slots=True)
class LayoutRef:
    """An OCI image layout directory, optionally narrowed to a tag or digest."""

    path: Path
    tag: str | None = None
    digest: Digest | None = None

    @property
    def reference(self) -> str:
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    def with_tag(self, tag: str | None) -> LayoutRef:
        return LayoutRef(self.path, tag, None)

    def __str__(self) -> str:
        text = f"oci:{self.path}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


Ref = RegistryRef | LayoutRef
Location = RegistryRef | LayoutRef | RegistryHost


@dataclass(frozen=True, slots=True)
class BuildxCacheSpec:
    """A parsed `--cache-to`/`--cache-from` string: backend type, options, unknown options."""

    type: str
    attrs: dict[str, str]
    unknown: tuple[str, ...] = ()
    direction: Literal["to", "from"] = "from"
    raw: str = field(default="", compare=False)

    def get_bool(self, key: str) -> bool | None:
        """An option parsed like Go's strconv.ParseBool; None if absent; FormatError if invalid."""
        value = self.attrs.get(key)
        if value is None:
            return None
        if value in {"1", "t", "T", "true", "TRUE", "True"}:
            return True
        if value in {"0", "f", "F", "false", "FALSE", "False"}:
            return False
        if value == "" and key == "force-compression":
            return True
        raise FormatError(f"failed to parse {key}: invalid syntax {value!r}")


def parse_buildx_spec(text: str, direction: Literal["to", "from"] | None = None) -> BuildxCacheSpec:
    """Split a buildx cache option string with csv, so quoted values with commas work."""
    try:
        fields = next(csv.reader([text.strip()], skipinitialspace=True))
    except (csv.Error, StopIteration) as exc:
        raise InvalidReference(f"cannot parse cache option string {text!r}: {exc}") from exc
    attrs: dict[str, str] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep:
            raise InvalidReference(f"cache option {item!r} is not key=value in {text!r}")
        attrs[key] = value.strip()
    kind = attrs.pop("type", "")
    if not kind:
        raise InvalidReference(f"cache option string has no type=: {text!r}")
    if direction is None:
        direction = "to" if "dest" in attrs or "mode" in attrs else "from"
    known = KNOWN_OPTIONS.get((kind, direction))
    unknown: tuple[str, ...] = ()
    if known is not None:
        unknown = tuple(sorted(k for k in attrs if k not in known))
    return BuildxCacheSpec(kind, attrs, unknown, direction, text)


def parse_registry_ref(text: str, *, plain_http: bool = False) -> RegistryRef:
    """Parse `HOST[:PORT]/REPO[:TAG][@DIGEST]` with Docker's defaults."""
    name = text.strip()
    if not name or any(ch.isspace() for ch in name):
        raise InvalidReference(f"invalid reference {text!r}")
    digest: Digest | None = None
    if "@" in name:
        name, _, digest_text = name.partition("@")
        try:
            digest = Digest.parse(digest_text)
        except FormatError as exc:
            raise InvalidReference(f"invalid digest in reference {text!r}: {exc}") from exc
    tag: str | None = None
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid tag {tag!r} in reference {text!r}")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        host, path = first, rest
    else:
        host, path = DOCKER_HUB, name
    if host in {"index.docker.io", DOCKER_HUB_API}:
        host = DOCKER_HUB
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not _HOST_RE.fullmatch(host):
        raise InvalidReference(f"invalid registry host {host!r} in {text!r}")
    if not path or not all(_REPO_COMPONENT_RE.fullmatch(c) for c in path.split("/")):
        raise InvalidReference(f"invalid repository name {path!r} in {text!r} (lowercase letters, digits, . _ - /)")
    return RegistryRef(host, path, tag, digest, plain_http or is_loopback_host(host))


def parse_layout_ref(text: str) -> LayoutRef:
    """Parse `oci:PATH[:TAG][@DIGEST]` (or a bare path); a path that exists wins over a tag split."""
    body = text[4:] if text.startswith("oci:") else text
    if not body:
        raise InvalidReference(f"no path in {text!r}")
    digest: Digest | None = None
    if "@" in body:
        head, _, digest_text = body.rpartition("@")
        try:
            digest = Digest.parse(digest_text)
            body = head
        except FormatError:
            digest = None
    tag: str | None = None
    if not Path(body).exists() and ":" in body:
        head, _, maybe_tag = body.rpartition(":")
        if head and "/" not in maybe_tag and _TAG_RE.fullmatch(maybe_tag):
            body, tag = head, maybe_tag
    return LayoutRef(Path(body), tag, digest)


def is_layout_dir(path: Path) -> bool:
    """A directory with `oci-layout` (BuildKit >= 0.12) or at least `index.json` and `blobs/`."""
    return path.is_dir() and (
        (path / "oci-layout").is_file() or ((path / "index.json").is_file() and (path / "blobs").is_dir())
    )


def parse_reference(text: str, *, plain_http: bool = False) -> tuple[Ref, BuildxCacheSpec | None]:
    """Turn anything a user may paste into a reference, plus the buildx spec it came from."""
    stripped = text.strip()
    if not stripped:
        raise InvalidReference("empty reference")
    if stripped.startswith("type="):
        spec = parse_buildx_spec(stripped)
        return _ref_from_spec(spec, plain_http=plain_http), spec
    if stripped.startswith("oci:") or stripped.startswith(("/", "./", "../", "~")):
        return parse_layout_ref(str(Path(stripped).expanduser()) if stripped.startswith("~") else stripped), None
    if is_layout_dir(Path(stripped)):
        return LayoutRef(Path(stripped)), None
    return parse_registry_ref(stripped, plain_http=plain_http), None


def _ref_from_spec(spec: BuildxCacheSpec, *, plain_http: bool) -> Ref:
    if spec.type == "registry":
        ref = spec.attrs.get("ref")
        if not ref:
            raise InvalidReference("registry cache string has no ref=")
        insecure = spec.get_bool("registry.insecure") or False
        return parse_registry_ref(ref, plain_http=plain_http or insecure)
    if spec.type == "local":
        path = spec.attrs.get("src") or spec.attrs.get("dest")
        if not path:
            raise InvalidReference("local cache string has no src= or dest=")
        digest_text = spec.attrs.get("digest")
        try:
            digest = Digest.parse(digest_text) if digest_text else None
        except FormatError as exc:
            raise InvalidReference(f"invalid digest= in {spec.raw!r}: {exc}") from exc
        tag = spec.attrs.get("tag")
        if tag is not None and not _TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid tag {tag!r} in {spec.raw!r}")
        return LayoutRef(Path(path).expanduser(), tag, digest)
    raise InvalidReference(
        f"cache type {spec.type!r} has no manifest to read; cachescope reads type=registry and type=local caches"
    )


def parse_location(text: str, *, plain_http: bool = False) -> Location:
    """What `ls` takes: a registry host, a repository, or a layout directory."""
    stripped = text.strip().rstrip("/")
    if stripped.startswith(("oci:", "/", "./", "../", "~")) or is_layout_dir(Path(stripped)):
        ref, _ = parse_reference(stripped)
        return ref
    if stripped.startswith("type="):
        ref, _ = parse_reference(stripped, plain_http=plain_http)
        return ref
    if "/" not in stripped and ("." in stripped or ":" in stripped or stripped == "localhost"):
        if not _HOST_RE.fullmatch(stripped):
            raise InvalidReference(f"invalid registry host {stripped!r}")
        host = DOCKER_HUB if stripped in {"index.docker.io", DOCKER_HUB_API} else stripped
        return RegistryHost(host, plain_http or is_loopback_host(host))
    return parse_registry_ref(stripped, plain_http=plain_http)
