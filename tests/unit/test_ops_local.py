"""recompress, reexport and verify on real layouts: every genuine BuildKit fixture, read in place.

The source of every operation is the fixture directory itself (never copied), hashed before
and after: an operation that wrote one byte into its source fails here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachescope.core.errors import PlanStale, UsageError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.digest import Digest
from cachescope.core.model.loaded import LoadedCache
from cachescope.core.model.reference import LayoutRef
from cachescope.core.ops.plan import Plan
from cachescope.core.ops.progress import Progress, ProgressEvent, StepDone
from cachescope.core.ops.recompress import RecompressOptions, VariantMemo, plan_recompress
from cachescope.core.ops.reexport import plan_reexport
from cachescope.core.ops.verify import verify_cache
from cachescope.core.ops.writer import open_destination
from cachescope.core.reader import load_cache
from cachescope.core.session import open_store
from cachescope.core.stores.base import Store
from cachescope.core.stores.local import LocalStore
from tests.conftest import CATALOG, fixture_dir

FIXTURE_NAMES = [f["name"] for f in CATALOG["fixtures"]]
TAGS = {f["name"]: f["tags"][0] for f in CATALOG["fixtures"]}
CACHE_FIXTURES = [n for n in FIXTURE_NAMES if n != "inline"]


@pytest.fixture(autouse=True)
def _variant_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the variant memo of each test in its own directory."""
    monkeypatch.setenv("CACHESCOPE_CACHE_DIR", str(tmp_path / "user-cache"))


# -- helpers shared with the registry tests -----------------------------------------------------


def tree_hash(root: Path) -> str:
    """One digest over every file's relative path and bytes."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def diff_ids(cache: LoadedCache) -> list[str | None]:
    """The uncompressed digest of every config layer entry, by index."""
    out: list[str | None] = []
    for layer in cache.config.layers:
        desc = cache.layer_descriptors.get(layer.blob)
        out.append(desc.annotations.get(mt.ANNOTATION_UNCOMPRESSED) if desc else None)
    return out


def semantic(cache: LoadedCache) -> list[Any]:
    """The cache graph independent of indexes and blob encodings: records with inputs and result chains."""
    ids = diff_ids(cache)
    records = cache.config.records
    out = []
    for rec in records:
        inputs = tuple(tuple(sorted((x.selector, records[x.link].digest) for x in slot)) for slot in rec.inputs)
        chains = sorted(tuple(ids[i] for i in chain) for chain in cache.config.result_chains(rec))
        out.append((rec.digest, inputs, chains))
    return sorted(out, key=repr)


def assert_layers_are(cache: LoadedCache, compression: str) -> None:
    for desc in cache.layer_descriptors.values():
        assert desc.media_type == mt.layer_media_type(cache.mediatypes, compression)  # type: ignore[arg-type]
        assert mt.ANNOTATION_ESTARGZ_TOC not in desc.annotations
        assert mt.ANNOTATION_ESTARGZ_SIZE not in desc.annotations
        assert mt.ANNOTATION_UNCOMPRESSED in desc.annotations
        if compression == "uncompressed":
            assert desc.annotations[mt.ANNOTATION_UNCOMPRESSED] == str(desc.digest)


async def assert_verifies(store: Store, reference: str) -> None:
    report = await verify_cache(store, reference, deep=True)
    assert report.ok, report.failures
    assert report.blobs_checked > 0


class Events:
    """A ProgressCallback that keeps everything."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)

    @property
    def steps(self) -> list[StepDone]:
        return [e for e in self.events if isinstance(e, StepDone)]

    @property
    def phases(self) -> list[str]:
        seen: list[str] = []
        for e in self.events:
            if isinstance(e, Progress) and (not seen or seen[-1] != e.phase):
                seen.append(e.phase)
        return seen


@pytest.fixture
def fixtures_unchanged() -> Iterator[None]:
    before = {name: tree_hash(fixture_dir(name)) for name in FIXTURE_NAMES}
    yield
    assert {name: tree_hash(fixture_dir(name)) for name in FIXTURE_NAMES} == before


