"""`cachescope prune` and `cachescope trim`: give space back.

`prune DIR` deletes the blobs of a layout directory that no tag reaches (and stale temp
files); `prune HOST/REPO` deletes old tagged manifests through the registry API. `trim`
writes a smaller copy of one cache. Planning, `--dry-run`, confirmation (`--yes`; no
terminal and no `--yes` refuses destructive steps with exit 2) and output are shared with
the other write commands (`cli_ops.execute`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cachescope.core import (
    LayoutRef,
    Plan,
    RegistryHost,
    RegistryRef,
    open_store,
    parse_duration,
    parse_location,
    parse_reference,
    parse_size,
    plan_prune,
    plan_trim,
)
from cachescope.core.errors import Refused, UsageError
from cachescope.tui import textout
from cachescope.tui.cli_ops import destination, execute, open_pair


def register(sub: Any) -> None:
    p = sub.add_parser(
        "prune",
        help="delete blobs no tag reaches in a layout dir, or old tags in a registry repository",
        description="DIR: delete every blob of an OCI layout directory that no tag reaches, and temp files "
        "interrupted writes left; --keep-tags/--older-than drop tags first. HOST/REPO: delete old tagged "
        "manifests (--keep, --older-than, --tags); blob space returns after the registry's garbage "
        "collection. Exit 0 = done or nothing to do, 1 = could not plan or apply, 2 = bad usage or "
        "not confirmed, 3 = network/registry failure.",
    )
    p.add_argument("target", metavar="DIR|HOST/REPO", help="a layout directory (or oci:PATH) or a repository")
    p.add_argument(
        "--keep-tags",
        action="append",
        default=[],
        metavar="GLOB",
        help="DIR: drop tags matching none of these globs first (repeatable)",
    )
    p.add_argument(
        "--older-than",
        metavar="DURATION",
        help="drop tags whose cache or image is older than this (7d, 12h, 30m); unknown ages are kept",
    )
    p.add_argument("--keep", type=int, metavar="N", help="HOST/REPO: keep the N newest tags (of those --tags selects)")
    p.add_argument(
        "--tags",
        action="append",
        default=[],
        metavar="GLOB",
        help="HOST/REPO: only consider tags matching these globs (repeatable)",
    )
    _plan_options(p)
    p.set_defaults(func=run_prune)

    p = sub.add_parser(
        "trim",
        help="write a smaller cache: drop the oldest layers and the records that need them",
        description="Drop the oldest layers (by buildkit/createdat; a layer is dropped only when nothing "
        "left sits on it) and every result that needs them, keep the records the rest link to, renumber, "
        "and write the smaller cache to DEST (default: SRC, tag moved last). Remaining results keep their "
        "chains. The source is not modified.",
    )
    p.add_argument("src", metavar="SRC", help="the cache to read")
    p.add_argument("dest", metavar="DEST", nargs="?", help="where to write it (default: SRC, tag moved last)")
    p.add_argument(
        "--max-size", metavar="SIZE", help="stored size bound: layer blobs + config + wrapper (500MB, 1.5GiB)"
    )
    p.add_argument(
        "--keep-records-newer-than",
        metavar="DURATION",
        help="drop results created before this long ago (7d, 12h); the layers kept results need stay",
    )
    _plan_options(p)
    p.set_defaults(func=run_trim)


def _plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    p.add_argument("-y", "--yes", action="store_true", help="apply without asking, destructive steps included")
    p.add_argument("--json", action="store_true", help="print the plan or result as one JSON object")


async def run_prune(args: argparse.Namespace) -> int:
    location = parse_location(args.target, plain_http=args.plain_http)
    if isinstance(location, RegistryHost):
        raise UsageError(f"{args.target} is a registry; prune one repository (HOST/REPO)")
    if isinstance(location, LayoutRef) and (location.tag or location.digest):
        raise UsageError("prune works on the whole directory; choose tags with --keep-tags, not :TAG")
    if isinstance(location, RegistryRef) and (location.tag or location.digest):
        raise UsageError("prune works on the whole repository; choose tags with --tags, not :TAG")
    older_than = parse_duration(args.older_than) if args.older_than else None
    async with open_store(location) as store:
        plan = await plan_prune(store, keep_tags=args.keep_tags, older_than=older_than, keep=args.keep, tags=args.tags)
        refuse_without_terminal(plan, args)
        return await execute(plan, args, items="blobs" if isinstance(location, LayoutRef) else "manifests")


async def run_trim(args: argparse.Namespace) -> int:
    if args.max_size is None and args.keep_records_newer_than is None:
        raise UsageError("say how to trim: --max-size SIZE or --keep-records-newer-than DURATION")
    max_size = parse_size(args.max_size) if args.max_size is not None else None
    newer = parse_duration(args.keep_records_newer_than) if args.keep_records_newer_than else None
    src, spec = parse_reference(args.src, plain_http=args.plain_http)
    if spec is not None and spec.unknown:
        textout.warn(f"ignoring unknown {spec.type} cache option(s): {', '.join(spec.unknown)}")
    dest, tag = destination(src, args.dest, args.plain_http)
    async with open_pair(src, dest) as (src_store, dst_store):
        plan = await plan_trim(src_store, src.reference, dst_store, tag, max_size=max_size, keep_newer_than=newer)
        refuse_without_terminal(plan, args)
        return await execute(plan, args)


def refuse_without_terminal(plan: Plan, args: argparse.Namespace) -> None:
    """No terminal to ask and no --yes: refuse destructive plans with one short line (exit 2)."""
    if args.dry_run or args.yes or plan.is_empty or not plan.destructive or sys.stdin.isatty():
        return
    counts: dict[str, int] = {}
    for step in plan.steps:
        if step.destructive:
            counts[step.action] = counts.get(step.action, 0) + 1
    what = ", ".join(f"{n} {action.removeprefix('delete-')}(s)" for action, n in counts.items())
    freed = f" ({textout.size(plan.bytes_deleted)})" if plan.bytes_deleted else ""
    raise Refused(
        f"{plan.operation} would delete {what}{freed} in {plan.destination} and there is no terminal to confirm it",
        hint="review it with --dry-run, then pass --yes",
    )
