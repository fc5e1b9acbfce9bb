"""Writing a cache the way BuildKit does: blobs, then the cache config, then the wrapper, tag last.

Also the config and wrapper rewriting every write-side operation shares: BuildKit's
deterministic ordering (`sort_config`), renumbering after removals (`subset_config`), and
building any of the three wrapper forms from layer descriptors (`build_wrapper`).
See buildkit-cache-format.md sections 2.3, 3 and 11.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Final, Literal, TypeVar

from cachescope.core.errors import LayoutError, NotFound, PlanError, UsageError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.cache import NO_PARENT, CacheConfig, CacheRecord
from cachescope.core.model.digest import Digest, sha256_of
from cachescope.core.model.loaded import Form
from cachescope.core.model.oci import Descriptor, Document, Index, Manifest
from cachescope.core.model.reference import LayoutRef, Ref
from cachescope.core.ops.plan import Precondition, check_preconditions
from cachescope.core.ops.progress import Tracker
from cachescope.core.reader import load_cache
from cachescope.core.session import open_store
from cachescope.core.stores.base import MAX_MANIFEST_BYTES, Store, SupportsMount
from cachescope.core.stores.local import LocalStore

WrapperForm = Literal["index", "image-manifest", "docker-manifest-list"]
BlobOutcome = Literal["reused", "mounted", "copied"]

T = TypeVar("T")

BLOB_CONCURRENCY: Final = 4
"""Big blobs copied at once; BuildKit pushes layers in parallel too (v0.27+)."""
SMALL_BLOB_CONCURRENCY: Final = 8
"""Small blobs at once: their cost is round trips, not bandwidth or CPU."""
BIG_BLOB: Final = 8 * 1024 * 1024


_ESTARGZ_ONLY: Final = (mt.ANNOTATION_ESTARGZ_TOC, mt.ANNOTATION_ESTARGZ_SIZE)


class _Stopped(Exception):
    """A job that did not start because another one had already failed."""


class SizedLimiter:
    """Bounds concurrent blob work by size class: a few big blobs, more small ones, at once.

    Big blobs are bound by CPU (compression) or bandwidth; small ones by round trips, so
    running many of them at once costs nothing and saves most of the wall time. Once
    `stopped` (run_all sets it on the first failure) no further job starts.
    """

    def __init__(self, big: int, small: int = SMALL_BLOB_CONCURRENCY, *, threshold: int = BIG_BLOB) -> None:
        self._big = asyncio.Semaphore(big)
        self._small = asyncio.Semaphore(small)
        self._threshold = threshold
        self.stopped = False

    @asynccontextmanager
    async def slot(self, size: int) -> AsyncIterator[None]:
        """Hold a slot while working on a blob of `size` bytes (`async with limiter.slot(n)`)."""
        async with self._big if size >= self._threshold else self._small:
            if self.stopped:
                raise _Stopped
            yield


# -- cache config ----------------------------------------------------------------------------


def sort_config(config: CacheConfig) -> CacheConfig:
    """BuildKit's `sortConfig` (cache/remotecache/v1/utils.go), so equal content gets equal digests.

    Layers by blob digest then (old) parent index; records by digest, input count, then per
    slot the selectors and linked records' digests; every index renumbered; entries in each
    input slot sorted by link. Chains are renumbered as well (BuildKit's inline exporter
    writes them, its sorter predates them).
    """
    layers = config.layers
    layer_order = sorted(range(len(layers)), key=lambda i: (str(layers[i].blob), layers[i].parent))
    new_layer = {old: new for new, old in enumerate(layer_order)}
    sorted_layers = tuple(
        replace(layers[old], parent=NO_PARENT if layers[old].parent == NO_PARENT else new_layer[layers[old].parent])
        for old in layer_order
    )

    records = config.records

    def record_key(i: int) -> tuple[object, ...]:
        rec = records[i]
        slots = tuple((len(slot), tuple((x.selector, records[x.link].digest) for x in slot)) for slot in rec.inputs)
        return (rec.digest, len(rec.inputs), slots)

    record_order = sorted(range(len(records)), key=record_key)
    new_record = {old: new for new, old in enumerate(record_order)}
    sorted_records = tuple(
        _renumber_record(records[old], new_layer.__getitem__, new_record.__getitem__) for old in record_order
    )
    return CacheConfig(sorted_layers, sorted_records, config.extra)


def _renumber_record(
    record: CacheRecord, layer_map: Callable[[int], int], record_map: Callable[[int], int]
) -> CacheRecord:
    inputs = tuple(
        tuple(sorted((replace(x, link=record_map(x.link)) for x in slot), key=lambda x: x.link))
        for slot in record.inputs
    )
    results = tuple(replace(r, layer=layer_map(r.layer)) for r in record.results)
    chains = tuple(replace(c, layers=tuple(layer_map(i) for i in c.layers)) for c in record.chains)
    return replace(record, inputs=inputs, results=results, chains=chains)


def replace_blobs(config: CacheConfig, mapping: Mapping[Digest, Digest]) -> CacheConfig:
    """Point every layer entry whose blob is a key of `mapping` at the new blob (all occurrences)."""
    layers = tuple(replace(x, blob=mapping.get(x.blob, x.blob)) for x in config.layers)
    return CacheConfig(layers, config.records, config.extra)


def subset_config(config: CacheConfig, keep_results: Callable[[int, object], bool]) -> CacheConfig:
    """Keep only the results `keep_results(record_index, result)` accepts, then everything they need.

    Layers survive if a kept result's chain uses them (ancestors included); records survive
    if they have a kept result or a surviving record links to them (11.2). Indices are then
    renumbered. Graph errors in the input raise ValueError.
    """
    records = [
        replace(
            rec,
            results=tuple(r for r in rec.results if keep_results(i, r)),
            chains=tuple(c for c in rec.chains if keep_results(i, c)),
        )
        for i, rec in enumerate(config.records)
    ]
    used_layers: set[int] = set()
    for rec in records:
        for r in rec.results:
            used_layers.update(config.layer_chain(r.layer))
        for c in rec.chains:
            for i in c.layers:
                used_layers.update(config.layer_chain(i))
    keep_records: set[int] = set()
    stack = [i for i, rec in enumerate(records) if rec.has_results]
    while stack:
        i = stack.pop()
        if i in keep_records:
            continue
        keep_records.add(i)
        for slot in records[i].inputs:
            for x in slot:
                if not 0 <= x.link < len(records):
                    raise ValueError(f"invalid record ID: {x.link}")
                stack.append(x.link)
    layer_ids = sorted(used_layers)
    new_layer = {old: new for new, old in enumerate(layer_ids)}
    layers = tuple(
        replace(
            config.layers[old],
            parent=NO_PARENT if config.layers[old].parent == NO_PARENT else new_layer[config.layers[old].parent],
        )
        for old in layer_ids
    )
    record_ids = sorted(keep_records)
    new_record = {old: new for new, old in enumerate(record_ids)}
    kept = tuple(_renumber_record(records[old], new_layer.__getitem__, new_record.__getitem__) for old in record_ids)
    return CacheConfig(layers, kept, config.extra)


def config_descriptor(raw: bytes) -> Descriptor:
    """The config descriptor BuildKit writes: media type, digest, size, nothing else."""
    return Descriptor(mt.BUILDKIT_CACHE_CONFIG, sha256_of(raw), len(raw))


# -- wrappers --------------------------------------------------------------------------------


def wrapper_form(form: Form, family: mt.Family) -> WrapperForm:
    if form == "image-manifest":
        return "image-manifest"
    return "docker-manifest-list" if family == "docker" else "index"


def resolve_target_form(
    source_form: Form, source_family: mt.Family, form: str | None, mediatypes: mt.Family | None
) -> tuple[WrapperForm, mt.Family]:
    """The wrapper to write, following BuildKit's option rules (buildkit-cache-format.md 3.4).

    `image-manifest` needs OCI media types; Docker media types without an explicit form mean
    the Docker manifest list, as in BuildKit v0.22+.
    """
    if form == "image-manifest" and mediatypes == "docker":
        raise UsageError(
            "invalid configuration for remote cache, OCI mediatypes are required for image-manifest cache format",
            hint="use --form index with --mediatypes docker (a Docker manifest list), or --mediatypes oci",
        )
    if form is None:
        if source_form == "inline":
            form = "index" if mediatypes == "docker" else "image-manifest"
        elif mediatypes == "docker" or (mediatypes is None and source_form == "docker-manifest-list"):
            form = "index"
        elif source_form == "image-manifest":
            form = "image-manifest"
        else:
            form = "index"
    if form == "docker-manifest-list":
        form, mediatypes = "index", mediatypes or "docker"
    if form == "image-manifest":
        return "image-manifest", "oci"
    if form != "index":
        raise UsageError(f"unknown wrapper form {form!r}; choose index or image-manifest")
    family: mt.Family = mediatypes or ("docker" if source_family == "docker" and source_form != "inline" else "oci")
    return ("docker-manifest-list" if family == "docker" else "index"), family


def convert_layer(desc: Descriptor, family: mt.Family) -> Descriptor:
    """The descriptor with the media type of the other family, if it is not already in `family`."""
    if mt.family_of(desc.media_type) == family or not mt.is_layer(desc.media_type):
        return desc
    compression = mt.layer_compression(desc.media_type)
    if compression is None:  # unreachable: is_layer above
        return desc
    return replace(desc, media_type=mt.layer_media_type(family, compression))


def layer_descriptors_in_order(config: CacheConfig, descriptors: Mapping[Digest, Descriptor]) -> list[Descriptor]:
    """One descriptor per config layer entry, in config order, as BuildKit's exporter lists them.

    Entries whose blob has no descriptor are left out (the source had none either).
    """
    return [descriptors[x.blob] for x in config.layers if x.blob in descriptors]


def build_wrapper(
    form: WrapperForm,
    layers: Sequence[Descriptor],
    config: Descriptor,
    *,
    base: Document | None = None,
) -> Document:
    """A wrapper of `form` listing `layers` and `config`; unknown keys of `base` are kept."""
    family: mt.Family = "docker" if form == "docker-manifest-list" else "oci"
    converted = tuple(convert_layer(d, family) for d in layers)
    if form == "image-manifest":
        if isinstance(base, Manifest) and base.media_type == mt.OCI_MANIFEST:
            return base.changed(config=config, layers=converted)
        return Manifest(mt.OCI_MANIFEST, config, converted)
    media_type = mt.DOCKER_MANIFEST_LIST if family == "docker" else mt.OCI_INDEX
    children = (*converted, config)
    if isinstance(base, Index) and base.media_type == media_type:
        return base.changed(manifests=children)
    return Index(media_type, children)


def rewritten_annotations(annotations: Mapping[str, str], *, diff_id: Digest | None) -> dict[str, str]:
    """Annotations for a recompressed blob (11.3.3): drop estargz and mount-source keys; Go's key order."""
    out = {
        k: v
        for k, v in annotations.items()
        if k not in _ESTARGZ_ONLY and not k.startswith(mt.ANNOTATION_DISTRIBUTION_SOURCE)
    }
    if diff_id is not None:
        out[mt.ANNOTATION_UNCOMPRESSED] = str(diff_id)
    return dict(sorted(out.items()))


