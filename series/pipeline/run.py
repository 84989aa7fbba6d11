"""A Run: one run directory, one results.json (schema in docs/results.md), the
logs, the locks held for the run, and the progress display.

Every command that runs stages (apply, check, build, test, ci) makes one Run;
`results.json` is written only here, atomically, after every stage, so a killed
run leaves a readable partial result.  The derived reports (JUnit, patchwork
checks, Markdown, HTML) are written by `finish()`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..fsutil import atomic_write_json, atomic_write_text
from .progress import Progress
from .progress import of as progress_of
from .result import StageResult
from .status import Status, overall

if TYPE_CHECKING:
    from ..stacks.model import Revision, Stack
    from ..stages.apply import ApplyResult
    from ..stages.build import BuildDir, SeriesBuild
    from ..suites import TestPlan
    from ..trees import Tree
    from ..workspace import Workspace

SCHEMA_VERSION = 1
Say = Callable[[str], None]


@dataclass
class MailRequest:
    """`series mail`'s choices; `series ci` uses the defaults and its run directory."""

    to: list[str] | None = None
    cc: list[str] | None = None
    sender: str | None = None
    template: Path | None = None
    use_get_maintainer: bool = True
    output: Path | None = None      # None: <run dir>/mails
    force: bool = False


@dataclass
class Options:
    """What the command line asked for; each stage reads what concerns it."""

    onto: str | None = None
    tree: str | None = None
    per_patch: bool = True          # build after every patch (else the top only)
    build_base: bool = True         # build the base first (its warnings are the baseline)
    jobs: int | None = None
    strict: bool | None = None      # checkpatch --strict (None: the stack's setting)
    suites: list[str] | None = None      # None: series.toml's selection
    config: list[str] | None = None      # extra kconfig fragments (names or paths)
    boot_timeout_s: float = 600.0
    test_timeout_s: int = 300
    cmdline: str = ""
    accel: str | None = None
    rebuild: bool = False           # build even a commit whose result is recorded (else reported `cached`)
    build_only: list[int] | None = None  # build the base and these patches only (a shard of `series ci --emit`)
    cc: str = "gcc"                 # make's CC: e.g. "distcc gcc" (through ccache, with CCACHE_PREFIX, when installed)
    sandbox: bool = True            # make and the suites' compile run in bwrap (series/sandbox.py); --no-sandbox
    mail: MailRequest = field(default_factory=MailRequest)
    argv: list[str] = field(default_factory=list)


@dataclass
class State:
    """What stages hand to the stages that need them."""

    apply: ApplyResult | None = None
    check_report: dict[str, Any] | None = None
    build: SeriesBuild | None = None
    build_dir: BuildDir | None = None
    plan: TestPlan | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Run:
    def __init__(self, ws: Workspace, command: str, stack: Stack, rev: Revision, opts: Options, *,
                 tree: Tree | None = None, onto: str | None = None, out: Path | None = None,
                 say: Say | None = None) -> None:
        self.ws, self.command, self.stack, self.rev, self.opts = ws, command, stack, rev, opts
        self.tree, self.onto = tree, onto
        self.say: Say = say or (lambda _m: None)
        # bars and counts on a terminal (`progress.step(task, done, total, detail)`), else nothing
        self.progress: Progress = progress_of(say)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        self.dir = (out or ws.cache.run_dir(stamp, command, stack.name, rev.version)).resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stages: list[StageResult] = []
        self.selected: list[str] = []
        self.state = State()
        self.locks = contextlib.ExitStack()
        self.base_commit: str | None = None
        self.started = _now()
        self.finished: str | None = None
        self.error: str | None = None        # why the run stopped early, when it did
        self.report: dict[str, Any] | None = None
        self.stored: dict[str, Any] = {}     # results.json fields taken as stored (a run made by `from_results`)

    @classmethod
    def from_results(cls, ws: Workspace, stored: dict[str, Any], stages: list[StageResult], *, out: Path,
                     say: Say | None = None) -> "Run":
        """A Run made of stored stage results (`series ci --merge` of shards): its
        results.json is written here like any other, and `finish()` derives the
        same reports.  The revision's patches, the tree and the reproducer are
        taken as the shards stored them."""
        from ..errors import UserError
        from ..stacks.store import load_stack
        stack = load_stack(ws, str(stored["stack"]))
        version = int(stored["revision"])
        if not stack.has_revision(version):
            raise UserError(f"{stack.name} has no v{version} in this workspace's manifest")
        run = cls(ws, str(stored.get("command") or "ci"), stack, stack.revision(version),
                  Options(onto=stored.get("onto")), onto=stored.get("onto"), out=out, say=say)
        run.base_commit = stored.get("base_commit")
        run.stages = list(stages)
        run.selected = [str(s) for s in stored.get("selected") or []]
        run.started = str(stored.get("started") or run.started)
        run.stored = {k: stored[k] for k in ("tree", "expected", "missing", "patches", "reproduce") if k in stored}
        return run

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: object) -> None:
        """Always finish: the locks are released and results.json says how the run ended."""
        if e is not None:
            self.error = "interrupted" if isinstance(e, KeyboardInterrupt) else (str(e) or type(e).__name__)
        self.finish()

    # -- the run directory -----------------------------------------------------
    def path(self, *parts: str) -> Path:
        """A file or directory of this run (logs of a stage live in run.path(stage))."""
        return self.dir.joinpath(*parts)

    # -- results -----------------------------------------------------------------
    def result(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)

    def add(self, st: StageResult) -> None:
        self.stages.append(st)
        self.write()

    @property
    def status(self) -> Status:
        return Status.ERROR if self.error else overall(s.status for s in self.stages)

    def results(self) -> dict[str, Any]:
        """results.json, schema version 1 (docs/results.md)."""
        rev = self.rev
        patches = []
        for i in rev.indexes:
            p = rev.patch(i)
            patches.append({"index": i, "subject": p.subject if p else "", "message_id": p.message_id if p else None,
                            "imported": i in rev.present})
        return {
            "schema": SCHEMA_VERSION, "tool": "series", "tool_version": __version__, "command": self.command,
            "stack": self.stack.name, "title": self.stack.title, "revision": rev.version,
            "tree": self.tree.name if self.tree else None, "onto": self.onto, "base_commit": self.base_commit,
            "started": self.started, "finished": self.finished,
            "reproduce": f"series {self.command} " + " ".join(shlex.quote(a) for a in self.opts.argv),
            "expected": rev.expected, "missing": rev.missing, "patches": patches,
            "selected": self.selected, "run_dir": str(self.dir), "status": str(self.status), "error": self.error,
            "stages": [s.to_dict() for s in self.stages],
            **self.stored,
        }

    def write(self) -> None:
        atomic_write_json(self.dir / "results.json", self.results())

    def finish(self) -> dict[str, Any]:
        """The final results.json and the reports derived from it; releases the locks.
        Idempotent: a second call returns the first report."""
        if self.report is not None:
            return self.report
        from ..report.html import to_html
        from ..report.junit import to_junit
        from ..report.markdown import to_markdown
        from ..report.patchwork import to_checks
        self.locks.close()
        self.finished = _now()
        r = self.results()
        atomic_write_json(self.dir / "results.json", r)
        atomic_write_text(self.dir / "junit.xml", to_junit(r))
        atomic_write_json(self.dir / "patchwork-checks.json", to_checks(r, target_url=str(self.dir / "index.html")))
        atomic_write_text(self.dir / "summary.md", to_markdown(r))
        atomic_write_text(self.dir / "index.html", to_html(r))
        self.report = r
        return r


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
