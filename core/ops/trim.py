"""Trim: make a cache smaller by dropping its oldest layers and the records that need them.

A result is a whole layer chain, usable only while every layer in it exists
(buildkit-cache-format.md 11.2). So trimming evicts the oldest *leaf* layer (one no
remaining layer sits on) first, by its `buildkit/createdat` time, drops every result whose
chain uses it, and repeats; the layers below stay as long as some newer result still needs
them. `subset_config` then keeps the records that still have results plus every record they
link to (so every input slot stays filled), drops the rest, and renumbers layers and
records. Remaining results keep their chains layer for layer.

Layer times: the descriptor's `buildkit/createdat` (or the config's `annotations.createdAt`);
a layer without one takes the oldest `createdAt` of the results using it; with neither it
counts as oldest. Result times (for `keep_newer_than`): the result's `createdAt`, else its
newest layer's time; results with no time are dropped.

The trimmed cache is written like every other write (config, wrapper, verify, tag last);
the source is never touched, and when it is also the destination its tag moves only once
the new cache is complete. Dropped blobs stay in the store until `prune`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Final

from cachescope.core.analysis import analyze
from cachescope.core.errors import PlanError, UsageError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.cache import CacheConfig, CacheResult, ChainedResult, parse_go_time
from cachescope.core.model.digest import Digest
from cachescope.core.model.loaded import LoadedCache
from cachescope.core.model.oci import Descriptor, Document
from cachescope.core.ops.plan import OpResult, Plan, Precondition, Step, precondition, tag_step
from cachescope.core.ops.progress import ProgressCallback, Tracker
from cachescope.core.ops.prune import format_duration
from cachescope.core.ops.writer import (
    build_wrapper,
    config_descriptor,
    has_blob,
    layer_descriptors_in_order,
    publish,
    same_store,
    sort_config,
    subset_config,
    transfer_blobs,
    wrapper_form,
)
from cachescope.core.reader import load_cache
from cachescope.core.stores.base import Store

BUILDKIT_CONFIG_LIMIT: Final = 1024 * 1024
"""BuildKit refuses a cache config or wrapper over 1 MiB (buildkit-cache-format.md 2.5)."""

_OLDEST: Final = datetime.min.replace(tzinfo=UTC)

ResultKey = tuple[int, int]
"""(record index, position among the record's results then chains)."""


@dataclass(frozen=True, slots=True)
class TrimSelection:
    """The trimmed cache, decided but not written, and what it cost."""

    config: CacheConfig
    config_raw: bytes
    document: Document
    layers: tuple[Descriptor, ...]
    """Distinct layer blobs the trimmed cache lists."""
    layers_before: int
    layers_after: int
    records_before: int
    records_after: int
    results_dropped: int
    dropped_blobs: tuple[Descriptor, ...]
    size_before: int
    size_after: int
    """Stored size: distinct layer blobs + cache config + wrapper."""

    @property
    def changed(self) -> bool:
        return self.results_dropped > 0


def _time(text: object) -> datetime | None:
    return parse_go_time(text if isinstance(text, str) else None)


def _layer_times(cache: LoadedCache) -> list[datetime | None]:
    times: list[datetime | None] = []
    for layer in cache.config.layers:
        desc = cache.layer_descriptors.get(layer.blob)
        when = _time(desc.annotations.get(mt.ANNOTATION_CREATED)) if desc else None
        if when is None and layer.annotations:
            when = _time(layer.annotations.get("createdAt"))
        times.append(when)
    return times


def _blob_size(cache: LoadedCache, blob: Digest, index: int) -> int:
    desc = cache.layer_descriptors.get(blob)
    if desc is not None:
        return desc.size
    size = (cache.config.layers[index].annotations or {}).get("size")
    return size if isinstance(size, int) else 0


class _Evictor:
    """Results and the layers they hold; evicts the oldest leaf layer with every result using it."""

    def __init__(
        self,
        cache: LoadedCache,
        alive: dict[ResultKey, bool],
        chains: dict[ResultKey, list[int]],
        times: list[datetime],
    ) -> None:
        config = cache.config
        self.parents = [x.parent for x in config.layers]
        self.blobs = [x.blob for x in config.layers]
        self.sizes = {x.blob: _blob_size(cache, x.blob, i) for i, x in enumerate(config.layers)}
        self.times = times
        self.alive = alive
        self.chains = chains
        n = len(config.layers)
        self.users: list[list[ResultKey]] = [[] for _ in range(n)]
        self.refs = [0] * n
        for key, chain in chains.items():
            for i in chain:
                self.users[i].append(key)
                if alive[key]:
                    self.refs[i] += 1
        self.live = [r > 0 for r in self.refs]
        self.live_count = sum(self.live)
        self.alive_count = sum(alive.values())
        self.children = [0] * n
        self.blob_refs: dict[Digest, int] = {}
        for i in range(n):
            if self.live[i]:
                self.blob_refs[self.blobs[i]] = self.blob_refs.get(self.blobs[i], 0) + 1
                if self.parents[i] >= 0:
                    self.children[self.parents[i]] += 1
        self.blob_bytes = sum(self.sizes[b] for b in self.blob_refs)
        self.heap = [(times[i], i) for i in range(n) if self.live[i] and self.children[i] == 0]
        heapq.heapify(self.heap)

    def _kill(self, key: ResultKey) -> None:
        self.alive[key] = False
        self.alive_count -= 1
        for i in self.chains[key]:
            self.refs[i] -= 1
            if self.refs[i] == 0:
                self._dead(i)

    def _dead(self, i: int) -> None:
        self.live[i] = False
        self.live_count -= 1
        blob = self.blobs[i]
        self.blob_refs[blob] -= 1
        if self.blob_refs[blob] == 0:
            del self.blob_refs[blob]
            self.blob_bytes -= self.sizes[blob]
        parent = self.parents[i]
        if parent >= 0 and self.live[parent]:
            self.children[parent] -= 1
            if self.children[parent] == 0:
                heapq.heappush(self.heap, (self.times[parent], parent))

    def evict_while(self, over: Callable[[], bool]) -> None:
        while self.heap and over():
            _, i = heapq.heappop(self.heap)
            if not self.live[i] or self.children[i] > 0:
                continue
            for key in self.users[i]:
                if self.alive[key]:
                    self._kill(key)


def _result_chains(config: CacheConfig) -> dict[ResultKey, list[int]]:
    """Every layer each result needs (ancestors included), or PlanError on a graph BuildKit rejects."""
    chains: dict[ResultKey, list[int]] = {}
    try:
        for r_i, record in enumerate(config.records):
            for j, result in enumerate(record.results):
                chains[(r_i, j)] = config.layer_chain(result.layer)
            for j, chained in enumerate(record.chains, start=len(record.results)):
                needed: dict[int, None] = {}
                for i in chained.layers:
                    needed.update(dict.fromkeys(config.layer_chain(i)))
                chains[(r_i, j)] = list(needed)
    except ValueError as exc:
        raise PlanError(
            f"the cache graph is invalid ({exc}); trim needs a cache BuildKit can import",
            hint="cachescope inspect shows the problem",
        ) from exc
    return chains


def _result_time(
    config: CacheConfig, key: ResultKey, chain: list[int], layer_times: list[datetime | None]
) -> datetime | None:
    when = _time(_result_obj(config, key).created_at)
    if when is not None:
        return when
    return max((t for t in (layer_times[i] for i in chain) if t is not None), default=None)


def _stored_size(blobs: Sequence[Descriptor], config_size: int, wrapper_size: int) -> int:
    return sum({d.digest: d.size for d in blobs}.values()) + config_size + wrapper_size


def select_trim(
    cache: LoadedCache,
    *,
    max_size: int | None = None,
    keep_newer_than: timedelta | None = None,
    now: datetime | None = None,
) -> TrimSelection:
    """Decide the trimmed cache (pure: no store I/O). See the module docstring for the rules."""
    if max_size is None and keep_newer_than is None:
        raise UsageError("say how to trim: --max-size SIZE or --keep-records-newer-than DURATION")
    if cache.form == "inline" or cache.config_descriptor is None:
        raise UsageError(
            f"{cache.source} is an image with inline cache; trim works on cache wrappers",
            hint="turn it into a cache first with `cachescope reexport`",
        )
    config = cache.config
    chains = _result_chains(config)
    layer_times = _fill_layer_times(cache, chains)
    alive = dict.fromkeys(chains, True)
    if keep_newer_than is not None:
        cutoff = (now or datetime.now(UTC)) - keep_newer_than
        for key, chain in chains.items():
            when = _result_time(config, key, chain, layer_times)
            alive[key] = when is not None and when >= cutoff
    original_layers = tuple({d.digest: d for d in layer_descriptors_in_order(config, cache.layer_descriptors)}.values())
    size_before = _stored_size(original_layers, cache.config_descriptor.size, cache.manifest.size)
    evictor = _Evictor(cache, alive, chains, [t or _OLDEST for t in layer_times])
    form = wrapper_form(cache.form, cache.mediatypes)
    # The config and wrapper shrink with what is kept; estimate them in proportion, then
    # correct the estimate by what building the real documents measures.
    config_share = cache.config_descriptor.size / max(1, evictor.alive_count)
    wrapper_share = cache.manifest.size / max(1, evictor.live_count)
    bias = 0.0

    def estimate() -> float:
        return evictor.blob_bytes + config_share * evictor.alive_count + wrapper_share * evictor.live_count + bias

    while True:
        if max_size is not None:
            evictor.evict_while(lambda: estimate() > max_size)
        if not any(alive.values()):
            what = (
                f"--max-size {max_size} bytes"
                if max_size is not None
                else f"--keep-records-newer-than {format_duration(keep_newer_than or timedelta())}"
            )
            raise PlanError(
                f"{what} leaves no result in {cache.source}; nothing would be worth importing",
                hint="allow a larger size or a longer time",
            )
        dropped = sum(1 for v in alive.values() if not v)
        if dropped == 0:
            new_config, raw, document = config, config.encode(), cache.document
        else:
            keep = {(r_i, id(r)) for (r_i, j), ok in alive.items() if ok for r in [_result_obj(config, (r_i, j))]}
            new_config = sort_config(subset_config(config, _keeper(keep)))
            raw = new_config.encode()
            document = build_wrapper(
                form,
                layer_descriptors_in_order(new_config, cache.layer_descriptors),
                config_descriptor(raw),
                base=cache.document,
            )
        layers = tuple({d.digest: d for d in layer_descriptors_in_order(new_config, cache.layer_descriptors)}.values())
        size_after = _stored_size(layers, len(raw), len(document.encode()))
        if max_size is None or size_after <= max_size:
            break
        bias += size_after - estimate()
    kept_blobs = {d.digest for d in layers}
    return TrimSelection(
        config=new_config,
        config_raw=raw,
        document=document,
        layers=layers,
        layers_before=len(config.layers),
        layers_after=len(new_config.layers),
        records_before=len(config.records),
        records_after=len(new_config.records),
        results_dropped=dropped,
        dropped_blobs=tuple(d for d in original_layers if d.digest not in kept_blobs),
        size_before=size_before,
        size_after=size_after,
    )


def _result_obj(config: CacheConfig, key: ResultKey) -> CacheResult | ChainedResult:
    record = config.records[key[0]]
    if key[1] < len(record.results):
        return record.results[key[1]]
    return record.chains[key[1] - len(record.results)]


def _keeper(keep: set[tuple[int, int]]) -> Callable[[int, object], bool]:
    """subset_config's predicate: results are the very objects of the source config, so identity works."""
    return lambda i, r: (i, id(r)) in keep


def _fill_layer_times(cache: LoadedCache, chains: dict[ResultKey, list[int]]) -> list[datetime | None]:
    """Layer times, with unknown ones taken from the oldest result that uses the layer."""
    times = _layer_times(cache)
    fallback: dict[int, datetime] = {}
    for key, chain in chains.items():
        when = _time(_result_obj(cache.config, key).created_at)
        if when is None:
            continue
        for i in chain:
            if times[i] is None and (i not in fallback or when < fallback[i]):
                fallback[i] = when
    return [t if t is not None else fallback.get(i) for i, t in enumerate(times)]


def _check_clean(cache: LoadedCache, selection: TrimSelection) -> None:
    """A guard against our own bugs: the trimmed cache must analyse without graph errors."""
    trimmed = replace(
        cache,
        document=selection.document,
        config=selection.config,
        config_descriptor=config_descriptor(selection.config_raw),
        layer_descriptors={d.digest: d for d in selection.layers},
        blobs=None,
    )
    bad = [w for w in analyze(trimmed).warnings if w.code == "CS-GRAPH-INVALID"]
    if bad:
        raise PlanError(f"trimming {cache.source} would produce an invalid graph: {bad[0].message}")


async def plan_trim(
    src: Store,
    reference: str,
    dst: Store,
    tag: str,
    *,
    max_size: int | None = None,
    keep_newer_than: timedelta | None = None,
    now: datetime | None = None,
) -> Plan:
    """Plan writing a trimmed copy of the cache at `src:reference` to `dst:tag` (which may be the source)."""
    cache = await load_cache(src, reference)
    missing = [str(d) for d, state in (cache.blobs or {}).items() if state.stored_size is None]
    selection = select_trim(cache, max_size=max_size, keep_newer_than=keep_newer_than, now=now)
    _check_clean(cache, selection)
    copying = not same_store(src, dst)
    in_place = not copying and tag == cache.reference
    noop = in_place and not selection.changed
    kept_missing = [m for m in missing if any(str(d.digest) == m for d in selection.layers)]
    if kept_missing and copying:
        raise PlanError(f"{cache.source} is missing layer blob(s) {', '.join(kept_missing)}; cannot copy them")
    preconditions: list[Precondition] = [await precondition(src, reference)]
    if not in_place:
        preconditions.append(await precondition(dst, tag))
    steps: list[Step] = []
    for desc in selection.layers:
        present = not copying or await has_blob(dst, desc)
        steps.append(
            Step(
                "reuse-blob" if present else "copy-blob",
                str(desc.digest),
                desc.size,
                "kept layer",
                read=0 if present else desc.size,
            )
        )
    if not noop:
        steps += [
            Step(
                "write-config",
                "cache config",
                len(selection.config_raw),
                f"{selection.layers_after} layers, {selection.records_after} records",
            ),
            Step("write-manifest", f"{cache.form} wrapper", len(selection.document.encode())),
            tag_step(preconditions[-1]),  # move-tag (confirmed) when the tag exists, as trimming in place does
        ]
    notes: list[str] = []
    dropped_bytes = sum(d.size for d in selection.dropped_blobs)
    if selection.changed:
        notes.append(
            f"drops {selection.layers_before - selection.layers_after} layer entries "
            f"({len(selection.dropped_blobs)} blobs, {dropped_bytes} bytes), "
            f"{selection.records_before - selection.records_after} records and {selection.results_dropped} results"
        )
        if not copying:
            where = (
                "`cachescope prune` on the directory" if src.kind == "local" else "the registry's garbage collection"
            )
            notes.append(f"the dropped blobs stay in {src.display_name} until {where}")
    else:
        notes.append(f"nothing to drop: the cache is {selection.size_before} bytes")
    if len(selection.config_raw) > BUILDKIT_CONFIG_LIMIT:
        notes.append(
            f"the trimmed cache config is {len(selection.config_raw)} bytes, over BuildKit's 1 MiB limit; "
            "trim further so BuildKit can import it"
        )
    if missing:
        notes.append(f"{len(missing)} layer blob(s) were already missing in the source")

    async def run(on_progress: ProgressCallback | None) -> OpResult:
        if noop:
            return OpResult("trim", dst.display_name, tag, cache.manifest, {"unchanged": 1})
        tracker = Tracker("trim", on_progress)
        outcomes: dict[str, int] = {}
        written = 0
        if copying:
            tracker.begin(
                "blobs",
                "copying kept layers",
                bytes_total=sum(d.size for d in selection.layers),
                items_total=len(selection.layers),
            )
            moved = await transfer_blobs(src, dst, selection.layers, tracker)
            for outcome in moved.values():
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            written = sum(d.size for d in selection.layers if moved.get(d.digest) == "copied")
        else:
            outcomes["reused"] = len(selection.layers)
        manifest = await publish(
            dst, tag, selection.document, tracker, config_raw=selection.config_raw, preconditions=preconditions
        )
        tracker.begin("done", "finished")
        written += len(selection.config_raw) + manifest.size
        return OpResult(
            "trim",
            dst.display_name,
            tag,
            manifest,
            outcomes,
            bytes_written=written,
            notes=tuple(notes[1:2]) if selection.changed and not copying else (),
        )

    return Plan(
        "trim",
        cache.source,
        f"{dst.display_name}:{tag}",
        tuple(steps),
        tuple(preconditions),
        tuple(notes),
        summary=(
            f"{selection.size_before} -> {selection.size_after} bytes, layers {selection.layers_before} -> "
            f"{selection.layers_after}, records {selection.records_before} -> {selection.records_after}"
        ),
        runner=run,
    )


__all__ = ["BUILDKIT_CONFIG_LIMIT", "TrimSelection", "plan_trim", "select_trim"]
