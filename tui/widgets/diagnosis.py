"""The diagnose pane's choices: which registry to check against, detected from the host.

The rules themselves live in core; `ops_bridge` is the one place that calls them.
"""

from __future__ import annotations

from typing import Any

from cachescope.core import CacheReport, Ref
from cachescope.tui import ops_bridge

ANY_TARGET = ops_bridge.ANY_TARGET


def target_options() -> list[tuple[str, str]]:
    """(label, value) pairs for the target Select; the first is 'registry not known'."""
    options = [("registry not known (generic checks)", ANY_TARGET)]
    options += [(label, value) for value, label in ops_bridge.target_names().items()]
    return options


def detect(ref: Ref) -> str:
    """The target for the registry the cache lives in; ANY_TARGET for layouts or unknown hosts."""
    target = ops_bridge.detect(ref)
    values = {value for _, value in target_options()}
    return target if target is not None and target in values else ANY_TARGET


def findings(report: CacheReport, target: str) -> list[Any]:
    """Findings for `target`, errors first (pure CPU; callers run it off the event loop)."""
    return ops_bridge.diagnose(report, target)
