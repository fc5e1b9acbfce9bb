"""References the user opened recently, newest first, in $XDG_CONFIG_HOME/cachescope/recent.json.

A missing or unreadable file is an empty list; failing to save is never an error on
screen (the list is a convenience).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Final

MAX_RECENT: Final = 20


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "cachescope"


def recent_path() -> Path:
    return config_dir() / "recent.json"


def load_recent() -> list[str]:
    """The remembered references, newest first."""
    try:
        data = json.loads(recent_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = data.get("recent", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, str) and item.strip()][:MAX_RECENT]


def remember(reference: str) -> list[str]:
    """Put `reference` first (once) and save; returns the new list."""
    reference = reference.strip()
    items = [reference, *(item for item in load_recent() if item != reference)][:MAX_RECENT]
    path = recent_path()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".recent-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"recent": items}, handle, indent=2)
            Path(tmp).replace(path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return items
