"""recompress, reexport and verify through the real distribution registry, and interrupted runs.

Every genuine fixture is pushed, recompressed in place (zstd, gzip, uncompressed) and
re-exported to every form (into another repository: cross-repository mounts) and back.
Interruptions are injected by wrapping the real transport (a dropped connection is a
fault the real server cannot produce on demand); the server itself stays real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from cachescope.core.errors import NetworkError
from cachescope.core.model.reference import LayoutRef, RegistryRef
from cachescope.core.ops.recompress import RecompressOptions, plan_recompress
from cachescope.core.ops.reexport import plan_reexport
from cachescope.core.ops.writer import open_destination
from cachescope.core.reader import load_cache
from cachescope.core.session import open_store
from cachescope.core.stores.base import Store
from cachescope.core.stores.registry import RegistryStore, open_registry
from tests.conftest import fixture_dir
from tests.registry_server import RunningRegistry, push_layout
from tests.unit.test_ops_local import (
    BACK,
    EXPECTED_FORM,
    FIXTURE_NAMES,
    TAGS,
    TARGETS,
    assert_layers_are,
    assert_verifies,
    diff_ids,
    semantic,
    tree_hash,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _variant_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHESCOPE_CACHE_DIR", str(tmp_path / "user-cache"))


@pytest.fixture(scope="module")
def fixture_hashes() -> dict[str, str]:
    return {name: tree_hash(fixture_dir(name)) for name in FIXTURE_NAMES}


def ref(registry: RunningRegistry, repo: str, tag: str = "latest") -> RegistryRef:
    return RegistryRef(registry.host, repo, tag, plain_http=True)


async def push(registry: RunningRegistry, repo: str, name: str, tag: str) -> None:
    async with open_store(ref(registry, repo, tag)) as store:
        assert isinstance(store, RegistryStore)
        await push_layout(fixture_dir(name), store, tag)


# -- every fixture -------------------------------------------------------------------------------


async def recompress_chain(store: Store, tag: str) -> None:
    """zstd, gzip, uncompressed in place; each result verifies and keeps records and diff IDs."""
    original = await load_cache(store, tag, check_blobs=False)
    if original.form == "inline":
        await (await plan_reexport(store, tag, store, "cache")).apply()
        tag = "cache"
        original = await load_cache(store, tag, check_blobs=False)
    for compression in ("zstd", "gzip", "uncompressed"):
        plan = await plan_recompress(store, tag, store, tag, RecompressOptions(compression))
        assert plan.is_empty or plan.steps[-1].action == "move-tag"
        await plan.apply()
        cache = await load_cache(store, tag, check_blobs=False)
        assert cache.form == original.form
        assert cache.config.records == original.config.records
        assert diff_ids(cache) == diff_ids(original)
        assert_layers_are(cache, compression)
        await assert_verifies(store, tag)
    # the original cache is untouched: still complete and intact by digest
    await assert_verifies(store, str(original.manifest.digest))


async def reexport_round_trips(src: Store, tag: str, dst: Store) -> None:
    """Every form into another repository of the same registry (mounts), and back."""
    original = await load_cache(src, tag, check_blobs=False)
    expected = semantic(original)

    async def convert(form: str, family: str) -> dict[str, int]:
        new_tag = f"{form}-{family}"
        plan = await plan_reexport(src, tag, dst, new_tag, form=form, mediatypes=family)  # type: ignore[arg-type]
        result = await plan.apply()
        cache = await load_cache(dst, new_tag, check_blobs=False)
        assert cache.form == EXPECTED_FORM[(form, family)]
        assert semantic(cache) == expected
        await assert_verifies(dst, new_tag)
        back_form, back_family = BACK[original.form]
        back = await plan_reexport(dst, new_tag, src, f"{new_tag}-back", form=back_form, mediatypes=back_family)  # type: ignore[arg-type]
        await back.apply()
        again = await load_cache(src, f"{new_tag}-back", check_blobs=False)
        assert semantic(again) == expected
        if original.form != "inline":
            assert again.manifest.digest == original.manifest.digest
        await assert_verifies(src, f"{new_tag}-back")
        return result.outcomes

    # One at a time: concurrent mounts of one blob into one repository race inside the registry.
    outcomes = [await convert(form, family) for form, family in TARGETS]
    assert not any("copied" in o for o in outcomes)  # same registry: blobs are mounted, never copied
    assert any("mounted" in o for o in outcomes)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
async def test_every_fixture_recompresses_and_reexports_through_the_registry(
    registry: RunningRegistry, repo_name: str, name: str, fixture_hashes: dict[str, str]
) -> None:
    # Independent chains of round trips, so they run at once: in-place recompression in one
    # repository, re-exports from a second one into a third.
    tag = TAGS[name]
    here, there = f"{repo_name}-recompress", f"{repo_name}-reexport"
    await asyncio.gather(push(registry, here, name, tag), push(registry, there, name, tag))
    async with (
        open_store(ref(registry, here, tag)) as a,
        open_store(ref(registry, there, tag)) as b,
        open_store(ref(registry, f"{there}-copy")) as c,
    ):
        await asyncio.gather(recompress_chain(a, tag), reexport_round_trips(b, tag, c))
    assert tree_hash(fixture_dir(name)) == fixture_hashes[name]


@pytest.mark.parametrize("name", ["max-docker", "max-default", "inline"])
async def test_reexport_registry_to_local_and_back_to_another_registry_repo(
    registry: RunningRegistry, repo_name: str, name: str, tmp_path: Path
) -> None:
    tag = TAGS[name]
    await push(registry, repo_name, name, tag)
    async with (
        open_store(ref(registry, repo_name, tag)) as src,
        open_destination(LayoutRef(tmp_path / "layout", "local")) as local,
        open_store(ref(registry, f"{repo_name}-from-local")) as back,
    ):
        original = await load_cache(src, tag)
        await (await plan_reexport(src, tag, local, "local")).apply()
        await assert_verifies(local, "local")
        plan = await plan_reexport(local, "local", back, "up")
        assert "mount-blob" not in {s.action for s in plan.steps}
        await plan.apply()
        await assert_verifies(back, "up")
        assert semantic(await load_cache(back, "up")) == semantic(original)
        if original.form != "inline":
            assert (await load_cache(back, "up")).manifest.digest == original.manifest.digest


async def test_recompress_from_the_registry_into_a_layout(
    registry: RunningRegistry, repo_name: str, tmp_path: Path
) -> None:
    await push(registry, repo_name, "max-docker-estargz", "latest")
    async with open_store(ref(registry, repo_name)) as src, open_destination(LayoutRef(tmp_path / "o")) as dst:
        await (await plan_recompress(src, "latest", dst, "z", RecompressOptions("zstd", level=9))).apply()
        cache = await load_cache(dst, "z")
        assert cache.form == "docker-manifest-list"
        assert_layers_are(cache, "zstd")
        await assert_verifies(dst, "z")


# -- interruptions -------------------------------------------------------------------------------

Fault = Callable[[httpx.Request], bool]


class Switch:
    """Decides which requests fail; `armed` False lets everything through."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.armed = True
        self.failed = 0
        self.seen: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> bool:
        self.seen.append((request.method, request.url.path))
        if self.armed and self.fault(request):
            self.failed += 1
            return True
        return False


