"""Plain-text output for the CLI: sizes, ages, aligned tables, colour only on a TTY.

Kept free of Textual and rich so subcommands start fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import humanize

_SEVERITY_COLOUR = {"error": "31", "warning": "33", "info": "36"}


def size(n: int | None) -> str:
    return "?" if n is None else humanize.naturalsize(n, binary=True, format="%.1f")


def age(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return "-"
    return humanize.naturaltime((now or datetime.now(UTC)) - when)


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def severity_label(severity: str, stream: TextIO | None = None) -> str:
    """Coloured for a terminal; the stream is looked up at call time (tests swap sys.stdout)."""
    stream = sys.stdout if stream is None else stream
    label = f"{severity:<7}"
    if use_colour(stream):
        return f"\x1b[{_SEVERITY_COLOUR.get(severity, '0')}m{label}\x1b[0m"
    return label


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; `right` lists right-aligned column numbers."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def print_json(value: Any) -> None:
    """Indented for a person at a terminal; compact (and several times faster) into a pipe or file."""
    if sys.stdout.isatty():
        print(json.dumps(value, indent=2, sort_keys=False))
    else:
        print(json.dumps(value, separators=(",", ":")))


def warn(message: str) -> None:
    print(f"cachescope: warning: {message}", file=sys.stderr)
