"""`series ci`: every stage on one revision, as a CI would, with reports.

apply -> checkpatch + hygiene -> per-patch build -> boot/test -> mails (dry run).
A stage whose dependency failed is `skip` with the reason.  results.json is
written atomically after every stage (a killed run leaves a readable partial
result); JUnit, patchwork checks, Markdown and HTML are derived from it at the end.
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .errors import SeriesError, UserError
from .fsutil import atomic_write_json, atomic_write_text, exclusive_lock
from .report.html import to_html
from .report.junit import to_junit
from .report.markdown import to_markdown
from .report.patchwork import to_checks
from .stacks.model import Revision, Stack
from .stages.apply import ApplyResult, apply_revision
from .stages.result import StageResult, Timer, worst
from .trees import Tree, ensure_debian_tree, list_trees, load_tree, resolve_ref
from .workspace import Workspace

Say = Callable[[str], None]
APPLY_STATUS = {"applied": "pass", "fuzz": "warn", "already-present": "warn", "conflict": "fail",
                "missing": "skip", "not-attempted": "skip"}
ALL_STAGES = ("apply", "checkpatch", "hygiene", "build", "test", "mail")


@dataclass
class CiOptions:
    stack: str
    version: int | None = None
    tree: str | None = None
    onto: str | None = None
    out: Path | None = None
    stages: tuple[str, ...] = ALL_STAGES
    per_patch: bool = True
    boot_timeout_s: float = 600.0
    argv: list[str] = field(default_factory=list)


def ensure_tree(ws: Workspace, name: str | None, onto: str, say: Say) -> Tree:
    """The named tree; a Debian tree named in series.toml is made on first use
    from /usr/src/linux-source-X.Y.tar.xz (that is what the demo CI needs)."""
    wanted = name or ws.config.get("ci", {}).get("tree")
    known = {t.name for t in list_trees(ws)}
    if wanted and wanted not in known and onto.startswith("debian/"):
        version = ".".join(onto.split("/", 1)[1].split(".")[:2])
        say(f"making kernel tree {wanted!r} from Debian's linux-source-{version} (once)")
        return ensure_debian_tree(ws, wanted, version)
    return load_tree(ws, wanted)


def apply_stage(res: ApplyResult, seconds: float) -> StageResult:
    items = []
    for p in res.patches:
        files = ", ".join(f"{f.path} {f.clean}/{f.fuzz}/{f.rejected}" for f in p.files)
        items.append({"index": p.index, "subject": p.subject, "status": APPLY_STATUS.get(p.status, "error"),
                      "apply": p.status, "summary": p.status + (f" ({p.how})" if p.how else ""),
                      "files": [f.to_json() for f in p.files], "details": files})
    bad = [str(p.index) for p in res.patches if p.status == "conflict"]
    if bad:
        status, summary = "fail", f"patch {', '.join(bad)} does not apply"
    else:
        status = worst([i["status"] for i in items if i["status"] != "skip"] or ["pass"])
        summary = f"{sum(p.status != 'missing' for p in res.patches)} patch(es) applied onto {res.onto}"
        if res.missing:
            summary += f"; missing {', '.join(map(str, res.missing))}"
    return StageResult(name="apply", status=status, duration_s=seconds, summary=summary, items=items,  # type: ignore[arg-type]
                       log=str(res.log_dir) if res.log_dir else None,
                       counts={s: sum(p.status == s for p in res.patches) for s in APPLY_STATUS},
                       extra={"worktree": str(res.worktree) if res.worktree else None, "base_commit": res.base_commit})


class Run:
    """The run directory and its results.json, rewritten after each stage."""

    def __init__(self, ws: Workspace, st: Stack, rev: Revision, opts: CiOptions, tree: Tree, onto: str) -> None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        self.dir = (opts.out or ws.runs / f"{stamp}-ci-{st.name}-v{rev.version}").resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stages: list[StageResult] = []
        self.meta: dict[str, Any] = {
            "tool": "series", "tool_version": __version__, "command": "ci", "stack": st.name,
            "title": st.title, "revision": rev.version, "tree": tree.name, "onto": onto, "base_commit": None,
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "finished": None,
            "reproduce": "series ci " + " ".join(shlex.quote(a) for a in opts.argv),
            "expected": rev.expected, "missing": rev.missing,
            "patches": [{"index": i, "subject": (rev.patch(i).subject if rev.patch(i) else ""),
                         "message_id": (rev.patch(i).message_id if rev.patch(i) else None),
                         "imported": i in rev.present} for i in rev.indexes],
        }

    def add(self, st: StageResult) -> None:
        self.stages.append(st)
        self.write()

    def results(self) -> dict[str, Any]:
        return {**self.meta, "run_dir": str(self.dir), "status": worst([s.status for s in self.stages if s.status != "skip"] or ["pass"]),
                "stages": [s.to_dict() for s in self.stages]}

    def write(self) -> None:
        atomic_write_json(self.dir / "results.json", self.results())

    def finish(self) -> dict[str, Any]:
        self.meta["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        r = self.results()
        atomic_write_json(self.dir / "results.json", r)
        atomic_write_text(self.dir / "junit.xml", to_junit(r))
        atomic_write_json(self.dir / "patchwork-checks.json", to_checks(r, target_url=str(self.dir / "index.html")))
        atomic_write_text(self.dir / "summary.md", to_markdown(r))
        atomic_write_text(self.dir / "index.html", to_html(r))
        return r


def _guard(name: str, fn: Callable[[], StageResult]) -> StageResult:
    """A stage that raises becomes `error` with the message; the run goes on."""
    with Timer() as t:
        try:
            st = fn()
        except SeriesError as e:
            st = StageResult(name=name, status="fail" if e.exit_code in (1, 2) else "error", summary=str(e))
    if not st.duration_s:
        st.duration_s = t.elapsed
    return st


def run_ci(ws: Workspace, st: Stack, rev: Revision, opts: CiOptions, say: Say) -> dict[str, Any]:
    unknown = [s for s in opts.stages if s not in ALL_STAGES]
    if unknown:
        raise UserError(f"unknown stage(s) {', '.join(unknown)} (known: {', '.join(ALL_STAGES)})")
    if not opts.stages:
        raise UserError(f"no stage selected (known: {', '.join(ALL_STAGES)})")
    onto = opts.onto or rev.base or ws.config.get("ci", {}).get("onto")
    if not onto:
        raise UserError("no base: give --onto REF (or set [ci] onto in series.toml)")
    if not rev.imported:
        raise UserError(f"{st.name} v{rev.version} is not imported (series fetch {st.name} --revision {rev.version})")
    if opts.out is not None and opts.out.exists() and not opts.out.is_dir():
        raise UserError(f"{opts.out} exists and is not a directory")
    tree = ensure_tree(ws, opts.tree, onto, say)
    resolve_ref(tree, onto)  # a bad base is the user's mistake: refuse before any run directory
    run = Run(ws, st, rev, opts, tree, onto)
    say(f"run directory: {run.dir}")
    want = set(opts.stages)

    with exclusive_lock(ws.locks / f"{st.name}.lock", f"stack {st.name}"):
        applied: ApplyResult | None = None
        if "apply" in want or want & {"build", "test"}:
            say(f"apply: {st.name} v{rev.version} onto {onto}")
            t0 = time.monotonic()
            applied = apply_revision(ws, st.name, rev, tree, onto, log_dir=run.dir / "apply")
            run.meta["base_commit"] = applied.base_commit
            run.add(apply_stage(applied, time.monotonic() - t0))
            (run.dir / "apply.txt").write_text(applied.text() + "\n")

        if want & {"checkpatch", "hygiene"}:
            say("check: checkpatch and series hygiene")
            from .stages.check.runner import run_check, stage_results
            try:
                report = run_check(ws, st, rev, tree_name=tree.name, strict=None, log=say)
                atomic_write_json(run.dir / "check.json", report)
                for s in stage_results(report):
                    if s.name in want:
                        run.add(s)
            except SeriesError as e:
                run.add(StageResult(name="checkpatch", status="error", summary=str(e)))

        build_st: StageResult | None = None
        if "build" in want or "test" in want:
            if applied is None or applied.status == "conflict":
                build_st = StageResult.skip("build", "apply failed: " + (run.stages[0].summary if run.stages else "not run"))
                run.add(build_st)
            else:
                from .stages.build import DEFAULT_FRAGMENT, BuildDir, build_dir_for, build_series
                commits = [(p.index, p.commit) for p in applied.patches if p.commit]
                bd = BuildDir(build_dir_for(ws.cache, tree.name, applied.base_commit, DEFAULT_FRAGMENT))
                with exclusive_lock(bd.lock, f"build directory {bd.root.name}"):
                    say("build: base, then each patch" if opts.per_patch else "build: the top of the revision")
                    sb = build_series(bd, tree.work_repo, applied.base_commit, commits, per_patch=opts.per_patch,
                                      progress=say, build_base=True)
                    build_st = sb.stage
                    run.add(build_st)
                    if "test" in want:
                        built, dirs = sb, bd
                        run.add(_guard("test", lambda: _test(ws, run, dirs, built, opts, say)))
        if "test" in want and not any(s.name == "test" for s in run.stages):
            run.add(StageResult.skip("test", f"build did not run: {build_st.summary if build_st else 'not requested'}"))

        if "mail" in want:
            run.add(_guard("mail", lambda: _mail(ws, st, rev, tree, applied.base_commit if applied else onto, run, say)))
    return run.finish()


def _test(ws: Workspace, run: Run, bd: Any, sb: Any, opts: CiOptions, say: Say) -> StageResult:
    from .stages.boot import boot_and_test
    from .stages.build import build_selftests
    if sb.bzimage is None or sb.stage.status == "fail":
        return StageResult.skip("test", f"build failed: {sb.stage.summary}")
    bz = run.dir / "bzImage"
    shutil.copy2(sb.bzimage, bz)
    say("test: building selftests from the tree under test (headers, uffd-unit-tests, kernel-tests)")
    bins = build_selftests(bd.src, bd.obj, run.dir / "selftests", log_dir=run.dir / "selftests")
    res = boot_and_test(bz, bins, work_dir=run.dir, cache=ws.cache, boot_timeout_s=opts.boot_timeout_s, progress=say)
    res.stage.extra["selftests"] = [{"name": b.name, "status": b.status, "reason": b.reason} for b in bins]
    return res.stage


def _mail(ws: Workspace, st: Stack, rev: Revision, tree: Tree, base: str, run: Run, say: Say) -> StageResult:
    if rev.missing:
        return StageResult.skip("mail", f"incomplete revision: patch {', '.join(map(str, rev.missing))} missing")
    from .mail.pipeline import prepare_mails
    say("mail: generating and validating the mails (not sent)")
    ms, _, _ = prepare_mails(ws, st, rev, tree, base, say=say)
    out = run.dir / "mails"
    out.mkdir(exist_ok=True)
    for m in ms.mails:
        (out / m.filename).write_bytes(m.as_bytes())
    (out / "series.mbox").write_bytes(ms.mbox_bytes())
    return StageResult(name="mail", status="pass",
                       summary=f"{len(ms.mails)} mails validated (b4 parse, git am round trip); not sent",
                       items=[{"name": m.subject, "status": "pass"} for m in ms.mails], log=str(out),
                       extra={"to": ms.to, "cc": ms.cc, "change_id": ms.change_id})