# -- recompress ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("fixtures_unchanged")
@pytest.mark.parametrize("name", FIXTURE_NAMES)
async def test_recompress_zstd_gzip_uncompressed_keeps_the_cache(name: str, tmp_path: Path) -> None:
    tag = TAGS[name]
    src_ref = LayoutRef(fixture_dir(name), tag)
    out_ref = LayoutRef(tmp_path / "out", tag)
    async with open_store(src_ref) as src, open_destination(out_ref) as out:
        original = await load_cache(src, tag)
        reference_store: Store = src
        if original.form == "inline":
            # recompress works on cache wrappers; an inline cache becomes one by reexport first.
            with pytest.raises(UsageError, match="inline"):
                await plan_recompress(src, tag, out, tag, RecompressOptions("zstd"))
            await (await plan_reexport(src, tag, out, "from-inline")).apply()
            reference_store, tag_in = out, "from-inline"
            original = await load_cache(out, "from-inline")
        else:
            tag_in = tag
        expected_records = original.config.records
        expected_ids = diff_ids(original)
        first = True
        for compression in ("zstd", "gzip", "uncompressed"):
            events = Events()
            plan = await plan_recompress(
                reference_store if first else out, tag_in if first else tag, out, tag, RecompressOptions(compression)
            )
            result = await plan.apply(on_progress=events)
            first = False
            assert events.phases[-1] == "done"
            assert events.phases.index("blobs") < events.phases.index("manifest") < events.phases.index("tag")
            cache = await load_cache(out, tag)
            assert result.manifest is not None
            assert cache.manifest.digest == result.manifest.digest
            assert cache.form == original.form
            assert cache.mediatypes == original.mediatypes
            assert cache.config.records == expected_records  # records untouched, index for index
            assert diff_ids(cache) == expected_ids
            assert [x.parent for x in cache.config.layers] == [x.parent for x in original.config.layers]
            assert_layers_are(cache, compression)
            await assert_verifies(out, tag)


async def test_recompress_plan_shows_every_step_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    out_ref = LayoutRef(tmp_path / "new-layout", "zst")
    async with open_store(LayoutRef(fixture_dir("max-default"), "latest")) as src, open_destination(out_ref) as out:
        plan = await plan_recompress(src, "latest", out, "zst", RecompressOptions("zstd", level=5))
    assert not (tmp_path / "new-layout").exists()  # planning created nothing
    actions = [s.action for s in plan.steps]
    assert actions.count("recompress") == 8
    assert actions[-3:] == ["write-config", "write-manifest", "set-tag"]
    assert not plan.destructive
    assert plan.blobs_created == 8
    assert plan.bytes_read == sum(s.size for s in plan.steps if s.action == "recompress")
    text = plan.render()
    assert "gzip -> zstd level 5" in text
    doc = plan.to_json()
    assert doc["schema"] == "cachescope.plan/v1"
    assert doc["destructive"] is False
    assert doc["totals"]["blobs_created"] == 8


async def test_recompress_in_place_moves_the_tag_and_reuses_variants(copy_fixture: Any) -> None:
    root = copy_fixture("max-default")
    async with open_store(LayoutRef(root, "latest")) as store:
        old = await load_cache(store, "latest")
        plan = await plan_recompress(store, "latest", store, "latest", RecompressOptions("zstd"))
        assert plan.destructive
        assert plan.steps[-1].action == "move-tag"
        await plan.apply()
        # the old cache is still there by digest, intact
        await assert_verifies(store, str(old.manifest.digest))
        # recompressing the original again finds every variant already written
        again = await plan_recompress(store, str(old.manifest.digest), store, "again", RecompressOptions("zstd"))
        assert {s.action for s in again.steps if s.subject.startswith("sha256:")} == {"reuse-blob"}
        result = await again.apply()
        assert result.outcomes == {"reused": 8}
        assert (await load_cache(store, "again")).manifest.digest == (await load_cache(store, "latest")).manifest.digest
        # already zstd: nothing to do
        nothing = await plan_recompress(store, "latest", store, "latest", RecompressOptions("zstd"))
        assert nothing.is_empty
        assert (await nothing.apply()).outcomes == {"unchanged": 8}


