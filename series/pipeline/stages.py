"""The stages, declared as data, and the one engine that runs a selection of them.

    apply ──> build ──> test          checkpatch    hygiene    mail

A `Stage` has a name, the stages it needs and `run(run) -> StageResult`.
`series apply | check | build | test | ci` are selections of these stages over
one `Run`: the engine adds what a selected stage needs, runs them in the order
below, and reports a stage whose input did not pass as `skip`, with the
reason.  No command decides that for itself.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import SeriesError, UserError
from ..fsutil import atomic_write_json, exclusive_lock
from .result import StageResult, Timer
from .run import Run
from .status import APPLY_OUTCOME, Status, worst

if TYPE_CHECKING:
    from ..suites import TestPlan


@dataclass(frozen=True)
class Stage:
    name: str
    needs: tuple[str, ...]
    run: Callable[[Run], StageResult]
    help: str = ""


# -- apply -----------------------------------------------------------------------
def _apply(run: Run) -> StageResult:
    from ..stages.apply import apply_revision
    ws, st, rev = run.ws, run.stack, run.rev
    assert run.tree is not None and run.onto is not None      # (prepare() holds the stack's lock)
    run.say(f"apply: {st.name} v{rev.version} onto {run.onto} in tree {run.tree.name}")
    with Timer() as t:
        res = apply_revision(ws, st.name, rev, run.tree, run.onto, log_dir=run.path("apply"))
    run.state.apply = res
    run.base_commit = res.base_commit
    run.path("apply.txt").write_text(res.text() + "\n")
    items = []
    for p in res.patches:
        files = ", ".join(f"{f.path} {f.clean}/{f.offset}/{f.fuzz}/{f.rejected}" for f in p.files)
        items.append({"index": p.index, "subject": p.subject, "status": str(APPLY_OUTCOME.get(p.status, Status.ERROR)),
                      "apply": p.status, "summary": p.status + (f" ({p.how})" if p.how else ""),
                      "files": [f.to_json() for f in p.files], "details": files})
    bad = [str(p.index) for p in res.patches if p.status == "conflict"]
    if bad:
        status, summary = Status.FAIL, f"patch {', '.join(bad)} does not apply"
    else:
        status = worst(str(i["status"]) for i in items if i["status"] != Status.SKIP)
        summary = f"{sum(p.status != 'missing' for p in res.patches)} patch(es) applied onto {res.onto}"
        if res.missing:
            summary += f"; missing {', '.join(map(str, res.missing))}"
    return StageResult(name="apply", status=status, duration_s=t.elapsed, summary=summary, items=items,
                       log=str(res.log_dir) if res.log_dir else None,
                       counts={s: sum(p.status == s for p in res.patches) for s in APPLY_OUTCOME},
                       extra={"worktree": str(res.worktree) if res.worktree else None,
                              "base_commit": res.base_commit, "outcome": res.status})


# -- checkpatch and hygiene (one check run serves both) ----------------------------
def _check(run: Run, name: str) -> StageResult:
    from ..stages.check.runner import run_check, stage_results
    if run.state.check_report is None:
        run.say("check: checkpatch and series hygiene")
        tree = run.tree.name if run.tree else run.opts.tree
        report = run_check(run.ws, run.stack, run.rev, tree_name=tree, strict=run.opts.strict,
                           jobs=run.opts.jobs, log=run.say)
        report["results"] = str(run.path("results.json"))
        atomic_write_json(run.path("check.json"), report)
        run.state.check_report = report
    return next(s for s in stage_results(run.state.check_report) if s.name == name)


# -- build -------------------------------------------------------------------------
def test_plan(run: Run) -> "TestPlan":
    """The stack's suites and kernel config (series.toml, or the command line)."""
    from ..suites import plan_for
    if run.state.plan is None:
        run.state.plan = plan_for(run.ws.root, run.ws.config, run.stack.name,
                                  suites=run.opts.suites, fragments=run.opts.config)
    return run.state.plan


