"""The recompress, reexport and verify commands: --dry-run, confirmation, --json, exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cachescope.core.errors import Refused
from cachescope.core.ops.plan import Plan, Step
from cachescope.core.ops.progress import Progress, StepDone
from cachescope.tui.cli_ops import confirm
from cachescope.tui.progress_render import ProgressRenderer, duration, status_line
from tests.unit.test_ops_local import tree_hash


def cli(*args: str, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CACHESCOPE_CACHE_DIR": str(cache_dir)}
    return subprocess.run(
        [sys.executable, "-m", "cachescope.tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,  # no terminal: the refusal path
        env=env,
    )


def test_dry_run_writes_nothing_and_prints_the_plan(copy_fixture: Any, tmp_path: Path) -> None:
    root = copy_fixture("max-default")
    before = tree_hash(root)
    proc = cli("recompress", str(root), "--dry-run", cache_dir=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    assert "move-tag" in proc.stdout
    assert "recompress" in proc.stdout
    assert tree_hash(root) == before
    proc = cli("reexport", str(root), f"oci:{tmp_path / 'new'}:x", "--dry-run", "--json", cache_dir=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["schema"] == "cachescope.plan/v1"
    assert plan["dry_run"] is True
    assert plan["steps"][-1]["action"] == "set-tag"
    assert not (tmp_path / "new").exists()


def test_moving_a_tag_without_a_terminal_needs_yes(copy_fixture: Any, tmp_path: Path) -> None:
    root = copy_fixture("max-default")
    before = tree_hash(root)
    proc = cli("recompress", str(root), "--compression", "zstd", cache_dir=tmp_path / "c")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("cachescope: error: recompress has destructive steps")
    assert "--yes" in proc.stderr
    assert tree_hash(root) == before  # refused before anything was written
    proc = cli("recompress", str(root), "--yes", "--json", cache_dir=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["schema"] == "cachescope.result/v1"
    assert result["outcomes"] == {"created": 8}
    assert result["plan"]["destructive"] is True
    proc = cli("verify", str(root), "--deep", "--json", cache_dir=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert report["failures"] == []
    assert report["deep"] is True


def test_writing_a_new_tag_needs_no_confirmation(tmp_path: Path) -> None:
    from tests.conftest import fixture_dir

    dest = tmp_path / "out"
    proc = cli(
        "reexport", str(fixture_dir("max-index")), f"oci:{dest}:copy", "--form", "image-manifest", cache_dir=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "reexport: done" in proc.stdout
    assert (dest / "oci-layout").is_file()
    proc = cli("verify", f"oci:{dest}:copy", cache_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert ": ok (" in proc.stdout


def test_verify_exits_1_listing_each_failure(copy_fixture: Any, tmp_path: Path) -> None:
    root = copy_fixture("max-default")
    blobs = sorted((root / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size, reverse=True)
    blobs[0].unlink()
    blobs[1].write_bytes(b"not the blob")
    proc = cli("verify", str(root), cache_dir=tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert "2 failure(s)" in lines[0]
    assert {line.split()[0] for line in lines[1:]} == {"CS-BLOB-MISSING", "CS-BLOB-CORRUPT"}
    proc = cli("verify", str(root), "--json", cache_dir=tmp_path)
    assert proc.returncode == 1
    assert len(json.loads(proc.stdout)["failures"]) == 2


def test_bad_usage_exits_2_with_one_line(tmp_path: Path) -> None:
    from tests.conftest import fixture_dir

    src = str(fixture_dir("max-index"))
    proc = cli(
        "reexport",
        src,
        f"oci:{tmp_path / 'o'}",
        "--form",
        "image-manifest",
        "--mediatypes",
        "docker",
        cache_dir=tmp_path,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "OCI mediatypes are required for image-manifest" in proc.stderr
    proc = cli("recompress", src, "--compression", "zstd", "--level", "40", cache_dir=tmp_path)
    assert proc.returncode == 2
    assert "1-22" in proc.stderr
    proc = cli("recompress", f"oci:{src}@sha256:{'a' * 64}", cache_dir=tmp_path)
    assert proc.returncode == 2
    assert "pinned by digest" in proc.stderr


# -- confirmation and progress, in process --------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _plan(*actions: str) -> Plan:
    return Plan("recompress", "src", "dst", tuple(Step(a, f"s{i}") for i, a in enumerate(actions)))  # type: ignore[arg-type]


async def test_confirm_asks_on_a_terminal() -> None:
    err = io.StringIO()
    await confirm(_plan("move-tag"), yes=False, stdin=FakeTerminal("y\n"), stderr=err)
    assert "destructive" in err.getvalue()
    with pytest.raises(Refused, match="not confirmed"):
        await confirm(_plan("set-tag"), yes=False, stdin=FakeTerminal("\n"), stderr=io.StringIO())


async def test_confirm_without_a_terminal() -> None:
    await confirm(_plan("copy-blob", "set-tag"), yes=False, stdin=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(Refused, match="no terminal"):
        await confirm(_plan("move-tag"), yes=False, stdin=io.StringIO(), stderr=io.StringIO())
    await confirm(_plan("move-tag"), yes=True, stdin=io.StringIO(), stderr=io.StringIO())


def _progress(done: int, total: int, elapsed: float, phase: str = "blobs") -> Progress:
    return Progress("recompress", phase, "recompressing layers", done, total, 1, 4, elapsed)  # type: ignore[arg-type]


def test_status_line_shows_bytes_layers_rate_and_eta() -> None:
    line = status_line(_progress(50 * 1024 * 1024, 100 * 1024 * 1024, 2.0))
    assert "50%" in line
    assert "1/4 layers" in line
    assert "25.0 MiB/s" in line
    assert "ETA 2s" in line
    assert duration(125) == "2m05s"


def test_renderer_redraws_one_line_on_a_terminal_and_prints_lines_elsewhere() -> None:
    tty = FakeTerminal()
    clock = iter([0.0, 0.01, 0.02])
    renderer = ProgressRenderer(tty, clock=lambda: next(clock))
    renderer(_progress(1, 10, 0.1))
    renderer(_progress(2, 10, 0.2))  # too soon: not drawn
    renderer(StepDone("recompress", "recompress", "sha256:x", "created", 5))
    renderer(_progress(10, 10, 1.0))
    renderer.close()
    out = tty.getvalue()
    assert out.count("\r") == 2  # the first, then the skipped last state on close
    assert "100%" in out.splitlines()[-1]
    assert out.endswith("\n")
    assert "sha256:x" not in out
    plain = io.StringIO()
    renderer = ProgressRenderer(plain, interactive=False)
    renderer(_progress(1, 10, 0.1))
    renderer(_progress(2, 10, 0.2))
    renderer(StepDone("recompress", "recompress", "sha256:x", "created", 5))
    renderer(_progress(3, 10, 0.3, phase="manifest"))
    renderer.close()
    assert plain.getvalue().splitlines() == [
        "recompress: recompressing layers",
        "recompress: recompress sha256:x created (5 Bytes)",
        "recompress: recompressing layers",
    ]
