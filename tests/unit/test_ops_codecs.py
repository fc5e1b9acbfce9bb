"""The streaming transcoder: round trips, bounded output, and failures raised before the last chunk."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
from collections.abc import AsyncIterator

import pytest
import zstandard

from cachescope.core.codecs import PLAIN_PIECE, TranscodeStats, iter_plain, iter_transcoded
from cachescope.core.errors import CodecError, DigestMismatch
from cachescope.core.model.digest import Digest

PLAIN = os.urandom(300_000) + b"text line\n" * 200_000


async def chunked(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def decompress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


SOURCES = {
    "gzip": gzip.compress(PLAIN),
    "gzip-multi-member": gzip.compress(PLAIN[:100_000]) + gzip.compress(PLAIN[100_000:]),
    "zstd": zstandard.ZstdCompressor().compress(PLAIN),
    "zstd-multi-frame": zstandard.ZstdCompressor().compress(PLAIN[:5]) + zstandard.ZstdCompressor().compress(PLAIN[5:]),
    "uncompressed": PLAIN,
}


@pytest.mark.parametrize("source", sorted(SOURCES))
@pytest.mark.parametrize("target", ["zstd", "gzip", "uncompressed"])
@pytest.mark.parametrize(("verify", "threads"), [(True, 2), (False, 0)])
async def test_round_trip(source: str, target: str, verify: bool, threads: int) -> None:
    stats = TranscodeStats()
    expected = Digest.parse("sha256:" + hashlib.sha256(PLAIN).hexdigest())
    out = b"".join(
        [
            c
            async for c in iter_transcoded(
                chunked(SOURCES[source]),
                target,  # type: ignore[arg-type]
                threads=threads if target == "zstd" else 0,
                verify=verify,
                expected_uncompressed=expected,
                stats=stats,
            )
        ]
    )
    assert decompress(out, target) == PLAIN
    assert stats.uncompressed_digest == expected
    assert stats.uncompressed_size == len(PLAIN)
    assert stats.verified is verify
    assert stats.source_compression == source.split("-", maxsplit=1)[0]


async def test_a_wrong_diff_id_fails_before_the_last_chunk() -> None:
    seen: list[bytes] = []
    wrong = Digest.parse("sha256:" + "0" * 64)

    async def consume() -> None:
        async for chunk in iter_transcoded(chunked(SOURCES["gzip"]), "zstd", expected_uncompressed=wrong):
            seen.append(chunk)

    with pytest.raises(DigestMismatch, match="diff ID"):
        await consume()
    whole = zstandard.ZstdCompressor().compress(PLAIN)
    assert sum(map(len, seen)) < len(whole)  # the consumer never got a complete blob


async def drain(stream: AsyncIterator[bytes]) -> None:
    async for _ in stream:
        pass


async def test_corrupt_and_truncated_sources_raise_codec_errors() -> None:
    data = bytearray(SOURCES["gzip"])
    data[len(data) // 2 : len(data) // 2 + 64] = b"\0" * 64
    with pytest.raises((CodecError, DigestMismatch)):
        await drain(iter_transcoded(chunked(bytes(data)), "zstd", verify=False))
    with pytest.raises(CodecError, match="truncated"):
        await drain(iter_transcoded(chunked(SOURCES["gzip"][:-100]), "zstd"))


async def test_a_failing_source_stream_stops_the_pipeline() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield SOURCES["gzip"][:1000]
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        await drain(iter_transcoded(broken(), "zstd"))


def test_decompressed_pieces_are_bounded_whatever_the_ratio() -> None:
    zeros = b"\0" * (64 * 1024 * 1024)
    for compressed, compression in (
        (gzip.compress(zeros, compresslevel=9), "gzip"),
        (zstandard.ZstdCompressor(level=19).compress(zeros), "zstd"),
    ):
        assert len(compressed) < 1024 * 1024
        pieces = list(iter_plain(compression, iter([compressed])))  # type: ignore[arg-type]
        assert max(map(len, pieces)) <= PLAIN_PIECE
        assert sum(map(len, pieces)) == len(zeros)


@pytest.mark.parametrize("chunk", [777, 4096, 256 * 1024 - 1, 1024 * 1024 + 17, 8 * 1024 * 1024])
def test_gzip_members_decode_whatever_the_chunks(chunk: int) -> None:
    """Member ends fall anywhere in the chunks (estargz is thousands of members)."""
    rng = random.Random(chunk)  # noqa: S311 - reproducible test data
    plain = b"".join(rng.randbytes(rng.randrange(1, 90_000)) + b"line\n" * rng.randrange(0, 40_000) for _ in range(40))
    cuts = sorted(rng.sample(range(1, len(plain)), 25))
    members = [plain[a:b] for a, b in zip([0, *cuts], [*cuts, len(plain)], strict=True)]
    data = b"".join(gzip.compress(member, compresslevel=rng.choice((1, 6, 9))) for member in members)
    assert len(data) > 1024 * 1024
    pieces = list(iter_plain("gzip", iter([data[i : i + chunk] for i in range(0, len(data), chunk)])))
    assert b"".join(pieces) == plain
    assert max(map(len, pieces)) <= PLAIN_PIECE
    with pytest.raises(CodecError, match="truncated"):
        list(iter_plain("gzip", iter([data[:-5]])))