# -- blobs -----------------------------------------------------------------------------------


def same_store(a: Store, b: Store) -> bool:
    return a is b or (a.kind == b.kind and a.display_name == b.display_name)


def mount_source(src: Store, dst: Store) -> str | None:
    """The repository to mount from when both stores are repositories of one registry."""
    if src.kind != "registry" or dst.kind != "registry" or not isinstance(dst, SupportsMount):
        return None
    src_repo = getattr(src, "repository", None)
    dst_repo = getattr(dst, "repository", None)
    if not isinstance(src_repo, str) or not isinstance(dst_repo, str) or src_repo == dst_repo:
        return None
    src_host = src.display_name.removesuffix(f"/{src_repo}")
    dst_host = dst.display_name.removesuffix(f"/{dst_repo}")
    return src_repo if src_host == dst_host else None


async def has_blob(store: Store, desc: Descriptor) -> bool:
    try:
        return await store.blob_size(desc.digest) == desc.size
    except NotFound:
        return False


async def transfer_blob(src: Store, dst: Store, desc: Descriptor, tracker: Tracker) -> BlobOutcome:
    """Make `dst` hold `desc`: already there, mounted, or streamed (verified) from `src`."""
    subject = str(desc.digest)
    if await has_blob(dst, desc):
        tracker.add_bytes(desc.size, subject)
        return "reused"
    source_repo = mount_source(src, dst)
    if source_repo is not None and isinstance(dst, SupportsMount) and await dst.mount_blob(desc, source_repo):
        tracker.add_bytes(desc.size, subject)
        return "mounted"

    async def counted(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            tracker.add_bytes(len(chunk), subject)
            yield chunk

    async with src.open_blob(desc) as chunks:
        await dst.write_blob(counted(chunks), expected=desc, media_type=desc.media_type)
    return "copied"


async def run_all(aws: Iterable[Awaitable[T]], *, limiter: SizedLimiter | None = None) -> list[T]:
    """Await all concurrently and raise the first failure, once nothing is running any more.

    After a failure no new job starts (through `limiter`), but jobs already running finish:
    a blob whose upload completes is then known, so a rerun reuses it instead of redoing
    it. Jobs that report progress stop at their next report when the progress callback
    itself failed (see `Tracker`): nobody is waiting for them any more. Cancellation from
    outside cancels everything at once.
    """
    tasks = [asyncio.ensure_future(aw) for aw in aws]

    def stop_on_failure(task: asyncio.Future[T]) -> None:
        if limiter is not None and not task.cancelled() and task.exception() is not None:
            limiter.stopped = True

    for task in tasks:
        task.add_done_callback(stop_on_failure)
    try:
        results = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, _Stopped):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]


