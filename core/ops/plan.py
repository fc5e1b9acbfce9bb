"""Plans: what an operation will read, write, reuse and delete, decided before anything changes.

Every `plan_*` function only reads. The Plan it returns can be shown (`render`, `to_json`)
and applied once (`apply`). Applying first re-checks the preconditions, the digests the plan
was made against, and raises PlanStale if a tag moved in the meantime, so a confirmation
given for one state is never used on another.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from cachescope.core.errors import LayoutError, NotFound, PlanError, PlanStale
from cachescope.core.model.digest import Digest
from cachescope.core.model.oci import Descriptor
from cachescope.core.ops.progress import ProgressCallback
from cachescope.core.stores.base import Store
from cachescope.core.stores.local import LocalStore

PLAN_SCHEMA: Final = "cachescope.plan/v1"
RESULT_SCHEMA: Final = "cachescope.result/v1"

Action = Literal[
    "read",  # read and check existing content
    "recompress",  # decompress a layer blob and write it in another compression
    "copy-blob",  # stream a blob from the source store into the destination
    "mount-blob",  # cross-repository mount within one registry
    "reuse-blob",  # the destination already has it
    "write-config",
    "write-manifest",
    "set-tag",  # create a tag that does not exist yet
    "move-tag",  # re-point an existing tag: destructive, the old target is no longer tagged
    "delete-tag",
    "delete-manifest",
    "delete-blob",
]
DESTRUCTIVE_ACTIONS: Final = frozenset({"move-tag", "delete-tag", "delete-manifest", "delete-blob"})
CREATING_ACTIONS: Final = frozenset({"recompress", "copy-blob", "mount-blob"})


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the plan will do; `size` is the bytes it moves (an estimate for new blobs)."""

    action: Action
    subject: str
    size: int = 0
    detail: str = ""
    read: int = 0
    """Bytes read from the source to do it (a recompress reads the old blob)."""

    @property
    def destructive(self) -> bool:
        return self.action in DESTRUCTIVE_ACTIONS

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "subject": self.subject, "size": self.size}
        if self.read:
            out["read"] = self.read
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True, slots=True)
class Precondition:
    """`reference` in `store` pointed at `digest` (None: did not exist) when the plan was made."""

    store: Store = field(compare=False, repr=False)
    where: str
    reference: str
    digest: Digest | None

    def to_json(self) -> dict[str, Any]:
        return {"store": self.where, "reference": self.reference, "digest": str(self.digest) if self.digest else None}


async def current_digest(store: Store, reference: str) -> Digest | None:
    """What a tag points at now, or None when it does not exist (nor the layout holding it, yet)."""
    try:
        desc, _ = await store.fetch_manifest(reference)
    except NotFound:
        return None
    except LayoutError:
        if isinstance(store, LocalStore) and not await asyncio.to_thread((store.root / "index.json").exists):
            return None  # a destination layout that the plan will create
        raise
    return desc.digest


async def precondition(store: Store, reference: str) -> Precondition:
    return Precondition(store, store.display_name, reference, await current_digest(store, reference))


async def check_preconditions(preconditions: Sequence[Precondition]) -> None:
    """Raise PlanStale naming the first reference that moved since planning."""
    for pre in preconditions:
        now = await current_digest(pre.store, pre.reference)
        if now != pre.digest:
            was = str(pre.digest) if pre.digest else "absent"
            raise PlanStale(
                f"{pre.where}:{pre.reference} changed since the plan was made (was {was}, now {now or 'absent'})",
                hint="plan again",
            )


def tag_step(pre: Precondition, new: Digest | None = None) -> Step:
    """The step that points `pre.reference` at the new wrapper: `set-tag` if the tag is new, else `move-tag`.

    Moving an existing tag is destructive (what it pointed at loses its name), so a CLI
    asks before doing it; `new` names the target when it is already known.
    """
    subject = f"{pre.where}:{pre.reference}"
    if pre.digest is None:
        return Step("set-tag", subject, detail=f"-> {new}" if new else "new tag")
    detail = f"{pre.digest} -> {new}" if new else f"was {pre.digest}"
    return Step("move-tag", subject, detail=detail)


@dataclass(frozen=True, slots=True)
class OpResult:
    """What an applied plan did."""

    operation: str
    destination: str | None = None
    tag: str | None = None
    manifest: Descriptor | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    """Counts per outcome (`created`, `reused`, `mounted`, `deleted`, ...)."""
    bytes_written: int = 0
    bytes_freed: int = 0
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": RESULT_SCHEMA,
            "operation": self.operation,
            "destination": self.destination,
            "tag": self.tag,
            "manifest": self.manifest.to_json() if self.manifest else None,
            "outcomes": dict(self.outcomes),
            "bytes_written": self.bytes_written,
            "bytes_freed": self.bytes_freed,
            "notes": list(self.notes),
        }


Runner = Callable[[ProgressCallback | None], Awaitable[OpResult]]


