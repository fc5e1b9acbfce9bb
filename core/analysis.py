"""What a cache holds and what is wrong with it, computed from a LoadedCache alone (no I/O).

Warning codes are stable and documented in the README; never renumber or reuse one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from cachescope.core.errors import FormatError
from cachescope.core.gcpause import paused_gc
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.cache import CacheConfig, parse_go_time
from cachescope.core.model.digest import Digest
from cachescope.core.model.loaded import Form, LoadedCache, StoreKind

BUILDKIT_IMPORT_LIMIT: Final = 1024 * 1024
"""BuildKit refuses to import a wrapper or cache config larger than this (import.go)."""

Severity = Literal["error", "warning", "info"]
ModeValue = Literal["min", "max", "unknown"]
SEVERITY_ORDER: Final = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class Warning_:
    """One finding about the cache itself; `subject` names the descriptor or record concerned."""

    code: str
    severity: Severity
    message: str
    subject: str = ""


@dataclass(frozen=True, slots=True)
class DeepLayerCheck:
    """What decompressing a layer blob showed (`--deep`)."""

    digest: Digest
    detected_compression: mt.Compression | None
    uncompressed_digest: Digest | None
    uncompressed_size: int | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LayerRow:
    """One entry of the cache config's layer table, joined with its wrapper descriptor."""

    index: int
    digest: Digest
    parent: int
    size: int | None
    media_type: str | None
    compression: mt.Compression | None
    uncompressed_digest: Digest | None
    created_at: datetime | None
    created_at_raw: str | None
    present: bool | None
    """True/False when the store was checked, None when it was not."""
    used_by: tuple[int, ...] = ()
    """Records whose results include this layer entry."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    deep: DeepLayerCheck | None = None


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One record of the graph, as the records table and tree show it."""

    index: int
    digest: str
    inputs: tuple[tuple[tuple[int, str], ...], ...]
    """Per input slot, the (record index, selector) alternatives."""
    chains: tuple[tuple[int, ...], ...]
    """Each result as bottom-first layer-table indexes (unresolvable results left out)."""
    created_at: datetime | None
    depth: int
    is_root: bool
    is_leaf: bool


@dataclass(frozen=True, slots=True)
class RecordStats:
    count: int
    roots: int
    leaves: int
    depth: int
    with_results: int


@dataclass(frozen=True, slots=True)
class ModeInference:
    value: ModeValue
    reason: str


@dataclass(frozen=True, slots=True)
class CompressionShare:
    compression: str
    layers: int
    bytes: int


@dataclass(frozen=True, slots=True)
class CacheReport:
    source: str
    store_kind: StoreKind
    reference: str
    manifest_digest: Digest
    manifest_size: int
    manifest_media_type: str
    form: Form
    mediatypes: mt.Family
    config_digest: Digest | None
    config_size: int | None
    image_config_digest: Digest | None
    layers: tuple[LayerRow, ...]
    rows: _LazyRows = field(repr=False, compare=False)
    record_stats: RecordStats
    mode: ModeInference
    compressed_size: int
    uncompressed_size: int | None
    compression_mix: tuple[CompressionShare, ...]
    warnings: tuple[Warning_, ...]
    platform: str | None = None
    deep: bool = False

    def __repr__(self) -> str:  # short: the full repr of a large cache is slow and unreadable
        counts = f"layers={len(self.layers)}, warnings={len(self.warnings)}"
        return f"CacheReport({self.source!r}, form={self.form!r}, {counts})"

    @property
    def records(self) -> tuple[RecordRow, ...]:
        """Every record as a row, built on first use (see _LazyRows)."""
        return self.rows.get()

    @property
    def unique_blobs(self) -> int:
        return len({row.digest for row in self.layers})

    @property
    def worst_severity(self) -> Severity | None:
        if not self.warnings:
            return None
        return min((w.severity for w in self.warnings), key=SEVERITY_ORDER.__getitem__)

    @property
    def has_errors(self) -> bool:
        return any(w.severity == "error" for w in self.warnings)


def analyze(cache: LoadedCache, deep: Mapping[Digest, DeepLayerCheck] | None = None) -> CacheReport:
    """Build the full report: layer table, record graph, mode, sizes and warnings."""
    with paused_gc():
        return _analyze(cache, deep)


