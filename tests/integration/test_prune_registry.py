"""Registry prune against the real distribution registry: old tags go, kept tags still resolve."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cachescope.core.errors import NotFound, UsageError
from cachescope.core.model.reference import parse_registry_ref
from cachescope.core.ops.prune import plan_prune_registry
from cachescope.core.ops.trim import plan_trim
from cachescope.core.reader import load_cache
from cachescope.core.stores.auth import Credentials
from cachescope.core.stores.registry import RegistryStore, open_registry
from tests.conftest import fixture_dir
from tests.registry_server import RunningRegistry, push_layout
from tests.unit.test_prune import _NoTTY, run_cli
from tests.unit.test_trim import assert_graph_valid, chains_by_record, stored_size

pytestmark = pytest.mark.integration

MULTI = fixture_dir("multi-tag")
# multi-tag's newest results: main 2026-11-23T06:29:42.69Z, feature 06:29:44.70Z (feature is newer).
BETWEEN = datetime(2026, 11, 23, 6, 29, 43, tzinfo=UTC)


async def open_repo(registry: RunningRegistry, repo: str) -> RegistryStore:
    return await open_registry(parse_registry_ref(f"{registry.host}/{repo}"), credentials=Credentials())


async def seed(registry: RunningRegistry, repo: str, *, alias: bool = False) -> dict[str, str]:
    store = await open_repo(registry, repo)
    try:
        main = await push_layout(MULTI, store, "main")
        feature = await push_layout(MULTI, store, "feature")
        if alias:
            await push_layout(MULTI, store, "main-alias")
        return {"main": str(main.digest), "feature": str(feature.digest)}
    finally:
        await store.close()


async def assert_resolves(store: RegistryStore, tag: str) -> None:
    cache = await load_cache(store, tag)
    assert cache.blobs is not None
    assert all(state.stored_size is not None for state in cache.blobs.values())


async def test_keep_one(registry: RunningRegistry, repo_name: str) -> None:
    digests = await seed(registry, repo_name)
    store = await open_repo(registry, repo_name)
    try:
        plan = await plan_prune_registry(store, keep=1)
        assert [(s.action, s.subject) for s in plan.steps] == [("delete-manifest", digests["main"])]
        assert "tag main" in plan.steps[0].detail
        assert any("garbage collection" in n for n in plan.notes)
        # Planning (a dry run) deletes nothing.
        assert sorted(await store.list_tags()) == ["feature", "main"]
        result = await plan.apply()
        assert result.outcomes == {"manifests-deleted": 1, "tags-deleted": 1}
        assert any("garbage collection" in n for n in result.notes)
        assert await store.list_tags() == ["feature"]
        await assert_resolves(store, "feature")
        with pytest.raises(NotFound):
            await store.fetch_manifest(digests["main"])
    finally:
        await store.close()


async def test_manifest_of_a_kept_tag_is_never_deleted(registry: RunningRegistry, repo_name: str) -> None:
    digests = await seed(registry, repo_name, alias=True)
    store = await open_repo(registry, repo_name)
    try:
        # main goes by --tags, but main-alias (same manifest) is kept: nothing may be deleted.
        plan = await plan_prune_registry(store, tags=["main"])
        assert plan.is_empty
        assert any("main-alias" in n and "main kept" in n for n in plan.notes)
        # With --keep 1 both names of the older manifest go together, in one delete.
        plan = await plan_prune_registry(store, keep=1)
        assert [s.subject for s in plan.steps] == [digests["main"]]
        assert "main, main-alias" in plan.steps[0].detail
        await plan.apply()
        assert await store.list_tags() == ["feature"]
        await assert_resolves(store, "feature")
    finally:
        await store.close()


async def test_tag_moved_onto_a_planned_manifest_keeps_it(registry: RunningRegistry, repo_name: str) -> None:
    digests = await seed(registry, repo_name)
    store = await open_repo(registry, repo_name)
    try:
        plan = await plan_prune_registry(store, keep=1)
        # A new tag appears on the doomed manifest after planning.
        raw = (MULTI / "blobs" / "sha256" / digests["main"].removeprefix("sha256:")).read_bytes()
        await store.put_manifest(raw, "application/vnd.oci.image.manifest.v1+json", tag="late")
        result = await plan.apply()
        assert result.outcomes == {"manifests-kept": 1}
        assert sorted(await store.list_tags()) == ["feature", "late", "main"]
        await assert_resolves(store, "late")
    finally:
        await store.close()


async def test_older_than(registry: RunningRegistry, repo_name: str) -> None:
    digests = await seed(registry, repo_name)
    store = await open_repo(registry, repo_name)
    try:
        plan = await plan_prune_registry(store, older_than=timedelta(milliseconds=1), now=BETWEEN)
        assert [s.subject for s in plan.steps] == [digests["main"]]
        assert "cache results" in plan.steps[0].detail
        plan = await plan_prune_registry(store, older_than=timedelta(days=1), now=BETWEEN)
        assert plan.is_empty
        plan = await plan_prune_registry(store, tags=["feat*"], keep=0)
        assert [s.subject for s in plan.steps] == [digests["feature"]]
        with pytest.raises(UsageError, match="--keep N"):
            await plan_prune_registry(store)
    finally:
        await store.close()


def test_cli_prune_registry(
    registry: RunningRegistry,
    repo_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    asyncio.run(seed(registry, repo_name))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.setattr(sys, "stdin", _NoTTY())
    target = f"{registry.host}/{repo_name}"
    assert run_cli(["prune", target, "--keep", "1", "--dry-run"]) == 0
    assert "garbage collection" in capsys.readouterr().out
    assert run_cli(["prune", target, "--keep", "1"]) == 2
    assert "no terminal" in capsys.readouterr().err
    assert run_cli(["prune", target, "--keep-tags", "x"]) == 2
    assert "--keep-tags is for layout directories" in capsys.readouterr().err
    assert run_cli(["prune", target, "--keep", "1", "--yes", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outcomes"]["manifests-deleted"] == 1
    assert doc["bytes_freed"] == 0

    async def remaining() -> list[str]:
        store = await open_repo(registry, repo_name)
        try:
            await assert_resolves(store, "feature")
            return await store.list_tags()
        finally:
            await store.close()

    assert asyncio.run(remaining()) == ["feature"]


async def test_trim_in_a_registry(registry: RunningRegistry, repo_name: str) -> None:
    """trim works through the registry API too: the tag moves last, the old manifest stays by digest."""
    store = await open_repo(registry, repo_name)
    try:
        await push_layout(fixture_dir("max-index"), store, "cache")
        original = await load_cache(store, "cache")
        bound = stored_size(original) * 6 // 10
        await (await plan_trim(store, "cache", store, "cache", max_size=bound)).apply()
        trimmed = await load_cache(store, "cache")
        assert trimmed.form == "index"
        assert stored_size(trimmed) <= bound
        assert_graph_valid(trimmed)
        before, after = chains_by_record(original.config), chains_by_record(trimmed.config)
        assert all(chains <= before[d] for d, chains in after.items())
        assert trimmed.blobs is not None
        assert all(state.stored_size is not None for state in trimmed.blobs.values())
        old = await load_cache(store, str(original.manifest.digest))
        assert old.config.encode() == original.config.encode()
    finally:
        await store.close()