async def test_force_recompresses_blobs_already_in_the_target(copy_fixture: Any) -> None:
    root = copy_fixture("max-zstd")
    async with open_store(LayoutRef(root, "latest")) as store:
        plan = await plan_recompress(store, "latest", store, "latest", RecompressOptions("zstd", level=1, force=True))
        assert [s.action for s in plan.steps].count("recompress") == len(
            (await load_cache(store, "latest")).layer_descriptors
        )
        await plan.apply()
        await assert_verifies(store, "latest")


async def test_no_verify_still_checks_the_diff_id(copy_fixture: Any) -> None:
    root = copy_fixture("max-default")
    async with open_store(LayoutRef(root, "latest")) as store:
        plan = await plan_recompress(store, "latest", store, "latest", RecompressOptions("gzip", verify=False))
        assert plan.is_empty  # already gzip
        plan = await plan_recompress(store, "latest", store, "z", RecompressOptions("zstd", verify=False))
        await plan.apply()
        await assert_verifies(store, "z")


async def test_estargz_annotations_are_dropped_and_diff_ids_kept(tmp_path: Path) -> None:
    src_ref = LayoutRef(fixture_dir("max-estargz"), "latest")
    async with open_store(src_ref) as src, open_destination(LayoutRef(tmp_path / "o", "g")) as out:
        original = await load_cache(src, "latest")
        assert any(mt.ANNOTATION_ESTARGZ_TOC in d.annotations for d in original.layer_descriptors.values())
        plan = await plan_recompress(src, "latest", out, "g", RecompressOptions("gzip"))
        assert any("estargz" in note for note in plan.notes)
        await plan.apply()
        cache = await load_cache(out, "g")
        assert_layers_are(cache, "gzip")
        assert diff_ids(cache) == diff_ids(original)
        await assert_verifies(out, "g")


def test_recompress_options_reject_bad_levels() -> None:
    with pytest.raises(UsageError, match="1-22"):
        RecompressOptions("zstd", level=30)
    with pytest.raises(UsageError, match="0-9"):
        RecompressOptions("gzip", level=11)
    with pytest.raises(UsageError, match="no compression level"):
        RecompressOptions("uncompressed", level=3)
    with pytest.raises(UsageError, match="estargz"):
        RecompressOptions("estargz")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="threads"):
        RecompressOptions("zstd", threads=-1)


async def test_a_plan_is_stale_when_the_tag_moved(copy_fixture: Any) -> None:
    root = copy_fixture("multi-tag")
    async with open_store(LayoutRef(root, "main")) as store:
        plan = await plan_recompress(store, "main", store, "main", RecompressOptions("zstd"))
        feature = await store.fetch_manifest("feature")
        assert isinstance(store, LocalStore)
        await store.set_tag("main", feature[0])
        with pytest.raises(PlanStale, match="changed since the plan"):
            await plan.apply()
        assert (await load_cache(store, "main")).manifest.digest == feature[0].digest


async def test_variant_memo_survives_garbage(tmp_path: Path) -> None:
    memo = VariantMemo(tmp_path / "v")
    digest = Digest.parse("sha256:" + "a" * 64)
    assert await memo.lookup(digest, "zstd:3") is None
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / f"sha256-{'a' * 64}.json").write_text("not json")
    assert await memo.lookup(digest, "zstd:3") is None


# -- reexport ------------------------------------------------------------------------------------

TARGETS = [("index", "oci"), ("image-manifest", "oci"), ("index", "docker")]
EXPECTED_FORM = {
    ("index", "oci"): "index",
    ("image-manifest", "oci"): "image-manifest",
    ("index", "docker"): "docker-manifest-list",
}
BACK = {
    "index": ("index", "oci"),
    "image-manifest": ("image-manifest", "oci"),
    "docker-manifest-list": ("index", "docker"),
    "inline": ("image-manifest", "oci"),
}


