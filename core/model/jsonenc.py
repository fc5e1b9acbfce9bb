"""JSON in and out the way Go's encoding/json does it, so re-encoded documents match BuildKit's bytes."""

from __future__ import annotations

import json
from typing import Any

from cachescope.core.errors import FormatError

_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_dumps(value: Any) -> bytes:
    """Compact JSON with Go's HTML-safe escaping and insertion-ordered keys."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if any(ch in text for ch in _GO_ESCAPES):
        for ch, esc in _GO_ESCAPES.items():
            text = text.replace(ch, esc)
    return text.encode()


def load_object(raw: bytes, what: str) -> dict[str, Any]:
    """Parse bytes that must hold one JSON object; anything else is a FormatError naming `what`."""
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not a JSON object")
    return value


def get_str(obj: dict[str, Any], key: str, what: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise FormatError(f"{what} has no {key!r}")
        return None
    if not isinstance(value, str):
        raise FormatError(f"{what}: {key!r} is not a string")
    return value


def get_int(obj: dict[str, Any], key: str, what: str, *, default: int | None = None) -> int:
    value = obj.get(key, default)
    if value is None:
        raise FormatError(f"{what} has no {key!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise FormatError(f"{what}: {key!r} is not an integer")
    return value


def get_list(obj: dict[str, Any], key: str, what: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise FormatError(f"{what}: {key!r} is not a list")
    return value


def get_str_map(obj: dict[str, Any], key: str, what: str) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise FormatError(f"{what}: {key!r} is not a map of strings")
    return dict(value)
