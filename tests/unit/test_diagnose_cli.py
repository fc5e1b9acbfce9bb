"""`cachescope diagnose` as a CI step meets it: exit codes, --json, one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cachescope.tui.cli import main
from tests.conftest import FIXTURES, fixture_dir

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:cache"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cachescope.tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


def diagnose_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["diagnose", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def codes_of(doc: dict[str, Any]) -> list[str]:
    return [f["code"] for f in doc["findings"]]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((str(fixture_dir("max-index")), "--target", "ecr"), 1),  # CS-ECR-INDEX
        ((str(fixture_dir("max-image-manifest")), "--target", "ecr"), 0),  # only the CS-ECR-MOUNT info
        ((str(fixture_dir("max-index")), "--target", "ghcr"), 0),
        ((str(fixture_dir("max-index")),), 0),  # warning only: CS-INDEX-PORTABILITY
        ((str(fixture_dir("max-index")), "--strict"), 1),
        ((str(fixture_dir("max-image-manifest")), "--target", "ghcr", "--strict"), 0),  # infos never fail
        ((f"oci:{fixture_dir('max-docker')}:latest", "--target", "harbor"), 1),
        ((str(fixture_dir("max-image-manifest")), "--target", "ghcr", "--buildkit-version", "0.11"), 1),
        (("--cache-to", f"type=registry,ref={ECR},mode=max"), 0),
        (("--cache-to", f"type=registry,ref={ECR},mode=max,image-manifest=false"), 1),
        (("--cache-to", f"type=registry,ref={ECR},mode=max", "--buildkit-version", "v0.20.2"), 1),
        (("--cache-to", "type=local,dest=/tmp/c,image-manifest=true,oci-mediatypes=false"), 1),
        (("--cache-from", f"type=registry,ref={ECR}", "--buildkit-version", "v0.11"), 1),
        (("--cache-from", f"type=registry,ref={ECR}"), 0),
        (("--error", 'failed commit on ref "sha256:00": unexpected status: 404 Not Found', "--target", "harbor"), 1),
        (("--error", 'failed commit on ref "sha256:00": unexpected status: 400 Bad Request'), 0),
    ],
)
def test_exit_codes(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], code: int) -> None:
    got, doc = diagnose_json(capsys, *args)
    failing = [f["code"] for f in doc["findings"] if f["severity"] == "error"]
    assert got == code, doc["findings"]
    assert bool(failing) == (code == 1) or "--strict" in args


def test_json_for_an_existing_cache(capsys: pytest.CaptureFixture[str]) -> None:
    ref = f"oci:{fixture_dir('max-index')}:latest"
    code, doc = diagnose_json(capsys, ref, "--target", "ecr")
    assert code == 1
    assert doc["schema"] == "cachescope.diagnose/v1"
    assert (doc["ref"], doc["cache_to"], doc["cache_from"], doc["error_text"]) == (ref, None, None, None)
    assert (doc["target"], doc["target_detected_from"]) == ("ecr", "--target")
    assert doc["buildkit_version"] == "v0.32"
    assert doc["form"] == "index"
    assert doc["compatibility"]["verdict"] == "rejects"
    assert codes_of(doc) == ["CS-ECR-INDEX", "CS-ECR-MOUNT"]
    first = doc["findings"][0]
    assert first["severity"] == "error"
    assert FIXTURES["max-index"]["expected"]["manifest_digest"][7:19] in first["evidence"]
    assert first["fix"]["command"] == f"cachescope reexport {ref} DEST --form image-manifest"
    assert "image-manifest=true,oci-mediatypes=true" in first["fix"]["buildx"]
    assert doc["summary"] == {"errors": 1, "warnings": 0, "infos": 1}


def test_json_for_a_planned_cache_to(capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"type=registry,ref={ECR},mode=max,oci-mediatypes=false"
    code, doc = diagnose_json(capsys, "--cache-to", spec)
    assert code == 1
    assert (doc["ref"], doc["cache_to"], doc["cache_from"]) == (None, spec, None)
    assert doc["target"] == "ecr"
    assert doc["target_detected_from"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert doc["form"] == "docker-manifest-list"
    assert "CS-ECR-MLIST" in codes_of(doc)
    assert "CS-DOCKER-MEDIATYPES" in codes_of(doc)


def test_json_for_error_text_alone(capsys: pytest.CaptureFixture[str]) -> None:
    text = "unsupported media type application/vnd.buildkit.cacheconfig.v0"
    code, doc = diagnose_json(capsys, "--error", text)
    assert code == 0  # a warning: fails only with --strict
    assert diagnose_json(capsys, "--error", text, "--strict")[0] == 1
    assert doc["error_text"] == text
    assert doc["form"] is None
    assert doc["compatibility"] is None
    assert codes_of(doc) == ["CS-CACHE-IN-IMAGE-REPO"]
    assert doc["findings"][0]["severity"] == "warning"


def test_human_output_shows_evidence_fix_repair_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["diagnose", str(fixture_dir("max-docker-zstd")), "--target", "quay"])
    out = capsys.readouterr().out
    assert code == 1
    assert "target: quay = Quay (--target)" in out
    assert "form: docker-manifest-list; Quay rejects (confirmed)" in out
    assert "error    CS-QUAY-LIST" in out
    assert "evidence: wrapper application/vnd.docker.distribution.manifest.list.v2+json" in out
    assert "fix: --cache-to type=registry,ref=REF,mode=max,image-manifest=true,oci-mediatypes=true" in out
    assert "repair: cachescope reexport" in out
    assert "source: https://github.com/moby/buildkit/issues/1550" in out
    assert out.rstrip().endswith("1 error(s), 2 warning(s), 0 info(s)")


def test_scan_repo_finds_image_tags_in_a_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], copy_fixture
) -> None:
    layout = copy_fixture("multi-tag")
    code, doc = diagnose_json(capsys, f"oci:{layout}:main", "--target", "ghcr", "--scan-repo")
    assert "CS-CACHE-IN-IMAGE-REPO" not in codes_of(doc)  # two cache tags, no images
    _add_image_tag(layout, "v1.0")
    code, doc = diagnose_json(capsys, f"oci:{layout}:main", "--target", "ghcr", "--scan-repo", "--strict")
    found = [f for f in doc["findings"] if f["code"] == "CS-CACHE-IN-IMAGE-REPO"]
    assert len(found) == 1
    assert "v1.0" in found[0]["message"]
    assert code == 1


def _add_image_tag(layout: Path, tag: str) -> None:
    """Tag a minimal OCI image (empty config, no layers) in a layout, as an image next to the cache."""
    config = b"{}"
    config_digest = _put_blob(layout, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    index = json.loads((layout / "index.json").read_text())
    index["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _put_blob(layout, manifest),
            "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
    )
    (layout / "index.json").write_text(json.dumps(index))


def _put_blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def test_oversized_manifest_is_a_finding_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = tmp_path / "big"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": "sha256:" + "ab" * 32,
                "size": 5 * 1024 * 1024,
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    code, doc = diagnose_json(capsys, str(layout), "--target", "ghcr")
    assert code == 1
    assert codes_of(doc) == ["CS-MANIFEST-SIZE"]
    assert "5242880" in doc["findings"][0]["message"]
    assert doc["form"] is None


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("diagnose",), 2, "give one of REF, --cache-to SPEC or --cache-from SPEC"),
        (("diagnose", "x/y:z", "--cache-to", "type=registry,ref=a.example/b:c"), 2, "give one of REF"),
        (("diagnose", "--cache-to", "type=local,dest=d", "--cache-from", "type=local,src=d"), 2, "give one of REF"),
        (("diagnose", "x/y:z", "--target", "nosuch"), 2, "invalid choice: 'nosuch'"),
        (("diagnose", "--cache-to", "type=local,dest=d", "--buildkit-version", "latest"), 2, "invalid BuildKit"),
        (("diagnose", "NOT/valid"), 2, "invalid repository name"),
        (("diagnose", "oci:/nonexistent/dir"), 2, "does not exist"),
        (("diagnose", "--cache-to", "mode=max"), 2, "has no type="),
        (("diagnose", "--cache-to", "type=registry,ref=Bad Ref"), 2, "invalid reference"),
        (("diagnose", "--cache-to", "type=registry,oops"), 2, "is not key=value"),
        (("diagnose", "127.0.0.1:1/nothing/here:tag"), 3, "127.0.0.1:1"),
    ],
)
def test_bad_input_gets_one_line_and_the_documented_exit_code(args: tuple[str, ...], code: int, message: str) -> None:
    proc = run(*args)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert lines[0].startswith("cachescope: error: ")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_diagnose_runs_as_a_subprocess_with_json_on_stdout() -> None:
    proc = run("diagnose", "--json", "--target", "gcr", str(fixture_dir("max-zstd19-index")))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert codes_of(doc) == ["CS-GCR-INDEX", "CS-ZSTD"]  # legacy gcr.io rejects the index; zstd unknown


def test_diagnose_does_not_import_textual() -> None:
    code = (
        "import sys; from cachescope.tui.cli import main; "
        f"rc = main(['diagnose', '--json', {str(fixture_dir('max-index'))!r}]); "
        "assert 'textual' not in sys.modules, 'textual imported'; sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
