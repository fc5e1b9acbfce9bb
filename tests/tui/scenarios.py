"""One scenario per screen, shared by the snapshot tests and `export_screenshots`.

Each scenario prepares its data in the current directory (relative references keep
machine paths out of the pictures), builds the app, and drives it to the state shown.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from textual.pilot import Pilot

from cachescope.tui.app import CachescopeApp
from cachescope.tui.sample import SAMPLE_CACHE
from tests.conftest import fixture_dir
from tests.tui.conftest import wait_until

SIZE = (100, 30)
REGISTRY_HOST = "registry.example.com"
"""The host the snapshot test's fake catalog answers for (see fake_repository_pages)."""
REGISTRY_CONTENT: dict[str, dict[str, str]] = {
    "team/api-cache": {"main": "max-default", "pr-1234": "max-zstd", "release": "max-index"},
    "team/web-cache": {"main": "max-docker", "feature": "min-default"},
    "team/worker-cache": {"latest": "mixed-after-conversions"},
    "tools/ci-cache": {"latest": "max-uncompressed"},
}
"""What `seed_registry` pushes to a real registry: repository -> tag -> fixture."""
REGISTRY_REPOSITORIES = sorted(REGISTRY_CONTENT)
TAGS_REPOSITORY = "team/api-cache"


