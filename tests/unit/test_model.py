"""Parsers and encoders on genuine documents: BuildKit's bytes must round-trip exactly."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from cachescope.core import FormatError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.cache import (
    CacheConfig,
    encode_cache_config,
    parse_cache_config,
    parse_go_time,
)
from cachescope.core.model.digest import Digest, sha256_of
from cachescope.core.model.oci import Index, Manifest, parse_document
from tests.conftest import CATALOG, fixture_dir

BLOB_FIXTURES = [f["name"] for f in CATALOG["fixtures"] if f["expected"].get("config_digest")]


def _blob(name: str, digest: str) -> bytes:
    return (fixture_dir(name) / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


@pytest.mark.parametrize("name", BLOB_FIXTURES)
def test_cache_config_reencodes_to_buildkit_bytes(name: str) -> None:
    expected = CATALOG["fixtures"][[f["name"] for f in CATALOG["fixtures"]].index(name)]["expected"]
    raw = _blob(name, expected["config_digest"])
    config = parse_cache_config(raw)
    fresh = CacheConfig(config.layers, config.records, config.extra)
    assert encode_cache_config(fresh) == raw
    assert fresh.digest == Digest.parse(expected["config_digest"])


@pytest.mark.parametrize("name", BLOB_FIXTURES)
def test_wrapper_reencodes_to_buildkit_bytes(name: str) -> None:
    expected = CATALOG["fixtures"][[f["name"] for f in CATALOG["fixtures"]].index(name)]["expected"]
    raw = _blob(name, expected["manifest_digest"])
    doc = parse_document(raw)
    assert doc.changed().encode() == raw
    assert sha256_of(raw) == Digest.parse(expected["manifest_digest"])


def test_missing_parent_means_layer_zero_and_minus_one_means_base() -> None:
    raw = json.dumps(
        {
            "layers": [
                {"blob": "sha256:" + "a" * 64, "parent": -1},
                {"blob": "sha256:" + "b" * 64},
                {"blob": "sha256:" + "c" * 64, "parent": 1},
            ],
            "records": [
                {"digest": "sha256:" + "d" * 64, "layers": [{"layer": 2, "createdAt": "2025-06-02T09:14:07Z"}]}
            ],
        }
    ).encode()
    config = parse_cache_config(raw)
    assert [layer.parent for layer in config.layers] == [-1, 0, 1]
    assert config.layer_chain(2) == [0, 1, 2]
    assert config.result_chains(config.records[0]) == [[0, 1, 2]]
    # Re-encoding omits parent 0, exactly as Go's omitempty does.
    assert b'{"blob":"sha256:' + b"b" * 64 + b'"}' in encode_cache_config(replace(config, raw=b""))


def test_layer_loop_is_reported_not_followed_forever() -> None:
    raw = json.dumps({"layers": [{"blob": "sha256:" + "a" * 64}]}).encode()
    config = parse_cache_config(raw)
    with pytest.raises(ValueError, match="looping"):
        config.layer_chain(0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"layers": [{"parent": 1}]}', "no 'blob'"),
        (b'{"layers": [{"blob": "sha256:../../etc/passwd"}]}', "malformed sha256 digest"),
        (b'{"layers": [{"blob": "md5:abc"}]}', "unsupported digest algorithm"),
        (b'{"records": [{"inputs": [{"link": 0}]}]}', "not a list"),
        (b'{"records": [{"layers": [{"layer": "x"}]}]}', "not an integer"),
    ],
)
def test_malformed_cache_configs_raise_format_error(raw: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_cache_config(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"schemaVersion":2,"manifests":[],"config":{}}', "ambiguous"),
        (
            b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","manifests":[]}',
            "does not match",
        ),
        (b'{"schemaVersion":1,"mediaType":"application/vnd.oci.image.manifest.v1+json"}', "schemaVersion"),
        (b'{"schemaVersion":2,"mediaType":"text/plain"}', "neither"),
        (b'{"schemaVersion":2,"manifests":[{"digest":"sha256:abc","size":1}]}', "malformed"),
        (b'{"schemaVersion":2,"manifests":[{"digest":"sha256:' + b"a" * 64 + b'","size":-1}]}', "negative size"),
    ],
)
def test_wrong_shapes_and_media_types_raise_format_error(raw: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_document(raw)


def test_document_kinds_follow_shape_when_media_type_is_missing() -> None:
    index = parse_document(b'{"schemaVersion":2,"manifests":[]}')
    assert isinstance(index, Index)
    assert index.media_type == mt.OCI_INDEX
    manifest = parse_document(
        b'{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:' + b"a" * 64 + b'","size":1},"layers":[]}'
    )
    assert isinstance(manifest, Manifest)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-02T09:14:07.004211983Z", (2025, 6, 2, 9, 14, 7, 4211)),
        ("2025-06-02T09:14:07Z", (2025, 6, 2, 9, 14, 7, 0)),
        ("2025-06-02T11:14:07.5+02:00", (2025, 6, 2, 9, 14, 7, 500000)),
    ],
)
def test_go_times_parse_with_nanoseconds_and_offsets(text: str, expected: tuple[int, ...]) -> None:
    parsed = parse_go_time(text)
    assert parsed is not None
    from datetime import UTC

    utc = parsed.astimezone(UTC)
    assert (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond) == expected


def test_zero_and_garbage_times_are_unknown() -> None:
    assert parse_go_time("0001-01-01T00:00:00Z") is None
    assert parse_go_time("yesterday") is None
    assert parse_go_time(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:../" + "a" * 61,
        "sha1:" + "a" * 40,
        "nocolon",
        "sha256:" + "a" * 64 + "/x",
    ],
)
def test_digests_reject_anything_that_could_be_a_path_trick(text: str) -> None:
    with pytest.raises(FormatError):
        Digest.parse(text)


def test_estargz_is_gzip_with_a_toc_annotation() -> None:
    assert mt.layer_compression(mt.OCI_LAYER_GZIP, {}) == "gzip"
    assert mt.layer_compression(mt.OCI_LAYER_GZIP, {mt.ANNOTATION_ESTARGZ_TOC: "sha256:x"}) == "estargz"
    assert mt.layer_compression(mt.DOCKER_LAYER_ZSTD) == "zstd"
    assert mt.layer_media_type("docker", "zstd") == mt.DOCKER_LAYER_ZSTD
    assert mt.layer_compression("application/json") is None


def test_public_api_is_complete_sorted_and_lazy() -> None:
    import subprocess
    import sys

    from cachescope import core

    # ruff's RUF022 order: CONSTANTS, then Classes, then the rest, each alphabetical
    def kind(name: str) -> int:
        return 0 if name.isupper() else 1 if name[:1].isupper() else 2

    assert core.__all__ == sorted(core.__all__, key=lambda n: (kind(n), n))
    assert set(core.__all__) == set(core._EXPORTS)
    for name in core.__all__:
        assert getattr(core, name) is not None
    code = "import sys, cachescope.core.version; assert 'cachescope.core.session' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