async def transfer_blobs(
    src: Store, dst: Store, descs: Iterable[Descriptor], tracker: Tracker, *, action: str = "copy-blob"
) -> dict[Digest, BlobOutcome]:
    """Transfer distinct blobs, a few at a time; each finished blob is reported as a step."""
    unique = list({d.digest: d for d in descs}.values())
    limiter = SizedLimiter(BLOB_CONCURRENCY)

    async def one(desc: Descriptor) -> tuple[Digest, BlobOutcome]:
        async with limiter.slot(desc.size):
            outcome = await transfer_blob(src, dst, desc, tracker)
            tracker.step(action, str(desc.digest), outcome, desc.size)
            return desc.digest, outcome

    return dict(await run_all((one(d) for d in unique), limiter=limiter))


async def write_small_blob(dst: Store, data: bytes, media_type: str) -> tuple[Descriptor, bool]:
    """Write a JSON blob unless present; returns its descriptor and whether it was written."""
    desc = Descriptor(media_type, sha256_of(data), len(data))
    if await has_blob(dst, desc):
        return desc, False

    async def one() -> AsyncIterator[bytes]:
        yield data

    await dst.write_blob(one(), expected=desc, media_type=media_type)
    return desc, True


# -- destinations ----------------------------------------------------------------------------


