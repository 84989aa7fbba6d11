"""The progress display of a run.

Stages report in two ways: `say(msg)` for a plain line ("build: base, then
each patch"), and `step(task, done, total, detail)` for something that counts
(the objects a build compiled of those expected, the tests a boot has run).

- On a terminal (`Context.interactive`): one rich progress bar per task, with
  the count, the elapsed time and, when the total is known, an ETA; plain
  lines are printed above the bars.
- Otherwise (`--quiet`, `--json`, output to a file or a pipe): plain lines as
  before, nothing for `step`; kbuild's per-object lines and uffd-unit-tests'
  per-case lines are never printed one after another.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..context import Context

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichBars
    from rich.progress import TaskID

# kbuild's per-object lines and uffd-unit-tests' per-case lines: shown on a
# bar only, never printed one after another.
_FINE_RE = re.compile(r"^(building [^:]+: [A-Z][A-Z0-9_]* |Testing )")


class Progress:
    """Plain lines to `line` (None: silent); counts are not shown.  Callable as `say`."""

    shows_counts = False      # whether `step` is shown (a stage may skip working out totals)

    def __init__(self, line: Callable[[str], None] | None = None) -> None:
        self._line = line

    def __call__(self, msg: str) -> None:
        self.say(msg)

    def say(self, msg: str) -> None:
        if self._line is not None and not _FINE_RE.match(msg):
            self._line(msg)

    def step(self, task: str, done: int, total: int | None = None, detail: str = "") -> None:
        """`task` has done `done` of `total` (None: not known); `detail` is what it does now."""

    def end(self, task: str) -> None:
        """`task` is over (its bar is removed)."""


class RichProgress(Progress):
    """One bar per task on a terminal (rich)."""

    shows_counts = True

    def __init__(self, console: "Console") -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        super().__init__(None)
        self.console = console
        self.bars: RichBars = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description:<16}"), BarColumn(bar_width=30),
            TextColumn("{task.fields[count]:>11}"), TimeElapsedColumn(), _eta_column(),
            TextColumn("[dim]{task.fields[detail]}"),
            console=console, transient=False, refresh_per_second=4)
        self.tasks: dict[str, TaskID] = {}

    def start(self) -> None:
        self.bars.start()

    def stop(self) -> None:
        for name in list(self.tasks):
            self.end(name)
        self.bars.stop()

    def say(self, msg: str) -> None:
        if not _FINE_RE.match(msg):
            self.bars.console.print(msg, style="dim", markup=False, highlight=False, soft_wrap=True)

    def step(self, task: str, done: int, total: int | None = None, detail: str = "") -> None:
        if total is not None and done > total:
            total = done          # an estimate that fell short
        count = f"{done}/{total}" if total else f"{done}"
        fields: dict[str, Any] = {"count": count, "detail": detail[:60]}
        if task not in self.tasks:
            # one bar per stage: "build patch 2" replaces "build patch 1"
            stage = task.split()[0]
            for other in [t for t in self.tasks if t.split()[0] == stage]:
                self.end(other)
            self.tasks[task] = self.bars.add_task(task, total=total, completed=done, **fields)
        else:
            self.bars.update(self.tasks[task], total=total, completed=done, **fields)

    def end(self, task: str) -> None:
        """The bar goes away (what it did is said by the stage's plain lines)."""
        tid = self.tasks.pop(task, None)
        if tid is not None:
            self.bars.remove_task(tid)


def _eta_column() -> Any:
    """`eta 0:01:23` when the total is known, nothing otherwise."""
    from rich.progress import Task, TimeRemainingColumn
    from rich.text import Text

    class Eta(TimeRemainingColumn):
        def render(self, task: Task) -> Text:
            if not task.total or task.finished:
                return Text("")
            return Text("eta ") + super().render(task)
    return Eta()


@contextlib.contextmanager
def progress(ctx: Context) -> Iterator[Progress]:
    """The display for a command: bars on a terminal, plain lines otherwise."""
    if ctx.interactive:
        from rich.console import Console
        rp = RichProgress(Console(file=ctx.err))
        rp.start()
        try:
            yield rp
        finally:
            rp.stop()
    else:
        yield Progress(ctx.info)


def of(say: Callable[[str], None] | None) -> Progress:
    """The Progress behind a `say` callable (a plain one when it is not a Progress)."""
    if isinstance(say, Progress):
        return say
    return Progress(say)
