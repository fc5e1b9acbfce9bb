"""Will this cache (or this planned `--cache-to`) work with that registry and BuildKit?

Pure: findings come from a `CacheReport` (or `LoadedCache`) or a parsed buildx option
string, a target registry and a BuildKit version; no store I/O. The rules and their
sources live in `cachescope.core.registry_rules`; this module decides which fire.

Rule order follows docs/registries.md section 5: registry-specific rules first, then
CS-INDEX-PORTABILITY only when none fired; an unknown registry with a list form is a
warning, and a registry whose answer nobody has published gets an `unknown` info
finding, never a silent pass.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cachescope.core.analysis import SEVERITY_ORDER, CacheReport, Warning_, analyze
from cachescope.core.errors import EXIT_FAILED, EXIT_OK, CachescopeError, FormatError, UsageError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.loaded import Form, LoadedCache
from cachescope.core.model.reference import BuildxCacheSpec, LayoutRef, Ref, RegistryRef, parse_registry_ref
from cachescope.core.registry_rules import (
    IMAGE_MANIFEST_FLAGS,
    REGISTRY_STATUS,
    RULES,
    TARGET_NAMES,
    TARGETS,
    ZSTD_KNOWN_OK,
    Basis,
    FormStatus,
    RegistryForm,
    Severity,
    Target,
    detect_target,
)

JSON_SCHEMA: Final = "cachescope.diagnose/v1"
MANIFEST_SIZE_LIMIT: Final = 4 * 1024 * 1024
"""distribution's maxManifestBodySize; the OCI spec asks registries for at least 4 MB."""

TARGET_OPTIONS: Final[tuple[str, ...]] = ("auto", *TARGETS)


@dataclass(frozen=True, slots=True, order=True)
class BuildkitVersion:
    """A BuildKit release as `vMAJOR.MINOR[.PATCH]`; only ordering matters to the rules."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> BuildkitVersion:
        """Accept `v0.12`, `0.12.5`, `v0.13.0-rc1`; anything else is a usage error."""
        match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?", text.strip())
        if match is None:
            raise UsageError(f"invalid BuildKit version {text!r} (expected e.g. v0.12 or 0.21.3)")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}" + (f".{self.patch}" if self.patch else "")


CURRENT_BUILDKIT: Final = BuildkitVersion(0, 32)
"""What `--buildkit-version` defaults to: the release the fixtures and docs describe."""

_V0_8: Final = BuildkitVersion(0, 8)
_V0_10: Final = BuildkitVersion(0, 10)
_V0_11: Final = BuildkitVersion(0, 11)
_V0_12: Final = BuildkitVersion(0, 12)
_V0_21: Final = BuildkitVersion(0, 21)
_V0_22: Final = BuildkitVersion(0, 22)

# First release that reads each option (buildkit-cache-format.md section 9); older ones
# ignore it silently because exporter attributes are a plain map.
_OPTION_SINCE: Final[dict[str, BuildkitVersion]] = {
    "oci-mediatypes": _V0_8,
    "compression": _V0_10,
    "compression-level": _V0_10,
    "force-compression": _V0_10,
    "image-manifest": _V0_12,
    "ignore-error": _V0_12,
    "registry.insecure": _V0_12,
    "reset": BuildkitVersion(0, 31),
}
_LOCAL_TAG_SINCE: Final = _V0_11
_BOOL_OPTIONS: Final = ("oci-mediatypes", "image-manifest", "force-compression", "registry.insecure", "reset")
_COMPRESSIONS: Final = frozenset({"gzip", "estargz", "zstd", "uncompressed"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One diagnosis: stable code, how bad, what was seen, and how to fix it."""

    code: str
    severity: Severity
    title: str
    message: str
    evidence: str
    """The descriptor, document or option the finding is about."""
    fix_buildx: str | None
    """Buildx flags to use instead (a full `--cache-to` value where one can be built)."""
    fix_command: str | None
    """The cachescope command that repairs an existing cache, when there is one."""
    sources: tuple[str, ...]
    basis: Basis

    @property
    def subject(self) -> str:
        """What the finding is about (the evidence), for views shared with analysis warnings."""
        return self.evidence

    @property
    def advice(self) -> str | None:
        """The rule's general fix (README table wording); present even when no flag or command applies."""
        rule = RULES.get(self.code)
        return rule.fix if rule else None

    @property
    def fix(self) -> str:
        """Both fixes as one line: buildx flags, then the cachescope repair command."""
        parts = [self.fix_buildx, f"repair: {self.fix_command}" if self.fix_command else None]
        return "; ".join(p for p in parts if p) or (self.advice or "")


def _finding(
    code: str,
    message: str,
    evidence: str,
    *,
    fix_buildx: str | None = None,
    fix_command: str | None = None,
    sources: Sequence[str] | None = None,
    severity: Severity | None = None,
    basis: Basis | None = None,
) -> Finding:
    rule = RULES[code]
    return Finding(
        code=code,
        severity=severity or rule.severity,
        title=rule.title,
        message=message,
        evidence=evidence,
        fix_buildx=fix_buildx,
        fix_command=fix_command,
        sources=tuple(dict.fromkeys(sources if sources is not None else rule.sources)),
        basis=basis or rule.basis,
    )


# --- targets ----------------------------------------------------------------------------


