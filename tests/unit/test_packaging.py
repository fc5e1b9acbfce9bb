"""The explicit package list in pyproject.toml must match the source tree.

setuptools maps `core/` and `tui/` onto `cachescope.core`/`cachescope.tui` through
package-dir, so packages are listed by hand; a missing entry ships an install without
that subpackage, a stale one breaks `pip install` outright.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tree_packages() -> set[str]:
    found: set[str] = set()
    for top, name in (("core", "cachescope.core"), ("tui", "cachescope.tui")):
        for init in (ROOT / top).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join((name, *rel.parts)))
    return found


def test_pyproject_lists_exactly_the_source_packages() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    assert listed == _tree_packages()


def test_package_data_globs_match_files() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package, patterns in config["tool"]["setuptools"]["package-data"].items():
        top, _, rest = package.removeprefix("cachescope.").partition(".")
        base = ROOT / top / Path(*rest.split(".")) if rest else ROOT / top
        for pattern in patterns:
            assert list(base.glob(pattern)), f"{package}: {pattern} matches nothing"
