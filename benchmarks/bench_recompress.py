"""How fast `cachescope recompress --compression zstd` converts a big gzip layer, against a shell pipeline.

Generates a local cache (OCI layout, image-manifest form) with one gzip layer of `--size`
uncompressed bytes (default 1 GiB), half random bytes and half text, inside a tar. Then, in
the same run, times (each the median of `--runs` fresh processes):

- `cachescope recompress SRC DEST --compression zstd --level 3 --yes` (layout -> new layout),
  with its peak RSS (`ru_maxrss` of the child),
- the baseline `gzip -dc BLOB | zstd -3 -T0 | sha256sum` on the same blob,
- the same recompress registry -> registry through a loopback docker-registry, against the
  baseline `curl BLOB-URL | gzip -dc | zstd -3 -T0 | sha256sum`,

and prints each ratio (baseline time / cachescope time; higher is better). Goals on the
2-core dev machine: at least 2x locally, 1.5x registry -> registry, peak RSS under 200 MB.

Needs `zstd`, `gzip`, `curl` and (for the registry part) Debian's docker-registry:
`apt-get install -y zstd curl docker-registry`.

    python3 benchmarks/bench_recompress.py [--size 1G] [--runs 3] [--no-registry]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK = 1024 * 1024
WORDS = [
    "cache",
    "layer",
    "blob",
    "digest",
    "manifest",
    "index",
    "config",
    "record",
    "result",
    "chain",
    "parent",
    "input",
    "selector",
    "build",
    "stage",
    "image",
    "registry",
    "tag",
    "push",
    "pull",
    "export",
    "import",
    "compression",
    "gzip",
    "zstd",
    "tar",
    "file",
    "directory",
    "root",
    "user",
    "group",
    "mode",
    "size",
    "time",
    "checksum",
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "with",
    "on",
    "that",
    "usr",
    "lib",
    "bin",
    "share",
    "include",
    "local",
    "etc",
    "var",
    "opt",
    "python",
    "go",
    "node",
    "java",
]


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


# -- the layer -------------------------------------------------------------------------------------


def _text_chunks(total: int, rng: random.Random) -> Iterator[bytes]:
    """Log-like lines of random words: compresses roughly like source code and text files."""
    lines = [f"{i:06d} " + " ".join(rng.choices(WORDS, k=rng.randint(4, 14))) + "\n" for i in range(20_000)]
    produced = 0
    while produced < total:
        chunk = "".join(rng.choices(lines, k=CHUNK // 60)).encode()[: total - produced]
        produced += len(chunk)
        yield chunk


def _random_chunks(total: int, rng: random.Random) -> Iterator[bytes]:
    produced = 0
    while produced < total:
        chunk = rng.randbytes(min(CHUNK, total - produced))
        produced += len(chunk)
        yield chunk


class _ChunkReader:
    """A file-like view of a chunk iterator, for tarfile.addfile."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


class _HashingGzipWriter:
    """Hashes the uncompressed tar (the diff ID) and writes it gzip-compressed through ISA-L."""

    def __init__(self, path: Path) -> None:
        from isal import isal_zlib

        self._fh = path.open("wb")
        self._z = isal_zlib.compressobj(2, isal_zlib.DEFLATED, 31)
        self.diff_id = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.diff_id.update(data)
        self.size += len(data)
        self._fh.write(self._z.compress(data))
        return len(data)

    def close(self) -> None:
        self._fh.write(self._z.flush())
        self._fh.close()


