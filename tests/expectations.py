"""Compare an inspect report with what catalog.json says a fixture must decode to."""

from __future__ import annotations

from typing import Any

from cachescope.core import CacheReport


def expected_for(fixture: dict[str, Any], tag: str) -> dict[str, Any]:
    expected: dict[str, Any] = fixture["expected"]
    return expected.get("by_tag", {}).get(tag, expected)


def assert_matches_catalog(report: CacheReport, expected: dict[str, Any]) -> None:
    assert report.form == expected["form"]
    assert report.mediatypes == expected["mediatypes"]
    assert str(report.manifest_digest) == expected["manifest_digest"]
    assert report.manifest_media_type == expected["manifest_media_type"]
    if expected.get("config_digest") is None:
        assert report.config_digest is None
        assert str(report.image_config_digest) == expected["image_config_digest"]
    else:
        assert str(report.config_digest) == expected["config_digest"]
        assert report.config_size == expected["config_size"]
    got = [
        {
            "digest": str(row.digest),
            "size": row.size,
            "media_type": row.media_type,
            "compression": row.compression,
            "uncompressed_digest": str(row.uncompressed_digest),
        }
        for row in report.layers
    ]
    assert got == expected["layers"]
    assert len(report.layers) == expected["layer_count"]
    assert report.unique_blobs == expected["unique_layer_blobs"]
    assert report.record_stats.count == expected["record_count"]
    if expected.get("mode_observable", True):
        assert report.mode.value == expected["mode"], report.mode.reason
    # Genuine, untouched BuildKit output has nothing wrong at error level.
    assert not report.has_errors, report.warnings
    assert all(row.present for row in report.layers)