@pytest.mark.usefixtures("fixtures_unchanged")
@pytest.mark.parametrize("name", FIXTURE_NAMES)
async def test_reexport_to_every_form_and_back(name: str, tmp_path: Path) -> None:
    tag = TAGS[name]
    async with open_store(LayoutRef(fixture_dir(name), tag)) as src, open_destination(LayoutRef(tmp_path / "o")) as out:
        original = await load_cache(src, tag)
        expected = semantic(original)
        for form, family in TARGETS:
            new_tag = f"{form}-{family}"
            plan = await plan_reexport(src, tag, out, new_tag, form=form, mediatypes=family)  # type: ignore[arg-type]
            await plan.apply()
            cache = await load_cache(out, new_tag)
            assert cache.form == EXPECTED_FORM[(form, family)]
            assert semantic(cache) == expected
            if original.form != "inline":
                assert cache.config.raw == original.config.raw  # config bytes unchanged
                assert set(cache.layer_descriptors) == set(original.layer_descriptors)
            for desc in cache.layer_descriptors.values():
                assert mt.family_of(desc.media_type) == family
            await assert_verifies(out, new_tag)
            # and back to the source's own form
            back_form, back_family = BACK[original.form]
            back = await plan_reexport(out, new_tag, out, f"{new_tag}-back", form=back_form, mediatypes=back_family)  # type: ignore[arg-type]
            await back.apply()
            again = await load_cache(out, f"{new_tag}-back")
            assert semantic(again) == expected
            if original.form != "inline":
                assert again.form == original.form
                assert again.config.raw == original.config.raw
                assert again.manifest.digest == original.manifest.digest, "round trip changed the wrapper bytes"
                assert {d.digest: d.media_type for d in again.layer_descriptors.values()} == {
                    d.digest: d.media_type for d in original.layer_descriptors.values()
                }
            await assert_verifies(out, f"{new_tag}-back")


async def test_reexport_refuses_image_manifest_with_docker_mediatypes(tmp_path: Path) -> None:
    async with (
        open_store(LayoutRef(fixture_dir("max-index"), "latest")) as src,
        open_destination(LayoutRef(tmp_path / "o")) as out,
    ):
        with pytest.raises(UsageError, match="OCI mediatypes are required for image-manifest"):
            await plan_reexport(src, "latest", out, "x", form="image-manifest", mediatypes="docker")
    assert not (tmp_path / "o").exists()


async def test_reexport_same_form_copies_the_wrapper_byte_for_byte_and_reruns_are_empty(tmp_path: Path) -> None:
    async with (
        open_store(LayoutRef(fixture_dir("max-docker"), "latest")) as src,
        open_destination(LayoutRef(tmp_path / "o")) as out,
    ):
        plan = await plan_reexport(src, "latest", out, "copy")
        result = await plan.apply()
        original = await load_cache(src, "latest")
        assert result.manifest is not None
        assert result.manifest.digest == original.manifest.digest
        again = await plan_reexport(src, "latest", out, "copy")
        assert again.is_empty
        assert {s.action for s in again.steps} == {"reuse-blob"}
        # another tag on the same content: every blob reused, only a tag to set
        other = await plan_reexport(src, "latest", out, "other")
        assert [s.action for s in other.steps if s.action != "reuse-blob"] == ["write-manifest", "set-tag"]


async def test_reexport_into_an_existing_tag_is_destructive(tmp_path: Path) -> None:
    async with (
        open_store(LayoutRef(fixture_dir("multi-tag"), "main")) as src,
        open_destination(LayoutRef(tmp_path / "o")) as out,
    ):
        await (await plan_reexport(src, "main", out, "t")).apply()
        plan = await plan_reexport(src, "feature", out, "t")
        assert plan.destructive
        assert plan.steps[-1].action == "move-tag"


# -- verify --------------------------------------------------------------------------------------


