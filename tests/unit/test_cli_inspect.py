"""The CLI as a user meets it: real processes, exit codes, one-line errors, no Textual import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, fixture_dir
from tests.expectations import expected_for


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cachescope.tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_inspect_json_has_the_documented_shape() -> None:
    proc = run("inspect", "--json", str(fixture_dir("max-index")))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    expected = expected_for(FIXTURES["max-index"], "latest")
    assert doc["schema"] == "cachescope.inspect/v1"
    assert doc["store"] == "local"
    assert doc["form"] == "index"
    assert doc["mediatypes"] == "oci"
    assert doc["manifest_digest"] == expected["manifest_digest"]
    assert doc["config"] == {"digest": expected["config_digest"], "size": expected["config_size"]}
    assert [layer["digest"] for layer in doc["layers"]] == [x["digest"] for x in expected["layers"]]
    assert set(doc["layers"][0]) >= {"digest", "size", "media_type", "compression", "uncompressed_digest", "created_at"}
    assert set(doc["records"]) >= {"count", "roots", "leaves", "depth"}
    assert doc["records"]["count"] == 12
    assert doc["mode"]["value"] == "max"
    assert doc["mode"]["reason"]
    assert set(doc["size"]) == {"compressed", "uncompressed"}
    assert doc["warnings"] == []


def test_inspect_human_output_names_form_mode_and_layers() -> None:
    proc = run("inspect", f"oci:{fixture_dir('min-docker-zstd')}:latest")
    assert proc.returncode == 0, proc.stderr
    assert "docker-manifest-list" in proc.stdout
    assert "mode        min (inferred:" in proc.stdout
    assert "CS-ZSTD-DOCKER" in proc.stdout
    assert proc.stdout.count(" zstd ") >= 3


def test_deep_inspect_passes_on_genuine_output() -> None:
    proc = run("inspect", "--deep", "--json", str(fixture_dir("max-estargz")))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert all(layer["deep"]["uncompressed_digest"] == layer["uncompressed_digest"] for layer in doc["layers"])


def test_error_level_warnings_exit_1(copy_fixture) -> None:
    layout = copy_fixture("max-default")
    manifest = json.loads(
        (layout / "blobs/sha256/67b8cb3b3b8980fa77a2550c1e6d56ab378e31d5760e986b4ff4f2ab65f2667c").read_bytes()
    )
    (layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]).unlink()
    proc = run("inspect", "--json", str(layout))
    assert proc.returncode == 1
    assert "CS-BLOB-MISSING" in {w["code"] for w in json.loads(proc.stdout)["warnings"]}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("inspect", "NOT/valid"), 2, "invalid repository name"),
        (("inspect", "oci:/nonexistent/dir"), 2, "does not exist"),
        (("inspect", "type=gha,scope=x"), 2, "has no manifest to read"),
        (("inspect",), 2, "the following arguments are required"),
        (("frobnicate", "x"), 2, "unknown command 'frobnicate'"),
        (("some/ref",), 2, "needs a terminal"),
        (("inspect", "127.0.0.1:1/nothing/here:tag"), 3, "127.0.0.1:1"),
    ],
)
def test_bad_input_gets_one_line_and_the_documented_exit_code(args: tuple[str, ...], code: int, message: str) -> None:
    proc = run(*args)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert "Traceback" not in proc.stderr


def test_tampered_blob_exits_1_with_the_digest_named(copy_fixture) -> None:
    layout = copy_fixture("max-default")
    config = layout / "blobs/sha256/a914ce549b8d307d53eb8e48786efe42d8d426af77db7788282319add902cb62"
    data = bytearray(config.read_bytes())
    data[10] ^= 1
    config.write_bytes(bytes(data))
    proc = run("inspect", str(layout))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "cachescope: error: digest mismatch for blob "
        "sha256:a914ce549b8d307d53eb8e48786efe42d8d426af77db7788282319add902cb62: got "
        + proc.stderr.strip().rsplit("got ", 1)[1]
    )


def test_debug_shows_the_traceback() -> None:
    proc = run("inspect", "oci:/nonexistent/dir", "--debug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_ls_lists_tags_of_a_layout_with_form_and_digest() -> None:
    proc = run("ls", "--json", str(fixture_dir("multi-tag")))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [t["name"] for t in doc["tags"]] == ["main", "feature"]
    assert {t["form"] for t in doc["tags"]} == {"image-manifest"}
    assert doc["tags"][0]["digest"] == FIXTURES["multi-tag"]["expected"]["by_tag"]["main"]["manifest_digest"]


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("inspect", "--json", str(fixture_dir("max-default")))])
def test_commands_do_not_import_textual(args: tuple[str, ...]) -> None:
    code = (
        "import sys, runpy; sys.argv = ['cachescope', *sys.argv[1:]]\n"
        "from cachescope.tui.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "assert 'textual' not in sys.modules, 'textual imported'\n"
        "assert 'rich' not in sys.modules, 'rich imported'\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_version_comes_from_one_place() -> None:
    from cachescope.core.version import __version__

    assert run("--version").stdout.strip() == f"cachescope {__version__}"
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert 'version = {attr = "cachescope.core.version.__version__"}' in pyproject