def resolve_target(option: str, ref: Ref | None) -> tuple[Target | None, str | None]:
    """The target to check and where it came from: `--target`, the ref's host, or nothing.

    Returns (target, detected_from) where detected_from is the host name for `auto`
    detection, `"--target"` for an explicit choice, and None when nothing was detected.
    """
    if option != "auto":
        if option not in TARGETS:
            raise UsageError(f"unknown target {option!r}; choose one of: {', '.join(TARGET_OPTIONS)}")
        return _as_target(option), "--target"
    if isinstance(ref, RegistryRef):
        target = detect_target(ref.host)
        return target, (ref.host if target else None)
    return None, None


def _as_target(name: str) -> Target:
    for target in TARGETS:
        if target == name:
            return target
    raise UsageError(f"unknown target {name!r}")


# --- form rules, shared by both entry points --------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fixes:
    """How to say 'use the image-manifest form' in the context at hand."""

    buildx: str | None
    command: str | None


def _form_findings(
    form: Form, target: Target | None, version: BuildkitVersion, evidence: str, fixes: _Fixes
) -> list[Finding]:
    if form == "inline":
        return []  # inline cache lives in an ordinary image: registries store it like any image
    is_list = form in ("index", "docker-manifest-list")
    if target is None:
        if is_list:
            return [_portability(form, "the registry is not known", evidence, fixes)]
        return []
    registry_form: RegistryForm = form
    status = REGISTRY_STATUS[target][registry_form]
    name = TARGET_NAMES[target]
    note = f" ({status.note})" if status.note else ""
    old = version < _V0_12
    out: list[Finding] = []
    if target in ("ecr", "ecr-public") and old:
        # CS-ECR-BUILDKIT-OLD already says why; advising image-manifest to a BuildKit that
        # cannot write it would be wrong.
        return out
    if status.code is not None:
        code = status.code
        message = _REGISTRY_MESSAGES[code].format(name=name, form=form)
        if status.verdict == "rejects":
            message += f" [{status.basis}{note}]"
        fix_buildx = fixes.buildx
        if old and code != "CS-QUAY-CONFIG-TYPE" and fix_buildx is not None:
            fix_buildx = f"upgrade BuildKit to >= 0.12 (this is {version}), then {fix_buildx}"
        if code == "CS-QUAY-CONFIG-TYPE":
            fix_buildx = None
        out.append(
            _finding(
                code,
                message,
                evidence,
                fix_buildx=fix_buildx,
                fix_command=fixes.command if code != "CS-QUAY-CONFIG-TYPE" else None,
                sources=status.sources,
                basis=status.basis,
            )
        )
        return out
    if status.verdict == "unknown":
        out.append(
            _finding(
                "CS-UNKNOWN-REGISTRY-STATUS",
                f"no source says whether {name} accepts the {form} cache form{note}: status unknown, not assumed fine",
                evidence,
                sources=status.sources,
            )
        )
        if is_list:
            out.append(_portability(form, f"{name} is not known to accept it", evidence, fixes))
    return out


def _portability(form: Form, why: str, evidence: str, fixes: _Fixes) -> Finding:
    return _finding(
        "CS-INDEX-PORTABILITY",
        f"the {form} cache form lists layer blobs as if they were manifests; ECR, Quay, Harbor, legacy GCR, "
        f"Gitea and distribution v3 reject it and registries that garbage-collect by manifest may drop its "
        f"layers ({why})",
        evidence,
        fix_buildx=fixes.buildx,
        fix_command=fixes.command,
    )


_REGISTRY_MESSAGES: Final[dict[str, str]] = {
    # Wording follows docs/registries.md sections 2-3; sources are on the finding.
    "CS-ECR-INDEX": "{name} rejects BuildKit cache indexes whose children are layer blobs: the manifest PUT "
    "answers 400 Bad Request after every layer has uploaded",
    "CS-ECR-MLIST": "{name} rejects Docker manifest lists that list layer blobs (400 Bad Request on the manifest PUT)",
    "CS-GCR-INDEX": "legacy gcr.io rejects cache lists with MANIFEST_INVALID 'Image index child manifest not "
    "supported' (gcr.io repositories now served by Artifact Registry may accept them)",
    "CS-QUAY-LIST": "Quay validates lists against its schema and rejects layer entries: MANIFEST_INVALID "
    "\"'platform' is a required property\"",
    "CS-QUAY-CONFIG-TYPE": "Quay stores only OCI manifests whose config media type is allow-listed; "
    f"{mt.BUILDKIT_CACHE_CONFIG} is not built in, so default self-hosted Quay likely rejects the {{form}} form "
    "(inferred; quay.io unknown)",
    "CS-HARBOR-INDEX": "Harbor resolves every list child as a manifest and answers 404 Not Found on the cache "
    "manifest PUT (still in v2.9.1)",
    "CS-DIST3-INDEX": "distribution v3 removed the 2.1.1 blob-link workaround and validates index children: "
    "400 MANIFEST_BLOB_UNKNOWN on the cache manifest PUT",
    "CS-GITEA-INDEX": "Gitea rejected BuildKit cache indexes with 404 on the manifest PUT (1.21; still reported for "
    "OCI indexes on 1.25)",
    "CS-ARTIFACTORY-OLD": "Artifactory up to 7.31.10 rejects BuildKit cache lists (RTFACT-26179); later versions "
    "accept them; cachescope cannot see the Artifactory version",
    "CS-NEXUS-OLD": "Nexus before 3.22 answers 500 (NullPointerException on 'digest') to cache indexes; 3.22+ "
    "accepts them; cachescope cannot see the Nexus version",
}


