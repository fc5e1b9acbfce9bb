"""Sizes, ages and digests the way people read them, against one clock.

Tests and screenshots freeze `clock` so ages never drift between runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import humanize

from cachescope.core import CachescopeError, Digest

clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731 - replaced by tests
"""Now, as every age on screen sees it."""

MEDIA_TYPE_PREFIXES = (
    "application/vnd.oci.image.layer.v1.",
    "application/vnd.oci.image.layer.nondistributable.v1.",
    "application/vnd.docker.image.rootfs.diff.",
    "application/vnd.oci.image.",
    "application/vnd.docker.distribution.",
    "application/vnd.buildkit.",
)


def size(n: int | None) -> str:
    """Binary units (KiB, MiB); an en dash when unknown."""
    if n is None:
        return "\N{EN DASH}"
    if n < 1024:
        return f"{n} B"
    return str(humanize.naturalsize(n, binary=True, format="%.1f"))


def age(when: datetime | None) -> str:
    """`3 minutes ago`; an en dash when unknown."""
    if when is None:
        return "\N{EN DASH}"
    return str(humanize.naturaltime(clock() - when))


AGE_UNITS = (("y", 365 * 86400), ("mo", 30 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60))


def compact_age(when: datetime | None) -> str:
    """`7h`, `3d`, `5mo`: an age that fits a narrow column (the detail pane has the long form)."""
    if when is None:
        return "\N{EN DASH}"
    seconds = int((clock() - when).total_seconds())
    if seconds < 60:
        return "now" if seconds >= 0 else "future"
    for unit, length in AGE_UNITS:
        if seconds >= length:
            return f"{seconds // length}{unit}"
    return "now"  # unreachable: seconds >= 60 matched "m"


def newest(times: list[datetime | None]) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def short_digest(digest: Digest | str | None, length: int = 12) -> str:
    """`sha256:0123456789ab`: enough to recognise, short enough for a column."""
    if digest is None:
        return "\N{EN DASH}"
    text = str(digest)
    algo, _, hex_ = text.partition(":")
    return f"{algo}:{hex_[:length]}" if hex_ else text[:length]


def digest_id(digest: Digest | str | None, length: int = 12) -> str:
    """`0123456789ab`: the hex only, as `docker images` shows IDs, for tight tables."""
    if digest is None:
        return "\N{EN DASH}"
    return str(digest).partition(":")[2][:length] or str(digest)[:length]


def short_media_type(media_type: str | None) -> str:
    """The distinguishing tail of a media type: `tar+gzip`, `manifest.v1+json`."""
    if not media_type:
        return "\N{EN DASH}"
    for prefix in MEDIA_TYPE_PREFIXES:
        if media_type.startswith(prefix):
            return media_type[len(prefix) :]
    return media_type


def media_family(media_type: str | None) -> str:
    """`OCI` or `Docker`, as a cache's media types are named everywhere on screen; `…` if neither."""
    if media_type and media_type.startswith("application/vnd.oci."):
        return "OCI"
    if media_type and media_type.startswith("application/vnd.docker."):
        return "Docker"
    return "\N{HORIZONTAL ELLIPSIS}"


def one_line(error: BaseException) -> str:
    """A failure as one line: cachescope errors already are; others get their type name."""
    text = " ".join(str(error).split())
    if isinstance(error, CachescopeError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
