"""Recompress a cache's layer blobs (gzip, zstd, uncompressed) without changing what they hold.

The tar stream, and so every diff ID, survives gzip <-> zstd <-> uncompressed, so records and
`containerd.io/uncompressed` stay; blob digests, sizes and media types change, and the cache
config's layer table is rewritten to the new blobs (buildkit-cache-format.md 5.3, 11.3).
estargz input is read as the gzip it is; its TOC stays inside the tar, so its diff ID (the
annotation) stays valid, and the estargz-only annotations are dropped.

Each new blob is remembered as a variant of its source blob (a small JSON file per source
blob in the user cache directory), the way BuildKit links compression variants: a second
run, or a rerun after an interruption, finds the blob already in the destination and
reuses it instead of compressing again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

from cachescope.core.codecs import DEFAULT_ZSTD_LEVEL, TranscodeStats, check_level, iter_transcoded
from cachescope.core.errors import FormatError, PlanError, UsageError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.cache import CacheConfig
from cachescope.core.model.digest import Digest
from cachescope.core.model.loaded import LoadedCache
from cachescope.core.model.oci import Descriptor
from cachescope.core.ops.plan import OpResult, Plan, Precondition, Step, precondition, tag_step
from cachescope.core.ops.progress import ProgressCallback, Tracker
from cachescope.core.ops.writer import (
    SizedLimiter,
    build_wrapper,
    config_descriptor,
    ensure_layout,
    has_blob,
    layer_descriptors_in_order,
    mount_source,
    publish,
    replace_blobs,
    rewritten_annotations,
    run_all,
    same_store,
    transfer_blob,
    wrapper_form,
)
from cachescope.core.reader import load_cache
from cachescope.core.stores.base import Store

RECOMPRESS_CONCURRENCY: Final = 2
"""Big layers transcoded at once; each transcode already keeps several threads busy."""

TARGETS: Final = ("gzip", "zstd", "uncompressed")


@dataclass(frozen=True, slots=True)
class RecompressOptions:
    compression: mt.Compression
    level: int | None = None
    threads: int = 0
    """zstd worker threads; 0 means one per CPU."""
    force: bool = False
    """Recompress blobs already in the target compression too (e.g. to change the level)."""
    verify: bool = True
    """Decompress each new blob as it is written and check its diff ID."""

    def __post_init__(self) -> None:
        if self.compression not in TARGETS:
            raise UsageError(f"cannot recompress to {self.compression}; choose gzip, zstd or uncompressed")
        check_level(self.compression, self.level)
        if self.threads < 0:
            raise UsageError("--threads must be 0 (one per CPU) or more")

    @property
    def variant_key(self) -> str:
        level = self.level if self.level is not None else (DEFAULT_ZSTD_LEVEL if self.compression == "zstd" else "")
        return f"{self.compression}:{level}"

    @property
    def describe(self) -> str:
        return self.compression + (f" level {self.level}" if self.level is not None else "")


# -- variants --------------------------------------------------------------------------------


def default_variant_dir() -> Path:
    base = os.environ.get("CACHESCOPE_CACHE_DIR")
    if base:
        return Path(base) / "variants"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "cachescope" / "variants"


class VariantMemo:
    """Which blob a source blob became in which compression; a hint, always checked against the store."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_variant_dir()

    def _path(self, source: Digest) -> Path:
        return self.directory / f"{source.algorithm}-{source.hex}.json"

    def _load(self, source: Digest) -> dict[str, Any]:
        try:
            value = json.loads(self._path(source).read_bytes())
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    async def lookup(self, source: Digest, key: str) -> tuple[Digest, int] | None:
        entry = (await asyncio.to_thread(self._load, source)).get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return Digest.parse(str(entry["digest"])), int(entry["size"])
        except (KeyError, ValueError, TypeError, FormatError):
            return None

    async def record(self, source: Digest, key: str, variant: Descriptor) -> None:
        def write() -> None:
            data = self._load(source)
            data[key] = {"digest": str(variant.digest), "size": variant.size}
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self._path(source).with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, sort_keys=True))
            tmp.replace(self._path(source))

        # Only a hint for next time; the blob itself is already safely written.
        with contextlib.suppress(OSError):
            await asyncio.to_thread(write)


# -- planning --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    """What happens to one source layer blob."""

    source: Descriptor
    kind: Literal["recompress", "keep", "variant"]
    compression: mt.Compression | None
    variant: Descriptor | None = None


def _layer_compression(desc: Descriptor) -> mt.Compression | None:
    return mt.layer_compression(desc.media_type, dict(desc.annotations))


def _needs_conversion(desc: Descriptor, options: RecompressOptions) -> bool:
    # estargz is gzip on the wire but not plain gzip: converting drops its lazy-pull annotations.
    return options.force or _layer_compression(desc) != options.compression