@dataclass(frozen=True, slots=True)
class Plan:
    """An operation decided but not done. Apply it while the stores it was made with are open."""

    operation: str
    source: str | None
    destination: str | None
    steps: tuple[Step, ...]
    preconditions: tuple[Precondition, ...] = ()
    notes: tuple[str, ...] = ()
    summary: str = ""
    """One line saying what the operation does (`gzip -> zstd level 3`)."""
    runner: Runner | None = field(default=None, compare=False, repr=False)

    # -- totals -------------------------------------------------------------------------

    def _sum(self, actions: frozenset[str] | set[str]) -> int:
        return sum(s.size for s in self.steps if s.action in actions)

    @property
    def bytes_read(self) -> int:
        return sum(s.read for s in self.steps)

    @property
    def bytes_written(self) -> int:
        return self._sum({"recompress", "copy-blob", "write-config", "write-manifest"})

    @property
    def bytes_deleted(self) -> int:
        return self._sum({"delete-blob"})

    @property
    def blobs_created(self) -> int:
        return sum(1 for s in self.steps if s.action in CREATING_ACTIONS)

    @property
    def blobs_reused(self) -> int:
        return sum(1 for s in self.steps if s.action == "reuse-blob")

    @property
    def destructive(self) -> bool:
        return any(s.destructive for s in self.steps)

    @property
    def is_empty(self) -> bool:
        """Nothing would change."""
        return not any(s.action not in {"read", "reuse-blob"} for s in self.steps)

    @property
    def fingerprint(self) -> str:
        """A digest of the preconditions and steps, so a plan shown can be matched to one applied."""
        h = hashlib.sha256()
        for pre in self.preconditions:
            h.update(f"{pre.where}\0{pre.reference}\0{pre.digest}\n".encode())
        for step in self.steps:
            h.update(f"{step.action}\0{step.subject}\0{step.size}\n".encode())
        return f"sha256:{h.hexdigest()}"

    # -- output -------------------------------------------------------------------------

    def totals(self, size: Callable[[int], str] = lambda n: f"{n} B") -> list[str]:
        """What the plan adds up to, one phrase each ("3 blob(s) created", "delete 2 item(s) (1 MiB)")."""
        parts = []
        if self.blobs_created:
            parts.append(f"{self.blobs_created} blob(s) created")
        if self.blobs_reused:
            parts.append(f"{self.blobs_reused} reused")
        if self.bytes_read:
            parts.append(f"read {size(self.bytes_read)}")
        if self.bytes_written:
            parts.append(f"write ~{size(self.bytes_written)}")
        deletes = sum(1 for s in self.steps if s.action.startswith("delete-"))
        if deletes:
            freed = f" ({size(self.bytes_deleted)})" if self.bytes_deleted else ""
            parts.append(f"delete {deletes} item(s){freed}")
        moved = sum(1 for s in self.steps if s.action == "move-tag")
        if moved:
            parts.append(f"move {moved} existing tag(s)")
        return parts

    def render(self, size: Callable[[int], str] = lambda n: f"{n} B") -> str:
        """The plan as text for `--dry-run` and confirmation prompts."""
        head = f"{self.operation} {self.source or ''}"
        if self.destination and self.destination != self.source:
            head += f" -> {self.destination}"
        lines = [head.rstrip() + (f" ({self.summary})" if self.summary else "")]
        width = max((len(s.action) for s in self.steps), default=0)
        for step in self.steps:
            parts = [f"{step.action:<{width}}", step.subject]
            if step.size:
                parts.append(size(step.size))
            if step.detail:
                parts.append(step.detail)
            lines.append("  " + "  ".join(parts))
        totals = self.totals(size) or ["no data moves"]
        lines.append("total: " + ", ".join(totals))
        lines.extend(f"note: {note}" for note in self.notes)
        if self.is_empty:
            lines.append("nothing to do")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "operation": self.operation,
            "source": self.source,
            "destination": self.destination,
            "summary": self.summary,
            "fingerprint": self.fingerprint,
            "preconditions": [p.to_json() for p in self.preconditions],
            "steps": [s.to_json() for s in self.steps],
            "totals": {
                "bytes_read": self.bytes_read,
                "bytes_written": self.bytes_written,
                "bytes_deleted": self.bytes_deleted,
                "blobs_created": self.blobs_created,
                "blobs_reused": self.blobs_reused,
            },
            "destructive": self.destructive,
            "notes": list(self.notes),
        }

    # -- apply --------------------------------------------------------------------------

    async def apply(self, *, on_progress: ProgressCallback | None = None) -> OpResult:
        """Re-check the preconditions, then do the steps in the safe order (tag last, deletes last)."""
        if self.runner is None:
            raise PlanError(f"the {self.operation} plan cannot be applied (it was made for display only)")
        await check_preconditions(self.preconditions)
        return await self.runner(on_progress)
