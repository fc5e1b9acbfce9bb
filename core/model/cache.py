"""The BuildKit cache config (`application/vnd.buildkit.cacheconfig.v0`) as frozen data.

Index rules follow cache/remotecache/v1/types/spec.go: a missing `parent` means layer 0
(Go omitempty), `-1` marks a base layer, `link` and `layer` are always written.
Parsing checks types only; graph validity (ranges, cycles) is the analysis's job so that a
broken cache can still be shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Final

from cachescope.core.errors import FormatError
from cachescope.core.gcpause import paused_gc
from cachescope.core.model.digest import Digest, sha256_of
from cachescope.core.model.jsonenc import get_int, get_list, get_str, go_dumps, load_object

NO_PARENT: Final = -1


@dataclass(frozen=True, slots=True)
class CacheLayer:
    """One entry of the config's layer table: a blob on top of a parent entry."""

    blob: Digest
    parent: int = NO_PARENT
    annotations: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CacheResult:
    """A record result: the chain ending at layer-table entry `layer` (ancestors by parent)."""

    layer: int
    created_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChainedResult:
    """A record result listing its layer-table entries explicitly, bottom first."""

    layers: tuple[int, ...]
    created_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CacheInput:
    """One alternative source for an input slot: a record index and an optional selector."""

    link: int
    selector: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """A cache key node; `digest` is kept as text because BuildKit keys are opaque strings."""

    digest: str
    inputs: tuple[tuple[CacheInput, ...], ...] = ()
    results: tuple[CacheResult, ...] = ()
    chains: tuple[ChainedResult, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_root(self) -> bool:
        return not self.inputs

    @property
    def has_results(self) -> bool:
        return bool(self.results or self.chains)


@dataclass(frozen=True, slots=True)
class CacheConfig:
    layers: tuple[CacheLayer, ...]
    records: tuple[CacheRecord, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    raw: bytes = b""

    def __repr__(self) -> str:
        # Short on purpose: asyncio and error paths repr results, and the full repr of a
        # 10,000-record config takes longer than reading it.
        return f"CacheConfig(layers={len(self.layers)}, records={len(self.records)}, raw={len(self.raw)} bytes)"

    def encode(self) -> bytes:
        """The raw bytes if unchanged, else compact JSON with BuildKit's key order and omitempty."""
        return self.raw or encode_cache_config(self)

    @property
    def digest(self) -> Digest:
        return sha256_of(self.encode())

    def layer_chain(self, index: int) -> list[int]:
        """Layer-table indexes from the base up to `index`; raises ValueError on a bad graph."""
        chain: list[int] = []
        seen: set[int] = set()
        current = index
        while current != NO_PARENT:
            if not 0 <= current < len(self.layers):
                raise ValueError(f"invalid layer index {current}")
            if current in seen:
                raise ValueError("invalid looping layer")
            seen.add(current)
            chain.append(current)
            current = self.layers[current].parent
        chain.reverse()
        return chain

    def result_chains(self, record: CacheRecord) -> list[list[int]]:
        """Every result of a record as bottom-first layer-table indexes."""
        chains = [self.layer_chain(r.layer) for r in record.results]
        for chained in record.chains:
            for i in chained.layers:
                if not 0 <= i < len(self.layers):
                    raise ValueError(f"invalid layer index {i}")
            chains.append(list(chained.layers))
        return chains


def _parse_layer(obj: Any, i: int) -> CacheLayer:
    what = f"cache config layer {i}"
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not an object")
    blob = get_str(obj, "blob", what, required=True) or ""
    annotations = obj.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise FormatError(f"{what}: 'annotations' is not an object")
    return CacheLayer(
        blob=Digest.parse(blob),
        parent=get_int(obj, "parent", what, default=0),
        annotations=annotations,
        extra={k: v for k, v in obj.items() if k not in {"blob", "parent", "annotations"}},
    )


def _parse_result(obj: Any, what: str) -> CacheResult:
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not an object")
    return CacheResult(
        layer=get_int(obj, "layer", what, default=0),
        created_at=get_str(obj, "createdAt", what),
        extra={k: v for k, v in obj.items() if k not in {"layer", "createdAt"}},
    )


def _parse_chained(obj: Any, what: str) -> ChainedResult:
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not an object")
    layers = get_list(obj, "layers", what)
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in layers):
        raise FormatError(f"{what}: 'layers' holds a non-integer")
    return ChainedResult(
        layers=tuple(layers),
        created_at=get_str(obj, "createdAt", what),
        extra={k: v for k, v in obj.items() if k not in {"layers", "createdAt"}},
    )


_INPUT_KEYS: Final = frozenset({"link", "selector"})
_RECORD_KEYS: Final = frozenset({"layers", "chains", "digest", "inputs"})
_NO_EXTRA: Final[Mapping[str, Any]] = MappingProxyType({})


def _parse_input(obj: Any, what: str) -> CacheInput:
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not an object")
    return CacheInput(
        link=get_int(obj, "link", what, default=0),
        selector=get_str(obj, "selector", what) or "",
        extra={k: v for k, v in obj.items() if k not in _INPUT_KEYS},
    )


# Parsing builds tens of thousands of these; setting the slots directly skips the frozen
# dataclass __init__ (object.__setattr__ per field), about twice as fast. Parsing only.
_new = object.__new__
_set_link = CacheInput.__dict__["link"].__set__
_set_selector = CacheInput.__dict__["selector"].__set__
_set_input_extra = CacheInput.__dict__["extra"].__set__
_set_digest = CacheRecord.__dict__["digest"].__set__
_set_inputs = CacheRecord.__dict__["inputs"].__set__
_set_results = CacheRecord.__dict__["results"].__set__
_set_chains = CacheRecord.__dict__["chains"].__set__
_set_record_extra = CacheRecord.__dict__["extra"].__set__


def _fast_input(obj: Any) -> CacheInput | None:
    """The common shape `{"link": N[, "selector": S]}` without building error texts; None if unusual."""
    if type(obj) is not dict or not obj.keys() <= _INPUT_KEYS:
        return None
    link = obj.get("link", 0)
    selector = obj.get("selector", "")
    if type(link) is not int or type(selector) is not str:
        return None
    made: CacheInput = _new(CacheInput)
    _set_link(made, link)
    _set_selector(made, selector)
    _set_input_extra(made, _NO_EXTRA)
    return made


def _parse_results(obj: dict[str, Any], i: int) -> tuple[CacheResult, ...]:
    what = f"cache record {i}"
    return tuple([_parse_result(r, f"{what} result") for r in get_list(obj, "layers", what)])


def _parse_chains(obj: dict[str, Any], i: int) -> tuple[ChainedResult, ...]:
    what = f"cache record {i}"
    return tuple([_parse_chained(c, f"{what} chain") for c in get_list(obj, "chains", what)])


def parse_record(obj: Any, i: int) -> CacheRecord:
    """One record; a fast path for well-formed inputs keeps 10,000-record configs quick to read."""
    if type(obj) is not dict:
        raise FormatError(f"cache record {i} is not an object")
    inputs = obj.get("inputs")
    slots: list[tuple[CacheInput, ...]] = []
    if inputs is not None:
        if type(inputs) is not list:
            raise FormatError(f"cache record {i}: 'inputs' is not a list")
        for s, slot in enumerate(inputs):
            if type(slot) is not list:
                raise FormatError(f"cache record {i} input slot {s} is not a list")
            slots.append(tuple([_fast_input(x) or _parse_input(x, f"cache record {i} input {s}") for x in slot]))
    digest = obj.get("digest")
    results = obj.get("layers")
    chains = obj.get("chains")
    made: CacheRecord = _new(CacheRecord)
    _set_digest(made, digest if type(digest) is str else (get_str(obj, "digest", f"cache record {i}") or ""))
    _set_inputs(made, tuple(slots))
    _set_results(made, () if results is None else _parse_results(obj, i))
    _set_chains(made, () if chains is None else _parse_chains(obj, i))
    _set_record_extra(
        made, _NO_EXTRA if obj.keys() <= _RECORD_KEYS else {k: v for k, v in obj.items() if k not in _RECORD_KEYS}
    )
    return made


def parse_cache_config(raw: bytes) -> CacheConfig:
    with paused_gc():
        obj = load_object(raw, "cache config")
        layers = tuple([_parse_layer(x, i) for i, x in enumerate(get_list(obj, "layers", "cache config"))])
        records = tuple([parse_record(x, i) for i, x in enumerate(get_list(obj, "records", "cache config"))])
    extra = {k: v for k, v in obj.items() if k not in {"layers", "records"}}
    return CacheConfig(layers, records, extra, raw)


def _layer_json(layer: CacheLayer) -> dict[str, Any]:
    out: dict[str, Any] = {"blob": str(layer.blob)}
    if layer.parent != 0:
        out["parent"] = layer.parent
    if layer.annotations:
        out["annotations"] = dict(layer.annotations)
    out.update(layer.extra)
    return out


def record_json(record: CacheRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if record.results:
        out["layers"] = [{"layer": r.layer, "createdAt": r.created_at or _ZERO_TIME, **r.extra} for r in record.results]
    if record.chains:
        out["chains"] = [
            {"layers": list(c.layers), "createdAt": c.created_at or _ZERO_TIME, **c.extra} for c in record.chains
        ]
    if record.digest:
        out["digest"] = record.digest
    if record.inputs:
        out["inputs"] = [
            [({"selector": x.selector} if x.selector else {}) | {"link": x.link} | dict(x.extra) for x in slot]
            for slot in record.inputs
        ]
    out.update(record.extra)
    return out


_ZERO_TIME: Final = "0001-01-01T00:00:00Z"


def encode_cache_config(config: CacheConfig) -> bytes:
    doc: dict[str, Any] = {}
    if config.layers:
        doc["layers"] = [_layer_json(x) for x in config.layers]
    if config.records:
        doc["records"] = [record_json(r) for r in config.records]
    doc.update(config.extra)
    return go_dumps(doc)


def inline_cache_config(records: Sequence[Any], layer_blobs: Sequence[Digest]) -> CacheConfig:
    """A cache config equivalent to inline cache: image layer i sits on layer i-1."""
    layers = tuple(CacheLayer(blob=b, parent=i - 1) for i, b in enumerate(layer_blobs))
    return CacheConfig(layers, tuple(parse_record(r, i) for i, r in enumerate(records)))


_TIME_RE: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)


def parse_go_time(text: str | None) -> datetime | None:
    """Parse Go's RFC 3339 text (nanosecond fractions, Z or offset); None if absent or zero."""
    if not text:
        return None
    if len(text) >= 20 and text[10] == "T" and text[4] == "-":
        try:  # the usual shape; fromisoformat truncates nanoseconds and is much faster than the regex
            fast = datetime.fromisoformat(text)
        except ValueError:
            fast = None
        if fast is not None and fast.tzinfo is not None:
            return None if fast.year <= 1 else fast
    m = _TIME_RE.fullmatch(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if year <= 1:
        return None
    micro = int((m.group(7) or "0").ljust(9, "0")[:6])
    tz = UTC
    if m.group(9):
        sign = 1 if m.group(9) == "+" else -1
        tz = timezone(sign * timedelta(hours=int(m.group(10)), minutes=int(m.group(11))))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None