def _analyze(cache: LoadedCache, deep: Mapping[Digest, DeepLayerCheck] | None) -> CacheReport:
    warnings: list[Warning_] = []
    config = cache.config
    chains_by_record, graph_warnings = _resolve_chains(config)
    warnings += graph_warnings
    used_by: dict[int, list[int]] = {}
    for r, chains in chains_by_record.items():
        for chain in chains:
            for li in chain:
                used_by.setdefault(li, []).append(r)
    layers = tuple(_layer_row(cache, i, used_by.get(i, []), deep) for i in range(len(config.layers)))
    records, stats, record_warnings = _record_graph(config, chains_by_record)
    warnings += record_warnings
    warnings += _layer_warnings(cache, layers, deep is not None)
    warnings += _size_warnings(cache)
    unique: dict[Digest, LayerRow] = {}
    for row in layers:
        unique.setdefault(row.digest, row)
    compressed = sum(row.size or 0 for row in unique.values())
    uncompressed = _uncompressed_total(unique.values())
    mix = Counter[str]()
    mix_bytes = Counter[str]()
    for row in unique.values():
        key = row.compression or "unknown"
        mix[key] += 1
        mix_bytes[key] += row.size or 0
    shares = tuple(CompressionShare(k, n, mix_bytes[k]) for k, n in mix.most_common())
    if len([k for k in mix if k != "unknown"]) > 1:
        warnings.append(
            Warning_(
                "CS-MIXED-COMPRESSION",
                "warning",
                "layers use mixed compression ("
                + ", ".join(f"{s.layers} {s.compression}" for s in shares)
                + "); BuildKit prefers results matching the export's compression, so some hits may be skipped; "
                "`cachescope recompress` unifies them",
            )
        )
    warnings.sort(key=lambda w: (SEVERITY_ORDER[w.severity], w.code, w.subject))
    return CacheReport(
        source=cache.source,
        store_kind=cache.store_kind,
        reference=cache.reference,
        manifest_digest=cache.manifest.digest,
        manifest_size=cache.manifest.size,
        manifest_media_type=cache.document.media_type,
        form=cache.form,
        mediatypes=cache.mediatypes,
        config_digest=cache.config_descriptor.digest if cache.config_descriptor else None,
        config_size=cache.config_descriptor.size if cache.config_descriptor else None,
        image_config_digest=cache.image_config_descriptor.digest if cache.image_config_descriptor else None,
        layers=layers,
        rows=records,
        record_stats=stats,
        mode=infer_mode(cache, chains_by_record),
        compressed_size=compressed,
        uncompressed_size=uncompressed,
        compression_mix=shares,
        warnings=tuple(warnings),
        platform=cache.platform,
        deep=deep is not None,
    )


def _layer_row(
    cache: LoadedCache, index: int, used_by: Sequence[int], deep: Mapping[Digest, DeepLayerCheck] | None
) -> LayerRow:
    layer = cache.config.layers[index]
    desc = cache.layer_descriptors.get(layer.blob)
    annotations = dict(desc.annotations) if desc else {}
    if desc is None and layer.annotations:
        # gha/s3/azblob-style configs carry descriptor data in the layer entry itself.
        annotations = {k: str(v) for k, v in layer.annotations.items()}
    media_type = desc.media_type if desc else annotations.get("mediaType")
    size = desc.size if desc else _int_or_none(annotations.get("size"))
    diff_text = annotations.get(mt.ANNOTATION_UNCOMPRESSED) or annotations.get("diffID")
    created_raw = annotations.get(mt.ANNOTATION_CREATED) or annotations.get("createdAt")
    state = cache.blobs.get(layer.blob) if cache.blobs is not None else None
    return LayerRow(
        index=index,
        digest=layer.blob,
        parent=layer.parent,
        size=size,
        media_type=media_type,
        compression=mt.layer_compression(media_type, annotations) if media_type else None,
        uncompressed_digest=_digest_or_none(diff_text),
        created_at=parse_go_time(created_raw),
        created_at_raw=created_raw,
        present=None if cache.blobs is None else (state is not None and state.stored_size is not None),
        used_by=tuple(sorted(set(used_by))),
        annotations=annotations,
        deep=deep.get(layer.blob) if deep else None,
    )


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _digest_or_none(text: str | None) -> Digest | None:
    if not text:
        return None
    try:
        return Digest.parse(text)
    except FormatError:
        return None


def _uncompressed_total(rows: Iterable[LayerRow]) -> int | None:
    """Sum of uncompressed sizes when every one is known (uncompressed, estargz or --deep)."""
    total = 0
    for row in rows:
        if row.deep and row.deep.uncompressed_size is not None:
            total += row.deep.uncompressed_size
        elif row.compression == "uncompressed" and row.size is not None:
            total += row.size
        elif mt.ANNOTATION_ESTARGZ_SIZE in row.annotations:
            value = _int_or_none(row.annotations[mt.ANNOTATION_ESTARGZ_SIZE])
            if value is None:
                return None
            total += value
        else:
            return None
    return total


