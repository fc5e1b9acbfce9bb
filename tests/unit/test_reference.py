"""References as users type them: Docker normalisation, layouts, pasted buildx strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachescope.core import InvalidReference, LayoutRef, RegistryHost, RegistryRef, parse_location, parse_reference
from cachescope.core.model.reference import is_loopback_host, parse_buildx_spec


@pytest.mark.parametrize(
    ("text", "host", "repo", "tag", "plain"),
    [
        ("alpine", "docker.io", "library/alpine", None, False),
        ("user/app:cache", "docker.io", "user/app", "cache", False),
        ("index.docker.io/library/alpine:3", "docker.io", "library/alpine", "3", False),
        ("ghcr.io/org/app/cache:main", "ghcr.io", "org/app/cache", "main", False),
        ("127.0.0.1:5000/cache/dev:max", "127.0.0.1:5000", "cache/dev", "max", True),
        ("localhost:5000/x", "localhost:5000", "x", None, True),
        ("localhost/x:y", "localhost", "x", "y", True),
        ("[::1]:5000/x:1", "[::1]:5000", "x", "1", True),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/cache:buildx",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            "cache",
            "buildx",
            False,
        ),
    ],
)
def test_registry_references_normalise_like_docker(
    text: str, host: str, repo: str, tag: str | None, plain: bool
) -> None:
    ref, spec = parse_reference(text)
    assert spec is None
    assert isinstance(ref, RegistryRef)
    assert (ref.host, ref.repository, ref.tag, ref.plain_http) == (host, repo, tag, plain)


def test_docker_hub_talks_to_its_api_host() -> None:
    ref, _ = parse_reference("alpine")
    assert isinstance(ref, RegistryRef)
    assert ref.base_url == "https://registry-1.docker.io"
    assert ref.reference == "latest"


def test_digest_references_pin_the_manifest() -> None:
    ref, _ = parse_reference("ghcr.io/a/b:t@sha256:" + "a" * 64)
    assert isinstance(ref, RegistryRef)
    assert ref.reference == "sha256:" + "a" * 64
    assert ref.tag == "t"


def test_plain_http_can_be_forced_for_other_hosts() -> None:
    ref, _ = parse_reference("registry.internal:5000/x", plain_http=True)
    assert isinstance(ref, RegistryRef)
    assert ref.base_url.startswith("http://")


@pytest.mark.parametrize(
    "text", ["UPPER/case", "a b", "ghcr.io/x:bad tag", "ghcr.io/x@sha256:zz", "", "ghcr.io/x:" + "t" * 200]
)
def test_invalid_registry_references_are_rejected(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(text)


def test_buildx_registry_strings_are_accepted_verbatim() -> None:
    ref, spec = parse_reference("type=registry,ref=127.0.0.1:5000/cache/dev:max,mode=max,image-manifest=true")
    assert isinstance(ref, RegistryRef)
    assert ref.tag == "max"
    assert spec is not None
    assert spec.direction == "to"
    assert spec.unknown == ()
    assert spec.get_bool("image-manifest") is True


def test_unknown_buildx_options_are_reported() -> None:
    _, spec = parse_reference("type=registry,ref=ghcr.io/a/b,mode=max,compresion=zstd")
    assert spec is not None
    assert spec.unknown == ("compresion",)


def test_quoted_buildx_values_keep_their_commas() -> None:
    spec = parse_buildx_spec('type=local,"src=/tmp/a,b",tag=x')
    assert spec.attrs["src"] == "/tmp/a,b"


def test_buildx_local_strings_become_layouts(tmp_path: Path) -> None:
    ref, _ = parse_reference(f"type=local,src={tmp_path},tag=main")
    assert ref == LayoutRef(tmp_path, "main")
    ref, _ = parse_reference(f"type=local,dest={tmp_path},mode=max")
    assert isinstance(ref, LayoutRef)
    assert ref.path == tmp_path


@pytest.mark.parametrize(
    "text",
    ["type=gha,scope=x", "type=registry,mode=max", "type=local,tag=x", "mode=max", "type=registry,ref=x,noequals"],
)
def test_unusable_buildx_strings_are_invalid(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse_reference(text)


def test_bool_options_parse_like_go() -> None:
    spec = parse_buildx_spec("type=registry,ref=a/b,oci-mediatypes=0,force-compression=,image-manifest=yes")
    assert spec.get_bool("oci-mediatypes") is False
    assert spec.get_bool("force-compression") is True
    with pytest.raises(Exception, match="failed to parse image-manifest"):
        spec.get_bool("image-manifest")


def test_layouts_split_tags_only_when_the_path_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "with:colon").mkdir()
    assert parse_reference(f"oci:{tmp_path}/with:colon")[0] == LayoutRef(tmp_path / "with:colon")
    assert parse_reference(f"oci:{tmp_path}/cache:main")[0] == LayoutRef(tmp_path / "cache", "main")


def test_an_existing_layout_directory_is_a_reference(tmp_path: Path) -> None:
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    ref, _ = parse_reference(str(tmp_path))
    assert ref == LayoutRef(tmp_path)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("127.0.0.1:5000", RegistryHost),
        ("ghcr.io", RegistryHost),
        ("ghcr.io/org/repo", RegistryRef),
        ("oci:/tmp/x", LayoutRef),
    ],
)
def test_ls_locations(text: str, kind: type) -> None:
    assert isinstance(parse_location(text), kind)


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("127.0.0.1:5000", True),
        ("127.9.9.9", True),
        ("[::1]:80", True),
        ("localhost", True),
        ("10.0.0.1:5000", False),
        ("ghcr.io", False),
    ],
)
def test_loopback_detection(host: str, loop: bool) -> None:
    assert is_loopback_host(host) is loop
