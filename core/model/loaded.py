"""A cache as read from a store: the wrapper, its cache config and what the store holds.

All three wrapper forms and inline cache become the same shape here, so analysis,
diagnosis and operations never branch on where a cache came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cachescope.core.model import mediatypes as mt
from cachescope.core.model.cache import CacheConfig
from cachescope.core.model.digest import Digest
from cachescope.core.model.oci import Descriptor, Document, ImageConfig, Index

Form = Literal["index", "image-manifest", "docker-manifest-list", "inline"]
StoreKind = Literal["registry", "local"]


@dataclass(frozen=True, slots=True)
class BlobState:
    """What the store says about one referenced blob: its stored size, or None when absent."""

    stored_size: int | None


@dataclass(frozen=True, slots=True)
class LoadedCache:
    source: str
    """The reference as the user would type it again."""
    store_kind: StoreKind
    reference: str
    """The tag or digest that was resolved."""
    manifest: Descriptor
    """The descriptor of the wrapper (or, for inline cache, of the image manifest)."""
    document: Document
    form: Form
    config_descriptor: Descriptor | None
    """The cache config's descriptor; None for inline cache."""
    config: CacheConfig
    layer_descriptors: Mapping[Digest, Descriptor]
    """Wrapper layer descriptors by digest (for inline: synthesised from the image config)."""
    image_config_descriptor: Descriptor | None = None
    image_config: ImageConfig | None = None
    platform: str | None = None
    blobs: Mapping[Digest, BlobState] | None = None
    """Store state of every referenced blob, when it was checked."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __repr__(self) -> str:  # short: the full repr of a large cache is slow and unreadable
        return f"LoadedCache({self.source!r}, form={self.form!r}, manifest={self.manifest.digest})"

    @property
    def mediatypes(self) -> mt.Family:
        """The wrapper's media-type family: Docker for manifest lists and schema-2 manifests."""
        if self.document.media_type in {mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST}:
            return "docker"
        return "oci"

    @property
    def wrapper_children(self) -> tuple[Descriptor, ...]:
        """Descriptors the wrapper lists besides the cache config (what a registry must accept)."""
        if isinstance(self.document, Index):
            return tuple(d for d in self.document.manifests if d.media_type != mt.BUILDKIT_CACHE_CONFIG)
        return self.document.layers
