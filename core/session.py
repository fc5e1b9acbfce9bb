"""Entry points the CLI and TUI use: open a store for a reference, inspect, list.

This is the seam between what a user typed and the stores: it picks the backend, owns
its lifetime, and returns plain model objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from cachescope.core.analysis import CacheReport, DeepLayerCheck, analyze
from cachescope.core.errors import CachescopeError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.digest import Digest
from cachescope.core.model.loaded import Form, LoadedCache
from cachescope.core.model.oci import Document, Index
from cachescope.core.model.reference import LayoutRef, Ref, RegistryHost, parse_reference
from cachescope.core.reader import load_cache
from cachescope.core.stores.base import Store
from cachescope.core.stores.local import LocalStore

_TAG_CONCURRENCY: Final = 8
CATALOG_PAGE_SIZE: Final = 100


@asynccontextmanager
async def open_store(ref: Ref, *, create: bool = False, transport: Any = None) -> AsyncIterator[Store]:
    """The store a reference lives in (a repository or a layout dir), closed on exit.

    `transport` is an httpx transport for registry stores (tests inject faults with it).
    """
    store: Store
    if isinstance(ref, LayoutRef):
        store = await LocalStore.open(ref.path, create=create)
    else:
        from cachescope.core.stores.registry import open_registry  # noqa: PLC0415 - httpx only when needed

        store = await open_registry(ref, transport=transport)
    try:
        yield store
    finally:
        await store.close()


async def read_cache(ref: Ref, *, check_blobs: bool = True, transport: Any = None) -> LoadedCache:
    async with open_store(ref, transport=transport) as store:
        return await load_cache(store, ref.reference, check_blobs=check_blobs)


async def inspect(
    ref: Ref | str,
    *,
    deep: bool = False,
    plain_http: bool = False,
    transport: Any = None,
    on_layer: Any = None,
) -> CacheReport:
    """Read, verify and analyse a cache; with `deep`, decompress and hash every layer."""
    if isinstance(ref, str):
        ref, _ = parse_reference(ref, plain_http=plain_http)
    async with open_store(ref, transport=transport) as store:
        cache = await load_cache(store, ref.reference)
        checks: Mapping[Digest, DeepLayerCheck] | None = None
        if deep:
            from cachescope.core.deepcheck import deep_check  # noqa: PLC0415 - codecs load only for --deep

            checks = await deep_check(store, cache, on_layer=on_layer)
    return analyze(cache, checks)


@dataclass(frozen=True, slots=True)
class TagSummary:
    """One tag in a listing; fields are None when they could not be had cheaply."""

    name: str
    digest: Digest | None = None
    media_type: str | None = None
    form: Form | None = None
    size: int | None = None
    """Sum of the blob sizes the wrapper lists (the cache's stored size)."""
    error: str | None = None


def summarize_document(doc: Document) -> tuple[Form | None, int]:
    """Form and stored size from a wrapper alone, without reading the cache config."""
    if isinstance(doc, Index):
        children = doc.manifests
        if any(d.media_type == mt.BUILDKIT_CACHE_CONFIG for d in children):
            form: Form = "docker-manifest-list" if doc.media_type == mt.DOCKER_MANIFEST_LIST else "index"
            return form, sum({d.digest: d.size for d in children}.values())
        return None, 0
    if doc.config.media_type == mt.BUILDKIT_CACHE_CONFIG:
        return "image-manifest", doc.config.size + sum({d.digest: d.size for d in doc.layers}.values())
    if doc.config.media_type in {mt.OCI_IMAGE_CONFIG, mt.DOCKER_IMAGE_CONFIG}:
        return None, doc.config.size + sum(d.size for d in doc.layers)
    return None, 0


async def summarize_tag(store: Store, tag: str) -> TagSummary:
    try:
        desc, doc = await store.fetch_manifest(tag)
    except CachescopeError as exc:
        return TagSummary(tag, error=str(exc))
    form, size = summarize_document(doc)
    return TagSummary(tag, desc.digest, desc.media_type, form, size or None)


async def list_tags(ref: Ref, *, details: bool = True, transport: Any = None) -> list[TagSummary]:
    """Tags of a repository or layout, each with digest, form and size when `details`."""
    async with open_store(ref, transport=transport) as store:
        tags = await store.list_tags()
        if not details:
            return [TagSummary(t) for t in tags]
        semaphore = asyncio.Semaphore(_TAG_CONCURRENCY)

        async def one(tag: str) -> TagSummary:
            async with semaphore:
                return await summarize_tag(store, tag)

        return list(await asyncio.gather(*(one(t) for t in tags)))


async def list_repositories(host: RegistryHost, *, transport: Any = None) -> list[str]:
    from cachescope.core.stores.registry import RegistryClient  # noqa: PLC0415 - httpx only when needed

    async with RegistryClient(host, transport=transport) as client:
        return await client.list_repositories()


async def iter_repository_pages(
    host: RegistryHost, *, page_size: int = CATALOG_PAGE_SIZE, transport: Any = None
) -> AsyncGenerator[list[str], None]:
    """The catalog `page_size` names at a time, each page as soon as the registry sends it.

    The registry is asked for `page_size` per page (`n`); its `Link` pages are followed.
    """
    from cachescope.core.stores.registry import RegistryClient  # noqa: PLC0415 - httpx only when needed

    async with RegistryClient(host, transport=transport) as client:
        page: list[str] = []
        async for name in client.iter_repositories(page_size=page_size):
            page.append(name)
            if len(page) >= page_size:
                yield page
                page = []
        if page:
            yield page