async def test_verify_lists_every_failure(copy_fixture: Any) -> None:
    root = copy_fixture("max-default")
    async with open_store(LayoutRef(root, "latest")) as store:
        cache = await load_cache(store, "latest")
        layers = sorted(cache.layer_descriptors.values(), key=lambda d: d.size, reverse=True)
        missing, corrupt, recompressed = layers[0], layers[1], layers[2]
        (root / "blobs" / "sha256" / missing.digest.hex).unlink()
        path = root / "blobs" / "sha256" / corrupt.digest.hex
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        report = await verify_cache(store, "latest")
        assert not report.ok
        subjects = {f.subject: f.code for f in report.failures}
        assert subjects[str(missing.digest)] == "CS-BLOB-MISSING"
        assert subjects[str(corrupt.digest)] == "CS-BLOB-CORRUPT"
        assert str(recompressed.digest) not in subjects
        doc = report.to_json()
        assert doc["ok"] is False
        assert len(doc["failures"]) == len(report.failures) >= 2


async def test_verify_deep_catches_a_wrong_diff_id(tmp_path: Path) -> None:
    """A wrapper whose diff-ID annotation lies: blobs are fine, only --deep sees it."""
    async with (
        open_store(LayoutRef(fixture_dir("max-index"), "latest")) as src,
        open_destination(LayoutRef(tmp_path / "o")) as out,
    ):
        await (await plan_reexport(src, "latest", out, "x")).apply()
        cache = await load_cache(out, "x")
    from cachescope.core.model.oci import Index

    doc = cache.document
    assert isinstance(doc, Index)
    first = doc.manifests[0]
    bad = first.with_annotations({**first.annotations, mt.ANNOTATION_UNCOMPRESSED: "sha256:" + "0" * 64})
    forged = doc.changed(manifests=(bad, *doc.manifests[1:]))
    async with open_store(LayoutRef(tmp_path / "o")) as store:
        await store.put_manifest(forged.encode(), forged.media_type, tag="forged")
        assert (await verify_cache(store, "forged")).ok
        deep = await verify_cache(store, "forged", deep=True)
    assert not deep.ok
    assert any(f.code == "CS-DEEP-MISMATCH" for f in deep.failures)


async def test_verify_reports_a_media_type_that_lies_about_the_bytes(tmp_path: Path) -> None:
    async with (
        open_store(LayoutRef(fixture_dir("max-index"), "latest")) as src,
        open_destination(LayoutRef(tmp_path / "o")) as out,
    ):
        await (await plan_reexport(src, "latest", out, "x")).apply()
        cache = await load_cache(out, "x")
    from cachescope.core.model.oci import Index

    doc = cache.document
    assert isinstance(doc, Index)
    first = doc.manifests[0]
    lying = type(first)(mt.OCI_LAYER_ZSTD, first.digest, first.size, first.annotations, first.extra)
    forged = doc.changed(manifests=(lying, *doc.manifests[1:]))
    async with open_store(LayoutRef(tmp_path / "o")) as store:
        await store.put_manifest(forged.encode(), forged.media_type, tag="forged")
        report = await verify_cache(store, "forged")
    assert [f.code for f in report.failures if f.subject == str(first.digest)] == ["CS-DEEP-COMPRESSION"]


def test_plan_fingerprint_changes_with_the_steps() -> None:
    from cachescope.core.ops.plan import Step

    a = Plan("x", "s", "d", (Step("copy-blob", "a", 1),))
    b = Plan("x", "s", "d", (Step("copy-blob", "a", 2),))
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == Plan("x", "s", "d", (Step("copy-blob", "a", 1),)).fingerprint


def test_plan_totals_count_deletions_even_when_no_bytes_are_freed_yet() -> None:
    from cachescope.core.ops.plan import Plan, Step

    registry_prune = Plan(
        "prune",
        "reg/repo",
        "reg/repo",
        (Step("delete-manifest", "sha256:" + "a" * 64, 900), Step("delete-manifest", "sha256:" + "b" * 64, 800)),
    )
    assert "total: delete 2 item(s)" in registry_prune.render()
    assert registry_prune.totals() == ["delete 2 item(s)"]
    layout_prune = Plan("prune", "oci:x", "oci:x", (Step("delete-blob", "sha256:" + "c" * 64, 2048),))
    assert "delete 1 item(s) (2048 B)" in layout_prune.render()
