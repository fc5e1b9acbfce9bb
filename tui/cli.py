"""The `cachescope` command: subcommands for scripts, the TUI when given no subcommand.

Textual is imported only when the TUI starts, so `--help`, `--version` and every
subcommand start fast. Every CachescopeError becomes one line on stderr and its
documented exit code; tracebacks only with --debug.

When the TUI opens a cache, the cache read starts before Textual is imported
(`start_preload`): in a thread, and for a local cache on Linux also in a forked child
whose preview the cache view paints first (tui/preview.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachescope.core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CachescopeError, InvalidReference
from cachescope.core.version import __version__

if TYPE_CHECKING:
    from concurrent.futures import Future

    from cachescope.core import CacheReport, LayoutRef, LoadedCache, Ref, RegistryHost, RegistryRef
    from cachescope.tui.preview import ForkedPreview

    Location = RegistryHost | RegistryRef | LayoutRef

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

# Subcommand plug-ins: each module has register(subparsers) and sets `func` on its parsers.
_PLUGINS = (
    "cachescope.tui.cli_inspect",
    "cachescope.tui.cli_diagnose",
    "cachescope.tui.cli_ops",
    "cachescope.tui.cli_prune",
)
# Commands that change nothing: a closed output pipe ends them quietly with success.
READ_ONLY_COMMANDS: frozenset[str] = frozenset({"inspect", "ls", "diagnose", "verify"})

# Which plug-in registers each command, so `cachescope inspect` imports only cli_inspect
# (diagnosis rules and the write side cost tens of milliseconds to import). A test keeps
# this table equal to what the plug-ins register.
COMMANDS: dict[str, str] = {
    "inspect": "cachescope.tui.cli_inspect",
    "ls": "cachescope.tui.cli_inspect",
    "diagnose": "cachescope.tui.cli_diagnose",
    "recompress": "cachescope.tui.cli_ops",
    "reexport": "cachescope.tui.cli_ops",
    "verify": "cachescope.tui.cli_ops",
    "prune": "cachescope.tui.cli_prune",
    "trim": "cachescope.tui.cli_prune",
}

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our usage code (2) and a one-line message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"cachescope: error: {message} (see {self.prog} --help)\n")


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--plain-http", action="store_true", help="talk HTTP, not HTTPS, to non-loopback registries")


def build_parser(plugins: Sequence[str] = _PLUGINS) -> tuple[argparse.ArgumentParser, set[str]]:
    parser = _Parser(
        prog="cachescope",
        description="Inspect, diagnose and repair BuildKit cache images. With no command, open the TUI.",
        epilog="References: HOST[:PORT]/REPO[:TAG|@DIGEST], oci:PATH[:TAG], a layout directory, "
        "or a pasted buildx string such as 'type=registry,ref=...'.",
    )
    parser.add_argument("--version", action="version", version=f"cachescope {__version__}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in plugins:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    for subparser in sub.choices.values():
        _global_options_if_missing(subparser)
    return parser, set(sub.choices)


def _global_options_if_missing(parser: argparse.ArgumentParser) -> None:
    """Let --debug/--plain-http also follow the subcommand (`cachescope inspect X --debug`)."""
    known = {a for action in parser._actions for a in action.option_strings}
    if "--debug" not in known:
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    if "--plain-http" not in known:
        parser.add_argument("--plain-http", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _tui_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cachescope", add_help=False)
    _global_options(parser)
    parser.add_argument("target", nargs="?")
    return parser


def _first_positional(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:
        print(f"cachescope {__version__}")  # fast path: nothing else imported
        return EXIT_OK
    first = _first_positional(args_list)
    parser, commands = build_parser((COMMANDS[first],) if first in COMMANDS else _PLUGINS)
    if (first is None and any(a in {"-h", "--help", "--version"} for a in args_list)) or first in commands:
        args = parser.parse_args(args_list)
        debug = getattr(args, "debug", False)
        handler: Handler | None = getattr(args, "func", None)
        if handler is None:
            parser.print_help()
            return EXIT_USAGE
        return _run(handler, args, debug=debug)
    positionals = [a for a in args_list if not a.startswith("-")]
    if len(positionals) > 1:
        parser.error(f"unknown command {first!r} (commands: {', '.join(sorted(COMMANDS))})")
    args = _tui_parser().parse_args(args_list)
    return _run_tui(args)


def _run(handler: Handler, args: argparse.Namespace, *, debug: bool) -> int:
    import asyncio

    try:
        return asyncio.run(handler(args))
    except CachescopeError as exc:
        if debug:
            raise
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cachescope: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        if getattr(args, "command", None) in READ_ONLY_COMMANDS:
            return EXIT_OK  # the reader went away (`cachescope ls ... | head`): not worth a message
        # A changing operation stopped midway (its progress went into the closed pipe): the
        # tag did not move, but the job is not done, and a script must not take it as done.
        with contextlib.suppress(OSError):
            print(
                f"cachescope: error: output closed while {args.command} ran; it stopped there"
                " (the source is unchanged; run it again to finish)",
                file=sys.stderr,
            )
        return EXIT_FAILED
    except Exception as exc:
        if debug:
            raise
        print(
            f"cachescope: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"
            " (run with --debug for a traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError):  # a stdout without a descriptor needs nothing
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


def _print_error(exc: CachescopeError) -> None:
    hint = f" ({exc.hint})" if exc.hint else ""
    print(f"cachescope: error: {exc}{hint}", file=sys.stderr)


# -- the TUI ---------------------------------------------------------------------------------


def normalize_target(target: str | None) -> str | None:
    """The TUI's target as the app opens it: blank means the bundled sample, `~` is expanded."""
    if target is not None and not target.strip():
        return None
    if target is not None and target.startswith("~"):
        return str(Path(target).expanduser())
    return target


