"""Content digests: validated before they are trusted as names or paths."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from cachescope.core.errors import DigestMismatch, FormatError, SizeMismatch

_HEX: Final = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """`algorithm:hex`, with only algorithms we can verify and only lowercase hex.

    Validation here is what keeps `../` and other path tricks out of blob paths.
    """

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        pattern = _HEX.get(self.algorithm)
        if pattern is None:
            raise FormatError(f"unsupported digest algorithm {self.algorithm!r}")
        if not pattern.fullmatch(self.hex):
            raise FormatError(f"malformed {self.algorithm} digest {self.algorithm}:{self.hex[:80]!r}")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    # Digests key most of the analysis' sets and dicts; the generated methods build a
    # tuple per call, these do not (the hex alone differs between algorithms by length).
    def __hash__(self) -> int:
        return hash(self.hex)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Digest:
            return NotImplemented
        return self.hex == other.hex and self.algorithm == other.algorithm

    @property
    def short(self) -> str:
        """The first 12 hex digits, as `docker images` shows them."""
        return self.hex[:12]

    @classmethod
    def parse(cls, text: str) -> Digest:
        if ":" not in text:
            raise FormatError(f"malformed digest {str(text)[:80]!r}")
        algorithm, _, hexpart = text.partition(":")
        return cls(algorithm, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> Hasher:
        return Hasher(self.algorithm)


def sha256_of(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


class Hasher:
    """Incremental digest, so streams are verified without holding them."""

    __slots__ = ("_h", "algorithm", "size")

    def __init__(self, algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._h.update(chunk)
        self.size += len(chunk)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._h.hexdigest())


def verify_bytes(data: bytes, expected: Digest, size: int | None = None, *, subject: str = "content") -> None:
    """Raise unless `data` has exactly the expected size and digest."""
    if size is not None and len(data) != size:
        raise SizeMismatch(str(expected), size, len(data))
    actual = Digest.of(data, expected.algorithm)
    if actual != expected:
        raise DigestMismatch(str(expected), str(actual), subject=subject)
