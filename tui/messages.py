"""Facts workers report to the screens that started them (past tense, small dataclasses).

Workers never touch widgets; they post one of these and the screen's handler updates
the UI on the event loop. High-rate messages override `can_replace` so a burst
coalesces into the latest value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from cachescope.core import CacheReport, LoadedCache, TagSummary


@dataclass
class CacheLoaded(Message):
    """A cache was read and analysed."""

    cache: LoadedCache
    report: CacheReport


@dataclass
class RepositoriesListed(Message):
    """A page of a registry's catalog arrived; `done` (with no names) ends the listing."""

    names: list[str]
    done: bool = True
    first: bool = True
    """The first page of a (re)load: it replaces what was listed before."""


@dataclass
class TagsListed(Message):
    """The tag names of a repository or layout (details follow as TagDetailed)."""

    tags: list[TagSummary]


@dataclass
class TagDetailed(Message):
    """Columns for one tag, filled in the background."""

    name: str
    summary: TagSummary
    report: CacheReport | None = None
    error: str | None = None


@dataclass
class ReclaimableFound(Message):
    """Blobs of a layout that no tag or index entry references."""

    blobs: dict[str, int]
    """Digest text to stored size."""


@dataclass
class FindingsReady(Message):
    """Diagnosis of the open cache for one target registry."""

    target: str
    findings: list[Any]


@dataclass
class PlanReady(Message):
    """An operation was planned (reads only); `planned` is an ops_bridge.PlannedOperation."""

    planned: Any


@dataclass
class OpProgress(Message):
    """Progress of a running operation; a burst of byte counts coalesces to the newest.

    Only `Progress` snapshots replace each other: every `StepDone` must arrive, or a
    layer's bar would never reach the end.
    """

    event: Any

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, OpProgress)
            and type(message.event).__name__ == "Progress"
            and type(self.event).__name__ == "Progress"
        )


@dataclass
class OpFinished(Message):
    """An operation ended: `result` on success, `error` (one line) or `cancelled` otherwise."""

    operation: str
    result: Any = None
    error: str | None = None
    cancelled: bool = False
    planning: bool = False
    """The error happened while planning (nothing was applied)."""
