"""OCI image layout directories, as BuildKit's `type=local` cache writes them.

Tags are `index.json` entries named by `org.opencontainers.image.ref.name` (an entry whose
`io.containerd.image.name` equals the tag wins, as in BuildKit's importer). Every write goes
to a temp file in the target directory and is renamed into place; `index.json` changes hold
the same advisory lock BuildKit takes (`index.json.lock`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

from cachescope.core.errors import DigestMismatch, FormatError, LayoutError, NotFound, SizeMismatch
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.digest import Digest, Hasher, sha256_of, verify_bytes
from cachescope.core.model.jsonenc import go_dumps
from cachescope.core.model.oci import Descriptor, Document, Index, parse_document
from cachescope.core.model.reference import DEFAULT_TAG
from cachescope.core.pipes import ThreadSink, iter_in_thread
from cachescope.core.stores.base import (
    CHUNK_BYTES,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    THREADED_IO_BYTES,
    StoreKind,
    check_declared_size,
    verified_chunks,
    verified_stream,
)

OCI_LAYOUT_FILE: Final = b'{"imageLayoutVersion":"1.0.0"}'
TEMP_PREFIX: Final = ".cachescope-tmp-"
SYNC_EVERY_BYTES: Final = 32 * 1024 * 1024
"""Written data is pushed to disk every so often, so the fsync before the rename is short."""


class LocalStore:
    """One OCI layout directory; blobs under blobs/<algorithm>/<hex>."""

    kind: StoreKind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    async def open(cls, root: Path, *, create: bool = False) -> LocalStore:
        """Open an existing layout, or create an empty one when `create` is set."""
        store = cls(root)
        await asyncio.to_thread(store._check_or_create, create)
        return store

    def _check_or_create(self, create: bool) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise LayoutError(f"{self.root} is not a directory")
        if not (self.root / "index.json").is_file():
            if not create:
                if not self.root.exists():
                    raise LayoutError(f"{self.root} does not exist")
                raise LayoutError(f"{self.root} is not an OCI layout: no index.json")
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            self._write_file_atomic(self.root / "oci-layout", OCI_LAYOUT_FILE)
            self._write_index_sync([])
        elif create and not (self.root / "oci-layout").exists():
            self._write_file_atomic(self.root / "oci-layout", OCI_LAYOUT_FILE)

    @property
    def display_name(self) -> str:
        return f"oci:{self.root}"

    async def close(self) -> None:
        """Nothing to release; present for the Store protocol."""

    # -- paths -------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        """The path of a blob; Digest validation already rules out `..` and separators."""
        path = self.root / "blobs" / digest.algorithm / digest.hex
        real_root = self.root.resolve()
        if path.is_symlink() and not path.resolve().is_relative_to(real_root):
            raise LayoutError(f"blob {digest} is a link leaving the layout {self.root}")
        return path

    # -- index.json ----------------------------------------------------------------------

    def _read_index_sync(self) -> Index:
        path = self.root / "index.json"
        try:
            size = path.stat().st_size
            if size > MAX_MANIFEST_BYTES:
                raise LayoutError(f"{path} is too large ({size} > {MAX_MANIFEST_BYTES} bytes)")
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise LayoutError(f"{self.root} is not an OCI layout: no index.json") from exc
        except OSError as exc:
            raise LayoutError(f"cannot read {path}: {exc.strerror}") from exc
        try:
            doc = parse_document(raw, mt.OCI_INDEX, what=f"{path}")
        except FormatError as exc:
            raise LayoutError(str(exc)) from exc
        if not isinstance(doc, Index):
            raise LayoutError(f"{path} is not an image index")
        return doc

    async def read_index(self) -> Index:
        return await asyncio.to_thread(self._read_index_sync)

    def _write_index_sync(self, entries: list[Descriptor]) -> None:
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [d.to_json() for d in entries]}
        self._write_file_atomic(self.root / "index.json", go_dumps(doc))

    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        """BuildKit's advisory lock on index.json.lock, so concurrent exporters don't race us."""
        lock_path = self.root / "index.json.lock"
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            with contextlib.suppress(OSError):
                lock_path.unlink()

    @staticmethod
    def tag_of(entry: Descriptor) -> str | None:
        return entry.annotations.get(mt.ANNOTATION_REF_NAME)

    async def list_entries(self) -> list[Descriptor]:
        return list((await self.read_index()).manifests)

    async def list_tags(self) -> list[str]:
        tags: list[str] = []
        for entry in await self.list_entries():
            tag = self.tag_of(entry)
            if tag and tag not in tags:
                tags.append(tag)
        return tags

    async def resolve(self, reference: str) -> Descriptor:
        """The index entry for a tag (BuildKit's lookup order), or a digest's blob."""
        if reference.startswith(("sha256:", "sha512:")):
            digest = Digest.parse(reference)
            size = await self.blob_size(digest)
            if size is None:
                raise NotFound(f"manifest {digest} not found in {self.display_name}")
            for entry in await self.list_entries():
                if entry.digest == digest:
                    return entry
            return Descriptor(mt.OCI_MANIFEST, digest, size)
        entries = await self.list_entries()
        for key in (mt.ANNOTATION_IMAGE_NAME, mt.ANNOTATION_REF_NAME):
            for entry in entries:
                if entry.annotations.get(key) == reference:
                    return entry
        tags = [t for t in (self.tag_of(e) for e in entries) if t]
        known = f" (tags: {', '.join(tags)})" if tags else " (it has no tags)"
        raise NotFound(f"tag {reference!r} not found in {self.display_name}{known}")

    # -- reads ---------------------------------------------------------------------------

    async def fetch_manifest(self, reference: str) -> tuple[Descriptor, Document]:
        desc = await self.resolve(reference or DEFAULT_TAG)
        check_declared_size(desc, MAX_MANIFEST_BYTES, "manifest")
        raw = await self.read_blob(desc, limit=MAX_MANIFEST_BYTES)
        doc = parse_document(raw, desc.media_type or None, what=f"manifest {desc.digest}")
        if not desc.media_type:
            desc = Descriptor(doc.media_type, desc.digest, desc.size, desc.annotations, desc.extra)
        return desc, doc

    def _read_verified_sync(self, desc: Descriptor, limit: int) -> bytes:
        path = self.blob_path(desc.digest)
        try:
            size = path.stat().st_size
            if size != desc.size:
                raise SizeMismatch(str(desc.digest), desc.size, size)
            if size > limit:
                raise LayoutError(f"blob {desc.digest} is too large ({size} > {limit} bytes)")
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"blob {desc.digest} not found in {self.display_name}") from exc
        except IsADirectoryError as exc:
            raise LayoutError(f"blob {desc.digest} is a directory in {self.display_name}") from exc
        verify_bytes(data, desc.digest, desc.size, subject="blob")
        return data

    async def read_blob(self, desc: Descriptor, *, limit: int = MAX_CONFIG_BYTES) -> bytes:
        check_declared_size(desc, limit, "blob")
        return await asyncio.to_thread(self._read_verified_sync, desc, limit)

    def _open_sync(self, digest: Digest, offset: int) -> BinaryIO:
        path = self.blob_path(digest)
        try:
            fh = path.open("rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} not found in {self.display_name}") from exc
        except IsADirectoryError as exc:
            raise LayoutError(f"blob {digest} is a directory in {self.display_name}") from exc
        if offset:
            fh.seek(offset)
        return fh

    @contextlib.asynccontextmanager
    async def open_blob(self, desc: Descriptor, *, offset: int = 0) -> AsyncIterator[AsyncIterator[bytes]]:
        fh = await asyncio.to_thread(self._open_sync, desc.digest, 0)
        stream: AsyncIterator[bytes]
        if desc.size >= THREADED_IO_BYTES:
            # Layers: read and hash on a thread of their own, a few chunks ahead, so the
            # loop is free for the codec and writer threads it feeds.
            def produce() -> Iterator[bytes]:
                return verified_chunks(iter(lambda: fh.read(CHUNK_BYTES), b""), desc)

            stream = iter_in_thread(produce, name="cachescope-read")
        else:

            async def chunks() -> AsyncIterator[bytes]:
                while chunk := await asyncio.to_thread(fh.read, CHUNK_BYTES):
                    yield chunk

            stream = verified_stream(chunks(), desc)
        try:
            yield _skip(stream, offset) if offset else stream
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # both are async generators
            await asyncio.to_thread(fh.close)

    async def blob_size(self, digest: Digest) -> int | None:
        try:
            st = await asyncio.to_thread(self.blob_path(digest).stat)
        except FileNotFoundError:
            return None
        return st.st_size

    async def blob_sizes(self, digests: list[Digest]) -> dict[Digest, int | None]:
        """Sizes of many blobs with one directory listing per algorithm, not one hop per blob."""

        def scan() -> dict[Digest, int | None]:
            out: dict[Digest, int | None] = {}
            listings: dict[str, dict[str, os.DirEntry[str]]] = {}
            for digest in digests:
                if digest.algorithm not in listings:
                    directory = self.root / "blobs" / digest.algorithm
                    try:
                        with os.scandir(directory) as it:
                            listings[digest.algorithm] = {e.name: e for e in it}
                    except FileNotFoundError:
                        listings[digest.algorithm] = {}
                entry = listings[digest.algorithm].get(digest.hex)
                out[digest] = entry.stat().st_size if entry is not None and entry.is_file() else None
            return out

        return await asyncio.to_thread(scan)

    async def list_blobs(self) -> dict[Digest, int]:
        """Every blob file with a valid name; temp files and strays are left out."""

        def walk() -> dict[Digest, int]:
            found: dict[Digest, int] = {}
            blobs = self.root / "blobs"
            if not blobs.is_dir():
                return found
            for algo_dir in blobs.iterdir():
                if not algo_dir.is_dir():
                    continue
                for entry in algo_dir.iterdir():
                    try:
                        digest = Digest(algo_dir.name, entry.name)
                    except FormatError:
                        continue
                    if entry.is_file():
                        found[digest] = entry.stat().st_size
            return found

        return await asyncio.to_thread(walk)

    # -- writes --------------------------------------------------------------------------

    def _write_file_atomic(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}-{path.name}")
        try:
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    async def write_blob(
        self, chunks: AsyncIterable[bytes], *, expected: Descriptor | None = None, media_type: str = ""
    ) -> Descriptor:
        """Stream into a temp file beside the target, verify, then rename into place.

        Hashing and writing run on a thread of their own, so the loop keeps feeding while
        the disk works; data is pushed to disk as it goes, leaving little for the final fsync.
        """
        algorithm = expected.digest.algorithm if expected else "sha256"
        directory = self.root / "blobs" / algorithm
        await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
        tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        hasher = Hasher(algorithm)
        fh = await asyncio.to_thread(tmp.open, "wb")
        try:
            try:
                await _drain_to_file(chunks, fh, hasher)
            finally:
                await asyncio.to_thread(fh.close)
            digest = hasher.digest()
            if expected is not None:
                if hasher.size != expected.size:
                    raise SizeMismatch(str(expected.digest), expected.size, hasher.size)
                if digest != expected.digest:
                    raise DigestMismatch(str(expected.digest), str(digest), subject="written blob")
            await asyncio.to_thread(tmp.replace, directory / digest.hex)
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)
        return Descriptor(
            media_type or (expected.media_type if expected else ""),
            digest,
            hasher.size,
            dict(expected.annotations) if expected else {},
        )

    async def write_blob_bytes(self, data: bytes, media_type: str) -> Descriptor:
        desc = Descriptor(media_type, sha256_of(data), len(data))
        if await self.blob_size(desc.digest) == desc.size:
            return desc

        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.write_blob(one(), expected=desc)

    async def put_manifest(self, raw: bytes, media_type: str, *, tag: str | None = None) -> Descriptor:
        desc = await self.write_blob_bytes(raw, media_type)
        if tag is not None:
            await self.set_tag(tag, desc)
        return desc

    async def set_tag(self, tag: str, desc: Descriptor, annotations: dict[str, str] | None = None) -> None:
        """Point `tag` at `desc`: replace entries with that name and append, as BuildKit does."""
        entry = Descriptor(
            desc.media_type,
            desc.digest,
            desc.size,
            {**(annotations or {}), mt.ANNOTATION_REF_NAME: tag},
        )

        def update() -> None:
            with self._index_lock():
                entries = [
                    e
                    for e in self._read_index_sync().manifests
                    if not (self.tag_of(e) == tag and mt.ANNOTATION_IMAGE_NAME not in e.annotations)
                ]
                entries.append(entry)
                self._write_index_sync(entries)

        await asyncio.to_thread(update)

    async def delete_tag(self, tag: str) -> None:
        def update() -> None:
            with self._index_lock():
                entries = list(self._read_index_sync().manifests)
                kept = [e for e in entries if self.tag_of(e) != tag]
                if len(kept) == len(entries):
                    raise NotFound(f"tag {tag!r} not found in {self.display_name}")
                self._write_index_sync(kept)

        await asyncio.to_thread(update)

    async def delete_blob(self, digest: Digest) -> None:
        await asyncio.to_thread(self.blob_path(digest).unlink, missing_ok=True)

    async def index_raw(self) -> dict[str, Any]:
        """index.json as plain JSON, for display."""
        return json.loads((await self.read_index()).raw or b"{}")  # type: ignore[no-any-return]


async def _drain_to_file(chunks: AsyncIterable[bytes], fh: BinaryIO, hasher: Hasher) -> None:
    """Hash and write `chunks` on a worker thread, then flush and fsync."""
    unsynced = 0

    def consume(chunk: bytes) -> None:
        nonlocal unsynced
        hasher.update(chunk)
        fh.write(chunk)
        unsynced += len(chunk)
        if unsynced >= SYNC_EVERY_BYTES:
            fh.flush()
            os.fdatasync(fh.fileno())
            unsynced = 0

    sink = ThreadSink(consume, name="cachescope-write")
    try:
        async for chunk in chunks:
            await sink.put(chunk)
        await sink.close()
    except BaseException:
        await sink.cancel()
        raise
    await asyncio.to_thread(fh.flush)
    await asyncio.to_thread(os.fsync, fh.fileno())


async def _skip(stream: AsyncIterator[bytes], offset: int) -> AsyncIterator[bytes]:
    """Drop the first `offset` bytes of a verified stream (local reads always verify from 0)."""
    remaining = offset
    async for chunk in stream:
        if remaining >= len(chunk):
            remaining -= len(chunk)
            continue
        yield chunk[remaining:]
        remaining = 0