def copy_layout(source: str, name: str, *, extra_blob: bool = False) -> str:
    """Copy the sample or a fixture to ./NAME (writable); returns `oci:NAME`."""
    origin = SAMPLE_CACHE if source == "sample" else fixture_dir(source)
    dest = Path(name)
    shutil.copytree(origin, dest)
    for path in dest.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    if extra_blob:
        data = b"an orphaned blob left behind by an earlier export\n" * 100
        (dest / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
    return f"oci:{name}"


async def until(pilot: Pilot[object], predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    """`wait_until`, then one more short pause so the picture has settled."""
    await wait_until(pilot, predicate, timeout)
    await pilot.pause(0.1)


def _screen(app: CachescopeApp) -> str:
    return type(app.screen).__name__


async def cache_ready(pilot: Pilot[object]) -> None:
    app = pilot.app
    await until(pilot, lambda: _screen(app) == "CacheScreen" and getattr(app.screen, "report", None) is not None)
    await app.workers.wait_for_complete()
    await pilot.pause(0.2)


async def tags_ready(pilot: Pilot[object]) -> None:
    app = pilot.app
    await until(
        pilot,
        lambda: (
            _screen(app) == "TagsScreen"
            and getattr(app.screen, "unreferenced", None) is not None
            and len(getattr(app.screen, "reports", {})) == len(getattr(app.screen, "tags", {})) > 0
        ),
    )
    await pilot.pause(0.2)


async def op_state(pilot: Pilot[object], state: str) -> None:
    app = pilot.app
    await until(pilot, lambda: _screen(app) == "OperationScreen" and getattr(app.screen, "state", "") == state)


Steps = Callable[[Pilot[object]], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    setup: Callable[[], str | None]
    steps: Steps
    size: tuple[int, int] = SIZE
    theme: str | None = None
    registry: bool = False
    """`setup` returns a target with `{registry}` for the host of a registry `seed_registry` filled."""
    snapshot: bool = True
    """False: a screenshot only (what it shows depends on a live registry's address)."""

    def app(self, registry_host: str = REGISTRY_HOST) -> CachescopeApp:
        target = self.setup()
        if self.registry and target is not None:
            target = target.format(registry=registry_host)
        return CachescopeApp(target, theme=self.theme)


async def seed_registry(host: str) -> None:
    """Push REGISTRY_CONTENT's fixtures to the real registry at `host` (as BuildKit would)."""
    from cachescope.core import RegistryRef, open_store
    from tests.registry_server import push_layout

    for repository, tags in REGISTRY_CONTENT.items():
        for tag, fixture in tags.items():
            async with open_store(RegistryRef(host, repository, tag, plain_http=True)) as store:
                await push_layout(fixture_dir(fixture), store, tag)


def _sample() -> str:
    return copy_layout("sample", "sample") + ":latest"


def _local() -> str:
    return copy_layout("multi-tag", "cache", extra_blob=True)


async def _open(pilot: Pilot[object]) -> None:
    await cache_ready(pilot)
    await pilot.press("o")
    field = pilot.app.screen.query_one("#ref-input")
    field.cursor_blink = False  # type: ignore[attr-defined]  # a blinking cursor differs between runs
    await pilot.pause(0.2)


async def _records(pilot: Pilot[object]) -> None:
    await cache_ready(pilot)
    await pilot.press("2", "l", "j")
    await pilot.pause(0.2)


async def _config(pilot: Pilot[object]) -> None:
    await cache_ready(pilot)
    await pilot.press("4")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


async def _diagnose(pilot: Pilot[object]) -> None:
    await cache_ready(pilot)
    await pilot.press("d")
    await until(pilot, lambda: bool(pilot.app.screen.query(".finding")))


async def _help(pilot: Pilot[object]) -> None:
    await cache_ready(pilot)
    await pilot.press("question_mark")
    await pilot.pause(0.2)


async def _prune_plan(pilot: Pilot[object]) -> None:
    await tags_ready(pilot)
    await pilot.press("p")
    await op_state(pilot, "planned")


async def _prune_confirm(pilot: Pilot[object]) -> None:
    await _prune_plan(pilot)
    await pilot.press("a")
    await until(pilot, lambda: _screen(pilot.app) == "ConfirmPlan")


async def _prune_result(pilot: Pilot[object]) -> None:
    await _prune_confirm(pilot)
    await pilot.press("y")
    await op_state(pilot, "finished")
    pilot.app.clear_notifications()
    await pilot.pause(0.2)


async def _recompress_plan(pilot: Pilot[object]) -> None:
    await cache_ready(pilot)
    await pilot.press("c")
    await op_state(pilot, "planned")


async def _registry(pilot: Pilot[object]) -> None:
    await until(pilot, lambda: _screen(pilot.app) == "RegistryScreen" and getattr(pilot.app.screen, "complete", False))


async def _registry_tags(pilot: Pilot[object]) -> None:
    """A repository's tags with every column filled in the background."""
    app = pilot.app
    await until(
        pilot,
        lambda: (
            _screen(app) == "TagsScreen"
            and len(getattr(app.screen, "reports", {})) + len(getattr(app.screen, "errors", {}))
            == len(getattr(app.screen, "tags", {}))
            > 0
        ),
    )
    await app.workers.wait_for_complete()
    await pilot.pause(0.2)


async def _error(pilot: Pilot[object]) -> None:
    await until(
        pilot,
        lambda: bool(pilot.app.screen.query("#error-panel")) and pilot.app.screen.query_one("#error-panel").display,
    )
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("cache-view", "Cache view: header, sortable layers, detail pane", _sample, cache_ready),
    Scenario("records-tree", "Records tree, first result expanded", _sample, _records),
    Scenario("config-json", "Raw cache config, highlighted", _sample, _config),
    Scenario("diagnose", "Diagnose pane with findings and fixes", _sample, _diagnose),
    Scenario("open", "Open screen: type a reference, recent list", _sample, _open),
    Scenario("help", "Help: every key of the cache view", _sample, _help),
    Scenario("local-browser", "Local directory: tags and reclaimable blobs", _local, tags_ready),
    Scenario("prune-plan", "Prune plan", _local, _prune_plan),
    Scenario("prune-confirm", "Confirmation before deleting", _local, _prune_confirm),
    Scenario("prune-result", "Result summary", _local, _prune_result),
    Scenario("recompress-plan", "Recompress plan with options", _sample, _recompress_plan),
    Scenario("registry-browser", "Registry catalog", lambda: "{registry}", _registry, registry=True),
    Scenario(
        "registry-tags",
        "A repository's tags, columns filled in the background",
        lambda: "{registry}/" + TAGS_REPOSITORY,
        _registry_tags,
        registry=True,
        snapshot=False,
    ),
    Scenario("error", "A cache that cannot be read: error panel", lambda: "oci:missing:latest", _error),
    Scenario("cache-view-80x24", "Cache view at 80x24", _sample, cache_ready, size=(80, 24)),
    Scenario("cache-view-light", "Cache view, light theme", _sample, cache_ready, theme="textual-light"),
)


async def fake_repository_pages(host: object, **_: object) -> AsyncIterator[list[str]]:
    """The catalog of REGISTRY_CONTENT without a registry: for the snapshot test only (see there)."""
    yield REGISTRY_REPOSITORIES[:2]
    yield REGISTRY_REPOSITORIES[2:]