async def plan_recompress(
    src: Store,
    reference: str,
    dst: Store,
    tag: str,
    options: RecompressOptions,
    *,
    memo: VariantMemo | None = None,
) -> Plan:
    """Plan rewriting every layer blob not yet in `options.compression`, into `dst` under `tag`.

    Reads only. Blobs already in the target compression are kept (copied when `dst` is
    another store); a blob converted earlier (see VariantMemo) and present in `dst` is
    reused instead of being compressed again.
    """
    memo = memo or VariantMemo()
    cache = await load_cache(src, reference)
    if cache.form == "inline" or cache.config_descriptor is None:
        raise UsageError(
            f"{cache.source} is an image with inline cache; recompress works on cache wrappers",
            hint="turn it into a cache first with `cachescope reexport`",
        )
    missing = [str(d) for d, state in (cache.blobs or {}).items() if state.stored_size is None]
    if missing:
        raise PlanError(f"{cache.source} is missing layer blob(s) {', '.join(missing)}; nothing to recompress from")
    target_type = mt.layer_media_type(cache.mediatypes, options.compression)
    copying = not same_store(src, dst)
    mount_from = mount_source(src, dst) if copying else None
    jobs: list[_Job] = []
    steps: list[Step] = []
    for desc in {d.digest: d for d in layer_descriptors_in_order(cache.config, cache.layer_descriptors)}.values():
        current = _layer_compression(desc)
        label = current or "unknown"
        if not _needs_conversion(desc, options):
            jobs.append(_Job(desc, "keep", current))
            if not copying or await has_blob(dst, desc):
                steps.append(Step("reuse-blob", str(desc.digest), desc.size, f"already {label}"))
            elif mount_from is not None:
                steps.append(Step("mount-blob", str(desc.digest), desc.size, f"already {label}, from {mount_from}"))
            else:
                steps.append(Step("copy-blob", str(desc.digest), desc.size, f"already {label}", read=desc.size))
            continue
        known = None if options.force else await memo.lookup(desc.digest, options.variant_key)
        if known is not None:
            variant = Descriptor(target_type, known[0], known[1])
            if await has_blob(dst, variant):
                jobs.append(_Job(desc, "variant", current, variant))
                steps.append(
                    Step(
                        "reuse-blob",
                        str(desc.digest),
                        known[1],
                        f"{label} -> {options.compression}: {known[0]} written earlier",
                    )
                )
                continue
        jobs.append(_Job(desc, "recompress", current))
        steps.append(Step("recompress", str(desc.digest), desc.size, f"{label} -> {options.describe}", read=desc.size))
    converting = any(j.kind != "keep" for j in jobs)
    source_pre = await precondition(src, reference)
    in_place = not copying and tag == reference
    target_pre = source_pre if in_place else await precondition(dst, tag)
    writes = converting or copying or tag != reference
    if writes:
        steps += [
            Step("write-config", "cache config", cache.config_descriptor.size, "rewritten" if converting else "copied"),
            Step("write-manifest", f"{cache.form} wrapper", cache.manifest.size),
            tag_step(target_pre),
        ]
    preconditions = (source_pre,) if in_place else (source_pre, target_pre)
    notes: list[str] = []
    if converting and not copying:
        notes.append("the old blobs stay in the store until pruned (`cachescope prune` for a layout directory)")
    if any(j.compression == "estargz" for j in jobs if j.kind != "keep"):
        notes.append("estargz layers are rewritten as plain streams; their estargz annotations are dropped")

    async def run(on_progress: ProgressCallback | None) -> OpResult:
        if not writes:
            return OpResult("recompress", dst.display_name, tag, cache.manifest, {"unchanged": len(jobs)})
        return await _apply(
            src,
            dst,
            tag,
            cache,
            jobs=jobs,
            options=options,
            memo=memo,
            on_progress=on_progress,
            preconditions=preconditions,
        )

    return Plan(
        "recompress",
        cache.source,
        f"{dst.display_name}:{tag}",
        tuple(steps),
        preconditions,
        tuple(notes),
        summary=f"to {options.describe}",
        runner=run,
    )


# -- applying --------------------------------------------------------------------------------


