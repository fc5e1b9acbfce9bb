"""Operations: plan → confirm (destructive) → live progress → result, on one screen.

One worker plans, waits for the user's go, and applies, so the stores the plan was
made with stay open in one task and are closed however it ends. Esc while running
cancels that worker: core cleans its temporary files and never moved the tag, so the
source is left as it was.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import ContentSwitcher, DataTable, Input, Select, Static

from cachescope.core import CachescopeError, Ref
from cachescope.tui import ops_bridge
from cachescope.tui.messages import OpFinished, OpProgress, PlanReady
from cachescope.tui.modals.confirm_plan import ConfirmPlan
from cachescope.tui.ops_bridge import OperationRequest, PlannedOperation
from cachescope.tui.screens.base import BaseScreen, ErrorPanel
from cachescope.tui.widgets import humanized
from cachescope.tui.widgets.key_bar import KeyBar
from cachescope.tui.widgets.op_progress import OperationProgress

STEP_COLUMNS = (("action", "Action"), ("subject", "Subject"), ("size", "Size"), ("detail", "Detail"))


def start_operation(screen: BaseScreen, name: str, source: Ref, tag: str | None) -> None:
    """Open the plan screen for `name` on `source` (a cache, or a layout for prune)."""
    screen.app.push_screen(OperationScreen(OperationRequest(name, source, tag)))


SUBJECT_WIDTH = 32
"""Plan subjects wider than this (long references) keep their end, the tag, so details stay in view."""


def _short_subject(subject: str) -> str:
    if subject.startswith("sha256:"):
        return humanized.short_digest(subject, 16)
    if len(subject) > SUBJECT_WIDTH:
        return "\N{HORIZONTAL ELLIPSIS}" + subject[-(SUBJECT_WIDTH - 1) :]
    return subject


def _option_id(field: str) -> str:
    return "op-" + field.replace("_", "-")


class OperationScreen(BaseScreen):
    """States (a CSS class each): planning, planned, running, finished."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back/Cancel", tooltip="Cancel a running operation, else go back", id="back"),
        Binding("a", "apply", "Apply", tooltip="Apply the plan (asks first if it deletes or moves a tag)", id="apply"),
        Binding("r", "replan", "Re-plan", tooltip="Plan again with the current options", id="replan"),
    ]

    def __init__(self, request: OperationRequest) -> None:
        super().__init__()
        self.request = request
        self.planned: PlannedOperation | None = None
        self.state = "planning"
        self.changed = False
        self._go = asyncio.Event()
        self._approved = False

    @property
    def title_text(self) -> str:
        name = ops_bridge.OPERATIONS.get(self.request.operation, self.request.operation)
        where = self.request.source.with_tag(self.request.tag) if self.request.operation != "prune" else None
        return f"{name} · {where or self.request.source}"

    def compose(self) -> ComposeResult:
        yield Static(Content(self.title_text), id="op-title", classes="screen-title")
        yield Static(ops_bridge.OPERATION_HELP.get(self.request.operation, ""), id="op-help")
        with Horizontal(id="op-options"):
            if self.request.operation == "recompress":
                yield Static("to", classes="op-option-label")
                yield Select(
                    [(c, c) for c in ops_bridge.COMPRESSIONS],
                    value=self.request.compression,
                    allow_blank=False,
                    id="op-compression",
                )
            elif self.request.operation == "reexport":
                yield Static("to", classes="op-option-label")
                yield Input(
                    ops_bridge.default_destination(self.request.source, self.request.tag or "latest"),
                    placeholder="destination reference",
                    id="op-destination",
                )
                yield Select(
                    [(f, f) for f in ops_bridge.FORMS], value=self.request.form, allow_blank=False, id="op-form"
                )
            for option in ops_bridge.text_options(self.request):
                yield Static(option.label, classes="op-option-label")
                yield Input(
                    getattr(self.request, option.field),
                    placeholder=option.placeholder,
                    id=_option_id(option.field),
                    classes="op-text-option",
                )
        yield ErrorPanel(id="error-panel")
        with ContentSwitcher(initial="op-plan", id="op-switcher"):
            with Vertical(id="op-plan"):
                table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True, id="op-steps")
                for key, label in STEP_COLUMNS:
                    table.add_column(label, key=key)
                yield table
                yield Static("planning…", id="op-totals")
            yield OperationProgress(id="op-progress")
            yield Static("", id="op-result")
        yield KeyBar()

    def on_mount(self) -> None:
        self.sub_title = str(self.request.source)
        self.query_one(ErrorPanel).display = False
        if not self.query_one("#op-options").children:
            self.query_one("#op-options").display = False
        if self._wait_for_input(self.request):
            return
        self.set_state("planning")
        self.run_operation(self.request)

    def _wait_for_input(self, request: OperationRequest) -> bool:
        """Ask for what the operation cannot be planned without; True while it is missing."""
        missing = ops_bridge.missing_input(request)
        if missing is None:
            return False
        self.planned = None
        self.query_one("#op-steps", DataTable).clear()
        self.query_one("#op-totals", Static).update(Content.from_markup("[$text-warning]$m[/]", m=missing))
        self.set_state("finished")
        self.query(".op-text-option").first(Input).focus()
        return True

    def set_state(self, state: str) -> None:
        for name in ("planning", "planned", "running", "finished"):
            self.set_class(name == state, f"-{name}")
        self.state = state
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:  # noqa: ARG002
        if action == "apply":
            return self.state == "planned" and self.planned is not None and not self.planned.is_empty
        if action == "replan":
            return self.state in {"planned", "finished"}
        return True

    # -- the worker ----------------------------------------------------------------------------

    @work(exclusive=True, group="op", exit_on_error=False)
    async def run_operation(self, request: OperationRequest) -> None:
        self._go = asyncio.Event()
        self._approved = False
        try:
            planned = await ops_bridge.plan_operation(request)
        except CachescopeError as exc:
            self.post_message(OpFinished(request.operation, error=humanized.one_line(exc), planning=True))
            return
        try:
            self.post_message(PlanReady(planned))
            await self._go.wait()
            if not self._approved:
                return

            def report(event: Any) -> None:
                self.post_message(OpProgress(event))

            result = await planned.apply(report)
            self.post_message(OpFinished(request.operation, result=result))
        except asyncio.CancelledError:
            self.post_message(OpFinished(request.operation, cancelled=True))
            raise
        except CachescopeError as exc:
            self.post_message(OpFinished(request.operation, error=humanized.one_line(exc)))
        finally:
            await planned.close()

    # -- plan ------------------------------------------------------------------------------

    def on_plan_ready(self, message: PlanReady) -> None:
        planned: PlannedOperation = message.planned
        self.planned = planned
        self.clear_error()
        table = self.query_one("#op-steps", DataTable)
        table.clear()
        for number, step in enumerate(planned.steps):
            style = "bold red" if step.destructive else ("green" if step.action == "reuse-blob" else "")
            table.add_row(
                Text(step.action, style=style),
                _short_subject(step.subject),
                Text(humanized.size(step.size) if step.size else "", justify="right"),
                step.detail,
                key=str(number),
            )
        self.query_one("#op-totals", Static).update(self._totals(planned))
        self.query_one(ContentSwitcher).current = "op-plan"
        self.set_state("planned")
        table.focus()  # out of the options, so `a` applies instead of typing

    @staticmethod
    def _totals(planned: PlannedOperation) -> Content:
        plan = planned.plan
        parts = plan.totals(humanized.size) if hasattr(plan, "totals") else []
        lines = [Content.from_markup("[b]total[/b] $t", t=", ".join(parts) or "no data moves")]
        if planned.target:
            lines.append(Content.from_markup("[b]changes[/b] $t", t=planned.target))
        lines += [Content.from_markup("[dim]note: $n[/dim]", n=note) for note in plan.notes]
        if planned.is_empty:
            lines.append(Content.from_markup("[b $text-success]✔ nothing to do[/]"))
        elif planned.needs_confirmation:
            lines.append(Content.from_markup("[$text-warning]a applies (asks first: it deletes or moves a tag)[/]"))
        else:
            lines.append(Content.from_markup("[dim]a applies · Esc goes back[/dim]"))
        return Content("\n").join(lines)

    def action_apply(self) -> None:
        planned = self.planned
        if planned is None or self.state != "planned" or planned.is_empty:
            return
        if planned.needs_confirmation:
            self.app.push_screen(ConfirmPlan(self.title_text, self._confirm_lines(planned)), self._confirmed)
        else:
            self._confirmed(True)

    @staticmethod
    def _confirm_lines(planned: PlannedOperation) -> list[str]:
        plan = planned.plan
        lines: list[str] = []
        deletes = [s for s in planned.steps if s.destructive]
        if deletes:
            lines.append(f"deletes {len(deletes)} item(s), {humanized.size(plan.bytes_deleted)}:")
            lines += [f"  {s.action} {humanized.short_digest(s.subject, 16)}" for s in deletes[:8]]
            if len(deletes) > 8:
                lines.append(f"  … and {len(deletes) - 8} more")
        moves = [s for s in planned.steps if s.action in ops_bridge.TAG_ACTIONS]
        lines += [f"points {s.subject} at the new manifest (the old one stays until pruned)" for s in moves]
        lines.append("This cannot be undone from cachescope.")
        return lines

    def _confirmed(self, yes: bool | None) -> None:
        if not yes or self.planned is None:
            return
        self._approved = True
        progress = self.query_one(OperationProgress)
        self.query_one(ContentSwitcher).current = "op-progress"
        self.set_state("running")
        self.run_worker(progress.set_steps(self.planned.steps), group="op-ui", exit_on_error=False)
        self._go.set()

    # -- running ---------------------------------------------------------------------------

    def on_op_progress(self, message: OpProgress) -> None:
        self.query_one(OperationProgress).on_progress(message.event)

    def on_op_finished(self, message: OpFinished) -> None:
        result = self.query_one("#op-result", Static)
        if message.error is not None:
            self.show_error(message.error)
            if message.planning:
                totals = self.query_one("#op-totals", Static)
                totals.update(Content.from_markup("[$text-error]✖ $e[/]", e=message.error))
                self.set_state("finished")
                return
        if message.cancelled and self.state != "running":
            return
        self.query_one(OperationProgress).finish(
            "cancelled" if message.cancelled else ("failed" if message.error else "done")
        )
        result.update(self._result_text(message))
        self.query_one(ContentSwitcher).current = "op-result"
        self.changed = message.result is not None
        self.set_state("finished")
        if message.result is not None:
            self.notify(f"{self.request.operation} finished", title="Done")

    def _result_text(self, message: OpFinished) -> Content:
        if message.cancelled:
            return Content.from_markup(
                "[b $text-warning]▲ cancelled[/]\n\nThe source is unchanged: the tag was not moved and temporary "
                "files were removed. Blobs already written stay until pruned.\n\n[dim]Esc back · r plan again[/dim]"
            )
        if message.error is not None:
            return Content.from_markup(
                "[b $text-error]✖ failed[/]  $e\n\nThe tag was not moved.\n\n[dim]Esc back · r plan again[/dim]",
                e=message.error,
            )
        res = message.result
        lines = [Content.from_markup("[b $text-success]✔ $op finished[/]", op=str(getattr(res, "operation", "")))]
        destination = getattr(res, "destination", None)
        if destination:
            tag = getattr(res, "tag", None)
            lines.append(Content.from_markup("[b]destination[/b] $d", d=f"{destination}:{tag}" if tag else destination))
        manifest = getattr(res, "manifest", None)
        if manifest is not None:
            lines.append(Content.from_markup("[b]manifest[/b] $d", d=str(manifest.digest)))
        outcomes = getattr(res, "outcomes", {}) or {}
        if outcomes:
            lines.append(
                Content.from_markup("[b]outcomes[/b] $o", o=", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
            )
        if getattr(res, "bytes_written", 0):
            lines.append(Content.from_markup("[b]written[/b] $s", s=humanized.size(res.bytes_written)))
        if getattr(res, "bytes_freed", 0):
            lines.append(Content.from_markup("[b]freed[/b] $s", s=humanized.size(res.bytes_freed)))
        lines += [Content.from_markup("[dim]note: $n[/dim]", n=note) for note in getattr(res, "notes", ())]
        lines.append(Content.from_markup("\n[dim]Esc back (the view below reloads)[/dim]"))
        return Content("\n").join(lines)

    # -- options and navigation -----------------------------------------------------------

    def _current_request(self) -> OperationRequest:
        request = self.request
        if request.operation == "recompress":
            value = self.query_one("#op-compression", Select).value
            request = replace(request, compression=str(value))
        elif request.operation == "reexport":
            form = self.query_one("#op-form", Select).value
            request = replace(request, destination=self.query_one("#op-destination", Input).value, form=str(form))
        for option in ops_bridge.text_options(request):
            value = self.query_one(f"#{_option_id(option.field)}", Input).value
            request = replace(request, **{option.field: value})  # type: ignore[arg-type]  # typed fields are str
        return request

    @on(Select.Changed)
    @on(Input.Submitted, "#op-destination")
    @on(Input.Submitted, ".op-text-option")
    def _options_changed(self) -> None:
        if self.state in {"planned", "finished"}:
            self.action_replan()

    def action_replan(self) -> None:
        if self.state == "running":
            return
        self.request = self._current_request()
        self.planned = None
        self.clear_error()
        if self._wait_for_input(self.request):
            return
        self.query_one("#op-steps", DataTable).clear()
        self.query_one("#op-totals", Static).update("planning…")
        self.query_one(ContentSwitcher).current = "op-plan"
        self.set_state("planning")
        self.run_operation(self.request)

    def action_back(self) -> None:
        if self.state == "running":
            self.workers.cancel_group(self, "op")
            return
        changed = self.changed
        super().action_back()
        if changed:
            refresh = getattr(self.app.screen, "action_refresh", None)
            if callable(refresh):
                refresh()