@asynccontextmanager
async def faulty_store(registry: RunningRegistry, repo: str, switch: Switch) -> AsyncIterator[RegistryStore]:
    """A store over the real registry whose connection drops wherever `switch` says."""
    real = httpx.AsyncHTTPTransport()

    async def handler(request: httpx.Request) -> httpx.Response:
        if switch(request):
            raise httpx.WriteError("connection dropped (injected)", request=request)
        return await real.handle_async_request(request)

    store = await open_registry(ref(registry, repo), transport=httpx.MockTransport(handler), retries=1)
    try:
        yield store
    finally:
        await store.close()
        await real.aclose()


def upload_puts_after(n: int) -> Fault:
    """Let `n` blob uploads finish, then drop the connection at every upload's final PUT."""
    count = 0

    def fault(request: httpx.Request) -> bool:
        nonlocal count
        if request.method == "PUT" and "/blobs/uploads/" in request.url.path:
            count += 1
            return count > n
        return False

    return fault


async def test_interrupted_blob_upload_keeps_the_old_tag_and_a_rerun_reuses_blobs(
    registry: RunningRegistry, repo_name: str
) -> None:
    await push(registry, repo_name, "max-default", "latest")
    async with open_store(ref(registry, repo_name)) as clean:
        old = await load_cache(clean, "latest")
    switch = Switch(upload_puts_after(3))
    async with faulty_store(registry, repo_name, switch) as store:
        plan = await plan_recompress(store, "latest", store, "latest", RecompressOptions("zstd"))
        with pytest.raises(NetworkError, match="injected"):
            await plan.apply()
        assert switch.failed >= 1
        assert not any(m == "PUT" and "/manifests/" in p for m, p in switch.seen)
    async with open_store(ref(registry, repo_name)) as clean:
        still = await load_cache(clean, "latest")
        assert still.manifest.digest == old.manifest.digest
        await assert_verifies(clean, "latest")
        rerun = await plan_recompress(clean, "latest", clean, "latest", RecompressOptions("zstd"))
        reused = [s for s in rerun.steps if s.action == "reuse-blob"]
        assert len(reused) >= 3  # the blobs uploaded before the drop are not compressed again
        result = await rerun.apply()
        assert result.outcomes.get("reused", 0) >= 3
        assert result.outcomes.get("created", 0) + result.outcomes.get("reused", 0) == 8
        assert_layers_are(await load_cache(clean, "latest"), "zstd")
        await assert_verifies(clean, "latest")