def _build(run: Run) -> StageResult:
    from ..stages.build import BuildDir, build_dir_for, build_series, toolchain
    res, tree = run.state.apply, run.tree
    assert res is not None and tree is not None
    plan = test_plan(run)
    commits = [(p.index, p.commit) for p in res.patches if p.commit]
    if run.opts.build_only is not None:
        commits = [(i, c) for i, c in commits if i in run.opts.build_only]
    cache = run.ws.cache
    bd = BuildDir(build_dir_for(cache, tree.name, res.base_commit, plan.config_hash),
                  toolchain(cache, compiler=run.opts.cc, sandboxed=run.opts.sandbox))
    bd.root.mkdir(parents=True, exist_ok=True)
    sb_ = bd.toolchain.sandbox
    run.say("build: not sandboxed (--no-sandbox)" if sb_ is None else
            "build: sandboxed (bwrap), sharing the network with the compiler" if sb_.share_net else
            "build: sandboxed (bwrap): no network, writes only in its build directory")
    # held until the run ends: nothing rebuilds under a running test
    run.locks.enter_context(exclusive_lock(bd.lock, f"build directory {bd.root.name}"))
    fragment = bd.write_fragment(plan.config_text)
    run.say("build: base, then each patch" if run.opts.per_patch else "build: the top of the revision")
    # a cold build's expected object count: the last full build of the same config
    expected = next((n for d in cache.build_dirs_with_config(plan.config_hash)
                     if (n := BuildDir(d).full_object_count())), None)
    sb = build_series(bd, tree.work_repo, res.base_commit, commits, fragment=fragment,
                      per_patch=run.opts.per_patch, jobs=run.opts.jobs, progress=run.say,
                      build_base=run.opts.build_base, rebuild=run.opts.rebuild, expected_full=expected,
                      tick=(lambda label, done, total, what: run.progress.step(f"build {label}", done, total, what))
                      if run.progress.shows_counts else None)
    sb.stage.extra["fragments"] = [str(p) for p in plan.fragments]
    for it in sb.stage.items:
        run.progress.end("build base" if it["index"] == 0 else f"build patch {it['index']}")
    _keep_logs(run, sb.stage)
    run.state.build, run.state.build_dir = sb, bd
    return sb.stage


def _keep_logs(run: Run, st: StageResult) -> None:
    """Copy the build's step logs into the run directory (the run stays whole when
    the build directory moves on, and its pages can link them relatively)."""
    from pathlib import Path
    out = run.path("build")
    for it in st.items:
        src = Path(str(it.get("log") or ""))
        if it.get("log") and src.is_file():
            out.mkdir(parents=True, exist_ok=True)
            dst = out / src.name
            shutil.copyfile(src, dst)
            it["log"] = str(dst)
    if out.is_dir():
        st.extra["build_logs"] = st.log
        st.log = str(out)


# -- test --------------------------------------------------------------------------
def _test(run: Run) -> StageResult:
    from ..stages.boot import boot_and_test
    from ..stages.build import build_suites
    sb, bd = run.state.build, run.state.build_dir
    assert sb is not None and bd is not None
    if sb.bzimage is None:
        return StageResult.skip("test", f"no kernel to boot: {sb.stage.summary}")
    plan = test_plan(run)
    if not plan.suites:
        return StageResult.skip("test", plan.reason)
    bz = run.path("bzImage")
    shutil.copy2(sb.bzimage, bz)
    run.say("test: building " + ", ".join(s.name for s in plan.suites) + " against the tree under test")
    built = build_suites(bd.src, bd.obj, run.path("selftests"), plan.suites, log_dir=run.path("selftests"),
                         tc=bd.toolchain, record_dir=bd.suite_results, rebuild=run.opts.rebuild)
    boot = boot_and_test(bz, built, work_dir=run.dir, cache=run.ws.cache, boot_timeout_s=run.opts.boot_timeout_s,
                         test_timeout_s=run.opts.test_timeout_s, cmdline_extra=run.opts.cmdline,
                         accel=run.opts.accel, progress=run.say,
                         on_test=lambda what, n: run.progress.step("test", n, None, what))
    run.progress.end("test")
    boot.stage.extra["selftests"] = [b.to_dict() for b in built]
    run.state.extra["boot"] = boot
    return boot.stage


