"""How fast the TUI shows a 10,000-record cache, next to `cachescope inspect --json` in the same run.

Generates a cache with 10,000 records (OCI layout dir), then times, each as the median of
several fresh processes (interpreter start included):

- the TUI, headless under Textual's Pilot, from process start until the cache view has
  rendered its header and the first rows of the layer table (the child prints a line
  then; the parent stops the clock when it reads it),
- `cachescope inspect --json` on the same cache.

Goals on the 2-core dev machine: TUI under 1.5 s, and under 2x inspect.

    python3 benchmarks/bench_tui.py [--records 10000] [--layers 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bytecode import ensure_bytecode  # noqa: E402
from benchmarks.gen_cache import generate_cache  # noqa: E402

# The child starts the TUI the way `cachescope REF` does (tui/cli.py `_run_tui`): the cache
# read starts before Textual is imported, then the app takes it over.
CHILD = """
import asyncio, sys
from cachescope.tui.cli import start_preload
preload = start_preload(sys.argv[1], fork=True)
from cachescope.tui.app import CachescopeApp

async def main(ref):
    app = CachescopeApp(ref, preload=preload)
    async with app.run_test(size=(120, 36)) as pilot:
        while True:
            screen = app.screen
            if type(screen).__name__ == "CacheScreen" and getattr(screen, "facts", None) is not None:
                table = screen.query_one("#layer-table")
                if table.row_count:
                    break
            await pilot.pause(0.005)
        rendered = asyncio.Event()
        app.call_after_refresh(rendered.set)  # the next refresh paints the header and the first rows
        await rendered.wait()
        print("rendered", table.row_count, flush=True)
        while screen.report is None or table.row_count < len(screen.report.layers):
            await pilot.pause(0.005)
        print("complete", table.row_count, flush=True)
    preload.close()

asyncio.run(main(sys.argv[1]))
"""


def _tui_times(ref: str) -> tuple[float, float]:
    """(first rendered cache view, every layer row in the table), from process start."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, ref], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    first = time.perf_counter() - start
    complete_line = proc.stdout.readline()
    complete = time.perf_counter() - start
    proc.wait(timeout=60)
    if not line.startswith("rendered") or not complete_line.startswith("complete"):
        raise SystemExit(f"the TUI did not render the cache view (exit {proc.returncode})")
    return first, complete


def _inspect_time(ref: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cachescope.tui.cli", "inspect", "--json", ref],
        capture_output=True,
        timeout=120,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1) or not proc.stdout.startswith(b"{"):  # 1: the cache has findings
        raise SystemExit(f"inspect failed: {proc.stderr.decode(errors='replace')}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ensure_bytecode()  # as `pip install .` leaves it
    with tempfile.TemporaryDirectory(prefix="cachescope-bench-tui-") as work:
        layout = Path(work) / "cache"
        generate_cache(layout, args.records, layers=args.layers)
        ref = f"oci:{layout}:latest"
        _tui_times(ref)  # warm the file cache and bytecode
        _inspect_time(ref)
        runs = [_tui_times(ref) for _ in range(args.runs)]
        tui = statistics.median(first for first, _ in runs)
        complete = statistics.median(last for _, last in runs)
        inspect = statistics.median(_inspect_time(ref) for _ in range(args.runs))
    ratio = tui / inspect if inspect else float("inf")
    print(f"cache: {args.records} records, {args.layers} layers (local OCI layout); median of {args.runs} runs")
    print(f"TUI first rendered cache view  {tui:6.3f} s   (goal < 1.5 s)  {'ok' if tui < 1.5 else 'SLOW'}")
    print(f"TUI every layer row in place   {complete:6.3f} s   (the app's own read, after the preview)")
    print(f"cachescope inspect --json      {inspect:6.3f} s")
    print(f"ratio TUI / inspect            {ratio:6.2f}x   (goal < 2x)    {'ok' if ratio < 2 else 'SLOW'}")


if __name__ == "__main__":
    main()
