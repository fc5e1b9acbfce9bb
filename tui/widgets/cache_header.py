"""The cache view's summary: what it is, how it was exported, how big, what is wrong."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from cachescope.core import CacheReport
from cachescope.tui.widgets import humanized

FORM_NAMES = {
    "index": "OCI image index",
    "image-manifest": "image manifest",
    "docker-manifest-list": "Docker manifest list",
    "inline": "inline (image config)",
}


def severity_counts(report: CacheReport) -> dict[str, int]:
    counts = {"error": 0, "warning": 0, "info": 0}
    for warning in report.warnings:
        counts[warning.severity] += 1
    return counts


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
        mix = " · ".join(
            f"{share.compression} {share.layers} ({humanized.size(share.bytes)})" for share in report.compression_mix
        )
        counts = severity_counts(report)
        parts = []
        if counts["error"]:
            parts.append(f"[$text-error]✖ {counts['error']} error{'s' * (counts['error'] != 1)}[/]")
        if counts["warning"]:
            parts.append(f"[$text-warning]▲ {counts['warning']} warning{'s' * (counts['warning'] != 1)}[/]")
        if counts["info"]:
            parts.append(f"[$text-primary]● {counts['info']} info[/]")
        findings = " ".join(parts) if parts else "[$text-success]✔ no warnings[/]"
        mode_style = "$text-accent" if report.mode.value != "unknown" else "dim"
        uncompressed = humanized.size(report.uncompressed_size) if report.uncompressed_size is not None else "?"
        platform = f" · {report.platform}" if report.platform else ""
        self._show(
            Content.from_markup(
                f"[b]$source[/b]  [dim]$digest[/dim]  {findings}",
                source=report.source,
                digest=humanized.short_digest(report.manifest_digest, 12),
            ),
            Content.from_markup(
                f"[b]form[/b] $form · $family media types{platform} · [b]$records[/b] records · "
                "[b]$layers[/b] layers ($blobs blobs)",
                form=FORM_NAMES.get(report.form, report.form),
                family="OCI" if report.mediatypes == "oci" else "Docker",
                records=str(report.record_stats.count),
                layers=str(len(report.layers)),
                blobs=str(report.unique_blobs),
            ),
            Content.from_markup(
                "[b]size[/b] $compressed compressed · $uncompressed uncompressed · [b]mix[/b] $mix",
                compressed=humanized.size(report.compressed_size),
                uncompressed=uncompressed,
                mix=mix or "no layers",
            ),
            Content.from_markup(
                f"[b]mode[/b] [{mode_style}]$mode[/] [dim](inferred: $reason)[/dim]",
                mode=report.mode.value,
                reason=report.mode.reason,
            ),
        )