def _ecr_old(target: Target | None, version: BuildkitVersion, evidence: str, ref: str = "REF") -> list[Finding]:
    if target not in ("ecr", "ecr-public") or version >= _V0_12:
        return []
    return [
        _finding(
            "CS-ECR-BUILDKIT-OLD",
            f"BuildKit {version} cannot write the image-manifest form (added in v0.12), and ECR rejects the "
            "index and manifest-list forms, so a registry cache in ECR cannot work with it",
            evidence,
            fix_buildx=f"upgrade BuildKit to >= 0.12, then --cache-to type=registry,ref={ref},mode=max,"
            + IMAGE_MANIFEST_FLAGS,
        )
    ]


def _repository(text: str | None) -> str | None:
    """`host/repository` of a registry reference; None for a layout, a blank or a bad reference."""
    if not text:
        return None
    try:
        ref = parse_registry_ref(text)
    except CachescopeError:
        return None
    return f"{ref.host}/{ref.repository}"


def _ecr_mount(target: Target | None, evidence: str, *, cache: str | None, image: str | None) -> list[Finding]:
    # containers-roadmap #2860 (AWS-authored): private ECR answers a cross-repository mount
    # with 202 unless a manifest in the source repository references the blob.
    if target != "ecr":
        return []
    cache_repo, image_repo = _repository(cache), _repository(image)
    if image_repo is not None and image_repo == cache_repo:
        return []  # one repository: nothing is mounted across repositories
    if image_repo is not None:
        evidence += f"; image {image_repo}"
    return [
        _finding(
            "CS-ECR-MOUNT",
            "ECR mounts a blob from another repository only if a manifest there references it, so when the image "
            "goes to a different repository than this cache, its layers may be uploaded twice",
            evidence,
            fix_buildx="keep the cache tag in the image's repository if upload time matters "
            "(e.g. --cache-to type=registry,ref=ACCOUNT.dkr.ecr.REGION.amazonaws.com/APP:buildcache)",
        )
    ]


# --- existing caches --------------------------------------------------------------------


def diagnose_report(
    report: CacheReport | LoadedCache,
    target: Target | None,
    *,
    source_ref: str | None = None,
    buildkit_version: BuildkitVersion = CURRENT_BUILDKIT,
    non_cache_tags: Sequence[str] | None = None,
    image: str | None = None,
) -> list[Finding]:
    """Everything that stands between this cache and `target` (None: registry not known).

    `buildkit_version` is the BuildKit that will write or import the cache. `image` is
    where the build pushes its image, when known (CS-ECR-MOUNT applies only across repositories).
    `non_cache_tags`, when the caller listed the repository, are its tags that are not
    caches (for CS-CACHE-IN-IMAGE-REPO); None means the repository was not checked.
    Analysis warnings are included as findings with their own codes and severities.
    """
    if isinstance(report, LoadedCache):
        report = analyze(report)
    src = source_ref or report.source
    findings: list[Finding] = []
    wrapper = f"wrapper {report.manifest_media_type} {report.manifest_digest.short} (form {report.form})"
    mode = f",mode={report.mode.value}" if report.mode.value != "unknown" else ",mode=max"
    ref = report.source if report.store_kind == "registry" else "REF"
    fixes = _Fixes(
        buildx=f"--cache-to type=registry,ref={ref}{mode},{IMAGE_MANIFEST_FLAGS}",
        command=f"cachescope reexport {src} DEST --form image-manifest",
    )
    if report.form != "inline":
        # Inline cache rides in an ordinary image, which every BuildKit can push to ECR.
        findings += _ecr_old(target, buildkit_version, f"--buildkit-version {buildkit_version}", ref)
        cache_ref = report.source if report.store_kind == "registry" else None
        findings += _ecr_mount(target, f"cache {src}", cache=cache_ref, image=image)
    findings += _form_findings(report.form, target, buildkit_version, wrapper, fixes)
    findings += _compression_findings(
        {row.compression for row in report.layers if row.compression}, target, _layer_evidence(report), src
    )
    findings += _generic_findings(report, buildkit_version, src)
    findings += [_from_analysis(w, src, wrapper) for w in report.warnings]
    if target is None:
        findings.append(_undetected(report.store_kind == "local"))
    if non_cache_tags:
        shown = ", ".join(non_cache_tags[:5]) + (", ..." if len(non_cache_tags) > 5 else "")
        findings.append(
            _finding(
                "CS-CACHE-IN-IMAGE-REPO",
                f"the cache's repository also holds {len(non_cache_tags)} non-cache tag(s) ({shown}); scanners, "
                "UIs, lifecycle rules and `docker pull` treat the cache tag as an image "
                f"(pull fails with 'unsupported media type {mt.BUILDKIT_CACHE_CONFIG}')",
                f"repository of {src}",
                fix_buildx="--cache-to type=registry,ref=HOST/REPO-cache:TAG (a dedicated repository)",
            )
        )
    return sort_findings(findings)


def _layer_evidence(report: CacheReport) -> dict[str, str]:
    """Per compression, the first layer blob that has it (for evidence lines)."""
    out: dict[str, str] = {}
    for row in report.layers:
        if row.compression and row.compression not in out:
            count = len({r.digest for r in report.layers if r.compression == row.compression})
            out[row.compression] = (
                f"{count} {row.compression} layer blob(s), e.g. {row.digest.short} ({row.media_type})"
            )
    return out