@asynccontextmanager
async def open_destination(ref: Ref, *, transport: Any = None) -> AsyncIterator[Store]:
    """The store to write `ref` into, closed on exit; a layout directory need not exist yet.

    A missing (or empty) directory is not created here, so planning and `--dry-run` write
    nothing; `ensure_layout` creates it when a plan is applied.
    """
    if isinstance(ref, LayoutRef):
        path = ref.path
        if not await asyncio.to_thread((path / "index.json").is_file):
            if await asyncio.to_thread(path.exists):
                if not await asyncio.to_thread(path.is_dir):
                    raise LayoutError(f"{path} exists and is not a directory")
                if await asyncio.to_thread(lambda: any(path.iterdir())):
                    raise LayoutError(f"{path} is not empty and not an OCI layout (no index.json)")
            store = LocalStore(path)
            try:
                yield store
            finally:
                await store.close()
            return
    async with open_store(ref, transport=transport) as opened:
        yield opened


async def ensure_layout(dst: Store) -> None:
    """Create the OCI layout (`oci-layout`, empty `index.json`) of a local destination that is new."""
    if isinstance(dst, LocalStore):
        await LocalStore.open(dst.root, create=True)


# -- publishing ------------------------------------------------------------------------------


async def publish(
    dst: Store,
    tag: str,
    document: Document,
    tracker: Tracker,
    *,
    config_raw: bytes | None = None,
    preconditions: Collection[Precondition] = (),
) -> Descriptor:
    """Write the config and the wrapper, check the destination is complete, then move the tag.

    Layer blobs must already be in `dst`. The wrapper is stored by digest first and read
    back through the normal reader (every referenced blob looked up) before the tag moves,
    so the tag never points at an incomplete cache; the preconditions are checked again
    right before the tag moves.
    """
    await ensure_layout(dst)
    if config_raw is not None:
        tracker.begin("config", "writing the cache config")
        desc, written = await write_small_blob(dst, config_raw, mt.BUILDKIT_CACHE_CONFIG)
        tracker.step("write-config", str(desc.digest), "created" if written else "reused", desc.size, item=False)
    raw = document.encode()
    if len(raw) > MAX_MANIFEST_BYTES:
        raise PlanError(f"the new wrapper is {len(raw)} bytes, over the {MAX_MANIFEST_BYTES}-byte manifest limit")
    tracker.begin("manifest", "writing the wrapper")
    manifest = await dst.put_manifest(raw, document.media_type)
    tracker.step("write-manifest", str(manifest.digest), "created", manifest.size, item=False)
    tracker.begin("verify", "checking the destination before moving the tag")
    await verify_published(dst, manifest)
    await check_preconditions(list(preconditions))
    tracker.begin("tag", f"pointing {tag} at {manifest.digest.short}")
    tagged = await dst.put_manifest(raw, document.media_type, tag=tag)
    tracker.step("set-tag", tag, "moved", 0, item=False)
    return tagged


