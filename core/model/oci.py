"""Frozen models of OCI/Docker descriptors, indexes, manifests and image configs.

Documents keep the exact bytes they were parsed from (`raw`) so unchanged documents are
written back byte for byte, and keep unknown keys (`extra`) so changed ones lose nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from cachescope.core.errors import FormatError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.digest import Digest, sha256_of
from cachescope.core.model.jsonenc import (
    get_int,
    get_list,
    get_str,
    get_str_map,
    go_dumps,
    load_object,
)

# Go struct field order of ocispec.Descriptor; encoding follows it so BuildKit's bytes round-trip.
_DESCRIPTOR_ORDER: Final = ("mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType")


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A pointer to content: media type, digest, size, annotations, and any other keys."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def platform(self) -> Mapping[str, Any] | None:
        value = self.extra.get("platform")
        return value if isinstance(value, dict) else None

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        return replace(self, annotations=dict(annotations))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in _DESCRIPTOR_ORDER:
            if key == "mediaType":
                out[key] = self.media_type
            elif key == "digest":
                out[key] = str(self.digest)
            elif key == "size":
                out[key] = self.size
            elif key == "annotations":
                if self.annotations:
                    out[key] = dict(self.annotations)
            elif key in self.extra:
                out[key] = self.extra[key]
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


def parse_descriptor(obj: Any, what: str = "descriptor") -> Descriptor:
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not a JSON object")
    media_type = get_str(obj, "mediaType", what) or ""
    digest_text = get_str(obj, "digest", what, required=True) or ""
    size = get_int(obj, "size", what)
    if size < 0:
        raise FormatError(f"{what}: negative size {size}")
    extra = {k: v for k, v in obj.items() if k not in {"mediaType", "digest", "size", "annotations"}}
    return Descriptor(
        media_type=media_type,
        digest=Digest.parse(digest_text),
        size=size,
        annotations=get_str_map(obj, "annotations", what),
        extra=extra,
    )


@dataclass(frozen=True, slots=True)
class Index:
    """An OCI image index or Docker manifest list (BuildKit forms A and C)."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    raw: bytes = b""

    @property
    def digest(self) -> Digest:
        return sha256_of(self.encode())

    def encode(self) -> bytes:
        """The raw bytes if unchanged, else deterministic Go-style JSON."""
        if self.raw:
            return self.raw
        return _encode_document(self, {"manifests": [d.to_json() for d in self.manifests]})

    def changed(self, **changes: Any) -> Index:
        """A copy with changes applied and `raw` dropped so it re-encodes."""
        return replace(self, raw=b"", **changes)


@dataclass(frozen=True, slots=True)
class Manifest:
    """An OCI image manifest or Docker schema-2 manifest (BuildKit form B, or an image)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    raw: bytes = b""

    @property
    def digest(self) -> Digest:
        return sha256_of(self.encode())

    def encode(self) -> bytes:
        if self.raw:
            return self.raw
        body: dict[str, Any] = {"config": self.config.to_json(), "layers": [d.to_json() for d in self.layers]}
        if "subject" in self.extra:
            body["subject"] = self.extra["subject"]
        return _encode_document(self, body)

    def changed(self, **changes: Any) -> Manifest:
        return replace(self, raw=b"", **changes)


Document = Index | Manifest


def _encode_document(document: Document, body: dict[str, Any]) -> bytes:
    """Go-style JSON in the field order BuildKit writes: schemaVersion, mediaType, artifactType,
    the body, annotations, then any keys we did not model (kept, never dropped)."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": document.media_type}
    if "artifactType" in document.extra:
        doc["artifactType"] = document.extra["artifactType"]
    doc.update(body)
    if document.annotations:
        doc["annotations"] = dict(document.annotations)
    for key, value in document.extra.items():
        doc.setdefault(key, value)
    return go_dumps(doc)