def write_layer(path: Path, size: int, seed: int = 1) -> tuple[str, int]:
    """A gzip tar layer with a random half and a text half; returns (diff ID, uncompressed size)."""
    rng = random.Random(seed)
    out = _HashingGzipWriter(path)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for name, chunks, n in (
            ("data/random.bin", _random_chunks, size // 2),
            ("data/text.log", _text_chunks, size - size // 2),
        ):
            info = tarfile.TarInfo(name)
            info.size = n
            info.mtime = 1_700_000_000
            tar.addfile(info, _ChunkReader(chunks(n, rng)))
    out.close()
    return "sha256:" + out.diff_id.hexdigest(), out.size


def _digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def generate_cache(root: Path, size: int) -> Path:
    """An OCI layout holding a one-layer cache (tag `latest`); returns the layer blob's path."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    tmp = blobs / "layer.tmp"
    diff_id, _ = write_layer(tmp, size)
    digest = _digest_file(tmp)
    layer = blobs / digest.removeprefix("sha256:")
    tmp.replace(layer)
    config = _json(
        {
            "layers": [{"blob": digest, "parent": -1}],
            "records": [
                {"digest": "sha256:" + hashlib.sha256(b"base").hexdigest()},
                {
                    "layers": [{"layer": 0, "createdAt": "2026-11-23T06:00:00Z"}],
                    "digest": "sha256:" + hashlib.sha256(b"step").hexdigest(),
                    "inputs": [[{"link": 0}]],
                },
            ],
        }
    )
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    (blobs / config_digest.removeprefix("sha256:")).write_bytes(config)
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CACHE_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [
                {
                    "mediaType": LAYER_GZIP,
                    "digest": digest,
                    "size": layer.stat().st_size,
                    "annotations": {
                        "buildkit/createdat": "2026-11-23T06:00:00Z",
                        "containerd.io/uncompressed": diff_id,
                    },
                }
            ],
        }
    )
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    (blobs / manifest_digest.removeprefix("sha256:")).write_bytes(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (root / "index.json").write_bytes(_json(index))
    return layer


# -- timing ----------------------------------------------------------------------------------------


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process; fails loudly on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr.strip()[-500:]}")
    return wall, usage.ru_maxrss * 1024


def median_run(make_cmd: object, runs: int, env: dict[str, str] | None = None) -> tuple[float, int]:
    walls: list[float] = []
    peak = 0
    for i in range(runs):
        cmd = make_cmd(i)  # type: ignore[operator]
        wall, rss = run_measured(cmd, env)
        walls.append(wall)
        peak = max(peak, rss)
    return statistics.median(walls), peak


def cachescope_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cachescope.tui.cli", *args]


def line(label: str, seconds: float, baseline: float, goal: float, rss: int | None = None) -> str:
    ratio = baseline / seconds
    mark = "ok" if ratio >= goal else "BELOW GOAL"
    extra = f", peak RSS {rss / 1e6:.0f} MB ({'ok' if rss < 200e6 else 'OVER 200 MB'})" if rss is not None else ""
    return (
        f"{label:<34} {seconds:7.2f} s   baseline {baseline:7.2f} s   ratio {ratio:4.2f}x (goal {goal}x: {mark}){extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="uncompressed layer size (e.g. 256M, 1G)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-registry", action="store_true")
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this directory")
    args = parser.parse_args()
    for tool in ("gzip", "zstd", "sha256sum") + (() if args.no_registry else ("curl",)):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y zstd curl")
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="bench-recompress-") as tmp:
        work = Path(tmp)
        src = args.keep or work / "src"
        if args.keep is None or not (src / "index.json").exists():
            started = time.perf_counter()
            layer = generate_cache(src, size)
            print(
                f"generated {size / 2**20:.0f} MiB layer ({layer.stat().st_size / 2**20:.0f} MiB gzip) "
                f"in {time.perf_counter() - started:.1f} s"
            )
        else:
            layer = max((src / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
        env = {**os.environ, "CACHESCOPE_CACHE_DIR": str(work / "user-cache")}

        def local_cmd(i: int) -> list[str]:
            shutil.rmtree(work / "user-cache", ignore_errors=True)  # no variant reuse between runs
            shutil.rmtree(work / f"dest{i}", ignore_errors=True)
            return cachescope_cmd(
                "recompress",
                f"oci:{src}:latest",
                f"oci:{work / f'dest{i}'}:zstd",
                "--compression",
                "zstd",
                "--level",
                "3",
                "--yes",
            )

        pipeline = f"gzip -dc {layer} | zstd -3 -T0 -c | sha256sum"
        base, _ = median_run(lambda _i: ["bash", "-o", "pipefail", "-c", pipeline], args.runs)
        ours, rss = median_run(local_cmd, args.runs, env)
        for i in range(args.runs):
            shutil.rmtree(work / f"dest{i}", ignore_errors=True)
        print(line("recompress zstd (layout -> layout)", ours, base, 2.0, rss))
        if not args.no_registry:
            print(registry_line(src, layer, work, args.runs, env))


def registry_line(src: Path, layer: Path, work: Path, runs: int, env: dict[str, str]) -> str:
    sys.path.insert(0, str(ROOT))
    from tests.registry_server import run_registry

    with run_registry(work / "registry") as reg:
        subprocess.run(
            cachescope_cmd("reexport", f"oci:{src}:latest", f"{reg.host}/bench/src:latest", "--yes"),
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        digest = "sha256:" + layer.name
        url = f"http://{reg.host}/v2/bench/src/blobs/{digest}"
        pipeline = f"curl -sf {url} | gzip -dc | zstd -3 -T0 -c | sha256sum"
        base, _ = median_run(lambda _i: ["bash", "-o", "pipefail", "-c", pipeline], runs)

        def cmd(i: int) -> list[str]:
            shutil.rmtree(work / "user-cache", ignore_errors=True)
            return cachescope_cmd(
                "recompress",
                f"{reg.host}/bench/src:latest",
                f"{reg.host}/bench/dst{i}:zstd",
                "--compression",
                "zstd",
                "--level",
                "3",
                "--yes",
            )

        ours, rss = median_run(cmd, runs, env)
    return line("recompress zstd (registry -> registry)", ours, base, 1.5, rss)


if __name__ == "__main__":
    main()
