"""Layer compression: sniff it from bytes, decompress it as a stream, and recompress it.

gzip goes through ISA-L (isal), several times faster than zlib on layers; zstd through
zstandard. Both decoders run across members/frames, because estargz is a concatenation of
gzip members and zstd layers may hold several frames.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import threading
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import IO, Final, Protocol, cast

import zstandard
from isal import isal_zlib

from cachescope.core.errors import CodecError, DigestMismatch, UsageError
from cachescope.core.model.digest import Digest, Hasher
from cachescope.core.model.mediatypes import Compression
from cachescope.core.pipes import END, Aborted, Pipe, ToLoop, ToThread

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
PLAIN_PIECE: Final = 2 * 1024 * 1024
"""Most decompressed bytes produced at once, whatever the compression ratio (zeros, RLE blocks)."""
ZSTD_JOB_BYTES: Final = 2 * 1024 * 1024
"""Input per zstd worker job when compressing with threads."""


def isal_level(gzip_level: int | None) -> int:
    """ISA-L has levels 0-3; map gzip's 0-9 onto them (default: ISA-L's own default, 2)."""
    if gzip_level is None:
        return isal_zlib.ISAL_DEFAULT_COMPRESSION
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
        return self._obj.compress(chunk)

    def finish(self) -> bytes:
        return self._obj.flush()


class ZstdEncoder:
    """One zstd frame; with threads > 0, zstd compresses on its own worker threads."""

    def __init__(self, level: int | None = None, threads: int = 0) -> None:
        if threads > 0:
            # zstd's default job size at low levels hands back tens of MiB at once (and holds as
            # much); small jobs keep memory flat for a ~2% larger blob.
            params = zstandard.ZstdCompressionParameters.from_level(
                level or DEFAULT_ZSTD_LEVEL, threads=threads, job_size=ZSTD_JOB_BYTES, write_checksum=True
            )
            compressor = zstandard.ZstdCompressor(compression_params=params)
        else:
            compressor = zstandard.ZstdCompressor(level=level or DEFAULT_ZSTD_LEVEL, write_checksum=True)
        self._obj = compressor.compressobj()

    def feed(self, chunk: bytes) -> bytes:
        return self._obj.compress(chunk)

    def finish(self) -> bytes:
        return self._obj.flush()


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


# -- bounded, pull-based decompression (pipeline threads) ---------------------------------------


class _IterReader:
    """The file-like object zstandard's stream_reader pulls from, over an iterator of chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def read(self, size: int = -1) -> bytes:  # noqa: ARG002 - whole chunks are fine for zstd
        return next(self._chunks, b"")


def _iter_gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Multi-member gzip in pieces of at most PLAIN_PIECE bytes (ISA-L's max_length)."""
    obj = isal_zlib.decompressobj(wbits=31)
    started = False
    for chunk in chunks:
        data = chunk
        while data:
            started = True
            try:
                out = obj.decompress(data, PLAIN_PIECE)
            except Exception as exc:  # isal_zlib.error: untyped in isal's stubs
                raise CodecError(f"gzip stream is corrupt: {exc}") from exc
            if out:
                yield out
            if obj.eof:
                data = obj.unused_data
                obj = isal_zlib.decompressobj(wbits=31)
                started = False
            else:
                data = obj.unconsumed_tail
    if started and not obj.eof:
        raise CodecError("gzip stream is truncated")


def _iter_unzstd(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Multi-frame zstd in pieces of at most PLAIN_PIECE bytes."""
    reader = zstandard.ZstdDecompressor().stream_reader(cast("IO[bytes]", _IterReader(chunks)), read_across_frames=True)
    try:
        while out := reader.read(PLAIN_PIECE):
            yield out
    except zstandard.ZstdError as exc:
        raise CodecError(f"zstd stream is corrupt: {exc}") from exc


def iter_plain(compression: Compression, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress a blocking stream of chunks; output pieces are bounded, so memory is too."""
    if compression in ("gzip", "estargz"):
        return _iter_gunzip(chunks)
    if compression == "zstd":
        return _iter_unzstd(chunks)
    return chunks


# -- the transcoder --------------------------------------------------------------------------------


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

    Two worker threads joined by small bounded queues do the CPU work while the event loop
    only moves chunks: one decompresses and compresses (zstd adds its own worker threads),
    the other hashes the uncompressed stream. With `verify` that stream comes from
    decompressing the new bytes again, so the digest proves the new blob, not the old one.
    The source compression is sniffed from the bytes. With `expected_uncompressed`, a
    different digest raises DigestMismatch before the last chunk is yielded, so a writer
    that commits at the end never commits a wrong blob.
    """
    stats = stats if stats is not None else TranscodeStats()
    encoder = encoder_for(target, level=level, threads=threads)
    loop = asyncio.get_running_loop()
    abort = threading.Event()
    raw, out, check = ToThread(loop, abort), ToLoop(loop, abort), Pipe(abort)
    hasher = Hasher("sha256")
    errors: list[BaseException] = []

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except Aborted:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the event loop, raised there
                errors.append(exc)
                abort.set()
                out.wake()

        return run

    def transcode() -> None:
        source = iter(raw)
        first = next(source, END)
        stats.source_compression = sniff_compression(first[:8])
        if not first:
            plain_stream: Iterator[bytes] = iter(())
        else:
            plain_stream = iter_plain(stats.source_compression, itertools.chain((first,), source))
        for plain in plain_stream:
            if not verify:
                check.put(plain)
            data = encoder.feed(plain)
            if data:
                out.put(data)
                if verify:
                    check.put(data)
        data = encoder.finish()
        if data:
            out.put(data)
            if verify:
                check.put(data)
        out.put(END)
        check.put(END)

    def digest() -> None:
        stream = iter_plain(target, iter(check)) if verify else iter(check)
        for plain in stream:
            hasher.update(plain)

    workers = [
        threading.Thread(target=guarded(transcode), name="cachescope-transcode", daemon=True),
        threading.Thread(target=guarded(digest), name="cachescope-digest", daemon=True),
    ]
    for worker in workers:
        worker.start()

    async def feed() -> None:
        try:
            async for chunk in chunks:
                if on_input is not None:
                    on_input(len(chunk))
                if chunk:
                    await raw.put(chunk)
            await raw.put(END)
        except Aborted:
            pass
        except BaseException as exc:
            errors.append(exc)
            abort.set()
            out.wake()
            raise

    feeder = asyncio.ensure_future(feed())
    try:
        pending: bytes | None = None
        while (item := await out.get()) is not None and item != END:
            if pending is not None:
                yield pending
            pending = item
        if errors:
            feeder.cancel()  # it may wait for room the failed thread will never make
        await asyncio.gather(feeder, return_exceptions=True)
        for worker in workers:
            await asyncio.to_thread(worker.join)
        if errors:
            raise errors[0]
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
        abort.set()
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        for worker in workers:
            await asyncio.to_thread(worker.join)