async def _apply(
    src: Store,
    dst: Store,
    tag: str,
    cache: LoadedCache,
    *,
    jobs: list[_Job],
    options: RecompressOptions,
    memo: VariantMemo,
    on_progress: ProgressCallback | None,
    preconditions: Sequence[Precondition],
) -> OpResult:
    tracker = Tracker("recompress", on_progress)
    await ensure_layout(dst)
    work = [j for j in jobs if j.kind != "variant"]
    tracker.begin("blobs", "recompressing layers", bytes_total=sum(j.source.size for j in work), items_total=len(jobs))
    target_type = mt.layer_media_type(cache.mediatypes, options.compression)
    threads = options.threads or (os.cpu_count() or 1)
    limiter = SizedLimiter(RECOMPRESS_CONCURRENCY)
    outcomes: dict[str, int] = {}
    written = 0

    async def one(job: _Job) -> tuple[Digest, Descriptor]:
        nonlocal written
        async with limiter.slot(job.source.size):
            desc = job.source
            outcome: str
            if job.kind == "keep":
                outcome = await transfer_blob(src, dst, desc, tracker)
                new = desc
            elif job.kind == "variant" and job.variant is not None:
                outcome = "reused"
                new = _new_descriptor(desc, job.variant, target_type, _diff_id(desc))
            else:
                new = await _recompress_blob(
                    src, dst, desc, media_type=target_type, options=options, threads=threads, tracker=tracker
                )
                await memo.record(desc.digest, options.variant_key, new)
                outcome = "created"
                written += new.size
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            tracker.step(
                "recompress" if job.kind == "recompress" else "reuse-blob", str(desc.digest), outcome, new.size
            )
            return desc.digest, new

    mapping = dict(await run_all((one(j) for j in jobs), limiter=limiter))
    if all(old == new.digest for old, new in mapping.items()):
        # Nothing converted (a copy to another store): config and wrapper keep their exact bytes.
        config_raw = cache.config.encode()
        document = cache.document
    else:
        # Layer order is kept (not re-sorted by the new digests) so every record, result and
        # chain index stays exactly as it was: records are cache keys and must not change.
        new_config = _with_layer_annotations(
            replace_blobs(cache.config, {old: new.digest for old, new in mapping.items()}),
            {new.digest: new for new in mapping.values()},
        )
        config_raw = new_config.encode()
        descriptors = {new.digest: new for new in mapping.values()}
        document = build_wrapper(
            wrapper_form(cache.form, cache.mediatypes),
            layer_descriptors_in_order(new_config, descriptors),
            config_descriptor(config_raw),
            base=cache.document,
        )
    manifest = await publish(dst, tag, document, tracker, config_raw=config_raw, preconditions=preconditions)
    tracker.begin("done", "finished")
    return OpResult("recompress", dst.display_name, tag, manifest, outcomes, bytes_written=written)


def _with_layer_annotations(config: CacheConfig, descriptors: Mapping[Digest, Descriptor]) -> CacheConfig:
    """Keep per-layer `annotations` (written by gha/s3/azblob exports) true to the new blobs (11.3.4)."""
    if not any(layer.annotations for layer in config.layers):
        return config
    layers = []
    for layer in config.layers:
        desc = descriptors.get(layer.blob)
        if not layer.annotations or desc is None:
            layers.append(layer)
            continue
        annotations = dict(layer.annotations)
        if "mediaType" in annotations:
            annotations["mediaType"] = mt.layer_media_type("oci", mt.layer_compression(desc.media_type) or "gzip")
        if "size" in annotations:
            annotations["size"] = desc.size
        layers.append(replace(layer, annotations=annotations))
    return CacheConfig(tuple(layers), config.records, config.extra)


def _diff_id(desc: Descriptor) -> Digest | None:
    text = desc.annotations.get(mt.ANNOTATION_UNCOMPRESSED)
    try:
        return Digest.parse(text) if text else None
    except FormatError:
        return None


def _new_descriptor(old: Descriptor, written: Descriptor, media_type: str, diff_id: Digest | None) -> Descriptor:
    extra: Mapping[str, Any] = {k: v for k, v in old.extra.items() if k != "urls"}
    annotations = rewritten_annotations(old.annotations, diff_id=diff_id)
    return Descriptor(media_type, written.digest, written.size, annotations, extra)


async def _recompress_blob(
    src: Store,
    dst: Store,
    desc: Descriptor,
    *,
    media_type: str,
    options: RecompressOptions,
    threads: int,
    tracker: Tracker,
) -> Descriptor:
    """Stream one blob through the transcoder into `dst`; the diff ID is checked before commit."""
    expected = _diff_id(desc)
    subject = str(desc.digest)
    stats = TranscodeStats()
    async with src.open_blob(desc) as chunks:
        stream = iter_transcoded(
            chunks,
            options.compression,
            level=options.level,
            threads=threads if options.compression == "zstd" else 0,
            verify=options.verify,
            expected_uncompressed=expected,
            stats=stats,
            on_input=lambda count: tracker.add_bytes(count, subject),
        )
        async with contextlib.aclosing(stream):
            written = await dst.write_blob(stream, media_type=media_type)
    return _new_descriptor(desc, written, media_type, expected or stats.uncompressed_digest)
