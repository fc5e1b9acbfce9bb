"""What the TUI's tables show before a cache is read must agree with what they show after."""

from __future__ import annotations

import pytest

from cachescope.tui.widgets import humanized
from tests.conftest import FIXTURES


@pytest.mark.parametrize("name", sorted(n for n, f in FIXTURES.items() if f["expected"]["form"] != "inline"))
def test_the_media_family_of_a_wrapper_is_the_one_its_report_names(name: str) -> None:
    expected = FIXTURES[name]["expected"]
    # The tags table shows this from the tag's descriptor, then "OCI"/"Docker" from the report.
    assert (
        humanized.media_family(expected["manifest_media_type"])
        == {"oci": "OCI", "docker": "Docker"}[expected["mediatypes"]]
    )


def test_a_neutral_or_missing_media_type_is_a_placeholder() -> None:
    assert humanized.media_family(None) == "…"
    assert humanized.media_family("application/octet-stream") == "…"