async def verify_published(dst: Store, manifest: Descriptor) -> None:
    """Raise PlanError unless the wrapper reads back as a cache whose blobs are all present."""
    cache = await load_cache(dst, str(manifest.digest), check_blobs=True)
    missing = [str(d) for d, state in (cache.blobs or {}).items() if state.stored_size is None]
    wrong = [
        str(d)
        for d, state in (cache.blobs or {}).items()
        if state.stored_size is not None
        and d in cache.layer_descriptors
        and state.stored_size != cache.layer_descriptors[d].size
    ]
    if missing or wrong:
        raise PlanError(
            f"{dst.display_name} is incomplete after writing: missing {', '.join(missing) or 'none'}; "
            f"wrong size {', '.join(wrong) or 'none'}; the tag was not moved",
            hint="run the same command again",
        )


__all__ = [
    "BlobOutcome",
    "SizedLimiter",
    "WrapperForm",
    "build_wrapper",
    "config_descriptor",
    "convert_layer",
    "ensure_layout",
    "layer_descriptors_in_order",
    "open_destination",
    "publish",
    "replace_blobs",
    "resolve_target_form",
    "rewritten_annotations",
    "run_all",
    "sort_config",
    "subset_config",
    "transfer_blob",
    "transfer_blobs",
    "wrapper_form",
    "write_small_blob",
]
