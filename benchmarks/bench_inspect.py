"""How fast `cachescope inspect --json` reads a large cache, against a baseline in the same run.

Generates a cache with 10,000 records and about 2,000 layers (image-manifest form), then times,
each as the median of several runs of a fresh process (interpreter start included):

- `cachescope inspect --json` from the local directory,
- the same through a real registry on a loopback port (Debian's docker-registry),
- `cachescope --version`,

and prints each next to the baseline: `json.loads` + sha256 of the same cache-config bytes,
timed in this process. Goals on the 2-core dev machine: local inspect under 0.5 s wall,
`--version` under 0.25 s.

    python3 benchmarks/bench_inspect.py [--records 10000] [--layers 2000] [--runs 5] [--no-registry]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
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


def _median_wall(cmd: list[str], runs: int) -> float:
    """Median wall time of `runs` fresh processes; the best run is printed too (less disturbed by load)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):  # 1 = error-level warnings (a 10k-record config is over 1 MiB)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    print(f"  ({' '.join(cmd[3:])}: best of {runs} {min(times) * 1000:.1f} ms)")
    return statistics.median(times)


def _baseline(config: bytes, runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        json.loads(config)
        hashlib.sha256(config).hexdigest()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _config_bytes(layout: Path) -> bytes:
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest).read_bytes())
    return (layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_bytes()


def _line(label: str, seconds: float, baseline: float, goal: float | None = None) -> str:
    verdict = ""
    if goal is not None:
        verdict = f"  goal < {goal:.2f} s: {'met' if seconds < goal else 'MISSED'}"
    return f"{label:<34} {seconds * 1000:8.1f} ms  {seconds / baseline:8.1f}x baseline{verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--layers", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-registry", action="store_true")
    args = parser.parse_args()
    ensure_bytecode()  # as `pip install .` leaves it
    cli = [sys.executable, "-m", "cachescope.tui.cli"]
    with tempfile.TemporaryDirectory(prefix="cachescope-bench-") as tmp:
        layout = generate_cache(Path(tmp) / "cache", records=args.records, layers=args.layers)
        config = _config_bytes(layout)
        layers = len(json.loads(config).get("layers", []))
        base = _baseline(config)
        print(f"cache: {args.records} records, {layers} layers, config {len(config) / 1e6:.2f} MB")
        print(f"{'baseline json.loads + sha256':<34} {base * 1000:8.1f} ms")
        print(_line("cachescope --version", _median_wall([*cli, "--version"], args.runs), base, 0.25))
        local = _median_wall([*cli, "inspect", "--json", f"oci:{layout}"], args.runs)
        print(_line("inspect --json (local dir)", local, base, 0.5))
        if not args.no_registry:
            print(_line("inspect --json (loopback registry)", _registry_time(layout, cli, args.runs, Path(tmp)), base))


def _registry_time(layout: Path, cli: list[str], runs: int, workdir: Path) -> float:
    from cachescope.core import RegistryRef, open_store
    from tests.registry_server import push_layout, run_registry

    with run_registry(workdir / "registry") as reg:
        ref = RegistryRef(reg.host, "bench/cache", "latest", plain_http=True)

        async def push() -> None:
            async with open_store(ref) as store:
                await push_layout(layout, store, "latest")  # type: ignore[arg-type]

        asyncio.run(push())
        return _median_wall([*cli, "inspect", "--json", str(ref)], runs)


if __name__ == "__main__":
    main()