def parse_document(raw: bytes, declared_media_type: str | None = None, *, what: str = "manifest") -> Document:
    """Parse a manifest or index, checking its shape against its media type like BuildKit does."""
    obj = load_object(raw, what)
    has_manifests = "manifests" in obj
    has_image_keys = "config" in obj or "layers" in obj
    if has_manifests and has_image_keys:
        raise FormatError(f"{what} is ambiguous: it has both 'manifests' and 'config'/'layers'")
    media_type = obj.get("mediaType")
    if media_type is not None and not isinstance(media_type, str):
        raise FormatError(f"{what}: 'mediaType' is not a string")
    if not media_type:
        media_type = declared_media_type or ""
    schema = obj.get("schemaVersion")
    if schema is not None and schema != 2:
        raise FormatError(f"{what} has schemaVersion {schema!r}; only schema 2 is supported")
    annotations = get_str_map(obj, "annotations", what)
    if has_manifests or media_type in mt.INDEX_TYPES:
        if media_type and media_type not in mt.INDEX_TYPES:
            raise FormatError(f"{what}: mediaType {media_type} does not match its index shape")
        children = tuple(
            parse_descriptor(d, f"{what} entry {i}") for i, d in enumerate(get_list(obj, "manifests", what))
        )
        extra = {k: v for k, v in obj.items() if k not in {"schemaVersion", "mediaType", "manifests", "annotations"}}
        return Index(media_type or mt.OCI_INDEX, children, annotations, extra, raw)
    if has_image_keys or media_type in mt.IMAGE_MANIFEST_TYPES:
        if media_type and media_type not in mt.IMAGE_MANIFEST_TYPES:
            raise FormatError(f"{what}: mediaType {media_type} does not match its manifest shape")
        if "config" not in obj:
            raise FormatError(f"{what} has no config descriptor")
        config = parse_descriptor(obj["config"], f"{what} config")
        layers = tuple(parse_descriptor(d, f"{what} layer {i}") for i, d in enumerate(get_list(obj, "layers", what)))
        extra = {
            k: v for k, v in obj.items() if k not in {"schemaVersion", "mediaType", "config", "layers", "annotations"}
        }
        return Manifest(media_type or mt.OCI_MANIFEST, config, layers, annotations, extra, raw)
    raise FormatError(f"{what} is neither an image index nor an image manifest (mediaType {media_type or 'missing'})")


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config cachescope needs: diff IDs, history and inline cache."""

    diff_ids: tuple[Digest, ...]
    history: tuple[Mapping[str, Any], ...]
    inline_cache: str | None
    raw: bytes
    architecture: str | None = None
    os: str | None = None


def parse_image_config(raw: bytes) -> ImageConfig:
    obj = load_object(raw, "image config")
    rootfs = obj.get("rootfs") or {}
    if not isinstance(rootfs, dict):
        raise FormatError("image config: 'rootfs' is not an object")
    diff_ids = tuple(Digest.parse(d) for d in get_list(rootfs, "diff_ids", "image config rootfs"))
    history = tuple(h for h in get_list(obj, "history", "image config") if isinstance(h, dict))
    inline = obj.get(mt.INLINE_CACHE_KEY)
    if inline is not None and not isinstance(inline, str):
        raise FormatError(f"image config: {mt.INLINE_CACHE_KEY!r} is not a string")
    return ImageConfig(
        diff_ids=diff_ids,
        history=history,
        inline_cache=inline,
        raw=raw,
        architecture=get_str(obj, "architecture", "image config"),
        os=get_str(obj, "os", "image config"),
    )


def decode_inline_cache(value: str) -> list[Any]:
    """The inline cache value: base64 of a JSON list of records."""
    try:
        decoded = base64.b64decode(value, validate=True)
        records = json.loads(decoded)
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"inline cache {mt.INLINE_CACHE_KEY} is not base64 JSON: {exc}") from exc
    if not isinstance(records, list):
        raise FormatError(f"inline cache {mt.INLINE_CACHE_KEY} is not a list of records")
    return records
