"""Read a BuildKit cache from any store into a LoadedCache, whatever its wrapper form.

Detection follows BuildKit's importer (cache/remotecache/import.go): the form comes from the
document's shape and the cache config is found by media type, not position. A wrapper
without a cache config is read as an image that may carry inline cache; anything else is
explained as not being a cache rather than crashing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Final

from cachescope.core.errors import FormatError, NotACache, NotFound
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.cache import inline_cache_config, parse_cache_config
from cachescope.core.model.digest import Digest
from cachescope.core.model.loaded import BlobState, Form, LoadedCache
from cachescope.core.model.oci import (
    Descriptor,
    Document,
    ImageConfig,
    Index,
    Manifest,
    decode_inline_cache,
    parse_image_config,
)
from cachescope.core.stores.base import (
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    Store,
    SupportsBulkBlobSizes,
    SupportsRequestConcurrency,
    check_declared_size,
)

_HEAD_CONCURRENCY: Final = 16
"""Blob HEADs in flight for a store that gives no hint of its own."""
_IMAGE_CONFIG_TYPES: Final = frozenset({mt.OCI_IMAGE_CONFIG, mt.DOCKER_IMAGE_CONFIG})


async def load_cache(store: Store, reference: str, *, check_blobs: bool = True) -> LoadedCache:
    """Resolve `reference` (tag or digest) in `store` and read the cache it names.

    With `check_blobs`, every referenced layer blob is looked up so missing blobs show.
    """
    desc, doc = await store.fetch_manifest(reference)
    source = f"{store.display_name}{'@' if reference.startswith('sha') else ':'}{reference}"
    cache = await _load_document(store, source, reference, desc, doc)
    if check_blobs:
        cache = await _with_blob_states(store, cache)
    return cache


async def _load_document(store: Store, source: str, reference: str, desc: Descriptor, doc: Document) -> LoadedCache:
    if isinstance(doc, Index):
        config_descs = [d for d in doc.manifests if d.media_type == mt.BUILDKIT_CACHE_CONFIG]
        if config_descs:
            form: Form = "docker-manifest-list" if doc.media_type == mt.DOCKER_MANIFEST_LIST else "index"
            layers = [d for d in doc.manifests if d.media_type != mt.BUILDKIT_CACHE_CONFIG]
            return await _load_wrapped(
                store,
                source=source,
                reference=reference,
                desc=desc,
                doc=doc,
                form=form,
                config_desc=config_descs[0],
                layers=layers,
            )
        return await _load_image_index(store, source, reference, desc, doc)
    if doc.config.media_type == mt.BUILDKIT_CACHE_CONFIG:
        return await _load_wrapped(
            store,
            source=source,
            reference=reference,
            desc=desc,
            doc=doc,
            form="image-manifest",
            config_desc=doc.config,
            layers=doc.layers,
        )
    return await _load_inline(store, source, reference, desc, doc, platform=None)


async def _load_wrapped(
    store: Store,
    *,
    source: str,
    reference: str,
    desc: Descriptor,
    doc: Document,
    form: Form,
    config_desc: Descriptor,
    layers: Sequence[Descriptor],
) -> LoadedCache:
    check_declared_size(config_desc, MAX_CONFIG_BYTES, "cache config")
    raw = await store.read_blob(config_desc, limit=MAX_CONFIG_BYTES)
    config = parse_cache_config(raw)
    by_digest: dict[Digest, Descriptor] = {}
    for layer in layers:
        by_digest.setdefault(layer.digest, layer)
    return LoadedCache(
        source=source,
        store_kind=store.kind,
        reference=reference,
        manifest=desc,
        document=doc,
        form=form,
        config_descriptor=config_desc,
        config=config,
        layer_descriptors=by_digest,
    )


async def _load_image_index(store: Store, source: str, reference: str, desc: Descriptor, doc: Index) -> LoadedCache:
    """An image index: inline cache lives in the config of one of its images, if anywhere."""
    images = [d for d in doc.manifests if d.media_type in mt.IMAGE_MANIFEST_TYPES]
    if not images:
        kinds = sorted({d.media_type or "no media type" for d in doc.manifests}) or ["nothing"]
        raise NotACache(f"{source} is an image index without a BuildKit cache config (it lists {', '.join(kinds)})")
    for child in images:
        check_declared_size(child, MAX_MANIFEST_BYTES, "manifest")
        child_desc, child_doc = await store.fetch_manifest(str(child.digest))
        if not isinstance(child_doc, Manifest) or child_doc.config.media_type not in _IMAGE_CONFIG_TYPES:
            continue
        platform = _platform_name(child)
        try:
            return await _load_inline(
                store, source, reference, desc, child_doc, platform=platform, image_desc=child_desc, outer=doc
            )
        except NotACache:
            continue
    raise NotACache(
        f"{source} is a multi-platform image ({len(images)} images) with no BuildKit cache: "
        "no cache config and no inline cache (moby.buildkit.cache.v0) in any image config"
    )


def _platform_name(desc: Descriptor) -> str | None:
    platform = desc.platform
    if not platform:
        return None
    parts = [str(platform.get("os", "")), str(platform.get("architecture", ""))]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(p for p in parts if p) or None


async def _load_inline(
    store: Store,
    source: str,
    reference: str,
    desc: Descriptor,
    manifest: Manifest,
    *,
    platform: str | None,
    image_desc: Descriptor | None = None,
    outer: Index | None = None,
) -> LoadedCache:
    config_type = manifest.config.media_type
    if config_type not in _IMAGE_CONFIG_TYPES:
        raise NotACache(
            f"{source} is an OCI artifact (config media type {config_type or 'missing'}), not a BuildKit cache"
        )
    check_declared_size(manifest.config, MAX_CONFIG_BYTES, "image config")
    image_config = parse_image_config(await store.read_blob(manifest.config, limit=MAX_CONFIG_BYTES))
    if image_config.inline_cache is None:
        raise NotACache(
            f"{source} is a container image without inline cache; export a cache with "
            "--cache-to type=registry (or build with BUILDKIT_INLINE_CACHE=1)"
        )
    if len(image_config.diff_ids) != len(manifest.layers):
        # BuildKit ignores such images (section 7.3); say so instead of guessing.
        raise FormatError(
            f"{source}: image has {len(manifest.layers)} layers but {len(image_config.diff_ids)} diff_ids; "
            "BuildKit ignores its inline cache"
        )
    records = decode_inline_cache(image_config.inline_cache)
    config = inline_cache_config(records, [layer.digest for layer in manifest.layers])
    layer_descs = _inline_layer_descriptors(manifest, image_config)
    return LoadedCache(
        source=source,
        store_kind=store.kind,
        reference=reference,
        manifest=desc,
        document=outer if outer is not None else manifest,
        form="inline",
        config_descriptor=None,
        config=config,
        layer_descriptors=layer_descs,
        image_config_descriptor=manifest.config,
        image_config=image_config,
        platform=platform,
        notes=(f"inline cache of image {image_desc.digest} ({platform})",) if image_desc and platform else (),
    )


def _inline_layer_descriptors(manifest: Manifest, image_config: ImageConfig) -> dict[Digest, Descriptor]:
    """Inline layers carry no annotations; diff IDs and times come from the image config."""
    created = [h.get("created") for h in image_config.history if not h.get("empty_layer")]
    out: dict[Digest, Descriptor] = {}
    for i, layer in enumerate(manifest.layers):
        annotations = dict(layer.annotations)
        annotations.setdefault(mt.ANNOTATION_UNCOMPRESSED, str(image_config.diff_ids[i]))
        when = created[i] if i < len(created) else None
        if isinstance(when, str):
            annotations.setdefault(mt.ANNOTATION_CREATED, when)
        out.setdefault(layer.digest, Descriptor(layer.media_type, layer.digest, layer.size, annotations, layer.extra))
    return out


def referenced_blobs(cache: LoadedCache) -> list[Digest]:
    """Distinct layer blobs the cache config references, in config order."""
    seen: dict[Digest, None] = {}
    for layer in cache.config.layers:
        seen.setdefault(layer.blob, None)
    return list(seen)


async def _with_blob_states(store: Store, cache: LoadedCache) -> LoadedCache:
    digests = referenced_blobs(cache)
    if isinstance(store, SupportsBulkBlobSizes):
        sizes = await store.blob_sizes(digests)
        return replace(cache, blobs={d: BlobState(sizes.get(d)) for d in digests})
    limit = store.request_concurrency if isinstance(store, SupportsRequestConcurrency) else _HEAD_CONCURRENCY
    semaphore = asyncio.Semaphore(limit)

    async def state(digest: Digest) -> tuple[Digest, BlobState]:
        async with semaphore:
            try:
                return digest, BlobState(await store.blob_size(digest))
            except NotFound:
                return digest, BlobState(None)

    results = await asyncio.gather(*(state(d) for d in digests))
    blobs: Mapping[Digest, BlobState] = dict(results)
    return replace(cache, blobs=blobs)
