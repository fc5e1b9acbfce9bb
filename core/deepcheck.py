"""`--deep`: decompress every layer blob, sniff its real compression and hash its tar stream.

BuildKit never checks a diff ID against content (buildkit-cache-format.md 5.3); a wrong one
silently breaks images later built from the cache, so this is the only place it is caught.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Final

from cachescope.core.analysis import DeepLayerCheck
from cachescope.core.codecs import TAIL_BYTES, decoder_for, sniff_compression
from cachescope.core.errors import CachescopeError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.digest import Digest, Hasher
from cachescope.core.model.loaded import LoadedCache
from cachescope.core.model.oci import Descriptor
from cachescope.core.stores.base import Store

_CONCURRENCY: Final = 2

LayerCallback = Callable[[Digest, int], None]


async def check_layer(store: Store, desc: Descriptor, on_bytes: LayerCallback | None = None) -> DeepLayerCheck:
    """Stream one blob: verify its digest, detect compression, hash the decompressed bytes."""
    declared = mt.layer_compression(desc.media_type, dict(desc.annotations))
    hasher = Hasher("sha256")
    head = b""
    tail = b""
    try:
        async with store.open_blob(desc) as chunks:
            decoder = None
            async for chunk in chunks:
                if decoder is None:
                    head = chunk[:8]
                    sniffed = sniff_compression(head)
                    decoder = decoder_for(declared if declared and declared != "uncompressed" else sniffed)
                out = await asyncio.to_thread(decoder.feed, chunk)
                hasher.update(out)
                tail = (tail + chunk)[-TAIL_BYTES:]
                if on_bytes:
                    on_bytes(desc.digest, len(chunk))
            if decoder is not None:
                hasher.update(decoder.finish())
    except CachescopeError as exc:
        return DeepLayerCheck(desc.digest, None, None, None, error=str(exc))
    return DeepLayerCheck(desc.digest, sniff_compression(head, tail), hasher.digest(), hasher.size)


async def deep_check(
    store: Store, cache: LoadedCache, *, on_layer: LayerCallback | None = None
) -> Mapping[Digest, DeepLayerCheck]:
    """Check every distinct layer blob the cache config references and the store holds."""
    semaphore = asyncio.Semaphore(_CONCURRENCY)
    targets = [
        cache.layer_descriptors[layer.blob] for layer in cache.config.layers if layer.blob in cache.layer_descriptors
    ]
    unique = list({d.digest: d for d in targets}.values())

    async def one(desc: Descriptor) -> DeepLayerCheck:
        async with semaphore:
            return await check_layer(store, desc, on_layer)

    results = await asyncio.gather(*(one(d) for d in unique))
    return {r.digest: r for r in results}