def _resolve_chains(config: CacheConfig) -> tuple[dict[int, list[list[int]]], list[Warning_]]:
    """Each record's results as layer chains; graph errors become warnings, not crashes.

    Every layer's chain is walked once and shared by the records that end on it.
    """
    chains: dict[int, list[list[int]]] = {}
    warnings: list[Warning_] = []
    n_layers = len(config.layers)
    by_layer: list[list[int] | ValueError] = []
    for i in range(n_layers):
        try:
            by_layer.append(config.layer_chain(i))
        except ValueError as exc:
            by_layer.append(exc)
            warnings.append(_graph_warning(f"layer {i}: {exc}", f"layer {i}"))
    for i, record in enumerate(config.records):
        resolved: list[list[int]] = []
        for result in record.results:
            found = by_layer[result.layer] if 0 <= result.layer < n_layers else None
            if isinstance(found, list):
                resolved.append(found)
            else:
                problem = found or ValueError(f"invalid layer index {result.layer}")
                warnings.append(_graph_warning(f"record {i}: {problem}", f"record {i}"))
        for chained in record.chains:
            bad = [x for x in chained.layers if not 0 <= x < n_layers]
            if bad:
                warnings.append(_graph_warning(f"record {i}: invalid layer index {bad[0]}", f"record {i}"))
            else:
                resolved.append(list(chained.layers))
        if resolved:
            chains[i] = resolved
    return chains, warnings


def _graph_warning(message: str, subject: str) -> Warning_:
    return Warning_("CS-GRAPH-INVALID", "error", f"{message}; BuildKit rejects the whole cache on import", subject)


class _LazyRows:
    """Builds the per-record rows on first use: `inspect --json` needs only the graph's
    statistics, and a 10,000-record cache spends most of its analysis on rows."""

    __slots__ = ("_chains", "_config", "_depth", "_linked", "_rows")

    def __init__(
        self, config: CacheConfig, chains: Mapping[int, list[list[int]]], depth: list[int], linked: set[int]
    ) -> None:
        self._config, self._chains, self._depth, self._linked = config, chains, depth, linked
        self._rows: tuple[RecordRow, ...] | None = None

    def get(self) -> tuple[RecordRow, ...]:
        if self._rows is None:
            self._rows = self._build()
        return self._rows

    def _build(self) -> tuple[RecordRow, ...]:
        rows = []
        no_chains: tuple[tuple[int, ...], ...] = ()
        for i, record in enumerate(self._config.records):
            created: datetime | None = None
            if record.results or record.chains:
                stamps = [r.created_at for r in record.results] + [c.created_at for c in record.chains]
                for stamp in stamps:
                    t = parse_go_time(stamp)
                    if t is not None and (created is None or t > created):
                        created = t
            resolved = self._chains.get(i)
            rows.append(
                RecordRow(
                    i,
                    record.digest,
                    tuple([tuple([(x.link, x.selector) for x in slot]) for slot in record.inputs]),
                    tuple([tuple(c) for c in resolved]) if resolved else no_chains,
                    created,
                    self._depth[i],
                    not record.inputs,
                    i not in self._linked,
                )
            )
        return tuple(rows)


def _record_graph(
    config: CacheConfig, chains_by_record: Mapping[int, list[list[int]]]
) -> tuple[_LazyRows, RecordStats, list[Warning_]]:
    warnings: list[Warning_] = []
    n = len(config.records)
    linked: set[int] = set()
    parents: list[list[int]] = []
    roots = 0
    for i, record in enumerate(config.records):
        deps: list[int] = []
        if not record.inputs:
            roots += 1
        for s, slot in enumerate(record.inputs):
            if not slot:
                warnings.append(_graph_warning(f"record {i}: invalid empty input {s}", f"record {i}"))
            for inp in slot:
                if 0 <= inp.link < n:
                    deps.append(inp.link)
                    linked.add(inp.link)
                else:
                    warnings.append(_graph_warning(f"record {i}: invalid record ID {inp.link}", f"record {i}"))
        parents.append(deps)
        if record.digest.startswith("random:"):
            warnings.append(
                Warning_(
                    "CS-RANDOM-RECORD", "info", f"record {i} has a random: key; BuildKit ignores it", f"record {i}"
                )
            )
    depth = _depths(parents, warnings)
    stats = RecordStats(
        count=n,
        roots=roots,
        leaves=n - len(linked),
        depth=max(depth, default=0),
        with_results=sum(1 for chains in chains_by_record.values() if chains),
    )
    return _LazyRows(config, chains_by_record, depth, linked), stats, warnings


