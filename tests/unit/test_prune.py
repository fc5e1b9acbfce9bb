"""Prune of local layout directories: exactly the unreachable blobs go, nothing else, never on a dry run."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cachescope.core import LayoutRef, inspect, parse_duration, parse_size
from cachescope.core.errors import PlanStale, UsageError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.digest import Digest, sha256_of
from cachescope.core.ops.prune import (
    ANNOTATION_IMAGE_CREATED,
    plan_prune,
    plan_prune_local,
    reachable_blobs,
    stale_temp_files,
)
from cachescope.core.stores.local import TEMP_PREFIX, LocalStore
from cachescope.tui import cli

NOW = datetime(2026, 11, 24, tzinfo=UTC)
CopyFixture = Callable[[str], Path]


# -- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500MB", 500_000_000),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("1.5G", int(1.5 * 1024**3)),
        ("10k", 10 * 1024),
        ("2 KiB", 2048),
        ("1024", 1024),
        ("1024B", 1024),
        ("3tb", 3 * 1000**4),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "5q", "ib", "1.5.2GB", "-3MB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1.5h", timedelta(minutes=90)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "7d-", "ten days"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


# -- helpers ---------------------------------------------------------------------------------


def blob_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "blobs" / "sha256").iterdir()}


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def add_blob(root: Path, data: bytes) -> Digest:
    digest = sha256_of(data)
    (root / "blobs" / "sha256" / digest.hex).write_bytes(data)
    return digest


def add_entry(root: Path, data: bytes, tag: str, media_type: str, annotations: dict[str, str] | None = None) -> None:
    digest = add_blob(root, data)
    index = json.loads((root / "index.json").read_text())
    index["manifests"].append(
        {
            "mediaType": media_type,
            "digest": str(digest),
            "size": len(data),
            "annotations": {**(annotations or {}), mt.ANNOTATION_REF_NAME: tag},
        }
    )
    (root / "index.json").write_text(json.dumps(index))


def set_entry_annotation(root: Path, tag: str, key: str, value: str) -> None:
    index = json.loads((root / "index.json").read_text())
    for entry in index["manifests"]:
        if entry["annotations"][mt.ANNOTATION_REF_NAME] == tag:
            entry["annotations"][key] = value
    (root / "index.json").write_text(json.dumps(index))


def deleted_blobs(plan_steps: tuple[object, ...]) -> set[str]:
    return {s.subject for s in plan_steps if s.action == "delete-blob"}  # type: ignore[attr-defined]


async def clean(root: Path, tag: str) -> None:
    report = await inspect(LayoutRef(root, tag))
    assert not [w for w in report.warnings if w.severity == "error"], report.warnings
    assert all(row.present for row in report.layers)


@pytest.fixture
def two_tags_with_orphans(copy_fixture: CopyFixture) -> tuple[Path, set[str]]:
    """multi-tag (two tags sharing blobs) plus two orphan blobs."""
    root = copy_fixture("multi-tag")
    orphans = {str(add_blob(root, b"orphan one\n")), str(add_blob(root, b"orphan two" * 1000))}
    return root, orphans


# -- local prune -----------------------------------------------------------------------------


async def test_exactly_the_orphans_go(two_tags_with_orphans: tuple[Path, set[str]]) -> None:
    root, orphans = two_tags_with_orphans
    before = blob_files(root)
    store = await LocalStore.open(root)
    plan = await plan_prune_local(store)
    assert deleted_blobs(plan.steps) == orphans
    assert not [s for s in plan.steps if s.action == "delete-tag"]
    assert plan.bytes_deleted == sum(len(before[Digest.parse(d).hex]) for d in orphans)
    result = await plan.apply()
    after = blob_files(root)
    assert set(before) - set(after) == {Digest.parse(d).hex for d in orphans}
    assert all(after[name] == data for name, data in before.items() if name in after)
    assert result.bytes_freed == plan.bytes_deleted
    assert result.outcomes == {"blobs-deleted": 2}
    await clean(root, "main")
    await clean(root, "feature")
    # Nothing left to do.
    assert (await plan_prune_local(store)).is_empty


async def test_planning_deletes_nothing(two_tags_with_orphans: tuple[Path, set[str]]) -> None:
    root, _ = two_tags_with_orphans
    before = all_files(root)
    store = await LocalStore.open(root)
    plan = await plan_prune_local(store, keep_tags=["main"], older_than=timedelta(seconds=1))
    assert plan.destructive
    assert all_files(root) == before


def test_dry_run_deletes_nothing(
    two_tags_with_orphans: tuple[Path, set[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, orphans = two_tags_with_orphans
    before = all_files(root)
    code = run_cli(["prune", str(root), "--keep-tags", "main", "--dry-run", "--yes"])
    assert code == 0
    out = capsys.readouterr().out
    assert "delete-tag" in out
    assert all(o in out for o in orphans)
    code = run_cli(["prune", str(root), "--dry-run", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] is True
    assert {s["subject"] for s in doc["steps"]} == orphans
    assert all_files(root) == before


async def test_keep_tags_drops_other_tags_and_only_their_own_blobs(copy_fixture: CopyFixture) -> None:
    root = copy_fixture("multi-tag")
    store = await LocalStore.open(root)
    main_only, _ = await reachable_blobs(store, [await store.resolve("main")])
    plan = await plan_prune_local(store, keep_tags=["ma*"])
    assert [s.subject for s in plan.steps if s.action == "delete-tag"] == ["feature"]
    await plan.apply()
    assert await store.list_tags() == ["main"]
    remaining = {Digest("sha256", name) for name in blob_files(root)}
    assert remaining == set(main_only)
    await clean(root, "main")


async def test_older_than_uses_created_annotation_then_cache_results(copy_fixture: CopyFixture) -> None:
    root = copy_fixture("multi-tag")
    set_entry_annotation(root, "feature", ANNOTATION_IMAGE_CREATED, "2020-01-01T00:00:00Z")
    store = await LocalStore.open(root)
    plan = await plan_prune_local(store, older_than=timedelta(days=30), now=NOW)
    drops = [s for s in plan.steps if s.action == "delete-tag"]
    assert [s.subject for s in drops] == ["feature"]
    assert ANNOTATION_IMAGE_CREATED in drops[0].detail
    # main's age comes from its cache config's newest result (2026-11-23T06:29:42Z).
    plan = await plan_prune_local(store, older_than=timedelta(hours=12), now=NOW)
    assert {s.subject for s in plan.steps if s.action == "delete-tag"} == {"main", "feature"}
    assert "cache results" in next(s.detail for s in plan.steps if s.subject == "main")
    # Both options: a tag goes only if it matches no --keep-tags glob and is old.
    plan = await plan_prune_local(store, keep_tags=["feature"], older_than=timedelta(hours=12), now=NOW)
    assert [s.subject for s in plan.steps if s.action == "delete-tag"] == ["main"]
    plan = await plan_prune_local(store, keep_tags=["nothing"], older_than=timedelta(days=30), now=NOW)
    assert [s.subject for s in plan.steps if s.action == "delete-tag"] == ["feature"]


async def test_tag_of_unknown_age_is_kept(copy_fixture: CopyFixture) -> None:
    root = copy_fixture("multi-tag")
    # An artifact manifest: no created annotation, no cache config, no image config.
    config = add_blob(root, b"{}")
    artifact = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.example+json", "digest": str(config), "size": 2},
            "layers": [],
        }
    ).encode()
    add_entry(root, artifact, "artifact", mt.OCI_MANIFEST)
    store = await LocalStore.open(root)
    plan = await plan_prune_local(store, older_than=timedelta(seconds=1), now=NOW)
    assert {s.subject for s in plan.steps if s.action == "delete-tag"} == {"main", "feature"}
    assert any("age is unknown: artifact" in n for n in plan.notes)
    assert str(config) not in deleted_blobs(plan.steps)


async def test_images_sharing_the_directory_keep_their_blobs(copy_fixture: CopyFixture) -> None:
    root = copy_fixture("multi-tag")
    store = await LocalStore.open(root)
    cache_layer = next(iter((await store.fetch_manifest("main"))[1].layers))  # type: ignore[union-attr]
    own_layer = add_blob(root, b"an image layer that only the image uses")
    image_config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    ).encode()
    config_digest = add_blob(root, image_config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_IMAGE_CONFIG, "digest": str(config_digest), "size": len(image_config)},
            "layers": [
                {"mediaType": mt.OCI_LAYER_GZIP, "digest": str(cache_layer.digest), "size": cache_layer.size},
                {"mediaType": mt.OCI_LAYER, "digest": str(own_layer), "size": 39},
            ],
        }
    ).encode()
    manifest_digest = add_blob(root, manifest)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [
                {
                    "mediaType": mt.OCI_MANIFEST,
                    "digest": str(manifest_digest),
                    "size": len(manifest),
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        }
    ).encode()
    add_entry(root, index, "app", mt.OCI_INDEX)
    orphan = add_blob(root, b"nobody's")
    store = await LocalStore.open(root)
    plan = await plan_prune_local(store, keep_tags=["app"])
    assert {s.subject for s in plan.steps if s.action == "delete-tag"} == {"main", "feature"}
    gone = deleted_blobs(plan.steps)
    assert str(orphan) in gone
    for kept in (own_layer, config_digest, manifest_digest, cache_layer.digest):
        assert str(kept) not in gone
    # The image's age comes from its image config (through the index).
    plan = await plan_prune_local(store, older_than=timedelta(days=30), now=NOW)
    assert "app" in {s.subject for s in plan.steps if s.action == "delete-tag"}
    assert "image config" in next(s.detail for s in plan.steps if s.subject == "app")


async def test_blob_named_only_by_the_cache_config_is_kept(copy_fixture: CopyFixture) -> None:
    """A layer the config references but the wrapper does not list is still part of the cache."""
    root = copy_fixture("max-image-manifest")
    store = await LocalStore.open(root)
    entry = await store.resolve("latest")
    manifest = json.loads((root / "blobs" / "sha256" / entry.digest.hex).read_bytes())
    dropped = manifest["layers"].pop(0)
    raw = json.dumps(manifest, separators=(",", ":")).encode()
    digest = add_blob(root, raw)
    index = json.loads((root / "index.json").read_text())
    index["manifests"][0].update(digest=str(digest), size=len(raw))
    (root / "index.json").write_text(json.dumps(index))
    plan = await plan_prune_local(await LocalStore.open(root))
    gone = deleted_blobs(plan.steps)
    assert dropped["digest"] not in gone
    assert gone == {str(entry.digest)}  # only the old wrapper


async def test_stale_temp_files_go_fresh_ones_stay(copy_fixture: CopyFixture) -> None:
    root = copy_fixture("multi-tag")
    stale = root / "blobs" / "sha256" / f"{TEMP_PREFIX}0123abcd"
    stale.write_bytes(b"x" * 100)
    stale_index = root / f"{TEMP_PREFIX}beef-index.json"
    stale_index.write_bytes(b"{}")
    ingest = root / "ingest" / "abc"
    ingest.mkdir(parents=True)
    (ingest / "data").write_bytes(b"partial")
    old = time.time() - 7200
    for p in (stale, stale_index, ingest / "data"):
        os.utime(p, (old, old))
    fresh = root / "blobs" / "sha256" / f"{TEMP_PREFIX}fresh"
    fresh.write_bytes(b"being written")
    assert {t.path for t in stale_temp_files(root)} == {stale, stale_index, ingest / "data"}
    store = await LocalStore.open(root)
    plan = await plan_prune_local(store)
    assert plan.bytes_deleted == 100 + 2 + 7
    result = await plan.apply()
    assert result.outcomes == {"temp-files-deleted": 3}
    assert not stale.exists()
    assert not stale_index.exists()
    assert fresh.exists()
    await clean(root, "main")


async def test_blob_a_tag_reaches_again_is_not_swept(copy_fixture: CopyFixture) -> None:
    root = copy_fixture("multi-tag")
    store = await LocalStore.open(root)
    feature = await store.resolve("feature")
    plan = await plan_prune_local(store, keep_tags=["main"])
    assert str(feature.digest) in deleted_blobs(plan.steps)
    # Between plan and apply, a build re-tags the old manifest under a new name.
    await store.set_tag("revived", feature)
    result = await plan.apply()
    assert result.outcomes["blobs-kept"] >= 1
    assert await store.list_tags() == ["main", "revived"]
    await clean(root, "revived")
    await clean(root, "main")


async def test_moved_tag_makes_the_plan_stale(two_tags_with_orphans: tuple[Path, set[str]]) -> None:
    root, _ = two_tags_with_orphans
    store = await LocalStore.open(root)
    plan = await plan_prune_local(store, keep_tags=["main"])
    before = all_files(root)
    await store.set_tag("main", await store.resolve("feature"))
    after_move = all_files(root)
    with pytest.raises(PlanStale, match="main"):
        await plan.apply()
    assert all_files(root) == after_move != before


async def test_broken_manifest_stops_the_prune(copy_fixture: CopyFixture) -> None:
    root = copy_fixture("multi-tag")
    add_entry(root, b"not json", "broken", mt.OCI_MANIFEST)
    with pytest.raises(Exception, match="cannot read the manifest of tag broken"):
        await plan_prune_local(await LocalStore.open(root))


async def test_registry_options_are_refused_for_a_directory(copy_fixture: CopyFixture) -> None:
    store = await LocalStore.open(copy_fixture("multi-tag"))
    with pytest.raises(UsageError, match="--keep-tags"):
        await plan_prune(store, keep=1)


# -- CLI -------------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    plugins = cli._PLUGINS
    if "cachescope.tui.cli_prune" not in plugins:
        cli._PLUGINS = (*plugins, "cachescope.tui.cli_prune")  # type: ignore[assignment]  # until cli.py lists it
    try:
        return cli.main(argv)
    finally:
        cli._PLUGINS = plugins


class _NoTTY:
    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        raise AssertionError("must not ask")


def test_cli_refuses_without_terminal_or_yes(
    two_tags_with_orphans: tuple[Path, set[str]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = two_tags_with_orphans
    monkeypatch.setattr(sys, "stdin", _NoTTY())
    before = all_files(root)
    assert run_cli(["prune", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("cachescope: error: prune would delete 2 blob(s)")
    assert "--yes" in err
    assert all_files(root) == before


def test_cli_yes_json_reports_bytes_freed(
    two_tags_with_orphans: tuple[Path, set[str]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, orphans = two_tags_with_orphans
    monkeypatch.setattr(sys, "stdin", _NoTTY())
    assert run_cli(["prune", str(root), "--keep-tags", "main", "--yes", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["operation"] == "prune"
    assert doc["outcomes"]["tags-deleted"] == 1
    assert doc["bytes_freed"] == doc["plan"]["totals"]["bytes_deleted"] > 0
    assert not any((root / "blobs" / "sha256" / Digest.parse(o).hex).exists() for o in orphans)


def test_cli_usage_errors(copy_fixture: CopyFixture, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_fixture("multi-tag")
    assert run_cli(["prune", f"oci:{root}:main"]) == 2
    assert "whole directory" in capsys.readouterr().err
    assert run_cli(["prune", str(root), "--older-than", "soon"]) == 2
    assert "invalid duration" in capsys.readouterr().err
    assert run_cli(["prune", str(root), "--keep", "2"]) == 2
    assert "--keep-tags" in capsys.readouterr().err


async def test_sweep_waits_for_the_index_lock(two_tags_with_orphans: tuple[Path, set[str]]) -> None:
    """A BuildKit export holding index.json.lock keeps the sweep waiting; nothing is deleted meanwhile."""
    root, orphans = two_tags_with_orphans
    store = await LocalStore.open(root)
    plan = await plan_prune_local(store)
    fd = os.open(root / "index.json.lock", os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        task = asyncio.ensure_future(plan.apply())
        await asyncio.sleep(0.3)
        assert not task.done()
        assert all((root / "blobs" / "sha256" / Digest.parse(o).hex).exists() for o in orphans)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    result = await asyncio.wait_for(task, 5)
    assert result.outcomes == {"blobs-deleted": 2}
