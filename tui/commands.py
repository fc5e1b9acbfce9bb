"""Command palette: every binding of the current screen, searchable by what it does."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ScreenCommands(Provider):
    """One command per active binding of the screen the palette was opened on."""

    def _commands(self) -> list[tuple[str, str, str]]:
        seen: set[str] = set()
        commands: list[tuple[str, str, str]] = []
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.action in seen or binding.action.startswith("command_palette"):
                continue
            if binding.action in {"cursor_up", "cursor_down", "scroll_up", "scroll_down"}:
                continue
            seen.add(binding.action)
            display = binding.key_display or self.app.get_key_display(binding)
            help_text = f"{binding.tooltip or binding.description} · key {display or key}"
            commands.append((binding.description, help_text, binding.action))
        return commands

    async def _run(self, action: str) -> None:
        await self.screen.run_action(action)

    async def discover(self) -> Hits:
        for title, help_text, action in self._commands():
            yield DiscoveryHit(title, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._commands():
            score = matcher.match(f"{title} {help_text}")
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, action), help=help_text)
