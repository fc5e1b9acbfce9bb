"""Prune: free the space old caches hold, in a layout directory or a registry repository.

A layout directory written by `--cache-to type=local` never forgets a blob (BuildKit issue
#1850; `reset=true` only exists since v0.31). `plan_prune_local` marks every blob some
`index.json` entry reaches (manifests, indexes, configs, layers, and the layer blobs a
BuildKit cache config names), and sweeps the rest, plus temp files interrupted writes left
behind. Tags can be dropped first (`keep_tags`, `older_than`); reachability is then judged
from the tags that stay.

A registry frees nothing through its API: `plan_prune_registry` deletes tagged manifests
and the registry returns blob space only at its next garbage collection. The distribution
API deletes manifests by digest, which removes every tag on that manifest, so a manifest
that a kept tag points at is never deleted.

Age ("older than") is the newest time found, in this order: the manifest's (or index
entry's) `org.opencontainers.image.created` annotation; for a BuildKit cache, the newest
result `createdAt` in its cache config, else the newest layer `buildkit/createdat`; for an
image, its config's `created`. Tags whose age cannot be found are never dropped by age or
by `keep`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import fnmatch
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import humanize

from cachescope.core.errors import CachescopeError, NotFound, PlanError, PlanStale, RegistryError, UsageError
from cachescope.core.model import mediatypes as mt
from cachescope.core.model.cache import parse_cache_config, parse_go_time
from cachescope.core.model.digest import Digest
from cachescope.core.model.oci import Descriptor, Document, Index, parse_document
from cachescope.core.ops.plan import OpResult, Plan, Precondition, Step
from cachescope.core.ops.progress import ProgressCallback, Tracker
from cachescope.core.stores.base import MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, Store, SupportsManifestDelete
from cachescope.core.stores.local import TEMP_PREFIX, LocalStore

ANNOTATION_IMAGE_CREATED: Final = "org.opencontainers.image.created"
"""OCI pre-defined annotation key (image-spec annotations.md); not a media type, so kept here."""

TEMP_GRACE: Final = timedelta(hours=1)
"""Temp files younger than this may belong to a write still running; they are left alone."""

_TAG_CONCURRENCY: Final = 8
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INDEX_CHILDREN_DATED: Final = 8

# -- units -----------------------------------------------------------------------------------

_DURATION_RE: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE_RE: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)", re.IGNORECASE)
_SIZE_UNITS: Final = {
    "": 1,
    "b": 1,
    **{p: 1024**n for n, p in enumerate("kmgtp", 1)},
    **{f"{p}i": 1024**n for n, p in enumerate("kmgtp", 1)},
    **{f"{p}ib": 1024**n for n, p in enumerate("kmgtp", 1)},
    **{f"{p}b": 1000**n for n, p in enumerate("kmgtp", 1)},
}


def parse_duration(text: str) -> timedelta:
    """`7d`, `12h`, `30m`, `45s`, `2w`, or sums like `1d12h`; UsageError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION_RE.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise UsageError(f"invalid duration {text!r}; use a number and a unit (s, m, h, d, w), e.g. 7d or 12h")
    return timedelta(seconds=sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


def parse_size(text: str) -> int:
    """`500MB` (powers of 1000), `1.5GiB` or `1.5G` (powers of 1024), `1024` or `1024B` (bytes)."""
    m = _SIZE_RE.fullmatch(text.strip())
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _SIZE_UNITS:
        raise UsageError(f"invalid size {text!r}; use e.g. 500MB, 1.5GiB or 1048576")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def names_text(names: Sequence[str], limit: int = 10) -> str:
    """`a, b, c` for notes, cut short for repositories with thousands of tags."""
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def matches_any(name: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


# -- ages ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dated:
    """When something was made, and where that time was read from (for the plan's details)."""

    when: datetime | None
    source: str

    def older_than(self, cutoff: datetime) -> bool:
        return self.when is not None and self.when < cutoff


def _newest(times: Iterable[datetime | None]) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


async def document_created(store: Store, document: Document, entry: Descriptor | None = None) -> Dated:
    """The creation time of a tagged manifest, by the rules in the module docstring."""
    for where in ((entry.annotations if entry else {}), document.annotations):
        when = parse_go_time(where.get(ANNOTATION_IMAGE_CREATED))
        if when is not None:
            return Dated(when, ANNOTATION_IMAGE_CREATED)
    try:
        return await _content_created(store, document, depth=0)
    except CachescopeError as exc:
        return Dated(None, f"unknown ({exc})")


async def _content_created(store: Store, document: Document, *, depth: int) -> Dated:
    if isinstance(document, Index):
        config = next((d for d in document.manifests if d.media_type == mt.BUILDKIT_CACHE_CONFIG), None)
        if config is not None:
            return await _cache_created(store, config, document.manifests)
        if depth > 0:
            return Dated(None, "unknown")
        times: list[datetime | None] = []
        for child in [d for d in document.manifests if d.media_type in mt.IMAGE_MANIFEST_TYPES][:_INDEX_CHILDREN_DATED]:
            _, child_doc = await store.fetch_manifest(str(child.digest))
            times.append((await _content_created(store, child_doc, depth=depth + 1)).when)
        when = _newest(times)
        return Dated(when, "image config" if when else "unknown")
    if document.config.media_type == mt.BUILDKIT_CACHE_CONFIG:
        return await _cache_created(store, document.config, document.layers)
    if document.config.media_type in {mt.OCI_IMAGE_CONFIG, mt.DOCKER_IMAGE_CONFIG}:
        raw = await store.read_blob(document.config, limit=MAX_CONFIG_BYTES)
        try:
            created = json.loads(raw).get("created")
        except (ValueError, AttributeError):
            created = None
        when = parse_go_time(created if isinstance(created, str) else None)
        return Dated(when, "image config" if when else "unknown")
    return Dated(None, "unknown")


async def _cache_created(store: Store, config_desc: Descriptor, layers: Sequence[Descriptor]) -> Dated:
    config = parse_cache_config(await store.read_blob(config_desc, limit=MAX_CONFIG_BYTES))
    times = [r.created_at for rec in config.records for r in rec.results]
    times += [c.created_at for rec in config.records for c in rec.chains]
    when = _newest(parse_go_time(t) for t in times)
    if when is not None:
        return Dated(when, "cache results")
    when = _newest(parse_go_time(d.annotations.get(mt.ANNOTATION_CREATED)) for d in layers)
    return Dated(when, "layer annotations" if when else "unknown")


def _when_text(dated: Dated) -> str:
    if dated.when is None:
        return "age unknown"
    return f"created {dated.when.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} ({dated.source})"


# -- local layouts: mark ---------------------------------------------------------------------


async def reachable_blobs(store: LocalStore, roots: Iterable[Descriptor]) -> tuple[dict[Digest, str], list[str]]:
    """Every blob the roots reach (digest -> the first path to it) and the referenced blobs that are missing.

    Manifests and indexes are followed into their children, configs and `subject`; a
    BuildKit cache config into its layer table's blobs (a blob the config names but the
    wrapper does not list is still the cache's). A document that exists but cannot be read
    stops the prune: what it references is unknown, so nothing can be proven unreachable.
    """
    marked: dict[Digest, str] = {}
    missing: list[str] = []
    stack: list[tuple[Descriptor, str, bool]] = [(d, f"index.json entry {_entry_name(d)}", True) for d in roots]
    while stack:
        desc, path, is_document = stack.pop()
        if desc.digest in marked:
            continue
        size = await store.blob_size(desc.digest)
        marked[desc.digest] = path
        if size is None:
            missing.append(f"{desc.digest} ({path})")
            continue
        kind = desc.media_type
        try:
            if is_document or kind in mt.MANIFEST_TYPES:
                raw = await store.read_blob(desc, limit=MAX_MANIFEST_BYTES)
                doc = parse_document(raw, kind or None, what=f"manifest {desc.digest}")
                stack.extend(_children(doc, path))
            elif kind == mt.BUILDKIT_CACHE_CONFIG:
                config = parse_cache_config(await store.read_blob(desc, limit=MAX_CONFIG_BYTES))
                for i, layer in enumerate(config.layers):
                    # Only digest and presence matter for marking; size is looked up on the store.
                    stack.append((Descriptor("", layer.blob, 0), f"{path} > cache layer {i}", False))
        except CachescopeError as exc:
            raise PlanError(
                f"cannot read {desc.digest} ({path}): {exc}; prune refuses to guess what it references",
                hint="fix or remove the broken entry first (cachescope inspect shows it)",
            ) from exc
    return marked, missing


def _children(doc: Document, path: str) -> list[tuple[Descriptor, str, bool]]:
    out: list[tuple[Descriptor, str, bool]] = []
    if isinstance(doc, Index):
        out += [(d, f"{path} > {d.media_type or 'child'}", d.media_type in mt.MANIFEST_TYPES) for d in doc.manifests]
    else:
        out.append((doc.config, f"{path} > config", False))
        out += [(d, f"{path} > layer", False) for d in doc.layers]
    subject = doc.extra.get("subject")
    if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
        with contextlib.suppress(CachescopeError, ValueError, TypeError):
            desc = Descriptor(
                str(subject.get("mediaType", "")), Digest.parse(subject["digest"]), int(subject.get("size", 0))
            )
            out.append((desc, f"{path} > subject", desc.media_type in mt.MANIFEST_TYPES))
    return out


def _entry_name(entry: Descriptor) -> str:
    return LocalStore.tag_of(entry) or entry.annotations.get(mt.ANNOTATION_IMAGE_NAME) or str(entry.digest.short)


# -- local layouts: temp files ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TempFile:
    path: Path
    size: int


def stale_temp_files(root: Path, *, grace: timedelta = TEMP_GRACE, now: float | None = None) -> list[TempFile]:
    """Leftovers of interrupted writes older than `grace`: cachescope temp files and BuildKit's `ingest/`."""
    cutoff = (time.time() if now is None else now) - grace.total_seconds()
    found: list[TempFile] = []
    places = [root]
    blobs = root / "blobs"
    if blobs.is_dir():
        places += [p for p in blobs.iterdir() if p.is_dir() and not p.is_symlink()]
    for place in places:
        for entry in place.iterdir():
            if entry.name.startswith(TEMP_PREFIX) and entry.is_file() and not entry.is_symlink():
                st = entry.stat()
                if st.st_mtime < cutoff:
                    found.append(TempFile(entry, st.st_size))
    ingest = root / "ingest"
    if ingest.is_dir() and not ingest.is_symlink():
        for entry in ingest.rglob("*"):
            if entry.is_file() and not entry.is_symlink():
                st = entry.stat()
                if st.st_mtime < cutoff:
                    found.append(TempFile(entry, st.st_size))
    return sorted(found, key=lambda t: str(t.path))


# -- local layouts: plan ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TagDecision:
    tag: str
    entry: Descriptor
    dated: Dated
    drop: bool
    reason: str


async def plan_prune_local(
    store: LocalStore,
    *,
    keep_tags: Sequence[str] = (),
    older_than: timedelta | None = None,
    now: datetime | None = None,
    temp_grace: timedelta = TEMP_GRACE,
) -> Plan:
    """Plan deleting every blob of the layout that no kept tag reaches, after dropping tags.

    A tag is dropped when it matches none of `keep_tags` (if given) and is older than
    `older_than` (if given); with neither, no tag is dropped. Entries without a tag name
    are always kept.
    """
    now = now or datetime.now(UTC)
    entries = await store.list_entries()
    decisions: list[_TagDecision] = []
    for entry in entries:
        tag = store.tag_of(entry)
        if tag is None:
            continue
        _, doc = await _read_entry(store, entry)
        dated = await document_created(store, doc, entry) if older_than is not None else Dated(None, "not needed")
        drop, reason = _local_tag_verdict(tag, dated, keep_tags, older_than, now)
        decisions.append(_TagDecision(tag, entry, dated, drop, reason))
    dropped = {d.tag for d in decisions if d.drop}
    kept_roots = [e for e in entries if store.tag_of(e) not in dropped]
    marked, missing = await reachable_blobs(store, kept_roots)
    stored = await store.list_blobs()
    orphans = sorted((d for d in stored if d not in marked), key=str)
    temps = await asyncio.to_thread(stale_temp_files, store.root, grace=temp_grace)

    steps = [Step("delete-tag", d.tag, 0, f"{d.entry.digest.short}: {d.reason}") for d in decisions if d.drop]
    steps += [Step("delete-blob", str(d), stored[d], "unreachable from every kept tag") for d in orphans]
    steps += [
        Step("delete-blob", str(t.path.relative_to(store.root)), t.size, "stale temp file of an interrupted write")
        for t in temps
    ]
    preconditions = tuple(Precondition(store, store.display_name, d.tag, d.entry.digest) for d in decisions)
    notes: list[str] = []
    if missing:
        notes.append(
            f"{len(missing)} referenced blob(s) are already missing: {', '.join(missing[:3])}"
            + (" ..." if len(missing) > 3 else "")
        )
    untagged = len(entries) - sum(1 for e in entries if store.tag_of(e) is not None)
    if untagged:
        notes.append(f"{untagged} index.json entr{'y' if untagged == 1 else 'ies'} without a tag name kept as roots")
    unknown = [d.tag for d in decisions if older_than is not None and d.dated.when is None and not d.drop]
    if unknown:
        notes.append(f"kept because their age is unknown: {names_text(unknown)}")
    kept = [d.tag for d in decisions if not d.drop]
    notes.append(f"tags kept: {names_text(kept)}")
    notes.append("do not run while a build exports to this directory: a blob being reused may be swept")
    orphan_sizes = {d: stored[d] for d in orphans}
    temp_list = tuple(temps)
    drop_list = tuple(d.tag for d in decisions if d.drop)
    summary_bits = [f"{len(drop_list)} tag(s) dropped", f"{len(orphans)} unreachable blob(s)"]
    if temps:
        summary_bits.append(f"{len(temps)} temp file(s)")

    async def run(on_progress: ProgressCallback | None) -> OpResult:
        return await _apply_local(
            store,
            drop_tags=drop_list,
            orphans=orphan_sizes,
            temps=temp_list,
            temp_grace=temp_grace,
            on_progress=on_progress,
        )

    return Plan(
        "prune",
        store.display_name,
        store.display_name,
        tuple(steps),
        preconditions,
        tuple(notes),
        summary=", ".join(summary_bits),
        runner=run,
    )


def _local_tag_verdict(
    tag: str, dated: Dated, keep_tags: Sequence[str], older_than: timedelta | None, now: datetime
) -> tuple[bool, str]:
    if not keep_tags and older_than is None:
        return False, "kept"
    if keep_tags and matches_any(tag, keep_tags):
        return False, "matches --keep-tags"
    reasons = []
    if keep_tags:
        reasons.append("matches no --keep-tags")
    if older_than is not None:
        if not dated.older_than(now - older_than):
            return False, "newer than --older-than" if dated.when else "age unknown"
        reasons.append(f"older than {format_duration(older_than)}, {_when_text(dated)}")
    return True, "; ".join(reasons)


async def _read_entry(store: LocalStore, entry: Descriptor) -> tuple[Descriptor, Document]:
    try:
        raw = await store.read_blob(entry, limit=MAX_MANIFEST_BYTES)
        return entry, parse_document(raw, entry.media_type or None, what=f"manifest {entry.digest}")
    except CachescopeError as exc:
        raise PlanError(
            f"cannot read the manifest of tag {_entry_name(entry)} ({entry.digest}): {exc}",
            hint="fix or remove the broken entry first (cachescope inspect shows it)",
        ) from exc


# -- local layouts: apply --------------------------------------------------------------------


async def _lock(root: Path) -> int:
    """BuildKit's advisory lock on index.json.lock (the one LocalStore takes for index updates).

    Polled without blocking, so a cancelled prune never leaves a thread that takes the lock later.
    """
    fd = await asyncio.to_thread(os.open, root / "index.json.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.sleep(0.05)
            else:
                return fd
    except BaseException:
        os.close(fd)
        raise


def _unlock(root: Path, fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            (root / "index.json.lock").unlink()


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


async def _apply_local(
    store: LocalStore,
    *,
    drop_tags: Sequence[str],
    orphans: dict[Digest, int],
    temps: Sequence[TempFile],
    temp_grace: timedelta,
    on_progress: ProgressCallback | None,
) -> OpResult:
    """Drop tags, then sweep under the index lock what is still unreachable; temp files last."""
    tracker = Tracker("prune", on_progress)
    tracker.begin(
        "delete",
        "dropping tags",
        bytes_total=sum(orphans.values()) + sum(t.size for t in temps),
        items_total=len(drop_tags) + len(orphans) + len(temps),
    )
    outcomes: dict[str, int] = {}
    notes: list[str] = []

    def count(key: str) -> None:
        outcomes[key] = outcomes.get(key, 0) + 1

    for tag in drop_tags:
        try:
            await store.delete_tag(tag)
            count("tags-deleted")
            tracker.step("delete-tag", tag, "deleted")
        except NotFound:
            tracker.step("delete-tag", tag, "absent")
    # Mark again from what index.json says now, and hold the index lock while sweeping, so
    # nothing a tag gained since the plan is deleted and no tag can be added mid-sweep.
    index_path = store.root / "index.json"
    before = await asyncio.to_thread(index_path.read_bytes)
    marked, _ = await reachable_blobs(store, await store.list_entries())
    freed = 0
    tracker.begin("delete", "deleting unreachable blobs")
    fd = await _lock(store.root)
    try:
        if await asyncio.to_thread(index_path.read_bytes) != before:
            raise PlanStale(f"{index_path} changed while pruning; no blob was deleted", hint="plan again")
        for digest, size in orphans.items():
            if digest in marked:
                count("blobs-kept")
                notes.append(f"kept {digest}: a tag reaches it now")
                tracker.step("delete-blob", str(digest), "kept")
                continue
            path = store.blob_path(digest)
            if await asyncio.to_thread(_unlink, path):
                freed += size
                count("blobs-deleted")
                tracker.add_bytes(size, str(digest))
                tracker.step("delete-blob", str(digest), "deleted", size)
            else:
                tracker.step("delete-blob", str(digest), "absent")
    finally:
        await asyncio.to_thread(_unlock, store.root, fd)
    cutoff = time.time() - temp_grace.total_seconds()
    for temp in temps:
        try:
            st = await asyncio.to_thread(temp.path.stat)
        except FileNotFoundError:
            continue
        if st.st_mtime >= cutoff:
            continue  # touched since the plan: a write is using it
        if await asyncio.to_thread(_unlink, temp.path):
            freed += st.st_size
            count("temp-files-deleted")
            tracker.add_bytes(st.st_size, str(temp.path))
            tracker.step("delete-blob", str(temp.path), "deleted", st.st_size)
    tracker.begin("done", "finished")
    return OpResult("prune", store.display_name, None, None, outcomes, bytes_freed=freed, notes=tuple(notes))


# -- either ----------------------------------------------------------------------------------


async def plan_prune(
    store: Store,
    *,
    keep_tags: Sequence[str] = (),
    older_than: timedelta | None = None,
    keep: int | None = None,
    tags: Sequence[str] = (),
    now: datetime | None = None,
) -> Plan:
    """Plan a prune of a layout directory (`keep_tags`, `older_than`) or a repository (`keep`, `older_than`, `tags`)."""
    if isinstance(store, LocalStore):
        if keep is not None or tags:
            raise UsageError("--keep and --tags are for registry repositories; use --keep-tags for a directory")
        return await plan_prune_local(store, keep_tags=keep_tags, older_than=older_than, now=now)
    if keep_tags:
        raise UsageError("--keep-tags is for layout directories; use --tags and --keep for a repository")
    return await plan_prune_registry(store, keep=keep, older_than=older_than, tags=tags, now=now)


# -- registries ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegistryTag:
    """A tag as prune saw it: what it points at, how big, and how old."""

    tag: str
    descriptor: Descriptor | None
    document: Document | None
    dated: Dated
    error: str | None = None


def _blobs_of(document: Document) -> dict[Digest, int]:
    """Non-manifest blobs a document lists directly (a cache wrapper lists them all)."""
    if isinstance(document, Index):
        return {d.digest: d.size for d in document.manifests if d.media_type not in mt.MANIFEST_TYPES}
    return {d.digest: d.size for d in (document.config, *document.layers)}


async def _read_registry_tag(store: Store, tag: str, dated: bool) -> RegistryTag:
    try:
        desc, doc = await store.fetch_manifest(tag)
    except CachescopeError as exc:
        return RegistryTag(tag, None, None, Dated(None, "unknown"), error=str(exc))
    when = await document_created(store, doc) if dated else Dated(None, "not needed")
    return RegistryTag(tag, desc, doc, when)


async def plan_prune_registry(
    store: Store,
    *,
    keep: int | None = None,
    older_than: timedelta | None = None,
    tags: Sequence[str] = (),
    now: datetime | None = None,
) -> Plan:
    """Plan deleting old tagged manifests of a repository.

    Candidates are the tags matching `tags` (every tag without it). Of those, the `keep`
    newest stay, and only the ones older than `older_than` go; with only `tags`, every
    candidate goes. A manifest is deleted only when every tag on it goes, because the API
    deletes manifests (and so all their tags), not tags.
    """
    if not isinstance(store, SupportsManifestDelete):
        raise UsageError(f"{store.display_name} cannot delete manifests")
    deleter: SupportsManifestDelete = store
    if keep is None and older_than is None and not tags:
        raise UsageError("say what to delete: --keep N, --older-than DURATION or --tags GLOB")
    if keep is not None and keep < 0:
        raise UsageError("--keep must be 0 or more")
    now = now or datetime.now(UTC)
    names = await store.list_tags()
    semaphore = asyncio.Semaphore(_TAG_CONCURRENCY)
    need_age = keep is not None or older_than is not None

    async def one(name: str) -> RegistryTag:
        async with semaphore:
            return await _read_registry_tag(store, name, need_age and (not tags or matches_any(name, tags)))

    seen = list(await asyncio.gather(*(one(n) for n in names)))
    by_digest: dict[Digest, tuple[Descriptor, Document, list[str]]] = {}
    for t in seen:
        if t.descriptor is not None and t.document is not None:
            by_digest.setdefault(t.descriptor.digest, (t.descriptor, t.document, []))[2].append(t.tag)
    candidates = [t for t in seen if t.descriptor is not None and (not tags or matches_any(t.tag, tags))]
    notes: list[str] = []
    unreadable = [f"{t.tag} ({t.error})" for t in seen if t.error]
    if unreadable:
        notes.append(f"kept, could not be read: {', '.join(unreadable[:3])}" + (" ..." if len(unreadable) > 3 else ""))
    eligible: dict[str, str] = {}
    if need_age:
        unknown = [t.tag for t in candidates if t.dated.when is None]
        if unknown:
            notes.append(f"kept because their age is unknown: {names_text(unknown)}")
        dated = sorted(
            (t for t in candidates if t.dated.when is not None),
            key=lambda t: (t.dated.when or _EPOCH, t.tag),
            reverse=True,
        )
        protected = {t.tag for t in dated[:keep]} if keep is not None else set()
        for t in dated:
            if t.tag in protected:
                continue
            if older_than is not None and not t.dated.older_than(now - older_than):
                continue
            reasons = []
            if keep is not None:
                reasons.append(f"not among the {keep} newest")
            if older_than is not None:
                reasons.append(f"older than {format_duration(older_than)}")
            eligible[t.tag] = f"{'; '.join(reasons)}; {_when_text(t.dated)}"
    else:
        eligible = {t.tag: "matches --tags" for t in candidates}

    steps: list[Step] = []
    preconditions: list[Precondition] = []
    deleted_docs: list[Document] = []
    kept_docs: list[Document] = []
    planned: dict[Digest, tuple[str, ...]] = {}
    for digest, (desc, doc, names_here) in by_digest.items():
        going = [n for n in names_here if n in eligible]
        if going and len(going) == len(names_here):
            reason = eligible[going[0]]
            steps.append(
                Step(
                    "delete-manifest",
                    str(digest),
                    desc.size,
                    f"tag{'s' if len(going) > 1 else ''} {', '.join(sorted(going))}: {reason}",
                )
            )
            preconditions += [Precondition(store, store.display_name, name, digest) for name in names_here]
            planned[digest] = tuple(sorted(going))
            deleted_docs.append(doc)
        else:
            kept_docs.append(doc)
            if going:
                stay = sorted(set(names_here) - set(going))
                notes.append(
                    f"{', '.join(sorted(going))} kept: manifest {digest.short} is also tagged "
                    f"{', '.join(stay)}, and deleting it would remove that tag too"
                )
    kept_blobs: set[Digest] = set()
    for doc in kept_docs:
        kept_blobs.update(_blobs_of(doc))
    freeable: dict[Digest, int] = {}
    for doc in deleted_docs:
        freeable.update({d: s for d, s in _blobs_of(doc).items() if d not in kept_blobs})
    reclaim = sum(freeable.values())
    if planned:
        notes.append(
            f"about {humanize.naturalsize(reclaim, binary=True)} of blobs become unreferenced; a registry "
            "returns blob space only after its garbage collection (e.g. `registry garbage-collect --delete-untagged`)"
        )
        notes.append("deleting a manifest removes every tag on it (the registry API deletes by digest)")
    kept_tags = sorted(t.tag for t in seen if not any(t.tag in v for v in planned.values()))
    notes.append(f"tags kept: {names_text(kept_tags)}")
    deleted_tag_count = sum(len(v) for v in planned.values())

    async def run(on_progress: ProgressCallback | None) -> OpResult:
        return await _apply_registry(store, deleter, planned, reclaim, on_progress)

    return Plan(
        "prune",
        store.display_name,
        store.display_name,
        tuple(steps),
        tuple(preconditions),
        tuple(notes),
        summary=f"{len(planned)} manifest(s), {deleted_tag_count} tag(s) of {len(seen)}",
        runner=run,
    )


async def _current_tags(store: Store) -> dict[str, Digest]:
    names = await store.list_tags()
    semaphore = asyncio.Semaphore(_TAG_CONCURRENCY)

    async def one(name: str) -> tuple[str, Digest | None]:
        async with semaphore:
            try:
                desc, _ = await store.fetch_manifest(name)
            except NotFound:
                return name, None
            return name, desc.digest

    return {n: d for n, d in await asyncio.gather(*(one(n) for n in names)) if d is not None}


async def _apply_registry(
    store: Store,
    deleter: SupportsManifestDelete,
    planned: dict[Digest, tuple[str, ...]],
    reclaim: int,
    on_progress: ProgressCallback | None,
) -> OpResult:
    tracker = Tracker("prune", on_progress)
    tracker.begin("delete", "deleting manifests", items_total=len(planned))
    # Look again right before deleting: a kept tag moved onto a planned manifest keeps it.
    current = await _current_tags(store)
    outcomes: dict[str, int] = {}
    notes: list[str] = []
    for digest, going in planned.items():
        others = sorted(t for t, d in current.items() if d == digest and t not in going)
        if others:
            notes.append(f"kept {digest}: tag(s) {', '.join(others)} point at it now")
            outcomes["manifests-kept"] = outcomes.get("manifests-kept", 0) + 1
            tracker.step("delete-manifest", str(digest), "kept")
            continue
        try:
            await deleter.delete_manifest(digest)
        except NotFound:
            tracker.step("delete-manifest", str(digest), "absent")
            continue
        except RegistryError as exc:
            if exc.status == 405:
                raise RegistryError(
                    f"{store.display_name} does not allow deletes: {exc}",
                    status=exc.status,
                    codes=exc.codes,
                    hint="enable them on the registry (distribution: REGISTRY_STORAGE_DELETE_ENABLED=true)",
                ) from exc
            raise
        outcomes["manifests-deleted"] = outcomes.get("manifests-deleted", 0) + 1
        outcomes["tags-deleted"] = outcomes.get("tags-deleted", 0) + len(going)
        tracker.step("delete-manifest", str(digest), "deleted")
    tracker.begin("done", "finished")
    notes.append(f"blob space (about {reclaim} bytes) returns only after the registry's garbage collection")
    return OpResult("prune", store.display_name, None, None, outcomes, bytes_freed=0, notes=tuple(notes))


__all__ = [
    "ANNOTATION_IMAGE_CREATED",
    "TEMP_GRACE",
    "Dated",
    "RegistryTag",
    "TempFile",
    "document_created",
    "format_duration",
    "matches_any",
    "parse_duration",
    "parse_size",
    "plan_prune",
    "plan_prune_local",
    "plan_prune_registry",
    "reachable_blobs",
    "stale_temp_files",
]
