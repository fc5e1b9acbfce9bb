"""Compile cachescope's modules to bytecode before timing a fresh process.

`pip install .` writes bytecode for every module, so a user's `cachescope` never compiles
source at start. An editable (development) install has none until Python writes it, and
never with PYTHONDONTWRITEBYTECODE set; the timings would then include compiling cachescope's
own modules on every run, which no installed copy pays.
"""

from __future__ import annotations

import compileall
import importlib.util
from pathlib import Path


def ensure_bytecode() -> None:
    """Write `__pycache__` for both packages wherever they are imported from (idempotent)."""
    for package in ("cachescope.core", "cachescope.tui"):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"{package} is not installed")
        for location in spec.submodule_search_locations:
            compileall.compile_dir(Path(location), quiet=1)
