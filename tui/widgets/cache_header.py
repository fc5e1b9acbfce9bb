"""The cache view's summary: what it is, how it was exported, how big, what is wrong."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from cachescope.core import CacheReport
from cachescope.tui.preview import HeaderFacts, header_facts
from cachescope.tui.widgets import humanized

FORM_NAMES = {
    "index": "OCI image index",
    "image-manifest": "image manifest",
    "docker-manifest-list": "Docker manifest list",
    "inline": "inline (image config)",
}


class CacheHeader(Vertical):
    """Four one-line rows (cut with an ellipsis, never wrapped): identity, shape, size and findings, mode."""

    def compose(self) -> ComposeResult:
        for number in range(4):
            yield Static(classes=f"header-line header-line-{number}")

    def _show(self, *lines: Content) -> None:
        rows = list(self.query(".header-line").results(Static))
        for row, line in zip(rows, [*lines, *([Content("")] * (len(rows) - len(lines)))], strict=False):
            row.update(line)

    def show_loading(self, source: str) -> None:
        self._show(Content.from_markup("[b]$source[/b]", source=source), Content.from_markup("[dim]reading…[/dim]"))

    def show_failed(self, source: str, message: str) -> None:
        self._show(
            Content.from_markup("[b]$source[/b]", source=source),
            Content.from_markup("[$text-error]✖ $message[/]", message=message),
        )

    def show_report(self, report: CacheReport) -> None:
        self.show_facts(header_facts(report))

    def show_facts(self, facts: HeaderFacts) -> None:
        """The header of a read cache, or of its preview (tui/preview.py): the same facts either way."""
        mix = " · ".join(
            f"{compression} {layers} ({humanized.size(size)})" for compression, layers, size in facts.compression_mix
        )
        parts = []
        if facts.errors:
            parts.append(f"[$text-error]✖ {facts.errors} error{'s' * (facts.errors != 1)}[/]")
        if facts.warnings:
            parts.append(f"[$text-warning]▲ {facts.warnings} warning{'s' * (facts.warnings != 1)}[/]")
        if facts.infos:
            parts.append(f"[$text-primary]● {facts.infos} info[/]")
        findings = " ".join(parts) if parts else "[$text-success]✔ no warnings[/]"
        mode_style = "$text-accent" if facts.mode != "unknown" else "dim"
        uncompressed = humanized.size(facts.uncompressed_size) if facts.uncompressed_size is not None else "?"
        platform = f" · {facts.platform}" if facts.platform else ""
        self._show(
            Content.from_markup(
                f"[b]$source[/b]  [dim]$digest[/dim]  {findings}",
                source=facts.source,
                digest=humanized.short_digest(facts.manifest_digest, 12),
            ),
            Content.from_markup(
                f"[b]form[/b] $form · $family media types{platform} · [b]$records[/b] records · "
                "[b]$layers[/b] layers ($blobs blobs)",
                form=FORM_NAMES.get(facts.form, facts.form),
                family="OCI" if facts.mediatypes == "oci" else "Docker",
                records=str(facts.records),
                layers=str(facts.layers),
                blobs=str(facts.unique_blobs),
            ),
            Content.from_markup(
                "[b]size[/b] $compressed compressed · $uncompressed uncompressed · [b]mix[/b] $mix",
                compressed=humanized.size(facts.compressed_size),
                uncompressed=uncompressed,
                mix=mix or "no layers",
            ),
            Content.from_markup(
                f"[b]mode[/b] [{mode_style}]$mode[/] [dim](inferred: $reason)[/dim]",
                mode=facts.mode,
                reason=facts.mode_reason,
            ),
        )