def _compression_findings(
    compressions: Iterable[str], target: Target | None, evidence: Mapping[str, str], src: str | None = None
) -> list[Finding]:
    out: list[Finding] = []
    present = set(compressions)
    if "zstd" in present and target not in ZSTD_KNOWN_OK:
        where = TARGET_NAMES[target] if target else "the target registry"
        out.append(
            _finding(
                "CS-ZSTD",
                f"zstd layers need a registry and every importing BuildKit to accept zstd media types; "
                f"no source documents zstd support for {where}: status unknown",
                evidence.get("zstd", "compression=zstd"),
                fix_buildx="compression=gzip,force-compression=true",
                fix_command=f"cachescope recompress {src} --compression gzip" if src else None,
            )
        )
    if "estargz" in present:
        out.append(
            _finding(
                "CS-ESTARGZ",
                "estargz layers use gzip media types plus stargz annotations; no registry-specific problem is "
                "known, and none is confirmed absent",
                evidence.get("estargz", "compression=estargz"),
            )
        )
    return out


def _generic_findings(report: CacheReport, version: BuildkitVersion, src: str) -> list[Finding]:
    out: list[Finding] = []
    if report.manifest_size > MANIFEST_SIZE_LIMIT:
        out.append(
            _finding(
                "CS-MANIFEST-SIZE",
                f"the cache manifest is {report.manifest_size} bytes, over the 4 MiB most registries accept "
                "(413 Payload Too Large or MANIFEST_INVALID)",
                f"wrapper {report.manifest_digest.short}",
                fix_buildx="mode=min, or one cache ref per target/stage",
                fix_command=f"cachescope trim {src} --max-size 1MiB",
            )
        )
    families = {fam for row in report.layers if row.media_type and (fam := mt.family_of(row.media_type))}
    if report.form != "inline" and (len(families) > 1 or (families and families != {report.mediatypes})):
        odd = [
            row
            for row in report.layers
            if row.media_type and mt.family_of(row.media_type) not in (None, report.mediatypes)
        ]
        example = f", e.g. {odd[0].digest.short} ({odd[0].media_type})" if odd else ""
        out.append(
            _finding(
                "CS-MIXED-MEDIATYPES",
                f"the {report.mediatypes.upper()} wrapper lists layers from the "
                f"{' and '.join(sorted(f.upper() for f in families))} media-type families; BuildKit never writes "
                "this, and registries that validate layer media types (e.g. ECR) may refuse it",
                f"{len(odd)} layer(s) outside the wrapper's family{example}",
                fix_command=f"cachescope reexport {src} DEST --mediatypes oci",
            )
        )
    if report.form == "image-manifest" and version < _V0_12:
        out.append(
            _finding(
                "CS-BUILDKIT-OLD-IMAGE-MANIFEST",
                f"BuildKit {version} reads an image-manifest cache as an image, finds no matching diff_ids and "
                "silently imports nothing (image-manifest caches need BuildKit >= 0.12)",
                f"wrapper {report.manifest_media_type} (form image-manifest)",
                fix_buildx="upgrade the importing BuildKit to >= 0.12, or export with image-manifest=false",
                fix_command=f"cachescope reexport {src} DEST --form index",
            )
        )
    if report.form != "inline" and any(row.present is None for row in report.layers):
        out.append(
            _finding(
                "CS-BLOBS-UNCHECKED",
                "the store was not asked whether the layer blobs exist; missing blobs would go unnoticed here",
                f"{sum(1 for r in report.layers if r.present is None)} layer(s) unchecked",
                fix_command=f"cachescope diagnose {src}",
            )
        )
    return out


def _from_analysis(warning: Warning_, src: str, wrapper: str) -> Finding:
    """An analysis warning as a finding; analysis owns its code, severity and wording."""
    rule = RULES.get(warning.code)
    command = _ANALYSIS_COMMANDS.get(warning.code)
    return Finding(
        code=warning.code,
        severity=warning.severity,
        title=rule.title if rule else warning.code,
        message=warning.message,
        evidence=warning.subject or wrapper,
        fix_buildx=_ANALYSIS_BUILDX.get(warning.code),
        fix_command=command.format(src=src) if command else None,
        sources=rule.sources if rule else (),
        basis=rule.basis if rule else "unknown",
    )


_ANALYSIS_COMMANDS: Final[dict[str, str]] = {
    "CS-IMPORT-1MIB": "cachescope trim {src} --max-size 1MiB",
    "CS-DOCKER-MEDIATYPES": "cachescope reexport {src} DEST --form image-manifest",
    "CS-ZSTD-DOCKER": "cachescope reexport {src} DEST --mediatypes oci",
    "CS-ESTARGZ-DOCKER": "cachescope reexport {src} DEST --mediatypes oci",
    "CS-MIXED-COMPRESSION": "cachescope recompress {src} --compression gzip",
    "CS-DUPLICATE-DIFF": "cachescope recompress {src} --compression gzip",
    "CS-BLOB-MISSING": "cachescope verify {src}",
    "CS-SIZE-MISMATCH": "cachescope verify {src} --deep",
}
_ANALYSIS_BUILDX: Final[dict[str, str]] = {
    "CS-IMPORT-1MIB": "mode=min, or one cache ref per target/stage",
    "CS-DOCKER-MEDIATYPES": IMAGE_MANIFEST_FLAGS,
    "CS-ZSTD-DOCKER": "oci-mediatypes=true",
    "CS-ESTARGZ-DOCKER": "oci-mediatypes=true",
    "CS-MIXED-COMPRESSION": "force-compression=true",
    "CS-BLOB-MISSING": "re-run the build with --cache-to to write the cache again",
}


