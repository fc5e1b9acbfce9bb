"""Every genuine BuildKit fixture inspects to exactly what catalog.json says, read from its directory."""

from __future__ import annotations

import pytest

from cachescope.core import LayoutRef, inspect
from tests.conftest import CATALOG, fixture_dir
from tests.expectations import assert_matches_catalog, expected_for

CASES = [(f["name"], tag) for f in CATALOG["fixtures"] for tag in f["tags"]]


@pytest.mark.parametrize(("name", "tag"), CASES, ids=[f"{n}:{t}" for n, t in CASES])
async def test_fixture_inspects_as_catalogued(name: str, tag: str) -> None:
    fixture = next(f for f in CATALOG["fixtures"] if f["name"] == name)
    report = await inspect(LayoutRef(fixture_dir(name), tag))
    assert_matches_catalog(report, expected_for(fixture, tag))


@pytest.mark.parametrize("name", [f["name"] for f in CATALOG["fixtures"]])
async def test_deep_check_confirms_every_diff_id(name: str) -> None:
    fixture = next(f for f in CATALOG["fixtures"] if f["name"] == name)
    report = await inspect(LayoutRef(fixture_dir(name), fixture["tags"][0]), deep=True)
    assert report.deep
    for row in report.layers:
        assert row.deep is not None
        assert row.deep.error is None
        assert row.deep.uncompressed_digest == row.uncompressed_digest
        assert row.deep.detected_compression == row.compression
    assert not [w for w in report.warnings if w.code.startswith("CS-DEEP")]
    assert report.uncompressed_size is not None
    assert report.uncompressed_size >= sum(r.size or 0 for r in report.layers if r.compression == "uncompressed")


def test_min_after_max_is_indistinguishable_from_max() -> None:
    """The catalog marks this fixture's mode unobservable: it is byte-identical to max-default."""
    fixture = next(f for f in CATALOG["fixtures"] if f["name"] == "min-after-max")
    assert fixture["expected"]["mode_observable"] is False
    assert "max-default" in fixture["relations"]["byte_identical_manifest_with"]
