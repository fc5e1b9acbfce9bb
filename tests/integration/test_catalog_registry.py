"""Every genuine BuildKit fixture, pushed into a real registry, inspects to what catalog.json says."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cachescope.core import RegistryRef, inspect, list_tags, open_store
from cachescope.core.stores.registry import RegistryStore
from tests.conftest import CATALOG, FIXTURES, fixture_dir
from tests.expectations import assert_matches_catalog, expected_for
from tests.registry_server import RunningRegistry, push_layout

CASES = [(f["name"], tag) for f in CATALOG["fixtures"] for tag in f["tags"]]


async def _push(registry: RunningRegistry, name: str, tag: str) -> RegistryRef:
    ref = RegistryRef(registry.host, f"fixtures/{name}", tag, plain_http=True)
    async with open_store(ref) as store:
        assert isinstance(store, RegistryStore)
        await push_layout(fixture_dir(name), store, tag)
    return ref


@pytest.mark.integration
@pytest.mark.parametrize(("name", "tag"), CASES, ids=[f"{n}:{t}" for n, t in CASES])
async def test_fixture_inspects_as_catalogued_from_the_registry(registry: RunningRegistry, name: str, tag: str) -> None:
    fixture = next(f for f in CATALOG["fixtures"] if f["name"] == name)
    ref = await _push(registry, name, tag)
    report = await inspect(ref)
    assert report.store_kind == "registry"
    assert_matches_catalog(report, expected_for(fixture, tag))


@pytest.mark.integration
async def test_registry_dump_bodies_match_what_we_read(registry: RunningRegistry) -> None:
    """The manifests BuildKit pushed to a real registry are byte-identical to the local exports."""
    for export in CATALOG["registry_exports"]:
        local = export["byte_identical_to_local_fixtures"][0]
        ref = await _push(registry, local, export["tag"])
        report = await inspect(ref)
        assert str(report.manifest_digest) == export["manifest_digest"]
        assert report.manifest_media_type == export["manifest_media_type"]


@pytest.mark.integration
async def test_ls_and_cli_inspect_through_the_registry(registry: RunningRegistry) -> None:
    await _push(registry, "multi-tag", "main")
    ref = await _push(registry, "multi-tag", "feature")
    tags = await list_tags(ref.with_tag(None))
    assert sorted(t.name for t in tags) == ["feature", "main"]
    assert {t.form for t in tags} == {"image-manifest"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cachescope.tui.cli",
            "inspect",
            "--json",
            "--deep",
            f"{registry.host}/fixtures/multi-tag:feature",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["store"] == "registry"
    assert doc["manifest_digest"] == FIXTURES["multi-tag"]["expected"]["by_tag"]["feature"]["manifest_digest"]
    assert all(layer["deep"]["uncompressed_digest"] == layer["uncompressed_digest"] for layer in doc["layers"])
    proc = subprocess.run(
        [sys.executable, "-m", "cachescope.tui.cli", "ls", "--json", registry.host],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fixtures/multi-tag" in json.loads(proc.stdout)["repositories"]


@pytest.mark.integration
async def test_unknown_tag_in_the_registry_exits_3(registry: RunningRegistry) -> None:
    await _push(registry, "max-default", "latest")
    proc = subprocess.run(
        [sys.executable, "-m", "cachescope.tui.cli", "inspect", f"{registry.host}/fixtures/max-default:nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "nope" in proc.stderr