def _undetected(local: bool) -> Finding:
    what = "a local directory has no registry" if local else "the host is not a registry cachescope recognises"
    return _finding(
        "CS-TARGET-UNDETECTED",
        f"{what}; registry-specific checks were skipped (pass --target to check against one)",
        "--target auto",
    )


def manifest_too_large(detail: str, src: str) -> list[Finding]:
    """Findings for a cache whose manifest the store refused to read for its size.

    cachescope reads at most 4 MiB of manifest (like distribution accepts on PUT), so such a
    cache cannot be analysed further; the size alone is the diagnosis.
    """
    return [
        _finding(
            "CS-MANIFEST-SIZE",
            f"the cache manifest is over the 4 MiB most registries accept (413 Payload Too Large or "
            f"MANIFEST_INVALID), and over BuildKit's 1 MiB import limit: {detail}",
            f"wrapper of {src}",
            fix_buildx="mode=min, or one cache ref per target/stage",
            fix_command=f"cachescope trim {src} --max-size 1MiB",
        )
    ]


# --- error text a build printed ---------------------------------------------------------

# What each registry answers on the cache manifest PUT when it refuses a list form
# (docs/registries.md sections 2-3): the status alone identifies the rule for that target.
_PUT_REJECTION: Final[dict[Target, tuple[int, str]]] = {
    "ecr": (400, "CS-ECR-INDEX"),
    "ecr-public": (400, "CS-ECR-INDEX"),
    "gcr": (400, "CS-GCR-INDEX"),
    "quay": (400, "CS-QUAY-LIST"),
    "harbor": (404, "CS-HARBOR-INDEX"),
    "distribution3": (400, "CS-DIST3-INDEX"),
    "gitea": (404, "CS-GITEA-INDEX"),
    "nexus": (500, "CS-NEXUS-OLD"),
}
# Error bodies quoted in docs/registries.md, each naming its rule.
_ERROR_BODIES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"Image index child manifest not supported", re.I), "CS-GCR-INDEX"),
    (re.compile(r"'platform' is a required property", re.I), "CS-QUAY-LIST"),
    (re.compile(r"manifest[ _]blob[ _]unknown", re.I), "CS-DIST3-INDEX"),
    (re.compile(r"NullPointerException.*digest", re.I), "CS-NEXUS-OLD"),
    (re.compile(r"is too large \(\d+ > 1048576\)"), "CS-IMPORT-1MIB"),
    (
        re.compile(r"OCI mediatypes are required for image-manifest|invalid configuration for remote cache", re.I),
        "CS-IMAGE-MANIFEST-OCI-FALSE",
    ),
    (re.compile(r"unsupported media type application/vnd\.buildkit\.cacheconfig\.v0", re.I), "CS-CACHE-IN-IMAGE-REPO"),
)
_ECR_MEDIATYPE: Final = re.compile(r"Invalid parameter at 'ImageManifest'", re.I)
_OPAQUE_STATUS: Final = re.compile(
    r"(?:failed commit on ref|unexpected status from PUT request)[^\n]*?:\s+(\d{3})\b", re.I
)


def diagnose_error_text(text: str, target: Target | None) -> list[Finding]:
    """Recognise the error a failed build or pull printed (BuildKit's, or the registry's body).

    The registry's own JSON error is the most specific evidence; BuildKit's bare
    `unexpected status: 400` identifies a rule only together with the target.
    """
    evidence = f"error text: {_excerpt(text)}"
    findings: list[Finding] = []
    for pattern, code in _ERROR_BODIES:
        if pattern.search(text):
            findings.append(
                _finding(
                    code,
                    f"the error is the known signature of {code}: {RULES[code].title}",
                    evidence,
                    fix_buildx=RULES[code].fix,
                )
            )
    if _ECR_MEDIATYPE.search(text) and target in (None, "ecr", "ecr-public"):
        findings.append(
            _finding(
                "CS-ECR-405-MEDIATYPE",
                "ECR validated the manifest's media types or artifactType and refused them (405 'Invalid parameter "
                "at ImageManifest'); this is not the cache-index rejection",
                evidence,
                fix_buildx=f"standard OCI layer media types: --cache-to type=registry,ref=REF,{IMAGE_MANIFEST_FLAGS}",
            )
        )
    status_match = _OPAQUE_STATUS.search(text)
    if status_match:
        status = int(status_match.group(1))
        expected = _PUT_REJECTION.get(target) if target else None
        if target and expected and expected[0] == status and not any(f.code == expected[1] for f in findings):
            code = expected[1]
            findings.append(
                _finding(
                    code,
                    f"{TARGET_NAMES[target]} answers {status} on the cache manifest PUT when it refuses the list cache "
                    f"form ({RULES[code].title})",
                    evidence,
                    fix_buildx=f"--cache-to type=registry,ref=REF,mode=max,{IMAGE_MANIFEST_FLAGS}",
                    fix_command="cachescope reexport SRC DEST --form image-manifest",
                )
            )
        elif target == "quay" and 400 <= status < 500 and not findings:
            findings.append(
                _finding(
                    "CS-QUAY-CONFIG-TYPE",
                    f"Quay refused the cache manifest ({status}); with the image-manifest form the likely cause is "
                    f"that {mt.BUILDKIT_CACHE_CONFIG} is not an allowed OCI artifact type",
                    evidence,
                    severity="error",
                )
            )
        if 400 <= status < 500 and not findings:
            findings.append(
                _finding(
                    "CS-OPAQUE-400",
                    f"the registry refused the cache manifest with {status}, and BuildKit dropped the registry's "
                    "error body; every layer had uploaded, only the final manifest PUT failed",
                    evidence,
                    fix_buildx="--buildkitd-flags '--debug' (docker buildx create), then diagnose the JSON error",
                )
            )
    if not findings:
        findings.append(
            _finding(
                "CS-ERROR-UNRECOGNISED",
                "the error matches no known registry or BuildKit cache failure: unknown, not assumed harmless",
                evidence,
            )
        )
    return sort_findings(findings)


