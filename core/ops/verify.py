"""`verify`: prove a cache is intact, listing every failure rather than stopping at the first.

Every blob the wrapper lists is streamed and hashed (digest and size), its first and last
bytes are matched against its media type's compression, and the analysis's error findings
(graph, missing descriptors, diff IDs, the 1 MiB import limit) are included. `deep` also
decompresses every layer and compares the result with its `containerd.io/uncompressed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cachescope.core.analysis import DeepLayerCheck, analyze
from cachescope.core.codecs import TAIL_BYTES, sniff_compression
from cachescope.core.deepcheck import check_layer
from cachescope.core.errors import CachescopeError, CodecError, FormatError, IntegrityError, NotFound
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.digest import Digest
from cachescope.core.model.loaded import LoadedCache
from cachescope.core.model.oci import Descriptor, Index
from cachescope.core.ops.progress import ProgressCallback, Tracker
from cachescope.core.ops.writer import SizedLimiter, run_all
from cachescope.core.reader import load_cache
from cachescope.core.stores.base import Store

VERIFY_SCHEMA: Final = "cachescope.verify/v1"
_CONCURRENCY: Final = 2
_SAME_AS_BLOB_CHECK: Final = frozenset({"CS-DEEP-UNREADABLE", "CS-BLOB-MISSING", "CS-SIZE-MISMATCH"})
"""Analysis findings that restate a failure the blob read already reported for the same blob."""


@dataclass(frozen=True, slots=True)
class VerifyFailure:
    code: str
    subject: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "subject": self.subject, "message": self.message}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    source: str
    deep: bool
    manifest_digest: Digest | None = None
    form: str | None = None
    blobs_checked: int = 0
    bytes_checked: int = 0
    failures: tuple[VerifyFailure, ...] = ()
    layers: Mapping[Digest, DeepLayerCheck] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": VERIFY_SCHEMA,
            "ref": self.source,
            "ok": self.ok,
            "deep": self.deep,
            "manifest_digest": str(self.manifest_digest) if self.manifest_digest else None,
            "form": self.form,
            "blobs_checked": self.blobs_checked,
            "bytes_checked": self.bytes_checked,
            "failures": [f.to_json() for f in self.failures],
        }


async def verify_cache(
    store: Store, reference: str, *, deep: bool = False, on_progress: ProgressCallback | None = None
) -> VerifyReport:
    """Check the cache at `reference`; failures are collected, store errors (network, auth) raise."""
    source = f"{store.display_name}:{reference}"
    try:
        cache = await load_cache(store, reference, check_blobs=False)  # every blob is read below anyway
    except (IntegrityError, CodecError, FormatError) as exc:
        return VerifyReport(source, deep, failures=(VerifyFailure("CS-UNREADABLE", reference, str(exc)),))
    blobs = _blobs_to_check(cache)
    tracker = Tracker("verify", on_progress)
    tracker.begin("verify", "reading every blob", bytes_total=sum(d.size for d in blobs), items_total=len(blobs))
    failures: list[VerifyFailure] = []
    limiter = SizedLimiter(_CONCURRENCY)
    checks: dict[Digest, DeepLayerCheck] = {}

    async def one(desc: Descriptor) -> None:
        async with limiter.slot(desc.size):
            if deep and mt.is_layer(desc.media_type):
                check = await check_layer(store, desc, lambda d, n: tracker.add_bytes(n, str(d)))
                checks[desc.digest] = check
                if check.error:
                    failures.append(_blob_failure(desc, check.error))
            else:
                failures.extend(await _check_blob(store, desc, tracker))
            tracker.step("read", str(desc.digest), "checked", desc.size)

    await run_all((one(d) for d in blobs), limiter=limiter)
    report = analyze(cache, checks if deep else None)
    failed_blobs = {f.subject for f in failures}
    for warning in report.warnings:
        if warning.severity != "error":
            continue
        if warning.code in _SAME_AS_BLOB_CHECK and warning.subject in failed_blobs:
            continue  # already reported by reading the blob, with the store's own message
        failures.append(VerifyFailure(warning.code, warning.subject or cache.source, warning.message))
    tracker.begin("done", "finished")
    return VerifyReport(
        cache.source,
        deep,
        cache.manifest.digest,
        cache.form,
        len(blobs),
        tracker.bytes_done,
        tuple(sorted(failures, key=lambda f: (f.subject, f.code))),
        checks,
    )


def _blobs_to_check(cache: LoadedCache) -> list[Descriptor]:
    """Every distinct blob the wrapper lists (layers and config); for inline, the image's layers and config."""
    listed: list[Descriptor]
    if cache.form == "inline":
        listed = list(cache.layer_descriptors.values())
        if cache.image_config_descriptor is not None:
            listed.append(cache.image_config_descriptor)
    elif isinstance(cache.document, Index):
        listed = list(cache.document.manifests)
    else:
        listed = [*cache.document.layers, cache.document.config]
    return list({d.digest: d for d in listed}.values())


def _blob_failure(desc: Descriptor, message: str) -> VerifyFailure:
    code = "CS-BLOB-MISSING" if "not found" in message else "CS-BLOB-CORRUPT"
    return VerifyFailure(code, str(desc.digest), message)


async def _check_blob(store: Store, desc: Descriptor, tracker: Tracker) -> list[VerifyFailure]:
    """Stream one blob through the verifying reader and match its magic bytes with its media type."""
    head = b""
    tail = b""
    try:
        async with store.open_blob(desc) as chunks:
            async for chunk in chunks:
                if not head:
                    head = chunk[:8]
                tail = (tail + chunk)[-TAIL_BYTES:]
                tracker.add_bytes(len(chunk), str(desc.digest))
    except CachescopeError as exc:
        if isinstance(exc, IntegrityError | NotFound):
            return [_blob_failure(desc, str(exc))]
        raise
    declared = mt.layer_compression(desc.media_type)
    if declared is None:
        return []
    detected = sniff_compression(head, tail)
    if detected == "estargz":
        detected = "gzip"
    if detected != declared and desc.size > 0:
        return [
            VerifyFailure(
                "CS-DEEP-COMPRESSION",
                str(desc.digest),
                f"layer {desc.digest.short} is {detected} but its media type {desc.media_type} says {declared}",
            )
        ]
    return []
