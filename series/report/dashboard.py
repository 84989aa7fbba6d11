"""The dashboard across stored runs (`series report`): static HTML, jinja2, autoescaped.

Input: every run directory's `results.json` (docs/results.md).  Output, in one
directory that can be copied or served anywhere (every link is relative):

    DIR/index.html                 the dashboard
    DIR/runs/<run>/index.html      each run's page (re-rendered), with its logs
    DIR/runs/<run>/...             the run's text files (logs, reports); kernels,
                                   initramfs and test binaries are left out

The dashboard has, per stack:
- the grid: one row per revision (its latest run), one column per stage
  (apply, checkpatch, hygiene, build of the base and of each patch, each test
  suite, mail), each cell coloured by status and linking to the run's page;
- what changed from one revision to the next: the range-diff pairing
  (series.stacks.lineage, when the stack is in the workspace), checkpatch
  findings new and fixed, tests newly failing and fixed, build warnings new
  and fixed;
- every run, and a per-test history: each test's status across the runs, and
  where it started failing.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from ..fsutil import atomic_write_text
from ..pipeline.status import overall, status_of, worst
from .html import to_html

if TYPE_CHECKING:
    from ..workspace import Workspace

FIXED_STAGES = ("apply", "checkpatch", "hygiene")
MAX_COPY_BYTES = 2 * 1024 * 1024
SKIP_NAMES = {"bzImage", "initramfs.cpio"}
_LINE_RE = re.compile(r":\d+(:\d+)?:")


@dataclass
class RunRec:
    dir: Path
    r: dict[str, Any]
    slug: str = ""       # its directory under DIR/runs/ (the run directory's name, made unique)

    @property
    def name(self) -> str:
        return self.slug or self.dir.name

    @property
    def stack(self) -> str:
        return str(self.r.get("stack") or "?")

    @property
    def revision(self) -> int:
        try:
            return int(self.r.get("revision") or 0)
        except (TypeError, ValueError):
            return 0

    @property
    def started(self) -> str:
        return str(self.r.get("started") or "")

    @property
    def href(self) -> str:
        return f"runs/{self.name}/index.html"

    def stage(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.r.get("stages", []) if s.get("name") == name), None)

    def ran(self, name: str) -> bool:
        s = self.stage(name)
        return s is not None and s.get("status") != "skip"


@dataclass
class Cell:
    status: str          # a status, or "" (not run)
    text: str
    title: str
    href: str


@dataclass
class Column:
    key: str             # apply | checkpatch | hygiene | build:<i> | suite:<name> | mail
    label: str


@dataclass
class StackView:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]                  # {"run": RunRec, "cells": [Cell]}
    changes: list[dict[str, Any]] = field(default_factory=list)
    runs: list[RunRec] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)           # a test that did not always pass
    tests_passing: list[dict[str, Any]] = field(default_factory=list)   # passed in every run that ran it


# -- reading runs -------------------------------------------------------------------
def find_runs(roots: Iterable[Path]) -> tuple[list[RunRec], list[str]]:
    """Every readable results.json directly in a root or one or two levels below it."""
    out: dict[Path, RunRec] = {}
    problems: list[str] = []
    for root in roots:
        if not root.is_dir():
            continue
        for f in sorted([*root.glob("results.json"), *root.glob("*/results.json"), *root.glob("*/*/results.json")]):
            d = f.parent.resolve()
            if d in out:
                continue
            try:
                r = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                problems.append(f"{f}: unreadable ({e})")
                continue
            if not isinstance(r, dict) or r.get("schema") != 1 or not isinstance(r.get("stages"), list):
                problems.append(f"{f}: not a results.json of schema 1")
                continue
            out[d] = RunRec(d, r)
    return sorted(out.values(), key=lambda x: (x.stack, x.revision, x.started, x.name)), problems


# -- the grid ---------------------------------------------------------------------------
def suites_of(run: RunRec) -> list[str]:
    t = run.stage("test")
    if t is None:
        return []
    names = [str(i.get("name", "")).split("/")[0] for i in t.get("items", []) if i.get("name")]
    names += [str(s.get("name")) for s in (t.get("extra") or {}).get("selftests", []) if s.get("name")]
    return list(dict.fromkeys(n for n in names if n))


def columns_for(runs: list[RunRec]) -> list[Column]:
    cols = [Column(s, s) for s in FIXED_STAGES]
    indexes = sorted({int(i["index"]) for r in runs for i in ((r.stage("build") or {}).get("items") or [])
                      if isinstance(i.get("index"), int)}
                     | {int(p["index"]) for r in runs for p in r.r.get("patches", []) if isinstance(p.get("index"), int)}
                     | ({0} if any(r.stage("build") for r in runs) else set()))
    cols += [Column(f"build:{i}", "build base" if i == 0 else f"build {i}") for i in indexes]
    suites = list(dict.fromkeys(s for r in runs for s in suites_of(r)))
    cols += [Column(f"suite:{s}", s) for s in suites] or ([Column("test", "test")] if any(r.stage("test") for r in runs)
                                                           else [])
    cols.append(Column("mail", "mail"))
    return cols


def cell(run: RunRec, col: Column) -> Cell:
    href = run.href
    kind, _, arg = col.key.partition(":")
    st = run.stage("build" if kind == "build" else "test" if kind in ("suite", "test") else kind)
    if st is None:
        return Cell("", "", "not run", href)
    anchor = f"#stage-{st['name']}"
    status, summary = str(st.get("status", "")), str(st.get("summary") or "")
    if kind == "build":
        it = next((i for i in st.get("items", []) if i.get("index") == int(arg)), None)
        if it is None:
            if status == "skip":
                return Cell("skip", "skip", summary, href + anchor)
            return Cell("", "", "not built", href + anchor)
        s = str(it.get("status", ""))
        title = "; ".join(str(x) for x in [*(it.get("errors") or []), *(it.get("new_warnings") or [])]) or s
        cached = bool(it.get("cached"))
        text = s + (" ⟲" if cached else "")
        if cached:
            title += f" (cached: {it.get('cached_from') or 'an earlier build of the same tree'})"
        elif it.get("rebuilt") is not None:
            title += f" ({it.get('rebuilt')} objects compiled)"
        return Cell(s, text, title, href + f"#build-{arg}")
    if kind == "suite":
        items = [i for i in st.get("items", []) if str(i.get("name", "")).split("/")[0] == arg]
        if not items:
            return Cell("skip" if status == "skip" else "", "skip" if status == "skip" else "",
                        summary if status == "skip" else "no result", href + anchor)
        s = str(worst(str(i.get("status", "error")) for i in items))
        if status == "skip" and all(str(i.get("status")) == "skip" for i in items):
            s = "skip"
        counts = {k: sum(str(i.get("status")) == k for i in items) for k in ("pass", "fail", "skip")}
        return Cell(s, f"{s} {counts['pass']}/{len(items)}",
                    f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped", href + anchor)
    return Cell(status, status + (" ⟲" if st.get("cached") else ""), summary, href + anchor)


# -- what changed between two revisions ----------------------------------------------------
def _findings(run: RunRec) -> dict[int, set[str]]:
    st = run.stage("checkpatch")
    out: dict[int, set[str]] = {}
    for it in (st or {}).get("items", []):
        keys = {f"{f.get('level', '')}:{f.get('type', '')} {f.get('file') or ''}: {f.get('message', '')}".strip()
                for f in it.get("findings") or []}
        if isinstance(it.get("index"), int):
            out[int(it["index"])] = keys
    return out


def _warnings(run: RunRec) -> set[str]:
    st = run.stage("build")
    return {_LINE_RE.sub(":", str(w), count=1) for it in (st or {}).get("items", [])
            for w in it.get("new_warnings") or []}


def _tests(run: RunRec) -> dict[str, str]:
    st = run.stage("test")
    if st is None or (st.get("status") == "skip" and not st.get("items")):
        return {}
    return {str(i["name"]): str(i.get("status", "")) for i in st.get("items", []) if i.get("name")}


def pairing(ws: "Workspace | None", stack: str, old: int, new: int) -> tuple[list[dict[str, Any]], str]:
    """The range-diff pairing of two revisions (series.stacks.lineage), when the
    stack is in this workspace."""
    if ws is None:
        return [], "no workspace: the pairing needs the stack's patches"
    from ..errors import SeriesError
    from ..stacks.lineage import pair_revisions
    from ..stacks.store import load_stack
    try:
        st = load_stack(ws, stack)
        a, b = st.revision(old), st.revision(new)
        return [p.to_json() for p in pair_revisions(a, b)], ""
    except (SeriesError, OSError, ValueError) as e:
        return [], f"pairing unavailable: {e}"


def changes(a: RunRec, b: RunRec, ws: "Workspace | None") -> dict[str, Any]:
    pairs, note = pairing(ws, b.stack, a.revision, b.revision)
    fa, fb = _findings(a), _findings(b)
    new_f: list[str] = []
    fixed_f: list[str] = []
    both_checked = a.ran("checkpatch") and b.ran("checkpatch")
    if both_checked:
        # patches paired by content (range-diff), else by position
        by_pos = [{"old": i if i in fa else None, "new": i if i in fb else None} for i in sorted({*fa, *fb})]
        for p in pairs or by_pos:
            o, n = p.get("old"), p.get("new")
            old = fa.get(o, set()) if isinstance(o, int) else set()
            cur = fb.get(n, set()) if isinstance(n, int) else set()
            new_f += [f"patch {n}: {k}" for k in sorted(cur - old)]
            fixed_f += [f"patch {o}: {k}" for k in sorted(old - cur)]
    ta, tb = _tests(a), _tests(b)
    bad = ("fail", "error")
    newly_failing = sorted(n for n, s in tb.items() if s in bad and ta.get(n) not in bad) if ta and tb else []
    fixed_tests = sorted(n for n, s in ta.items() if s in bad and tb.get(n) == "pass") if ta and tb else []
    wa, wb = _warnings(a), _warnings(b)
    both_built = a.ran("build") and b.ran("build")
    return {"old": a, "new": b, "pairs": pairs, "pairing_note": note,
            "findings_new": new_f, "findings_fixed": fixed_f,
            "findings_note": "" if both_checked else "checkpatch did not run in both revisions",
            "tests_failing": newly_failing, "tests_fixed": fixed_tests,
            "tests_note": "" if ta and tb else "tests did not run in both revisions",
            "warnings_new": sorted(wb - wa) if both_built else [],
            "warnings_fixed": sorted(wa - wb) if both_built else [],
            "warnings_note": "" if both_built else "the build did not run in both revisions"}


# -- per-test history -------------------------------------------------------------------------
def history_of_tests(runs: list[RunRec]) -> list[dict[str, Any]]:
    """For each test seen in these runs (chronological): its status per run, and
    where its current failing streak started (or where it was fixed)."""
    order = sorted(runs, key=lambda r: (r.started, r.name))
    per_run = [(r, _tests(r)) for r in order]
    names = sorted({n for _, t in per_run for n in t})
    out = []
    for n in names:
        seq = [(r, t.get(n, "")) for r, t in per_run if t]
        statuses = [s for _, s in seq if s]
        since = ""
        since_href = ""
        if statuses and statuses[-1] in ("fail", "error"):
            i = len(seq) - 1
            while i > 0 and (seq[i - 1][1] in ("fail", "error") or not seq[i - 1][1]):
                i -= 1
            r0 = seq[i][0]
            passed_before = any(s == "pass" for _, s in seq[:i])
            since = (f"failing since v{r0.revision} ({r0.started[:16].replace('T', ' ')})"
                     + ("" if passed_before else ", never passed"))
            since_href = r0.href
        elif "fail" in statuses or "error" in statuses:
            last_fail = max(i for i, (_, s) in enumerate(seq) if s in ("fail", "error"))
            nxt = next(((r, s) for r, s in seq[last_fail + 1:] if s), None)
            if nxt is not None:
                since = f"fixed in v{nxt[0].revision} ({nxt[0].started[:16].replace('T', ' ')})"
                since_href = nxt[0].href
        out.append({"name": n, "cells": [(r, t.get(n, "")) for r, t in per_run if t],
                    "since": since, "since_href": since_href,
                    "status": statuses[-1] if statuses else ""})
    # failing tests first, then by name
    out.sort(key=lambda d: (d["status"] not in ("fail", "error"), d["name"]))
    return out


# -- the views ------------------------------------------------------------------------------------
def latest_per_revision(runs: list[RunRec]) -> list[RunRec]:
    """The run shown for each revision: its latest `ci` run, else its latest run."""
    by: dict[int, list[RunRec]] = {}
    for r in runs:
        by.setdefault(r.revision, []).append(r)
    out = []
    for v in sorted(by):
        rs = sorted(by[v], key=lambda r: (r.r.get("command") == "ci", r.started, r.name))
        out.append(rs[-1])
    return out


def views(runs: list[RunRec], ws: "Workspace | None") -> list[StackView]:
    out = []
    for stack in sorted({r.stack for r in runs}):
        mine = [r for r in runs if r.stack == stack]
        shown = latest_per_revision(mine)
        cols = columns_for(shown)
        rows = [{"run": r, "cells": [cell(r, c) for c in cols]} for r in shown]
        ch = [changes(a, b, ws) for a, b in zip(shown, shown[1:])]
        title = next((str(r.r.get("title")) for r in reversed(mine) if r.r.get("title")), "")
        hist = history_of_tests(mine)
        always = [t for t in hist if all(s in ("pass", "") for _, s in t["cells"])]
        out.append(StackView(stack, title, cols, rows, ch, sorted(mine, key=lambda r: (r.started, r.name)),
                             [t for t in hist if t not in always], always))
    return out


# -- writing --------------------------------------------------------------------------------------
def _copyable(f: Path) -> bool:
    if f.name in SKIP_NAMES or f.is_symlink():
        return False
    try:
        if f.stat().st_size > MAX_COPY_BYTES:
            return False
        with open(f, "rb") as fh:
            return fh.read(4) != b"\x7fELF"
    except OSError:
        return False


def copy_run(run: RunRec, dest: Path) -> None:
    """The run's text files (logs, reports) into dest, unchanged ones skipped, and
    its page re-rendered (log links relative to the run's directory)."""
    for f in run.dir.rglob("*"):
        if not f.is_file() or not _copyable(f):
            continue
        rel = f.relative_to(run.dir)
        d = dest / rel
        try:
            st = f.stat()
            if d.is_file() and d.stat().st_size == st.st_size and d.stat().st_mtime >= st.st_mtime:
                continue
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, d)
        except OSError:
            continue
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest / "index.html", to_html(run.r, run_dir=run.dir))


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("series", "templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                             trim_blocks=True, lstrip_blocks=True)
    return env


def render(runs: list[RunRec], ws: "Workspace | None", *, generated: str, problems: list[str] | None = None) -> str:
    vs = views(runs, ws)
    totals = {s: sum(1 for r in runs if r.r.get("status") == s) for s in ("pass", "warn", "fail", "error", "skip")}
    return _env().get_template("report.html.j2").render(
        stacks=vs, runs=runs, generated=generated, totals=totals, problems=problems or [],
        overall=str(overall(str(r.r.get("status", "error")) for r in runs)) if runs else "none",
        status_of=lambda s: str(status_of(s)) if s else "")


def write_report(out: Path, roots: list[Path], ws: "Workspace | None", *, generated: str,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the dashboard and the runs' pages and files into `out`."""
    runs, problems = find_runs(roots)
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for r in runs:   # two roots may hold runs of the same name: keep them apart
        base, n = r.dir.name, 1
        while r.name in seen:
            n += 1
            r.slug = f"{base}-{n}"
        seen.add(r.name)
        if progress:
            progress(f"copying {r.name}")
        copy_run(r, out / "runs" / r.name)
    html = render(runs, ws, generated=generated, problems=problems)
    atomic_write_text(out / "index.html", html)
    return {"output": str(out), "index": str(out / "index.html"), "runs": len(runs),
            "stacks": sorted({r.stack for r in runs}), "problems": problems}
