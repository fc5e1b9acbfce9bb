"""Layer compression: sniff it from bytes, decompress it as a stream, and recompress it.

gzip goes through ISA-L (isal), several times faster than zlib on layers; zstd through
zstandard. Both decoders run across members/frames, because estargz is a concatenation of
gzip members and zstd layers may hold several frames.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import zstandard
from isal import isal_zlib

from cachescope.core.errors import CodecError, DigestMismatch, UsageError
from cachescope.core.model.digest import Digest, Hasher
from cachescope.core.model.mediatypes import Compression

GZIP_MAGIC: Final = b"\x1f\x8b\x08"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
ESTARGZ_FOOTER_SIZE: Final = 51
LEGACY_STARGZ_FOOTER_SIZE: Final = 47
TAIL_BYTES: Final = 64


def is_estargz_footer(tail: bytes) -> bool:
    """True if the blob ends with an eStargz footer: an empty gzip member whose extra field is `SG`.

    Layout (stargz-snapshotter estargz.go): gzip header with FEXTRA, XLEN=26, subfield 'S','G'
    of length 22 holding "%016xSTARGZ" (the TOC offset), then an empty deflate body and trailer.
    """
    for size in (ESTARGZ_FOOTER_SIZE, LEGACY_STARGZ_FOOTER_SIZE):
        if len(tail) < size:
            continue
        footer = tail[-size:]
        if footer[:3] != GZIP_MAGIC or not footer[3] & 0x04:
            continue
        if size == ESTARGZ_FOOTER_SIZE:
            (xlen,) = struct.unpack_from("<H", footer, 10)
            if xlen == 26 and footer[12:14] == b"SG" and footer[16:38].endswith(b"STARGZ"):
                return True
        elif footer[10:12] == b"\x1a\x00" and footer[12:38].endswith(b"STARGZ"):
            return True
    return False


def sniff_compression(head: bytes, tail: bytes = b"") -> Compression:
    """Compression from magic bytes, as BuildKit detects it when a media type is missing."""
    if head.startswith(GZIP_MAGIC):
        return "estargz" if is_estargz_footer(tail) else "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "uncompressed"


class Decoder(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class GzipDecoder:
    """Multi-member gzip (estargz is many members) with ISA-L."""

    def __init__(self) -> None:
        self._obj = isal_zlib.decompressobj(wbits=31)
        self._started = False

    def feed(self, chunk: bytes) -> bytes:
        out = []
        data = chunk
        try:
            while data:
                self._started = True
                out.append(self._obj.decompress(data))
                if not self._obj.eof:
                    break
                data = self._obj.unused_data
                self._obj = isal_zlib.decompressobj(wbits=31)
                self._started = False
        except Exception as exc:  # isal_zlib.error: untyped in isal's stubs
            raise CodecError(f"gzip stream is corrupt: {exc}") from exc
        return b"".join(out)

    def finish(self) -> bytes:
        if self._started and not self._obj.eof:
            raise CodecError("gzip stream is truncated")
        return b""


class ZstdDecoder:
    """Multi-frame zstd; a new frame decoder starts where the previous frame ended."""

    def __init__(self) -> None:
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._started = False

    def feed(self, chunk: bytes) -> bytes:
        out = []
        data = chunk
        try:
            while data:
                self._started = True
                out.append(bytes(self._obj.decompress(data)))
                if not self._obj.eof:
                    break
                data = self._obj.unused_data
                self._obj = self._dctx.decompressobj()
                self._started = False
        except zstandard.ZstdError as exc:
            raise CodecError(f"zstd stream is corrupt: {exc}") from exc
        return b"".join(out)

    def finish(self) -> bytes:
        if self._started and not self._obj.eof:
            raise CodecError("zstd stream is truncated")
        return b""


class IdentityDecoder:
    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


def decoder_for(compression: Compression) -> Decoder:
    if compression in ("gzip", "estargz"):
        return GzipDecoder()
    if compression == "zstd":
        return ZstdDecoder()
    return IdentityDecoder()


async def iter_decompressed(chunks: AsyncIterable[bytes], compression: Compression) -> AsyncIterator[bytes]:
    """Decompress a stream chunk by chunk (constant memory)."""
    decoder = decoder_for(compression)
    async for chunk in chunks:
        out = decoder.feed(chunk)
        if out:
            yield out
    rest = decoder.finish()
    if rest:
        yield rest


# -- compression side ------------------------------------------------------------------------

DEFAULT_ZSTD_LEVEL: Final = 3
ZSTD_LEVELS: Final = range(1, 23)
GZIP_LEVELS: Final = range(0, 10)
DECODE_SLICE: Final = 256 * 1024
"""Input fed to a decoder per call: bounds the output of one call for ordinary layers."""
_QUEUE_DEPTH: Final = 4


def isal_level(gzip_level: int | None) -> int:
    """ISA-L has levels 0-3; map gzip's 0-9 onto them (default: ISA-L's own default, 2)."""
    if gzip_level is None:
        default: int = isal_zlib.ISAL_DEFAULT_COMPRESSION
        return default
    return min(3, (gzip_level + 2) // 3)


def check_level(compression: Compression, level: int | None) -> None:
    """Reject levels the codec does not have, with the range it does."""
    if level is None:
        return
    if compression == "zstd" and level not in ZSTD_LEVELS:
        raise UsageError(f"zstd compression level must be 1-22, not {level}")
    if compression == "gzip" and level not in GZIP_LEVELS:
        raise UsageError(f"gzip compression level must be 0-9, not {level}")
    if compression not in ("zstd", "gzip"):
        raise UsageError(f"{compression} has no compression level")


class Encoder(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class GzipEncoder:
    """One gzip member through ISA-L; what `gzip -dc` and every OCI runtime read."""

    def __init__(self, level: int | None = None) -> None:
        self._obj = isal_zlib.compressobj(isal_level(level), isal_zlib.DEFLATED, 31)

    def feed(self, chunk: bytes) -> bytes:
        out: bytes = self._obj.compress(chunk)
        return out

    def finish(self) -> bytes:
        out: bytes = self._obj.flush()
        return out


class ZstdEncoder:
    """One zstd frame; with threads > 0, zstd compresses on its own worker threads."""

    def __init__(self, level: int | None = None, threads: int = 0) -> None:
        params = zstandard.ZstdCompressor(level=level or DEFAULT_ZSTD_LEVEL, threads=threads, write_checksum=True)
        self._obj = params.compressobj()

    def feed(self, chunk: bytes) -> bytes:
        out: bytes = self._obj.compress(chunk)
        return out

    def finish(self) -> bytes:
        out: bytes = self._obj.flush()
        return out


class IdentityEncoder:
    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


def encoder_for(compression: Compression, *, level: int | None = None, threads: int = 0) -> Encoder:
    """An encoder writing `compression`; estargz output is not supported (it rewrites the tar)."""
    check_level(compression, level)
    if compression == "gzip":
        return GzipEncoder(level)
    if compression == "zstd":
        return ZstdEncoder(level, threads)
    if compression == "uncompressed":
        return IdentityEncoder()
    raise UsageError(f"cannot write {compression} layers; choose gzip, zstd or uncompressed")


@dataclass(slots=True)
class TranscodeStats:
    """Filled in by `iter_transcoded` once its stream is exhausted."""

    source_compression: Compression | None = None
    uncompressed_digest: Digest | None = None
    uncompressed_size: int = 0
    verified: bool = False
    """True when the digest came from decompressing the new bytes (not the old ones)."""


async def iter_transcoded(
    chunks: AsyncIterable[bytes],
    target: Compression,
    *,
    level: int | None = None,
    threads: int = 0,
    verify: bool = True,
    expected_uncompressed: Digest | None = None,
    stats: TranscodeStats | None = None,
    on_input: Callable[[int], None] | None = None,
) -> AsyncGenerator[bytes, None]:
    """Decompress a layer stream and compress it as `target`, chunk by chunk, in constant memory.

    Reading, decompressing, compressing and hashing run as separate stages joined by small
    queues, each doing its CPU work in a worker thread, so they overlap and the event loop
    stays free. The source compression is sniffed from the bytes. With `verify`, the new
    bytes are decompressed again and that stream is hashed (so the digest proves the new
    blob, not the old one); otherwise the old stream is hashed. With
    `expected_uncompressed`, a different digest raises DigestMismatch before the last chunk
    is yielded, so a verifying writer never commits a wrong blob.
    """
    stats = stats if stats is not None else TranscodeStats()
    encoder = encoder_for(target, level=level, threads=threads)
    raw_q: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE_DEPTH)
    plain_q: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE_DEPTH)
    hash_q: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE_DEPTH)
    out_q: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUE_DEPTH)
    hasher = Hasher("sha256")

    async def read() -> None:
        async for chunk in chunks:
            if on_input is not None:
                on_input(len(chunk))
            if chunk:
                await raw_q.put(chunk)
        await raw_q.put(None)

    async def decode() -> None:
        decoder: Decoder | None = None
        while (chunk := await raw_q.get()) is not None:
            if decoder is None:
                stats.source_compression = sniff_compression(chunk[:8])
                decoder = decoder_for(stats.source_compression)
            for start in range(0, len(chunk), DECODE_SLICE):
                out = await asyncio.to_thread(decoder.feed, chunk[start : start + DECODE_SLICE])
                if out:
                    await plain_q.put(out)
                    if not verify:
                        await hash_q.put(out)
        if decoder is not None:
            rest = decoder.finish()
            if rest:
                await plain_q.put(rest)
                if not verify:
                    await hash_q.put(rest)
        await plain_q.put(None)
        if not verify:
            await hash_q.put(None)

    async def encode() -> None:
        while (data := await plain_q.get()) is not None:
            out = await asyncio.to_thread(encoder.feed, data)
            if out:
                await out_q.put(out)
                if verify:
                    await hash_q.put(out)
        out = await asyncio.to_thread(encoder.finish)
        if out:
            await out_q.put(out)
            if verify:
                await hash_q.put(out)
        await out_q.put(None)
        if verify:
            await hash_q.put(None)

    async def digest() -> None:
        check = decoder_for(target) if verify else IdentityDecoder()

        def absorb(data: bytes) -> None:
            plain = check.feed(data)
            if plain:
                hasher.update(plain)

        while (data := await hash_q.get()) is not None:
            await asyncio.to_thread(absorb, data)
        hasher.update(check.finish())

    tasks = [asyncio.ensure_future(stage()) for stage in (read, decode, encode, digest)]
    failed = asyncio.gather(*tasks)
    try:
        pending: bytes | None = None
        while True:
            if failed.done():
                failed.result()  # raises if a stage failed; else the rest is queued
                item = await out_q.get()
            else:
                getter = asyncio.ensure_future(out_q.get())
                waiters: set[asyncio.Future[Any]] = {getter, failed}
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    continue
                item = getter.result()
            if item is None:
                break
            if pending is not None:
                yield pending
            pending = item
        await failed
        stats.uncompressed_digest = hasher.digest()
        stats.uncompressed_size = hasher.size
        stats.verified = verify
        if expected_uncompressed is not None and stats.uncompressed_digest != expected_uncompressed:
            raise DigestMismatch(
                str(expected_uncompressed), str(stats.uncompressed_digest), subject="uncompressed layer (diff ID)"
            )
        if pending is not None:
            yield pending
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if failed.done() and not failed.cancelled():
            failed.exception()  # retrieved: the error (if any) was raised or is moot
