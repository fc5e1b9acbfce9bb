"""A small genuine BuildKit cache (mode=max, mixed compression) the TUI opens when given no reference."""

from pathlib import Path

SAMPLE_CACHE = Path(__file__).parent / "cache"