def _excerpt(text: str, limit: int = 200) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


# --- planned cache option strings -------------------------------------------------------


def diagnose_spec(
    spec: BuildxCacheSpec,
    target: Target | None,
    buildkit_version: BuildkitVersion = CURRENT_BUILDKIT,
    *,
    image: str | None = None,
) -> list[Finding]:
    """Check a `--cache-to`/`--cache-from` string before any cache exists (`image`: as for diagnose_report).

    Predicts the form BuildKit `buildkit_version` would write (format doc 3.4) and runs
    the same form rules as `diagnose_report`, plus option checks that only a string has.
    """
    if spec.type not in ("registry", "local"):
        return [
            _finding(
                "CS-BACKEND-NOT-CHECKED",
                f"type={spec.type} stores no registry manifest (inline cache rides in the image; gha/s3/azblob "
                "use their own storage), so registry form rules do not apply",
                f"type={spec.type}",
            )
        ]
    findings: list[Finding] = []
    findings += _option_findings(spec, buildkit_version)
    bools = _bools(spec, findings)
    if spec.direction == "from":
        # Importing: any cache in ECR is in the image-manifest form (the only one ECR accepts).
        if target in ("ecr", "ecr-public") and buildkit_version < _V0_12:
            findings.append(
                _finding(
                    "CS-BUILDKIT-OLD-IMAGE-MANIFEST",
                    f"a cache in ECR can only be in the image-manifest form, which BuildKit {buildkit_version} "
                    "imports as nothing (needs >= 0.12)",
                    f"--cache-from {spec.raw}",
                    fix_buildx="upgrade the importing BuildKit to >= 0.12",
                )
            )
        return sort_findings(findings)
    findings += _ecr_old(
        target, buildkit_version, f"--buildkit-version {buildkit_version}", spec.attrs.get("ref") or "REF"
    )
    if spec.type == "registry":
        cache_ref = spec.attrs.get("ref")
        findings += _ecr_mount(target, f"--cache-to ref={cache_ref or ''}", cache=cache_ref, image=image)
    form = _predict_form(spec, bools, buildkit_version, findings)
    if form is not None:
        family: mt.Family = "docker" if form == "docker-manifest-list" else "oci"
        evidence = f"{_options_text(spec)} -> form {form} on BuildKit {buildkit_version}"
        fixed = _rewrite(spec, {"image-manifest": "true", "oci-mediatypes": "true"})
        fixes = _Fixes(buildx=f"--cache-{spec.direction} {fixed}", command=None)
        findings += _form_findings(form, target, buildkit_version, evidence, fixes)
        if family == "docker":
            findings.append(
                _finding(
                    "CS-DOCKER-MEDIATYPES",
                    "oci-mediatypes=false writes a Docker manifest list of layer blobs, which Docker's schema does "
                    "not allow and many registries reject; prefer the OCI image-manifest form",
                    evidence,
                    fix_buildx=fixes.buildx,
                )
            )
        if buildkit_version >= _V0_10:
            findings += _spec_compression(spec, bools, target, family)
    if target is None and spec.type == "registry":
        findings.append(_undetected(local=False))
    return sort_findings(findings)


def _options_text(spec: BuildxCacheSpec) -> str:
    keys = ("image-manifest", "oci-mediatypes", "compression", "force-compression")
    shown = [f"{k}={spec.attrs[k]}" for k in keys if k in spec.attrs]
    return ",".join(shown) if shown else "default options"