def _depths(parents: Sequence[Sequence[int]], warnings: list[Warning_]) -> list[int]:
    """Longest input path to each record, counted in records (a root has depth 1)."""
    n = len(parents)
    depth = [0] * n
    state = [0] * n  # 0 new, 1 on stack, 2 done
    looped = False
    for start in range(n):
        if state[start]:
            continue
        stack: list[tuple[int, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node, pos = stack[-1]
            deps = parents[node]
            if pos < len(deps):
                stack[-1] = (node, pos + 1)
                dep = deps[pos]
                if state[dep] == 1:
                    looped = True
                elif state[dep] == 0:
                    state[dep] = 1
                    stack.append((dep, 0))
                continue
            depth[node] = 1 + max((depth[d] for d in deps if state[d] == 2), default=0)
            state[node] = 2
            stack.pop()
    if looped:
        warnings.append(_graph_warning("records form a cycle (invalid looping record)", "records"))
    return depth


def infer_mode(cache: LoadedCache, chains_by_record: Mapping[int, list[list[int]]]) -> ModeInference:
    """Guess min/max from the record graph (buildkit-cache-format.md 6.1); never stated as fact."""
    if cache.form == "inline":
        return ModeInference("min", "inline cache is always exported with mode=min")
    config = cache.config
    linked = {inp.link for r in config.records for slot in r.inputs for inp in slot}
    ids: dict[Digest, int] = {}
    blobs = [ids.setdefault(layer.blob, len(ids)) for layer in config.layers]  # ints hash faster than Digests

    def as_blobs(chain: list[int]) -> tuple[int, ...]:
        return tuple([blobs[i] for i in chain])

    final = {as_blobs(c) for i, cs in chains_by_record.items() if i not in linked for c in cs}
    results = {as_blobs(c) for cs in chains_by_record.values() for c in cs}
    if not results:
        return ModeInference("unknown", "no record carries a result, so there is nothing to compare")
    on_final_path = {f[:k] for f in final for k in range(1, len(f) + 1)}
    off_path = [c for c in results if c not in on_final_path]
    non_root_without = [i for i, r in enumerate(config.records) if not r.is_root and i not in chains_by_record]
    if off_path:
        return ModeInference(
            "max",
            f"{len(off_path)} result chain(s) are not part of the final result's chain"
            f" ({len(final)} final chain(s)): intermediate stages were exported, as mode=max does",
        )
    if non_root_without:
        return ModeInference(
            "min",
            f"every result lies on the final chain and {len(non_root_without)} build step(s) have no result,"
            " as mode=min exports",
        )
    return ModeInference(
        "unknown",
        "every step has a result on the final chain: min and max export the same config for this build",
    )


def _layer_warnings(cache: LoadedCache, layers: Sequence[LayerRow], deep_ran: bool) -> list[Warning_]:
    warnings: list[Warning_] = []
    seen: set[Digest] = set()
    diff_to_blobs: dict[Digest, set[Digest]] = {}
    docker_zstd = 0
    for row in layers:
        if row.digest in seen:
            continue
        seen.add(row.digest)
        subject = str(row.digest)
        if row.media_type is None:
            warnings.append(
                Warning_(
                    "CS-NO-DESCRIPTOR",
                    "error",
                    f"layer {row.digest.short} is in the cache config but not in the wrapper; "
                    "BuildKit silently drops every result that uses it",
                    subject,
                )
            )
        if row.present is False:
            warnings.append(
                Warning_(
                    "CS-BLOB-MISSING",
                    "error",
                    f"blob {row.digest.short} is referenced but missing from the store; results using it are lost",
                    subject,
                )
            )
        state = cache.blobs.get(row.digest) if cache.blobs else None
        if state and state.stored_size is not None and row.size is not None and state.stored_size != row.size:
            warnings.append(
                Warning_(
                    "CS-SIZE-MISMATCH",
                    "error",
                    f"blob {row.digest.short} is stored with {state.stored_size} bytes, descriptor says {row.size}",
                    subject,
                )
            )
        if row.media_type is not None and row.uncompressed_digest is None:
            warnings.append(
                Warning_(
                    "CS-NO-DIFFID",
                    "error",
                    f"layer {row.digest.short} has no {mt.ANNOTATION_UNCOMPRESSED} annotation; "
                    "builds fail with 'missing uncompressed annotation' when they hit it",
                    subject,
                )
            )
        if row.media_type is not None and row.compression is None:
            warnings.append(
                Warning_(
                    "CS-UNKNOWN-MEDIATYPE",
                    "warning",
                    f"layer {row.digest.short} has media type {row.media_type}, which is not a layer type",
                    subject,
                )
            )
        if row.media_type and mt.family_of(row.media_type) == "docker" and row.compression == "zstd":
            docker_zstd += 1
        if row.uncompressed_digest is not None:
            diff_to_blobs.setdefault(row.uncompressed_digest, set()).add(row.digest)
        if row.deep is not None:
            warnings += _deep_warnings(row)
    if docker_zstd:
        warnings.append(
            Warning_(
                "CS-ZSTD-DOCKER",
                "warning",
                f"{docker_zstd} layer(s) use {mt.DOCKER_LAYER_ZSTD}, a containerd extension that Docker's schema "
                "does not define; many registries and tools reject it (`cachescope reexport --mediatypes oci`)",
            )
        )
    dupes = {d: b for d, b in diff_to_blobs.items() if len(b) > 1}
    if dupes:
        warnings.append(
            Warning_(
                "CS-DUPLICATE-DIFF",
                "info",
                f"{len(dupes)} layer content(s) are stored as several blobs in different compressions; "
                "`cachescope recompress` to one compression removes the copies",
            )
        )
    if cache.mediatypes == "docker":
        warnings.append(
            Warning_(
                "CS-DOCKER-MEDIATYPES",
                "warning",
                "the cache uses Docker media types (oci-mediatypes=false): a Docker manifest list of layer blobs, "
                "which Docker's schema does not allow and many registries reject; prefer the OCI image-manifest form",
            )
        )
    if not cache.config.layers and cache.form != "inline":
        warnings.append(Warning_("CS-EMPTY-CACHE", "warning", "the cache config has no layers: nothing to reuse"))
    if deep_ran is False and any(row.compression == "estargz" for row in layers) and cache.mediatypes == "docker":
        warnings.append(
            Warning_(
                "CS-ESTARGZ-DOCKER",
                "warning",
                "estargz layers are labelled with Docker gzip media types; lazy pulling needs OCI media types",
            )
        )
    return warnings


def _deep_warnings(row: LayerRow) -> list[Warning_]:
    if row.deep is None:
        return []
    subject = str(row.digest)
    if row.deep.error:
        return [Warning_("CS-DEEP-UNREADABLE", "error", f"layer {row.digest.short}: {row.deep.error}", subject)]
    out: list[Warning_] = []
    detected = row.deep.detected_compression
    declared = row.compression
    # estargz is gzip with a footer; a gzip media type on estargz bytes is how BuildKit labels it.
    if (
        detected is not None
        and declared is not None
        and detected != declared
        and not (declared == "gzip" and detected == "estargz")
    ):
        out.append(
            Warning_(
                "CS-DEEP-COMPRESSION",
                "error",
                f"layer {row.digest.short} is {detected} but its media type says {declared}",
                subject,
            )
        )
    if (
        row.uncompressed_digest is not None
        and row.deep.uncompressed_digest is not None
        and row.deep.uncompressed_digest != row.uncompressed_digest
    ):
        out.append(
            Warning_(
                "CS-DEEP-MISMATCH",
                "error",
                f"layer {row.digest.short} decompresses to {row.deep.uncompressed_digest.short}, "
                f"not to its annotated diff ID {row.uncompressed_digest.short}; images built from it fail to unpack",
                subject,
            )
        )
    return out


def _size_warnings(cache: LoadedCache) -> list[Warning_]:
    warnings: list[Warning_] = []
    for what, size in (
        ("cache manifest", cache.manifest.size),
        ("cache config", cache.config_descriptor.size if cache.config_descriptor else None),
    ):
        if size is not None and size > BUILDKIT_IMPORT_LIMIT and cache.form != "inline":
            warnings.append(
                Warning_(
                    "CS-IMPORT-1MIB",
                    "error",
                    f"the {what} is {size} bytes, over BuildKit's 1 MiB import limit: every import fails with "
                    f"'is too large ({size} > 1048576)'; `cachescope trim --max-size` or mode=min makes it importable",
                    what,
                )
            )
    return warnings
