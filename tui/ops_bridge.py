"""The TUI's one seam to core's operations and diagnosis.

Every plan_* and diagnose call goes through this module (all through the public
`cachescope.core` API), so when a signature changes only this file changes.
Nothing here touches a widget: the screens call `plan_operation`/`diagnose` from workers.

An operation is planned and applied in one task (`PlannedOperation` owns the open stores
until `close()`), because a plan may only be applied while the stores it was made with
are open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cachescope.core import (
    TARGET_NAMES,
    CacheReport,
    Finding,
    LayoutRef,
    RecompressOptions,
    Ref,
    RegistryRef,
    UsageError,
    detect_target,
    diagnose_report,
    open_store,
    parse_duration,
    parse_reference,
    parse_size,
    plan_prune,
    plan_recompress,
    plan_reexport,
    plan_trim,
)

OPERATIONS: Final[dict[str, str]] = {
    "recompress": "Recompress",
    "reexport": "Re-export",
    "prune": "Prune",
    "trim": "Trim",
}
OPERATION_HELP: Final[dict[str, str]] = {
    "recompress": "rewrite the layer blobs in another compression (zstd by default) and re-point the tag",
    "reexport": "copy the cache to another tag, repository or directory, optionally converting its form",
    "prune": "delete tags by age or count, then the blobs no remaining tag references",
    "trim": "drop the oldest layers and the records that need them, to make the cache smaller",
}
COMPRESSIONS: Final = ("zstd", "gzip", "uncompressed")
FORMS: Final = ("image-manifest", "index", "keep")
TAG_ACTIONS: Final = frozenset({"set-tag", "move-tag"})


class OperationUnavailable(UsageError):
    """Core does not (yet) offer this operation for this kind of store."""


@dataclass(frozen=True, slots=True)
class OperationRequest:
    """What the user asked for: the operation, its source, and the options the plan screen offers."""

    operation: str
    source: Ref
    tag: str | None = None
    """The source tag the cache view resolved (the layout's only tag when none was named)."""
    destination: str | None = None
    """Re-export: where to (a reference text); None means the source with a `-copy` tag."""
    compression: str = "zstd"
    form: str = "image-manifest"
    max_size: str = ""
    """Trim: the size to trim down to (`500MiB`)."""
    keep_newer_than: str = ""
    """Trim: keep only records whose layers are newer than this (`14d`)."""
    older_than: str = ""
    """Prune: drop tags older than this (`30d`)."""
    keep: str = ""
    """Prune (registry): keep this many newest tags."""
    tags: str = ""
    """Prune: tag globs, comma-separated: the tags to keep (layout) or the candidates (registry)."""


@dataclass(frozen=True, slots=True)
class TextOption:
    """A typed option on the plan screen: the request field it fills, its label and a hint."""

    field: str
    label: str
    placeholder: str


def text_options(request: OperationRequest) -> tuple[TextOption, ...]:
    """The typed options an operation offers; prune's differ between layouts and registries."""
    if request.operation == "trim":
        return (
            TextOption("max_size", "max size", "e.g. 500MiB"),
            TextOption("keep_newer_than", "or keep records newer than", "e.g. 14d"),
        )
    if request.operation == "prune" and isinstance(request.source, RegistryRef):
        return (
            TextOption("keep", "keep newest", "N tags"),
            TextOption("older_than", "older than", "e.g. 30d"),
            TextOption("tags", "tags", "globs, e.g. pr-*"),
        )
    if request.operation == "prune":
        return (
            TextOption("tags", "keep tags", "globs; empty: every tag"),
            TextOption("older_than", "drop tags older than", "e.g. 30d"),
        )
    return ()


def missing_input(request: OperationRequest) -> str | None:
    """What the user must type before anything can be planned (None: ready to plan)."""
    if request.operation == "trim" and not (request.max_size.strip() or request.keep_newer_than.strip()):
        return "Type the size to trim the cache down to (e.g. 500MiB) or an age (e.g. 14d), then Enter."
    if (
        request.operation == "prune"
        and isinstance(request.source, RegistryRef)
        and not (request.keep.strip() or request.older_than.strip() or request.tags.strip())
    ):
        return "Say which tags go: keep the N newest, older than an age, or tags matching a glob; then Enter."
    return None


def _globs(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.replace(",", " ").split() if part)


def _keep_count(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        count = int(text)
    except ValueError:
        raise UsageError(f"keep newest must be a whole number, not {text.strip()!r}") from None
    if count < 0:
        raise UsageError("keep newest must be 0 or more")
    return count


@dataclass
class PlannedOperation:
    """A plan with its stores still open; apply at most once, always close."""

    request: OperationRequest
    plan: Any
    stack: contextlib.AsyncExitStack = field(repr=False)
    target: str = ""

    @property
    def steps(self) -> Sequence[Any]:
        return tuple(getattr(self.plan, "steps", ()))

    @property
    def destructive(self) -> bool:
        return bool(getattr(self.plan, "destructive", False))

    @property
    def moves_tag(self) -> bool:
        return any(step.action in TAG_ACTIONS for step in self.steps)

    @property
    def needs_confirmation(self) -> bool:
        """Deletes, or moving a tag that already exists, ask before applying."""
        if self.destructive:
            return True
        if not self.moves_tag:
            return False
        if self.request.operation in {"recompress", "trim"}:
            return True  # in place: re-points the source's own tag
        preconditions = tuple(getattr(self.plan, "preconditions", ()))
        return any(getattr(pre, "digest", None) is not None for pre in preconditions[1:])

    @property
    def is_empty(self) -> bool:
        return bool(getattr(self.plan, "is_empty", False))

    def render(self, size: Callable[[int], str]) -> str:
        render = getattr(self.plan, "render", None)
        return str(render(size)) if callable(render) else ""

    async def apply(self, on_progress: Callable[[Any], None]) -> Any:
        if _is_sample(self.request.source) and (self.request.operation != "reexport" or self._writes_to_source()):
            raise OperationUnavailable(
                "the bundled sample cache is read-only", hint="re-export it to a directory (e) and change the copy"
            )
        return await self.plan.apply(on_progress=on_progress)

    def _writes_to_source(self) -> bool:
        """The destination is the sample directory itself (a re-export under another tag)."""
        dest, _ = parse_reference(self.target)
        return isinstance(dest, LayoutRef) and _is_sample(dest)

    async def close(self) -> None:
        await self.stack.aclose()


def _is_sample(ref: Ref) -> bool:
    from cachescope.tui.sample import SAMPLE_CACHE  # noqa: PLC0415 - tiny, avoids import order games

    return isinstance(ref, LayoutRef) and ref.path.resolve() == SAMPLE_CACHE.resolve()


def default_destination(source: Ref, tag: str) -> str:
    """Where a re-export goes unless the user says otherwise: the same place, tag `TAG-copy`.

    The bundled sample is read-only, so its copy goes to ./cachescope-sample in the current directory.
    """
    if _is_sample(source):
        return f"oci:cachescope-sample:{tag}"
    return str(source.with_tag(f"{tag}-copy"))


async def plan_operation(request: OperationRequest) -> PlannedOperation:
    """Open the stores and plan (reads only); the caller must `close()` the result."""
    stack = contextlib.AsyncExitStack()
    try:
        planned = await _plan(request, stack)
    except BaseException:
        await stack.aclose()
        raise
    return planned


async def _plan(request: OperationRequest, stack: contextlib.AsyncExitStack) -> PlannedOperation:
    source = request.source
    tag = request.tag or source.tag or "latest"
    reference = source.with_tag(tag).reference
    if request.operation == "recompress":
        store = await stack.enter_async_context(open_store(source))
        options = RecompressOptions(compression=request.compression)  # type: ignore[arg-type]
        plan = await plan_recompress(store, reference, store, tag, options)
        return PlannedOperation(request, plan, stack, str(source.with_tag(tag)))
    if request.operation == "reexport":
        text = (request.destination or "").strip() or default_destination(source, tag)
        dest, _ = parse_reference(text, plain_http=getattr(source, "plain_http", False))
        dest_tag = dest.tag or tag
        src_store = await stack.enter_async_context(open_store(source))
        if _same_location(source, dest):
            dst_store = src_store
        else:
            dst_store = await stack.enter_async_context(open_store(dest, create=True))
        form = None if request.form == "keep" else request.form
        plan = await plan_reexport(src_store, reference, dst_store, dest_tag, form=form)
        return PlannedOperation(request, plan, stack, str(dest.with_tag(dest_tag)))
    if request.operation == "prune":
        store = await stack.enter_async_context(open_store(source.with_tag(None)))
        older_than = parse_duration(request.older_than) if request.older_than.strip() else None
        if isinstance(source, RegistryRef):
            plan = await plan_prune(
                store, keep=_keep_count(request.keep), older_than=older_than, tags=_globs(request.tags)
            )
        else:
            plan = await plan_prune(store, keep_tags=_globs(request.tags), older_than=older_than)
        return PlannedOperation(request, plan, stack, str(source.with_tag(None)))
    if request.operation == "trim":
        store = await stack.enter_async_context(open_store(source))
        max_size = parse_size(request.max_size) if request.max_size.strip() else None
        newer = parse_duration(request.keep_newer_than) if request.keep_newer_than.strip() else None
        plan = await plan_trim(store, reference, store, tag, max_size=max_size, keep_newer_than=newer)
        return PlannedOperation(request, plan, stack, str(source.with_tag(tag)))
    raise OperationUnavailable(f"unknown operation {request.operation!r}")


def _same_location(a: Ref, b: Ref) -> bool:
    if isinstance(a, LayoutRef) and isinstance(b, LayoutRef):
        return a.path.resolve() == b.path.resolve()
    if isinstance(a, RegistryRef) and isinstance(b, RegistryRef):
        return (a.host, a.repository) == (b.host, b.repository)
    return False


async def reclaimable_blobs(ref: LayoutRef) -> dict[str, int]:
    """What a prune of the layout would delete: subject (digest or temp file) -> bytes."""
    async with open_store(ref.with_tag(None)) as store:
        plan = await plan_prune(store)
    return {step.subject: step.size for step in plan.steps if step.action == "delete-blob"}


# -- diagnosis -----------------------------------------------------------------------------

ANY_TARGET: Final = "any"


def target_names() -> dict[str, str]:
    """Registry target id -> human name, as core's rules know them."""
    return {str(k): str(v) for k, v in TARGET_NAMES.items()}


def detect(ref: Ref) -> str | None:
    """The registry product a reference's host belongs to, when the host name tells."""
    if isinstance(ref, RegistryRef):
        found = detect_target(ref.host)
        return str(found) if found else None
    return None


def diagnose(report: CacheReport, target: str) -> list[Finding]:
    """Findings for `target` (ANY_TARGET: registry unknown), errors first; pure CPU work."""
    chosen: Any = None if target == ANY_TARGET else target
    return list(diagnose_report(report, chosen))