def resolve_location(text: str, *, plain_http: bool = False) -> Location:
    """What the user typed, as something to open; buildx strings and refs with a tag open the cache."""
    from cachescope.core import parse_location, parse_reference

    stripped = text.strip()
    if stripped.startswith("type="):
        ref, _ = parse_reference(stripped, plain_http=plain_http)
        return ref
    return parse_location(stripped, plain_http=plain_http)


class CachePreload:
    """The first cache view's cache, read and analysed in a thread with its own event loop.

    The result (or the exception the read raised) is kept for the app, which awaits it
    instead of reading again, so errors reach the UI exactly as a read of its own would.

    With a `preview` (a forked reader, see tui/preview.py) the thread is not started at
    once: it would take turns with Textual's start. The cache view paints the preview
    first and then asks for the result, which starts the read.
    """

    def __init__(self, ref: Ref, *, preview: ForkedPreview | None = None) -> None:
        import concurrent.futures
        import threading

        self.ref = ref
        self.preview = preview
        self._future: Future[tuple[LoadedCache, CacheReport]] = concurrent.futures.Future()
        self._start_lock = threading.Lock()
        self._started = False
        if preview is None:
            self.start()

    def start(self) -> None:
        """Start the read (once); `result()` does it too."""
        import threading

        with self._start_lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="cachescope-preload", daemon=True).start()

    def _run(self) -> None:
        import asyncio

        from cachescope.core import analyze, read_cache

        if not self._future.set_running_or_notify_cancel():
            return  # nobody waits any more
        try:
            cache = asyncio.run(read_cache(self.ref))
            report = analyze(cache)
        except BaseException as exc:  # noqa: BLE001 - handed to the app, which raises it in its load worker
            self._future.set_exception(exc)
        else:
            self._future.set_result((cache, report))

    async def result(self) -> tuple[LoadedCache, CacheReport]:
        """The cache and its report once the thread is done; raises what the read raised."""
        import asyncio

        self.start()
        return await asyncio.wrap_future(self._future)

    def close(self) -> None:
        """Stop a forked reader that is still running (the app is leaving)."""
        if self.preview is not None:
            self.preview.stop()


def start_preload(target: str | None, *, plain_http: bool = False, fork: bool = False) -> CachePreload | None:
    """Start reading the cache the TUI will open first, if `target` names one (not a browser).

    `fork` (the `cachescope` command, before Textual is imported) also forks a reader for a
    local cache's preview where that is safe (tui/preview.py).
    """
    from cachescope.core import LayoutRef, RegistryRef

    target = normalize_target(target)
    if target is None:
        from cachescope.tui.sample import SAMPLE_CACHE

        return CachePreload(LayoutRef(SAMPLE_CACHE))
    try:
        location = resolve_location(target, plain_http=plain_http)
    except InvalidReference:
        return None  # the app reports it
    if isinstance(location, LayoutRef | RegistryRef) and (location.tag is not None or location.digest is not None):
        return CachePreload(location, preview=_forked_preview(location) if fork else None)
    return None


def _forked_preview(location: LayoutRef | RegistryRef) -> ForkedPreview | None:
    """Registries are left to the thread: their reads mostly wait on the network, which overlaps."""
    from cachescope.core import LayoutRef
    from cachescope.tui.preview import ForkedPreview

    return ForkedPreview.start(location) if isinstance(location, LayoutRef) else None


def _run_tui(args: argparse.Namespace) -> int:
    if not sys.stdout.isatty() and os.environ.get("CACHESCOPE_FORCE_TUI") != "1":
        print(
            "cachescope: error: the TUI needs a terminal; use a subcommand such as 'cachescope inspect REF' in scripts",
            file=sys.stderr,
        )
        return EXIT_USAGE
    preload = start_preload(args.target, plain_http=args.plain_http, fork=True)  # before Textual: overlaps its import
    try:
        try:
            run = importlib.import_module("cachescope.tui.app").run
        except ModuleNotFoundError as exc:  # pragma: no cover - packaging error
            print(f"cachescope: error: the TUI is not installed ({exc})", file=sys.stderr)
            return EXIT_INTERNAL
        status: int = run(args.target, plain_http=args.plain_http, preload=preload)
    except CachescopeError as exc:
        if args.debug:
            raise
        _print_error(exc)
        return exc.exit_code
    finally:
        if preload is not None:
            preload.close()  # a forked reader still running goes with the app
    return status


if __name__ == "__main__":
    sys.exit(main())