def _option_findings(spec: BuildxCacheSpec, version: BuildkitVersion) -> list[Finding]:
    out: list[Finding] = []
    for key in spec.unknown:
        hint = " (an export-only option; --cache-from ignores it)" if spec.direction == "from" else ""
        out.append(
            _finding(
                "CS-UNKNOWN-OPTION",
                f"BuildKit does not read {key}= for type={spec.type} --cache-{spec.direction} and ignores it "
                f"silently{hint}",
                f"{key}={spec.attrs[key]}",
                fix_buildx=f"--cache-{spec.direction} {_rewrite(spec, {key: None})}",
            )
        )
    for key, value in spec.attrs.items():
        since = _LOCAL_TAG_SINCE if (key == "tag" and spec.type == "local") else _OPTION_SINCE.get(key)
        if since is not None and version < since and key not in spec.unknown:
            out.append(
                _finding(
                    "CS-OPTION-IGNORED",
                    f"{key}= first appeared in BuildKit {since}; BuildKit {version} ignores it",
                    f"{key}={value}",
                    fix_buildx=f"upgrade BuildKit to >= {since}",
                )
            )
    required = {
        ("registry", "to"): "ref",
        ("registry", "from"): "ref",
        ("local", "to"): "dest",
        ("local", "from"): "src",
    }
    need = required[(spec.type, spec.direction)]
    if not spec.attrs.get(need):
        out.append(
            _finding(
                "CS-OPTION-INVALID",
                f"type={spec.type} --cache-{spec.direction} requires {need}=; BuildKit refuses the option string",
                spec.raw or f"type={spec.type}",
            )
        )
    mode = spec.attrs.get("mode")
    if spec.direction == "to" and mode is not None and mode not in ("min", "max"):
        out.append(
            _finding(
                "CS-OPTION-IGNORED",
                f"mode={mode} is not min or max; BuildKit ignores it silently and exports mode=min",
                f"mode={mode}",
                fix_buildx=f"--cache-to {_rewrite(spec, {'mode': 'max'})}",
            )
        )
    compression = spec.attrs.get("compression")
    if compression is not None and compression not in _COMPRESSIONS and version >= _V0_10:
        invalid = version >= _V0_11
        out.append(
            _finding(
                "CS-OPTION-INVALID" if invalid else "CS-OPTION-IGNORED",
                f"compression={compression} is not one of {', '.join(sorted(_COMPRESSIONS))}; "
                + (
                    f"BuildKit fails with 'unsupported compression type {compression}'"
                    if invalid
                    else f"BuildKit {version} silently uses gzip"
                ),
                f"compression={compression}",
                fix_buildx=f"--cache-{spec.direction} {_rewrite(spec, {'compression': 'gzip'})}",
            )
        )
    level = spec.attrs.get("compression-level")
    if level is not None and not re.fullmatch(r"[+-]?\d+", level) and version >= _V0_10:
        out.append(
            _finding(
                "CS-OPTION-INVALID",
                f"BuildKit fails with 'non-integer value {level} specified for compression-level'",
                f"compression-level={level}",
            )
        )
    return out


def _bools(spec: BuildxCacheSpec, findings: list[Finding]) -> dict[str, bool | None]:
    """Bool options with Go ParseBool semantics; invalid values become findings and None."""
    out: dict[str, bool | None] = {}
    for key in _BOOL_OPTIONS:
        if key in spec.unknown:
            continue
        try:
            out[key] = spec.get_bool(key)
        except FormatError:
            out[key] = None
            findings.append(
                _finding(
                    "CS-OPTION-INVALID",
                    f"BuildKit fails with 'failed to parse {key}': {spec.attrs[key]!r} is not a Go boolean "
                    "(true/false/1/0/t/f)",
                    f"{key}={spec.attrs[key]}",
                )
            )
    if "ignore-error" in spec.attrs:
        try:
            spec.get_bool("ignore-error")
        except FormatError:
            findings.append(
                _finding(
                    "CS-OPTION-IGNORED",
                    f"ignore-error={spec.attrs['ignore-error']!r} is not a Go boolean; BuildKit ignores it "
                    "(export errors fail the build)",
                    f"ignore-error={spec.attrs['ignore-error']}",
                )
            )
    return out


def _predict_form(
    spec: BuildxCacheSpec, bools: Mapping[str, bool | None], version: BuildkitVersion, findings: list[Finding]
) -> Form | None:
    """The wrapper form BuildKit `version` writes for these options (format doc 3.4), or None if it refuses."""
    if any(k in bools and bools[k] is None and k in spec.attrs for k in ("oci-mediatypes", "image-manifest")):
        return None  # an unparsable bool: BuildKit refuses the string (already a finding)
    oci = bools.get("oci-mediatypes")
    manifest = bools.get("image-manifest")
    if version < _V0_8:
        return "docker-manifest-list"
    if version < _V0_12:
        return "docker-manifest-list" if oci is False else "index"
    conflict = manifest is True and oci is False
    if version < _V0_22 and version >= _V0_21 and oci is False and manifest is None:
        conflict = True
    if conflict:
        implied = "" if manifest is True else " (image-manifest defaults to true on 0.21.x)"
        findings.append(
            _finding(
                "CS-IMAGE-MANIFEST-OCI-FALSE",
                f"BuildKit {version} refuses image-manifest with oci-mediatypes=false{implied}: 'invalid "
                "configuration for remote cache'",
                f"oci-mediatypes={spec.attrs.get('oci-mediatypes')}"
                + (f",image-manifest={spec.attrs['image-manifest']}" if "image-manifest" in spec.attrs else ""),
                fix_buildx=f"--cache-{spec.direction} {_rewrite(spec, {'oci-mediatypes': 'true'})}",
            )
        )
        return None
    if version < _V0_21:
        default_manifest = False
    elif version < _V0_22:
        default_manifest = True
    else:
        default_manifest = oci is not False
    if manifest if manifest is not None else default_manifest:
        return "image-manifest"
    return "docker-manifest-list" if oci is False else "index"


