"""Trim: the smaller cache has a valid graph, respects the bound, keeps every remaining chain, and the
source is never touched (not even by an interrupted run)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from benchmarks.gen_cache import generate_cache
from cachescope.core import LayoutRef, inspect
from cachescope.core.errors import PlanError, UsageError
from cachescope.core.model.cache import CacheConfig, parse_go_time
from cachescope.core.model.digest import Digest
from cachescope.core.model.loaded import LoadedCache
from cachescope.core.model.oci import Descriptor
from cachescope.core.ops.trim import plan_trim, select_trim
from cachescope.core.reader import load_cache
from cachescope.core.stores.local import LocalStore
from tests.conftest import CATALOG
from tests.unit.test_prune import CopyFixture, _NoTTY, all_files, run_cli

WRAPPED = [f["name"] for f in CATALOG["fixtures"] if f["expected"]["form"] != "inline"]


# -- checks ----------------------------------------------------------------------------------


def assert_graph_valid(cache: LoadedCache) -> None:
    """Everything BuildKit's parser checks (buildkit-cache-format.md 2.5), plus descriptors for every blob."""
    config = cache.config
    n_layers, n_records = len(config.layers), len(config.records)
    for i, layer in enumerate(config.layers):
        assert layer.parent == -1 or 0 <= layer.parent < n_layers, f"layer {i} parent {layer.parent}"
        config.layer_chain(i)  # raises on loops
        assert layer.blob in cache.layer_descriptors, f"layer {i} blob {layer.blob} has no descriptor"
    for r, record in enumerate(config.records):
        for s, slot in enumerate(record.inputs):
            assert slot, f"record {r} input slot {s} is empty"
            for link in slot:
                assert 0 <= link.link < n_records, f"record {r} links {link.link}"
        for result in record.results:
            assert 0 <= result.layer < n_layers
            config.layer_chain(result.layer)
        for chained in record.chains:
            assert all(0 <= i < n_layers for i in chained.layers)
    # No record loops: a depth-first walk over inputs.
    state = [0] * n_records

    def visit(i: int) -> None:
        assert state[i] != 1, f"record loop through {i}"
        if state[i] == 2:
            return
        state[i] = 1
        for slot in config.records[i].inputs:
            for link in slot:
                visit(link.link)
        state[i] = 2

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * n_records + 100))
    for i in range(n_records):
        visit(i)


def chains_by_record(config: CacheConfig) -> dict[str, set[tuple[tuple[Digest, ...], str | None]]]:
    """Record digest -> its result chains as blob digests bottom-first, with each result's createdAt."""
    out: dict[str, set[tuple[tuple[Digest, ...], str | None]]] = {}
    for record in config.records:
        chains = out.setdefault(record.digest, set())
        for result in record.results:
            chains.add((tuple(config.layers[i].blob for i in config.layer_chain(result.layer)), result.created_at))
        for chained in record.chains:
            chains.add((tuple(config.layers[i].blob for i in chained.layers), chained.created_at))
    return out


def stored_size(cache: LoadedCache) -> int:
    assert cache.config_descriptor is not None
    blobs = {cache.layer_descriptors[x.blob].digest: cache.layer_descriptors[x.blob].size for x in cache.config.layers}
    return sum(blobs.values()) + cache.config_descriptor.size + cache.manifest.size


async def assert_trimmed_well(original: LoadedCache, trimmed: LoadedCache, bound: int | None) -> None:
    assert_graph_valid(trimmed)
    if bound is not None:
        assert stored_size(trimmed) <= bound
    before = chains_by_record(original.config)
    after = chains_by_record(trimmed.config)
    assert set(after) <= set(before)
    for digest, chains in after.items():
        assert chains <= before[digest], f"record {digest} changed its chains"
    # Records kept without results are needed: something with results links (transitively) to them.
    assert any(r.has_results for r in trimmed.config.records)
    report = await inspect(LayoutRef(Path(trimmed.source.removeprefix("oci:").rsplit(":", 1)[0]), trimmed.reference))
    assert not [w for w in report.warnings if w.code == "CS-GRAPH-INVALID"]
    assert all(row.present for row in report.layers)


