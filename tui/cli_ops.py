"""`cachescope recompress`, `reexport` and `verify`: the write side on the command line.

Every write is planned first (reads only). `--dry-run` prints the plan and stops. Otherwise
the plan is shown and applied: on a terminal after a yes/no question, with `--yes` at once,
and without a terminal and without `--yes` only if nothing in it is destructive (moving an
existing tag is). Progress goes to stderr; the result (text or `--json`) to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TextIO

from cachescope.core import (
    LayoutRef,
    OpResult,
    Plan,
    RecompressOptions,
    Ref,
    RegistryRef,
    VerifyReport,
    open_destination,
    open_store,
    parse_reference,
    plan_recompress,
    plan_reexport,
    verify_cache,
)
from cachescope.core.errors import EXIT_FAILED, EXIT_OK, Refused, UsageError
from cachescope.core.stores.base import Store
from cachescope.tui import textout
from cachescope.tui.progress_render import ProgressRenderer

COMPRESSIONS = ("zstd", "gzip", "uncompressed")
FORMS = ("index", "image-manifest")
MEDIATYPES = ("oci", "docker")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "recompress",
        help="rewrite layer blobs in another compression (records and diff IDs unchanged)",
        description="Decompress and recompress every layer blob not yet in the target compression, "
        "rewrite the cache config and wrapper (same form), then point DEST (default: SRC) at it.",
    )
    p.add_argument("src", metavar="SRC", help="the cache to read")
    p.add_argument("dest", metavar="DEST", nargs="?", help="where to write it (default: SRC, tag moved last)")
    p.add_argument("--compression", choices=COMPRESSIONS, default="zstd", help="target compression (default: zstd)")
    p.add_argument("--level", type=int, help="compression level (zstd 1-22, default 3; gzip 0-9)")
    p.add_argument("--threads", type=int, default=0, help="zstd worker threads (default 0: one per CPU)")
    p.add_argument("--force", action="store_true", help="also recompress blobs already in the target compression")
    p.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip decompressing each new blob to check it"
    )
    _plan_options(p)
    p.set_defaults(func=run_recompress)

    p = sub.add_parser(
        "reexport",
        help="copy a cache to another store, tag or wrapper form",
        description="Copy a cache between registries and layout directories, or convert its wrapper "
        "between the OCI index, OCI image manifest and Docker manifest list forms. Layer and config "
        "bytes are copied unchanged; image-manifest needs OCI media types (BuildKit's rule).",
    )
    p.add_argument("src", metavar="SRC", help="the cache to read")
    p.add_argument("dest", metavar="DEST", help="where to write it (registry reference or oci:PATH[:TAG])")
    p.add_argument("--form", choices=FORMS, help="wrapper form to write (default: keep the source's)")
    p.add_argument("--mediatypes", choices=MEDIATYPES, help="media-type family (docker means a Docker manifest list)")
    _plan_options(p)
    p.set_defaults(func=run_reexport)

    p = sub.add_parser(
        "verify",
        help="check that every blob of a cache is present and intact; exit 1 listing each failure",
    )
    p.add_argument("ref", metavar="REF", help="registry reference, oci:PATH[:TAG], layout dir or buildx cache string")
    p.add_argument("--deep", action="store_true", help="also decompress every layer and check its uncompressed digest")
    p.add_argument("--json", action="store_true", help="print one JSON object (cachescope.verify/v1)")
    p.set_defaults(func=run_verify)


def _plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    p.add_argument("-y", "--yes", action="store_true", help="apply without asking, destructive steps included")
    p.add_argument("--json", action="store_true", help="print the plan or result as one JSON object")


# -- references and stores -------------------------------------------------------------------


def _parse(text: str, plain_http: bool) -> Ref:
    ref, spec = parse_reference(text, plain_http=plain_http)
    if spec is not None and spec.unknown:
        textout.warn(f"ignoring unknown {spec.type} cache option(s): {', '.join(spec.unknown)}")
    return ref


def destination(src: Ref, dest_text: str | None, plain_http: bool) -> tuple[Ref, str]:
    """DEST and the tag to write: DEST's own tag, else SRC's, else `latest`; DEST defaults to SRC."""
    if dest_text is None:
        if src.tag is None and src.digest is not None:
            raise UsageError(f"{src} is pinned by digest; give a DEST with a tag to write to")
        return src, src.tag or "latest"
    dest = _parse(dest_text, plain_http)
    if dest.digest is not None:
        raise UsageError(f"cannot write to a digest ({dest}); give DEST a tag")
    return dest, dest.tag or src.tag or "latest"


def same_location(a: Ref, b: Ref) -> bool:
    if isinstance(a, LayoutRef) and isinstance(b, LayoutRef):
        return a.path.resolve() == b.path.resolve()
    if isinstance(a, RegistryRef) and isinstance(b, RegistryRef):
        return (a.host, a.repository) == (b.host, b.repository)
    return False


@asynccontextmanager
async def open_pair(src: Ref, dest: Ref) -> AsyncIterator[tuple[Store, Store]]:
    """The source store and the destination store (the same object when they are one place)."""
    async with AsyncExitStack() as stack:
        src_store = await stack.enter_async_context(open_store(src))
        if same_location(src, dest):
            yield src_store, src_store
            return
        dst_store = await stack.enter_async_context(open_destination(dest))
        yield src_store, dst_store


# -- plan, confirm, apply --------------------------------------------------------------------


def _ask(question: str, stdin: TextIO, stderr: TextIO) -> bool:
    stderr.write(question)
    stderr.flush()
    answer = stdin.readline()
    return answer.strip().lower() in {"y", "yes"}


async def confirm(plan: Plan, *, yes: bool, stdin: TextIO | None = None, stderr: TextIO | None = None) -> None:
    """Raise Refused unless the plan may be applied: `--yes`, a yes on a terminal, or nothing destructive.

    Shared by every plan-based command (recompress, reexport, prune, trim).
    """
    if yes:
        return
    stdin = stdin or sys.stdin
    stderr = stderr or sys.stderr
    if stdin.isatty():
        kind = "destructive " if plan.destructive else ""
        if await asyncio.to_thread(_ask, f"apply this {kind}plan? [y/N] ", stdin, stderr):
            return
        raise Refused(f"{plan.operation} not applied: not confirmed")
    if plan.destructive:
        moved = ", ".join(s.subject for s in plan.steps if s.destructive)
        raise Refused(
            f"{plan.operation} has destructive steps ({moved}) and there is no terminal to confirm them",
            hint="review it with --dry-run, then pass --yes",
        )


def render_plan(plan: Plan) -> str:
    return plan.render(size=textout.size)


def render_result(result: OpResult) -> str:
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(result.outcomes.items())) or "nothing to do"
    where = f"{result.destination}:{result.tag}" if result.tag else result.destination or ""
    digest = f" -> {result.manifest.digest}" if result.manifest else ""
    written = f"; wrote {textout.size(result.bytes_written)}" if result.bytes_written else ""
    freed = f"; freed {textout.size(result.bytes_freed)}" if result.bytes_freed else ""
    lines = [f"{result.operation}: done: {where}{digest} ({counts}{written}{freed})"]
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines)


async def execute(plan: Plan, args: argparse.Namespace, *, items: str = "layers") -> int:
    """Show the plan, stop there on --dry-run, else confirm, apply with progress and report."""
    if args.dry_run or plan.is_empty:
        if args.json:
            textout.print_json({**plan.to_json(), "dry_run": bool(args.dry_run)})
        else:
            print(render_plan(plan))
        return EXIT_OK
    if not args.json:
        print(render_plan(plan), flush=True)
    try:
        await confirm(plan, yes=args.yes)
    except Refused:
        if args.json:
            textout.print_json({**plan.to_json(), "dry_run": True, "refused": True})
        raise
    renderer = ProgressRenderer(sys.stderr, items=items)
    try:
        result = await plan.apply(on_progress=renderer)
    finally:
        renderer.close()
    if args.json:
        textout.print_json({**result.to_json(), "plan": plan.to_json()})
    else:
        print(render_result(result))
    return EXIT_OK


# -- commands --------------------------------------------------------------------------------


async def run_recompress(args: argparse.Namespace) -> int:
    options = RecompressOptions(
        args.compression, level=args.level, threads=args.threads, force=args.force, verify=args.verify
    )
    src = _parse(args.src, args.plain_http)
    dest, tag = destination(src, args.dest, args.plain_http)
    async with open_pair(src, dest) as (src_store, dst_store):
        plan = await plan_recompress(src_store, src.reference, dst_store, tag, options)
        return await execute(plan, args)


async def run_reexport(args: argparse.Namespace) -> int:
    src = _parse(args.src, args.plain_http)
    dest, tag = destination(src, args.dest, args.plain_http)
    async with open_pair(src, dest) as (src_store, dst_store):
        plan = await plan_reexport(src_store, src.reference, dst_store, tag, form=args.form, mediatypes=args.mediatypes)
        return await execute(plan, args, items="blobs")


def render_verify(report: VerifyReport) -> str:
    mode = "deep" if report.deep else "blobs"
    head = f"verify {report.source}: "
    checked = f"{report.blobs_checked} blob(s), {textout.size(report.bytes_checked)} read, {mode}"
    if report.ok:
        return head + f"ok ({checked})"
    lines = [head + f"{len(report.failures)} failure(s) ({checked})"]
    lines.extend(f"  {f.code}  {f.subject}  {f.message}" for f in report.failures)
    return "\n".join(lines)


async def run_verify(args: argparse.Namespace) -> int:
    ref = _parse(args.ref, args.plain_http)
    renderer = ProgressRenderer(sys.stderr, items="blobs", steps=False)
    async with open_store(ref) as store:
        try:
            report = await verify_cache(store, ref.reference, deep=args.deep, on_progress=renderer)
        finally:
            renderer.close()
    if args.json:
        textout.print_json(report.to_json())
    else:
        print(render_verify(report))
    return EXIT_OK if report.ok else EXIT_FAILED
