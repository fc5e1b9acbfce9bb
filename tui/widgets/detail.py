"""The detail pane: everything known about the selected layer or record."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from cachescope.core import CacheReport, LayerRow, RecordRow
from cachescope.tui.widgets import humanized

DASH = "\N{EN DASH}"


def _field(name: str, value: object) -> Content:
    """`name: value`; long values (digests, media types) go on their own indented line."""
    text = str(value)
    if len(text) > 28:
        return Content.from_markup("[b]$name[/b]\n  $value", name=f"{name}:", value=text)
    return Content.from_markup("[b]$name[/b] $value", name=f"{name}:", value=text)


class DetailPane(Static):
    """Static text rebuilt on selection; long digests are shown in full here only."""

    def show_nothing(self) -> None:
        self.update(Content.from_markup("[dim]select a layer or record[/dim]"))

    def show_layer(self, row: LayerRow) -> None:
        lines = [
            Content.from_markup("[b $text-accent]layer $i[/]", i=str(row.index)),
            _field("digest", row.digest),
            _field("size", f"{humanized.size(row.size)} ({row.size} bytes)" if row.size is not None else "unknown"),
            _field("media type", row.media_type or "unknown"),
            _field("compression", row.compression or "unknown"),
            _field("uncompressed", row.uncompressed_digest or "unknown"),
            _field(
                "created", f"{row.created_at_raw} ({humanized.age(row.created_at)})" if row.created_at_raw else DASH
            ),
            _field("parent", "none (base layer)" if row.parent < 0 else f"layer {row.parent}"),
            _field("stored", {True: "yes", False: "MISSING from the store", None: "not checked"}[row.present]),
        ]
        if row.used_by:
            shown = ", ".join(f"#{i}" for i in row.used_by[:20])
            more = f" … (+{len(row.used_by) - 20})" if len(row.used_by) > 20 else ""
            lines.append(_field(f"used by {len(row.used_by)} record(s)", shown + more))
        else:
            lines.append(_field("used by", "no record (unreferenced entry)"))
        if row.deep is not None:
            lines.append(_field("deep check", row.deep.error or f"{row.deep.detected_compression}, diff ok"))
        known = {"containerd.io/uncompressed", "buildkit/createdat"}
        extra = {k: v for k, v in row.annotations.items() if k not in known}
        if extra:
            lines.append(Content.from_markup("[b]annotations:[/b]"))
            lines += [Content(f"  {k}={v}") for k, v in sorted(extra.items())]
        self.update(Content("\n").join(lines))

    def show_record(self, record: RecordRow, report: CacheReport) -> None:
        kind = "source (no inputs)" if record.is_root else ("final result" if record.is_leaf else "intermediate step")
        lines = [
            Content.from_markup("[b $text-accent]record $i[/]  [dim]$k[/dim]", i=str(record.index), k=kind),
            _field("digest", record.digest),
            _field("depth", record.depth),
            _field("created", humanized.age(record.created_at)),
        ]
        if record.inputs:
            lines.append(Content.from_markup("[b]inputs:[/b]"))
            for slot, alternatives in enumerate(record.inputs):
                for link, selector in alternatives:
                    sel = f"  selector {humanized.short_digest(selector)}" if selector else ""
                    lines.append(Content(f"  slot {slot}: #{link}{sel}"))
        if record.chains:
            for number, chain in enumerate(record.chains):
                total = sum(report.layers[i].size or 0 for i in chain if 0 <= i < len(report.layers))
                lines.append(
                    Content.from_markup(
                        "[b]result $n:[/b] $count layer(s), $size",
                        n=str(number),
                        count=str(len(chain)),
                        size=humanized.size(total),
                    )
                )
                for i in chain:
                    layer = report.layers[i] if 0 <= i < len(report.layers) else None
                    if layer is None:
                        lines.append(Content(f"  layer {i}: invalid index"))
                        continue
                    lines.append(
                        Content(
                            f"  {i:>4} {humanized.short_digest(layer.digest)} "
                            f"{humanized.size(layer.size):>10} {layer.compression or '?'}"
                        )
                    )
        elif not record.is_root:
            lines.append(Content.from_markup("[dim]no result: this step's layers were not exported[/dim]"))
        self.update(Content("\n").join(lines))