# -- mail --------------------------------------------------------------------------
def _mail(run: Run) -> StageResult:
    from ..mail.output import write_atomically
    from ..mail.pipeline import prepare_mails
    rev, req = run.rev, run.opts.mail
    if rev.missing:
        return StageResult.skip("mail", f"incomplete revision: patch {', '.join(map(str, rev.missing))} missing")
    assert run.tree is not None
    run.say("mail: generating and validating the mails (not sent)")
    ms, validation, base = prepare_mails(run.ws, run.stack, rev, run.tree, run.base_commit or run.onto or "",
                                         to=req.to, cc=req.cc, sender=req.sender, template=req.template,
                                         use_get_maintainer=req.use_get_maintainer, say=run.say)
    run.base_commit = run.base_commit or base
    out = req.output or run.path("mails")
    files = write_atomically(out, ms, req.force or req.output is None)
    run.state.extra.update(mailset=ms, mail_files=files, mail_validation=validation.to_json())
    return StageResult(name="mail", status=Status.PASS,
                       summary=f"{len(ms.mails)} mails validated (threading, mbox, b4 parse, git am round trip "
                               f"patch by patch); not sent",
                       items=[{"name": m.subject, "status": "pass"} for m in ms.mails], log=str(out),
                       extra={"to": ms.to, "cc": ms.cc, "change_id": ms.change_id, "output": str(out),
                              "validation": validation.to_json()})


STAGES: tuple[Stage, ...] = (
    Stage("apply", (), _apply, "apply the revision onto the base in a worktree of ours"),
    Stage("checkpatch", (), lambda r: _check(r, "checkpatch"), "the tree's scripts/checkpatch.pl on every patch"),
    Stage("hygiene", (), lambda r: _check(r, "hygiene"), "sign-offs, Fixes:, numbering, cover, recipients"),
    Stage("build", ("apply",), _build, "build the base, then each patch, incrementally"),
    Stage("test", ("build",), _test, "boot in qemu, run the selected test suites"),
    Stage("mail", (), _mail, "write and validate the mails (not sent)"),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
_BY_NAME = {s.name: s for s in STAGES}

# A stage the user selects needs a tree and a base (`onto`) when it or what it needs does.
NEEDS_TREE = {"apply", "build", "test", "mail"}


def closure(names: Sequence[str]) -> list[Stage]:
    """The selected stages and everything they need, in pipeline order."""
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise UserError(f"unknown stage(s) {', '.join(unknown)} (known: {', '.join(STAGE_NAMES)})")
    if not names:
        raise UserError(f"no stage selected (known: {', '.join(STAGE_NAMES)})")
    want: set[str] = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n not in want:
            want.add(n)
            todo += _BY_NAME[n].needs
    return [s for s in STAGES if s.name in want]


def execute(run: Run, names: Sequence[str], *, keep_going: bool) -> None:
    """Run the selection.  A stage whose input did not pass is `skip`.  With
    `keep_going` (series ci) a stage that raises becomes `error` and the run
    goes on; otherwise the error reaches the command line (one line, its exit code)."""
    order = closure(names)
    run.selected = list(dict.fromkeys([*run.selected, *names]))
    for stage in order:
        if run.result(stage.name) is not None:
            continue          # already run in this Run (`series ci --all` runs apply first)
        blocked = [(n, run.result(n)) for n in stage.needs]
        bad = [f"{n} {r.status if r else 'not run'}: {r.summary if r else ''}".rstrip(": ")
               for n, r in blocked if r is None or r.status.failed]
        if bad:
            run.add(StageResult.skip(stage.name, "; ".join(bad)))
            continue
        with Timer() as t:
            try:
                st = stage.run(run)
            except SeriesError as e:
                if not keep_going:
                    raise
                st = StageResult(name=stage.name, status=Status.FAIL if e.exit_code in (1, 2) else Status.ERROR,
                                 summary=str(e))
            except Exception as e:  # a bug in one stage: reported, and the other stages still run
                if not keep_going:
                    raise
                st = StageResult(name=stage.name, status=Status.ERROR,
                                 summary=f"internal error: {type(e).__name__}: {e}")
        if not st.duration_s:
            st.duration_s = t.elapsed
        run.add(st)


