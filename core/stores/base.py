"""The one storage interface both backends implement, and the verification every read goes through.

A Store is bound to one repository (registry) or one layout directory (local). Reads are
digest-verified while streaming; writes follow BuildKit's order (blobs, config, manifest,
tag last) so that an interrupted run never leaves a tag pointing at missing content.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Final, Literal, Protocol, runtime_checkable

from cachescope.core.errors import DigestMismatch, SizeMismatch, TooLarge
from cachescope.core.model.digest import Digest, Hasher
from cachescope.core.model.oci import Descriptor, Document
from cachescope.core.pipes import ThreadSink

MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
"""Manifests above this are refused, as distribution does on PUT (maxManifestBodySize)."""

MAX_CONFIG_BYTES: Final = 64 * 1024 * 1024
"""JSON blobs (cache and image configs) read whole are capped here; BuildKit's own limit is 1 MiB."""

CHUNK_BYTES: Final = 1024 * 1024
THREADED_IO_BYTES: Final = 4 * 1024 * 1024
"""Blobs this big are hashed (and, locally, read) on threads of their own; smaller ones are not worth a thread."""

StoreKind = Literal["registry", "local"]


@dataclass(frozen=True, slots=True)
class TagInfo:
    """A tag and, where it is cheap to know, what it points at."""

    name: str
    descriptor: Descriptor | None = None


class Store(Protocol):
    """Read and write access to one repository or one layout directory."""

    kind: StoreKind

    @property
    def display_name(self) -> str:
        """How to show this store to a user (`host/repo` or `oci:path`)."""
        ...

    async def fetch_manifest(self, reference: str) -> tuple[Descriptor, Document]:
        """Fetch a manifest by tag or digest; verified, at most MAX_MANIFEST_BYTES.

        By digest, the bytes must hash to it; by tag, the digest is computed from the bytes.
        """
        ...

    async def read_blob(self, desc: Descriptor, *, limit: int = MAX_CONFIG_BYTES) -> bytes:
        """A whole small blob, verified against desc; TooLarge if desc.size > limit."""
        ...

    def open_blob(self, desc: Descriptor, *, offset: int = 0) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Stream a blob in chunks, verified at EOF (DigestMismatch/SizeMismatch before the last chunk returns)."""
        ...

    async def blob_size(self, digest: Digest) -> int | None:
        """The stored size of a blob, or None when the store does not have it."""
        ...

    async def list_tags(self) -> list[str]: ...

    async def write_blob(
        self, chunks: AsyncIterable[bytes], *, expected: Descriptor | None = None, media_type: str = ""
    ) -> Descriptor:
        """Store a blob from a stream; verified against `expected` when given. Existing blobs are reused."""
        ...

    async def put_manifest(self, raw: bytes, media_type: str, *, tag: str | None = None) -> Descriptor:
        """Store a manifest's exact bytes; with `tag`, point the tag at it (the last step of every write)."""
        ...

    async def delete_tag(self, tag: str) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class SupportsBlobListing(Protocol):
    """Stores that can enumerate their blobs (local layouts), for prune."""

    async def list_blobs(self) -> dict[Digest, int]: ...

    async def delete_blob(self, digest: Digest) -> None: ...


@runtime_checkable
class SupportsBulkBlobSizes(Protocol):
    """Stores that can size many blobs in one go (a directory listing instead of a stat each)."""

    async def blob_sizes(self, digests: list[Digest]) -> dict[Digest, int | None]: ...


@runtime_checkable
class SupportsMount(Protocol):
    """Registries that can mount a blob from another repository without copying it."""

    async def mount_blob(self, desc: Descriptor, from_repository: str) -> bool: ...


@runtime_checkable
class SupportsRequestConcurrency(Protocol):
    """Stores that know how many small requests (blob HEADs) are worth having in flight."""

    @property
    def request_concurrency(self) -> int: ...


@runtime_checkable
class SupportsManifestDelete(Protocol):
    async def delete_manifest(self, digest: Digest) -> None: ...


class StreamCheck:
    """Size and digest of a blob as it streams by; raises as soon as the bytes overrun."""

    def __init__(self, desc: Descriptor, hasher: Hasher | None = None) -> None:
        self._desc = desc
        self._hasher = hasher or desc.digest.hasher()

    def update(self, chunk: bytes) -> None:
        self._hasher.update(chunk)
        if self._hasher.size > self._desc.size:
            raise SizeMismatch(str(self._desc.digest), self._desc.size, self._hasher.size)

    def finish(self) -> None:
        desc, hasher = self._desc, self._hasher
        if hasher.size != desc.size:
            raise SizeMismatch(str(desc.digest), desc.size, hasher.size)
        actual = hasher.digest()
        if actual != desc.digest:
            raise DigestMismatch(str(desc.digest), str(actual), subject="blob")


async def verified_stream(
    chunks: AsyncIterator[bytes],
    desc: Descriptor,
    *,
    offset_hasher: Hasher | None = None,
    threaded: bool = False,
) -> AsyncIterator[bytes]:
    """Pass chunks through, hashing them; fail on overrun and on mismatch at EOF.

    The last chunk is held back until the digest is checked, so a consumer never sees
    all of a blob that turns out to be wrong. `threaded` hashes on a worker thread (for
    layers: the loop then only moves bytes); an overrun then fails a chunk or two later.
    """
    check = StreamCheck(desc, offset_hasher)
    sink = ThreadSink(check.update, name="cachescope-verify") if threaded else None
    pending: bytes | None = None
    try:
        async for chunk in chunks:
            if not chunk:
                continue
            if sink is None:
                check.update(chunk)
            else:
                await sink.put(chunk)
            if pending is not None:
                yield pending
            pending = chunk
        if sink is not None:
            await sink.close()
    except BaseException:
        if sink is not None:
            await sink.cancel()
        raise
    check.finish()
    if pending is not None:
        yield pending


def verified_chunks(chunks: Iterable[bytes], desc: Descriptor) -> Iterator[bytes]:
    """`verified_stream` for a blocking reader running on a worker thread."""
    check = StreamCheck(desc)
    pending: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        check.update(chunk)
        if pending is not None:
            yield pending
        pending = chunk
    check.finish()
    if pending is not None:
        yield pending


def check_declared_size(desc: Descriptor, limit: int, what: str) -> None:
    if desc.size > limit:
        raise TooLarge(f"{what} {desc.digest} is too large ({desc.size} > {limit} bytes)")