# -- fixtures --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", WRAPPED)
async def test_trim_in_place_on_every_fixture(name: str, copy_fixture: CopyFixture) -> None:
    root = copy_fixture(name)
    store = await LocalStore.open(root)
    tag = next(iter(await store.list_tags()))
    original = await load_cache(store, tag)
    original_files = all_files(root)
    bound = stored_size(original) - 1
    plan = await plan_trim(store, tag, store, tag, max_size=bound)
    assert plan.destructive  # the tag moves: confirmed like a deletion
    assert [s.action for s in plan.steps if s.destructive] == ["move-tag"]
    assert all_files(root) == original_files  # planning writes nothing
    result = await plan.apply()
    assert result.manifest is not None
    assert result.manifest.digest != original.manifest.digest
    trimmed = await load_cache(store, tag)
    await assert_trimmed_well(original, trimmed, bound)
    # Nothing of the source was modified or removed: old blobs all still there, byte for byte.
    after = all_files(root)
    assert all(after[path] == data for path, data in original_files.items() if path.startswith("blobs/"))
    # The old cache is still readable by digest.
    again = await load_cache(store, str(original.manifest.digest))
    assert again.config.encode() == original.config.encode()


async def test_trim_to_another_directory_leaves_the_source_alone(copy_fixture: CopyFixture, tmp_path: Path) -> None:
    root = copy_fixture("max-index")
    before = all_files(root)
    src = await LocalStore.open(root)
    dst = LocalStore(tmp_path / "small")
    original = await load_cache(src, "latest")
    bound = stored_size(original) * 6 // 10
    plan = await plan_trim(src, "latest", dst, "trimmed", max_size=bound)
    assert not (tmp_path / "small").exists()  # nothing written before apply
    await plan.apply()
    assert all_files(root) == before
    trimmed = await load_cache(await LocalStore.open(tmp_path / "small"), "trimmed")
    assert trimmed.form == "index"
    await assert_trimmed_well(original, trimmed, bound)
    layer_blobs = {x.blob.hex for x in trimmed.config.layers}
    assert cachedir_blobs(tmp_path / "small") == layer_blobs | {
        trimmed.manifest.digest.hex,
        trimmed.config_descriptor.digest.hex,  # type: ignore[union-attr]
    }