def _spec_compression(
    spec: BuildxCacheSpec, bools: Mapping[str, bool | None], target: Target | None, family: mt.Family
) -> list[Finding]:
    out: list[Finding] = []
    compression = spec.attrs.get("compression")
    level = spec.attrs.get("compression-level")
    if (compression is not None or level is not None) and bools.get("force-compression") is not True:
        named = ",".join(f"{k}={spec.attrs[k]}" for k in ("compression", "compression-level") if k in spec.attrs)
        out.append(
            _finding(
                "CS-COMPRESSION-NO-FORCE",
                f"{named} applies only to blobs created during this export; layers that already have a blob "
                "(base image, imported cache, earlier exports) keep their compression, so the cache mixes them",
                named,
                fix_buildx=f"--cache-to {_rewrite(spec, {'force-compression': 'true'})}",
                fix_command=f"cachescope recompress {_spec_location(spec)} --compression {compression or 'gzip'}",
            )
        )
    if compression in ("zstd", "estargz"):
        out += _compression_findings({compression}, target, {})
    if compression == "zstd" and family == "docker":
        out.append(
            _finding(
                "CS-ZSTD-DOCKER",
                f"compression=zstd with oci-mediatypes=false writes {mt.DOCKER_LAYER_ZSTD}, a containerd extension "
                "Docker's schema does not define; many registries and tools reject it",
                "compression=zstd,oci-mediatypes=false",
                fix_buildx=f"--cache-to {_rewrite(spec, {'oci-mediatypes': 'true', 'image-manifest': 'true'})}",
            )
        )
    if compression == "estargz" and family == "docker":
        out.append(
            _finding(
                "CS-ESTARGZ-DOCKER",
                "compression=estargz with oci-mediatypes=false labels estargz layers with Docker gzip media types; "
                "lazy pulling needs OCI media types",
                "compression=estargz,oci-mediatypes=false",
                fix_buildx=f"--cache-to {_rewrite(spec, {'oci-mediatypes': 'true', 'image-manifest': 'true'})}",
            )
        )
    return out


def _spec_location(spec: BuildxCacheSpec) -> str:
    """The existing cache a spec points at, as cachescope takes it."""
    if spec.type == "local":
        path = spec.attrs.get("dest") or spec.attrs.get("src")
        tag = f":{spec.attrs['tag']}" if spec.attrs.get("tag") else ""
        return f"oci:{path}{tag}" if path else "REF"
    return spec.attrs.get("ref") or "REF"


def _rewrite(spec: BuildxCacheSpec, changes: Mapping[str, str | None]) -> str:
    """The option string with `changes` applied (None removes a key), csv-quoted like buildx reads it."""
    items: dict[str, str] = {"type": spec.type, **spec.attrs}  # keeps the user's order
    for key, value in changes.items():
        if value is None:
            items.pop(key, None)
        else:
            items[key] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([f"{k}={v}" for k, v in items.items()])
    return buf.getvalue()


# --- output -----------------------------------------------------------------------------


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Errors first, then warnings, then infos; stable by code and evidence within each."""
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (SEVERITY_ORDER[f.severity], f.code, f.evidence))


def summarize(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {"errors": 0, "warnings": 0, "infos": 0}
    for f in findings:
        counts[f.severity + "s"] += 1
    return counts


def exit_code(findings: Iterable[Finding], *, strict: bool = False) -> int:
    """0 without errors (warnings too with `strict`), else 1: what a CI step needs."""
    bad = {"error", "warning"} if strict else {"error"}
    return EXIT_FAILED if any(f.severity in bad for f in findings) else EXIT_OK


def findings_to_json(
    findings: Sequence[Finding],
    *,
    target: Target | None,
    target_detected_from: str | None,
    buildkit_version: BuildkitVersion,
    ref: str | None = None,
    cache_to: str | None = None,
    cache_from: str | None = None,
    error_text: str | None = None,
    form: Form | None = None,
) -> dict[str, Any]:
    """The `--json` document (schema `cachescope.diagnose/v1`); every key is always present."""
    return {
        "schema": JSON_SCHEMA,
        "ref": ref,
        "cache_to": cache_to,
        "cache_from": cache_from,
        "error_text": error_text,
        "target": target,
        "target_detected_from": target_detected_from,
        "buildkit_version": str(buildkit_version),
        "form": form,
        "compatibility": _compatibility_json(target, form),
        "findings": [
            {
                "code": f.code,
                "severity": f.severity,
                "title": f.title,
                "message": f.message,
                "evidence": f.evidence,
                "fix": {"buildx": f.fix_buildx, "command": f.fix_command, "advice": f.advice},
                "sources": list(f.sources),
                "basis": f.basis,
            }
            for f in findings
        ],
        "summary": summarize(findings),
    }


def compatibility(target: Target | None, form: Form | None) -> FormStatus | None:
    """What docs/registries.md says `target` does with `form`; None when either is not known.

    Inline cache is an ordinary image, so it has no entry.
    """
    if target is None or form is None or form == "inline":
        return None
    return REGISTRY_STATUS[target][form]


def _compatibility_json(target: Target | None, form: Form | None) -> dict[str, Any] | None:
    status = compatibility(target, form)
    if status is None:
        return None
    return {
        "verdict": status.verdict,
        "basis": status.basis,
        "rule": status.code,
        "note": status.note or None,
        "sources": list(status.sources),
    }


def planned_form(spec: BuildxCacheSpec, buildkit_version: BuildkitVersion = CURRENT_BUILDKIT) -> Form | None:
    """The wrapper form BuildKit would write for a `--cache-to` string; None if it writes none or refuses."""
    if spec.type not in ("registry", "local") or spec.direction != "to":
        return None
    scratch: list[Finding] = []
    return _predict_form(spec, _bools(spec, scratch), buildkit_version, scratch)


def diagnose(report: CacheReport | LoadedCache, target: str | None) -> list[Finding]:
    """Findings for a loaded cache and a target name (`auto`/None: none), for the TUI's pane."""
    if target in (None, "", "auto"):
        registry = report.store_kind == "registry"
        chosen = detect_target(report.source.split("/", 1)[0]) if registry else None
    else:
        chosen = _as_target(str(target))
    return diagnose_report(report, chosen)


def target_for_ref(ref: Ref) -> Target | None:
    """The registry a reference points at, for callers (the TUI) that hold a `Ref`."""
    if isinstance(ref, LayoutRef):
        return None
    return detect_target(ref.host)