async def test_interrupted_manifest_step_keeps_the_old_tag_and_a_rerun_finishes(
    registry: RunningRegistry, repo_name: str
) -> None:
    await push(registry, repo_name, "max-index", "latest")
    async with open_store(ref(registry, repo_name)) as clean:
        old = await load_cache(clean, "latest")
    switch = Switch(lambda r: r.method == "PUT" and r.url.path.endswith("/manifests/latest"))
    async with faulty_store(registry, repo_name, switch) as store:
        plan = await plan_recompress(store, "latest", store, "latest", RecompressOptions("zstd"))
        with pytest.raises(NetworkError, match="injected"):
            await plan.apply()
        assert switch.failed == 1
    async with open_store(ref(registry, repo_name)) as clean:
        assert (await load_cache(clean, "latest")).manifest.digest == old.manifest.digest
        await assert_verifies(clean, "latest")
        rerun = await plan_recompress(clean, "latest", clean, "latest", RecompressOptions("zstd"))
        assert [s.action for s in rerun.steps if s.subject.startswith("sha256:")] == ["reuse-blob"] * 8
        result = await rerun.apply()
        assert result.outcomes == {"reused": 8}
        await assert_verifies(clean, "latest")


async def test_interrupted_reexport_keeps_the_destination_tag_and_a_rerun_reuses_blobs(
    registry: RunningRegistry, repo_name: str, tmp_path: Path
) -> None:
    """Local -> registry into a tag that already holds a cache; the connection drops mid-copy."""
    await push(registry, repo_name, "min-default", "latest")
    async with open_store(ref(registry, repo_name)) as clean:
        old = await load_cache(clean, "latest")
    switch = Switch(upload_puts_after(4))
    src_ref = LayoutRef(fixture_dir("max-default"), "latest")
    async with open_store(src_ref) as src, faulty_store(registry, repo_name, switch) as store:
        plan = await plan_reexport(src, "latest", store, "latest", form="index")
        assert plan.destructive
        with pytest.raises(NetworkError, match="injected"):
            await plan.apply()
    async with open_store(src_ref) as src, open_store(ref(registry, repo_name)) as clean:
        assert (await load_cache(clean, "latest")).manifest.digest == old.manifest.digest
        await assert_verifies(clean, "latest")
        rerun = await plan_reexport(src, "latest", clean, "latest", form="index")
        assert sum(1 for s in rerun.steps if s.action == "reuse-blob") >= 4
        result = await rerun.apply()
        assert result.outcomes.get("reused", 0) >= 4
        await assert_verifies(clean, "latest")
        assert (await load_cache(clean, "latest")).form == "index"