def cachedir_blobs(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs" / "sha256").iterdir()}


async def test_keep_records_newer_than(copy_fixture: CopyFixture) -> None:
    root = copy_fixture("max-default")
    store = await LocalStore.open(root)
    original = await load_cache(store, "latest")
    times = sorted(
        t for r in original.config.records for res in r.results if (t := parse_go_time(res.created_at)) is not None
    )
    cutoff = times[len(times) // 2]
    now = datetime(2026, 12, 1, tzinfo=UTC)
    selection = select_trim(original, keep_newer_than=now - cutoff, now=now)
    assert selection.changed
    kept = [parse_go_time(res.created_at) for r in selection.config.records for res in r.results]
    assert kept
    assert all(t is not None and t >= cutoff for t in kept)
    assert len(kept) == sum(1 for t in times if t >= cutoff)
    await (await plan_trim(store, "latest", store, "latest", keep_newer_than=now - cutoff, now=now)).apply()
    await assert_trimmed_well(original, await load_cache(store, "latest"), None)


async def test_nothing_to_drop_is_a_no_op(copy_fixture: CopyFixture) -> None:
    root = copy_fixture("max-zstd")
    store = await LocalStore.open(root)
    before = all_files(root)
    plan = await plan_trim(store, "latest", store, "latest", max_size=10**12)
    assert plan.is_empty
    await plan.apply()
    assert all_files(root) == before


async def test_too_small_a_bound_is_refused(copy_fixture: CopyFixture) -> None:
    store = await LocalStore.open(copy_fixture("max-default"))
    with pytest.raises(PlanError, match="leaves no result"):
        await plan_trim(store, "latest", store, "latest", max_size=1000)


async def test_inline_cache_and_missing_options_are_usage_errors(copy_fixture: CopyFixture) -> None:
    store = await LocalStore.open(copy_fixture("inline"))
    with pytest.raises(UsageError, match="inline cache"):
        await plan_trim(store, "latest", store, "latest", max_size=1)
    store = await LocalStore.open(copy_fixture("max-default"))
    with pytest.raises(UsageError, match="--max-size"):
        await plan_trim(store, "latest", store, "latest")


# -- a generated big cache -------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_cache(tmp_path_factory.mktemp("big") / "cache", records=3000)


@pytest.mark.parametrize("fraction", [0.9, 0.5, 0.2, 0.05])
async def test_big_generated_cache(big_cache: Path, tmp_path: Path, fraction: float) -> None:
    src = await LocalStore.open(big_cache)
    original = await load_cache(src, "latest")
    before = all_files(big_cache)
    bound = int(stored_size(original) * fraction)
    dst = LocalStore(tmp_path / "out")
    await (await plan_trim(src, "latest", dst, "latest", max_size=bound)).apply()
    trimmed = await load_cache(await LocalStore.open(tmp_path / "out"), "latest")
    await assert_trimmed_well(original, trimmed, bound)
    # Tight: the bound is not undershot by much more than one stage's worth of layers.
    assert stored_size(trimmed) > bound * 0.8
    # Oldest first: the newest result survives, the oldest does not (unless nothing was dropped).
    newest = max((r for r in original.config.records if r.results), key=lambda r: r.results[0].created_at or "")
    assert newest.digest in {r.digest for r in trimmed.config.records if r.has_results}
    assert all_files(big_cache) == before


async def test_big_cache_keep_records_newer_than(big_cache: Path, tmp_path: Path) -> None:
    src = await LocalStore.open(big_cache)
    original = await load_cache(src, "latest")
    now = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    selection = select_trim(original, keep_newer_than=timedelta(minutes=30), now=now)
    cutoff = now - timedelta(minutes=30)
    expected = {
        r.digest
        for r in original.config.records
        for res in r.results
        if (t := parse_go_time(res.created_at)) is not None and t >= cutoff
    }
    assert {r.digest for r in selection.config.records if r.has_results} == expected
    dst = LocalStore(tmp_path / "out")
    await (await plan_trim(src, "latest", dst, "latest", keep_newer_than=timedelta(minutes=30), now=now)).apply()
    await assert_trimmed_well(original, await load_cache(await LocalStore.open(tmp_path / "out"), "latest"), None)


# -- interruption ----------------------------------------------------------------------------


class FailingStore(LocalStore):
    """A layout whose writes fail at a chosen point, like a full disk or a killed process."""

    fail_on: str = ""

    async def write_blob(
        self, chunks: AsyncIterable[bytes], *, expected: Descriptor | None = None, media_type: str = ""
    ) -> Descriptor:
        if self.fail_on == "blob":
            raise OSError(28, "No space left on device")
        return await super().write_blob(chunks, expected=expected, media_type=media_type)

    async def set_tag(self, tag: str, desc: Descriptor, annotations: dict[str, str] | None = None) -> None:
        if self.fail_on == "tag":
            raise OSError(28, "No space left on device")
        await super().set_tag(tag, desc, annotations)


@pytest.mark.parametrize("fail_on", ["blob", "tag"])
async def test_interrupted_trim_leaves_the_source_valid(copy_fixture: CopyFixture, fail_on: str) -> None:
    root = copy_fixture("max-default")
    store = FailingStore(root)
    original = await load_cache(store, "latest")
    bound = stored_size(original) // 2
    plan = await plan_trim(store, "latest", store, "latest", max_size=bound)
    store.fail_on = fail_on
    with pytest.raises(OSError, match="No space left"):
        await plan.apply()
    store.fail_on = ""
    still = await load_cache(store, "latest")
    assert still.manifest.digest == original.manifest.digest
    report = await inspect(LayoutRef(root, "latest"))
    assert not [w for w in report.warnings if w.severity == "error"]
    # Running it again finishes the job.
    await (await plan_trim(store, "latest", store, "latest", max_size=bound)).apply()
    await assert_trimmed_well(original, await load_cache(store, "latest"), bound)


# -- CLI -------------------------------------------------------------------------------------


def test_cli_trim(
    copy_fixture: CopyFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_fixture("max-docker")
    monkeypatch.setattr(sys, "stdin", _NoTTY())
    before = all_files(root)
    assert run_cli(["trim", str(root), "--max-size", "300KiB", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"trim oci:{root}:latest")
    assert all_files(root) == before
    assert run_cli(["trim", f"oci:{root}", f"oci:{tmp_path / 'out'}:small", "--max-size", "300KiB", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["operation"] == "trim"
    assert doc["tag"] == "small"
    assert all_files(root) == before
    assert run_cli(["trim", str(root), "--max-size", "lots"]) == 2
    assert "invalid size" in capsys.readouterr().err
    assert run_cli(["trim", str(root)]) == 2
    assert "--max-size" in capsys.readouterr().err
