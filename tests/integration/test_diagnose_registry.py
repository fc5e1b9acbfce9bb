"""Diagnosing caches read back from a real registry (Debian docker-registry 2.8 on loopback)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from cachescope.core import LayoutRef, RegistryRef, inspect, open_store
from cachescope.core.diagnose import diagnose_report, exit_code
from cachescope.core.registry_rules import Target
from cachescope.core.stores.registry import RegistryStore
from tests.conftest import CATALOG, FIXTURES, fixture_dir
from tests.registry_server import RunningRegistry, push_layout
from tests.unit.test_diagnose import expected_codes

CASES = [(f["name"], tag) for f in CATALOG["fixtures"] for tag in f["tags"]]


async def _push(registry: RunningRegistry, repo: str, name: str, tag: str, as_tag: str | None = None) -> RegistryRef:
    """Push fixture `name`'s manifest tagged `tag` into `repo`, tagged `as_tag` (default: the same)."""
    layout = fixture_dir(name)
    index = json.loads((layout / "index.json").read_text())
    digest = next(
        e["digest"]
        for e in index["manifests"]
        if e.get("annotations", {}).get("org.opencontainers.image.ref.name", "latest") == tag
    )
    ref = RegistryRef(registry.host, repo, as_tag or tag, plain_http=True)
    async with open_store(ref) as store:
        assert isinstance(store, RegistryStore)
        await push_layout(layout, store, as_tag or tag, manifest_digest=digest)
    return ref


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cachescope.tui.cli", "diagnose", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.integration
@pytest.mark.parametrize(("name", "tag"), CASES, ids=[f"{n}:{t}" for n, t in CASES])
async def test_pushed_fixture_diagnoses_like_the_documented_rules(
    registry: RunningRegistry, repo_name: str, name: str, tag: str
) -> None:
    ref = await _push(registry, repo_name, name, tag)
    report = await inspect(ref)
    assert report.store_kind == "registry"
    assert all(row.present for row in report.layers)  # every blob was looked up in the registry
    local = await inspect(LayoutRef(fixture_dir(name), tag))
    targets: list[Target | None] = [None, "ecr", "quay", "distribution", "distribution3"]
    for target in targets:
        findings = diagnose_report(report, target)
        assert {f.code for f in findings} == expected_codes(FIXTURES[name], tag, target), target
        # Same cache, same verdict, wherever it is read from.
        assert [(f.code, f.severity) for f in findings] == [
            (f.code, f.severity) for f in diagnose_report(local, target)
        ]


@pytest.mark.integration
async def test_cli_diagnoses_a_registry_cache_and_names_it_in_the_fix(
    registry: RunningRegistry, repo_name: str
) -> None:
    await _push(registry, repo_name, "max-index", "latest", "cache")
    text = f"{registry.host}/{repo_name}:cache"
    proc = _cli("--json", "--target", "ecr", text)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ref"] == text
    assert doc["form"] == "index"
    first = doc["findings"][0]
    assert first["code"] == "CS-ECR-INDEX"
    assert first["fix"]["command"] == f"cachescope reexport {text} DEST --form image-manifest"
    assert f"ref={registry.host}/{repo_name}:cache,mode=max,image-manifest=true" in first["fix"]["buildx"]
    assert "CS-ECR-MOUNT" in [f["code"] for f in doc["findings"]]  # the image's repository is not known
    same = json.loads(_cli("--json", "--target", "ecr", "--image", f"{registry.host}/{repo_name}:v1", text).stdout)
    assert "CS-ECR-MOUNT" not in [f["code"] for f in same["findings"]]
    other = json.loads(_cli("--json", "--target", "ecr", "--image", f"{registry.host}/app:v1", text).stdout)
    assert "CS-ECR-MOUNT" in [f["code"] for f in other["findings"]]
    bad = _cli("--target", "ecr", "--image", "HTTP://bad ref::", text)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1  # one line, no traceback
    # auto: a loopback registry is not a product cachescope can name; it says so, and the
    # list form still gets the portability warning.
    proc = _cli("--json", text)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["target"], doc["target_detected_from"]) == (None, None)
    assert [f["code"] for f in doc["findings"]] == ["CS-INDEX-PORTABILITY", "CS-TARGET-UNDETECTED"]
    assert _cli("--strict", text).returncode == 1
    # The test registry is distribution 2.8, which accepts the index form.
    proc = _cli("--target", "distribution", "--strict", text)
    assert proc.returncode == 0, proc.stdout
    assert "no findings" in proc.stdout


@pytest.mark.integration
async def test_missing_blob_in_the_registry_is_an_error(registry: RunningRegistry, repo_name: str) -> None:
    ref = await _push(registry, repo_name, "max-image-manifest", "latest")
    layer = FIXTURES["max-image-manifest"]["expected"]["layers"][-1]["digest"]
    async with httpx.AsyncClient() as client:
        response = await client.delete(f"{registry.url}/v2/{repo_name}/blobs/{layer}")
    assert response.status_code == 202, response.text
    findings = diagnose_report(await inspect(ref), "ghcr")
    missing = [f for f in findings if f.code == "CS-BLOB-MISSING"]
    assert len(missing) == 1
    assert layer in missing[0].evidence
    assert exit_code(findings) == 1


@pytest.mark.integration
async def test_scan_repo_finds_an_image_next_to_the_cache(registry: RunningRegistry, repo_name: str) -> None:
    await _push(registry, repo_name, "max-default", "latest", "buildcache")
    await _push(registry, repo_name, "inline", "latest", "v1.2.3")  # an image (with inline cache)
    text = f"{registry.host}/{repo_name}:buildcache"
    proc = _cli("--json", "--target", "ghcr", text)
    assert "CS-CACHE-IN-IMAGE-REPO" not in proc.stdout  # not looked for without --scan-repo
    proc = _cli("--json", "--target", "ghcr", "--scan-repo", text)
    assert proc.returncode == 0, proc.stderr
    found = [f for f in json.loads(proc.stdout)["findings"] if f["code"] == "CS-CACHE-IN-IMAGE-REPO"]
    assert len(found) == 1
    assert "v1.2.3" in found[0]["message"]
    assert "buildcache" not in found[0]["message"]
