"""Bad local layouts: each gets a typed error naming the problem, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachescope.core import (
    DigestMismatch,
    FormatError,
    LayoutError,
    LayoutRef,
    NotACache,
    NotFound,
    SizeMismatch,
    TooLarge,
    inspect,
)
from cachescope.core.model.digest import sha256_of


def _manifest_path(layout: Path) -> Path:
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    return layout / "blobs" / "sha256" / digest.split(":")[1]


def _config_path(layout: Path) -> Path:
    manifest = json.loads(_manifest_path(layout).read_bytes())
    return layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]


async def test_truncated_config_is_a_size_mismatch(copy_fixture) -> None:
    layout = copy_fixture("max-default")
    path = _config_path(layout)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(SizeMismatch, match="expected 3048 bytes, got 3038"):
        await inspect(LayoutRef(layout))


async def test_tampered_config_is_a_digest_mismatch(copy_fixture) -> None:
    layout = copy_fixture("max-default")
    path = _config_path(layout)
    data = bytearray(path.read_bytes())
    data[5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match="sha256:a914ce54"):
        await inspect(LayoutRef(layout))


async def test_missing_layer_blob_is_an_error_level_warning(copy_fixture) -> None:
    layout = copy_fixture("max-index")
    manifest = json.loads(_manifest_path(layout).read_bytes())
    victim = manifest["manifests"][0]["digest"]
    (layout / "blobs" / "sha256" / victim.split(":")[1]).unlink()
    report = await inspect(LayoutRef(layout))
    missing = [w for w in report.warnings if w.code == "CS-BLOB-MISSING"]
    assert [w.subject for w in missing] == [victim]
    assert report.has_errors
    assert [r.present for r in report.layers if str(r.digest) == victim] == [False]


async def test_corrupt_layer_fails_only_the_deep_check(copy_fixture) -> None:
    layout = copy_fixture("max-default")
    manifest = json.loads(_manifest_path(layout).read_bytes())
    layer = manifest["layers"][1]
    path = layout / "blobs" / "sha256" / layer["digest"].split(":")[1]
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    shallow = await inspect(LayoutRef(layout))
    assert not shallow.has_errors
    deep = await inspect(LayoutRef(layout), deep=True)
    codes = {w.code for w in deep.warnings}
    assert "CS-DEEP-UNREADABLE" in codes
    assert any(layer["digest"][7:19] in w.message for w in deep.warnings if w.code == "CS-DEEP-UNREADABLE")


@pytest.mark.parametrize(
    "digest",
    ["sha256:../../../../etc/passwd", "sha256:" + "a" * 60 + "/../", "../sha256:" + "a" * 64, "sha256:" + "A" * 64],
)
async def test_path_tricks_in_index_digests_are_refused(tmp_path: Path, digest: str) -> None:
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": 10,
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises((FormatError, LayoutError)):
        await inspect(LayoutRef(tmp_path))


async def test_a_symlinked_blob_leaving_the_layout_is_refused(copy_fixture, tmp_path: Path) -> None:
    layout = copy_fixture("max-default")
    outside = tmp_path / "outside"
    path = _config_path(layout)
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)
    with pytest.raises(LayoutError, match="link leaving the layout"):
        await inspect(LayoutRef(layout))


async def test_huge_manifests_are_refused_before_reading(tmp_path: Path) -> None:
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    body = b'{"schemaVersion":2,"manifests":[' + b" " * (5 * 1024 * 1024) + b"]}"
    digest = sha256_of(body)
    (tmp_path / "blobs" / "sha256" / digest.hex).write_bytes(body)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": str(digest),
                "size": len(body),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (tmp_path / "index.json").write_text(json.dumps(index))
    with pytest.raises(TooLarge, match="too large"):
        await inspect(LayoutRef(tmp_path))


async def test_malformed_index_json_is_a_layout_error(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text("{nope")
    with pytest.raises(LayoutError, match="not valid JSON"):
        await inspect(LayoutRef(tmp_path))


async def test_unknown_tag_lists_the_tags_there_are() -> None:
    from tests.conftest import fixture_dir

    with pytest.raises(NotFound, match=r"tag 'nope' not found .*\(tags: main, feature\)"):
        await inspect(LayoutRef(fixture_dir("multi-tag"), "nope"))


async def test_an_image_without_inline_cache_is_explained(copy_fixture) -> None:
    layout = copy_fixture("inline")
    manifest = json.loads(_manifest_path(layout).read_bytes())
    config_path = layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]
    config = json.loads(config_path.read_bytes())
    del config["moby.buildkit.cache.v0"]
    new_config = json.dumps(config).encode()
    new_digest = sha256_of(new_config)
    (layout / "blobs" / "sha256" / new_digest.hex).write_bytes(new_config)
    manifest["config"]["digest"] = str(new_digest)
    manifest["config"]["size"] = len(new_config)
    new_manifest = json.dumps(manifest).encode()
    md = sha256_of(new_manifest)
    (layout / "blobs" / "sha256" / md.hex).write_bytes(new_manifest)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0].update(digest=str(md), size=len(new_manifest))
    (layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(NotACache, match="container image without inline cache"):
        await inspect(LayoutRef(layout))


async def test_an_oci_artifact_is_explained(tmp_path: Path) -> None:
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    config = b"{}"
    cd = sha256_of(config)
    (tmp_path / "blobs" / "sha256" / cd.hex).write_bytes(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": str(cd), "size": 2},
            "layers": [],
        }
    ).encode()
    md = sha256_of(manifest)
    (tmp_path / "blobs" / "sha256" / md.hex).write_bytes(manifest)
    (tmp_path / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": str(md),
                        "size": len(manifest),
                        "annotations": {"org.opencontainers.image.ref.name": "latest"},
                    }
                ],
            }
        )
    )
    with pytest.raises(NotACache, match=r"OCI artifact .*helm"):
        await inspect(LayoutRef(tmp_path))
