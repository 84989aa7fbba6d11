"""series ci [STACK] [vN | --all] [--onto REF] [--tree NAME] [-o DIR] [--stages ...] [--rebuild] [--json]
series ci [STACK] [vN] --emit github-actions|gitlab [-o FILE]     (series/report/pipelines.py)
series ci --merge DIR... -o DIR                                  (series/pipeline/merge.py)

One revision: every stage, one run directory.  `--all`: every revision of the
stack, oldest first, one run directory each plus a summary; the build
directory is shared, so a revision that changes one patch rebuilds only what
that patch touches (the others are `cached`).  A revision that cannot be
verified is `skip`, with the reason: not imported, an incomplete import (the
missing patches are named), or already upstream (every patch is already in
the base).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..context import Context
from ..errors import UserError

if TYPE_CHECKING:
    from ..pipeline import Options, Run
    from ..pipeline.progress import Progress
    from ..stacks.model import Revision, Stack
    from ..workspace import Workspace


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ci", help="run every stage on a revision (apply, checkpatch, hygiene, build, boot/test, mail) "
                                  "and write results.json, JUnit, patchwork checks and an HTML page",
                       description="The demo CI. Defaults come from [ci] in series.toml (stack, tree, onto). "
                                   "A Debian tree named there is made from /usr/src on first use.")
    p.add_argument("stack", nargs="?", help="default: [ci] stack")
    p.add_argument("revision", nargs="?", help="vN (default: the latest)")
    p.add_argument("--all", action="store_true",
                   help="every revision of the stack, oldest first, sharing the build directory; "
                        "one run directory per revision plus a summary")
    p.add_argument("--onto", metavar="REF", help="base (default: the revision's base, else [ci] onto)")
    p.add_argument("--tree", metavar="NAME", help="kernel tree (default: [ci] tree; a Debian one is made on first use)")
    p.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="run directory (default: $SERIES_CACHE/runs/...); with --all, DIR/v<N>/ per revision "
                        "and DIR/summary.json; with --emit, the pipeline file; with --merge, the merged run directory")
    p.add_argument("--stages", metavar="LIST", help="comma-separated subset of apply,checkpatch,hygiene,build,test,mail")
    p.add_argument("--suites", metavar="LIST", help="comma-separated test suites (default: [test] suites in series.toml)")
    p.add_argument("--top-only", action="store_true", help="build only the top of the revision, not each patch")
    p.add_argument("--rebuild", action="store_true",
                   help="build every commit, even one whose result is recorded for the same tree, config and "
                        "toolchain (else reported `cached`)")
    p.add_argument("--cc", metavar="CMD", default="gcc",
                   help="the compiler, passed to make as CC= (e.g. 'distcc gcc'; behind ccache through CCACHE_PREFIX)")
    from .build import add_no_sandbox
    add_no_sandbox(p)
    p.add_argument("--boot-timeout", type=float, default=600.0, metavar="S", help="whole-boot limit in seconds (default 600)")
    p.add_argument("--build-patch", metavar="LIST",
                   help="build the base and only these patches (comma-separated; a shard of a pipeline)")
    p.add_argument("--emit", choices=("github-actions", "gitlab"),
                   help="write a pipeline for this CI engine (to -o FILE, else stdout) instead of running: "
                        "checks, one build job per patch, one test job per suite, a merge")
    p.add_argument("--merge", nargs="+", type=Path, metavar="DIR",
                   help="combine the run directories of shards into one run (-o DIR): results.json, JUnit, "
                        "patchwork checks and page")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..pipeline import Options
    from ..pipeline.stages import STAGE_NAMES, closure
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages is not None else list(STAGE_NAMES)
    closure(stages)   # unknown stages are refused before any work
    if args.boot_timeout <= 0:
        raise UserError("--boot-timeout must be positive")
    if args.all and args.revision:
        raise UserError("--all runs every revision: give no revision with it")
    if sum(map(bool, (args.all, args.emit, args.merge))) > 1:
        raise UserError("--all, --emit and --merge go alone")
    if args.onto is not None and not args.onto.strip():
        raise UserError("--onto needs a ref (it is empty)")
    if args.tree is not None and not args.tree.strip():
        raise UserError("--tree needs a name (it is empty)")
    if args.merge:
        return _merge(args, ctx)
    if args.emit:
        return _emit(args, ctx)
    build_only = None
    if args.build_patch is not None:
        try:
            build_only = sorted({int(x) for x in args.build_patch.split(",") if x.strip()})
        except ValueError:
            raise UserError(f"--build-patch expects patch numbers, like 3 or 1,4 (not {args.build_patch!r})") from None
        if not build_only or min(build_only) < 1:
            raise UserError("--build-patch expects patch numbers from 1")
    suites = [s.strip() for s in args.suites.split(",") if s.strip()] if args.suites is not None else None
    argv = ([args.stack] if args.stack else []) + ([args.revision] if args.revision else []) + \
        (["--onto", args.onto] if args.onto else []) + (["--tree", args.tree] if args.tree else []) + \
        (["--stages", args.stages] if args.stages else []) + (["--suites", args.suites] if args.suites else []) + \
        (["--top-only"] if args.top_only else []) + (["--rebuild"] if args.rebuild else []) + \
        (["--cc", args.cc] if args.cc != "gcc" else []) + (["--build-patch", args.build_patch] if build_only else []) + \
        ([] if args.sandbox else ["--no-sandbox"])
    opts = Options(onto=args.onto, tree=args.tree, per_patch=not args.top_only, boot_timeout_s=args.boot_timeout,
                   suites=suites, argv=argv, rebuild=args.rebuild, cc=args.cc, build_only=build_only,
                   sandbox=args.sandbox)
    if args.all:
        return _run_all(args, ctx, stages, opts)
    return _run_one(args, ctx, stages, opts)


def _run_one(args: argparse.Namespace, ctx: Context, stages: list[str], opts: "Options") -> int:
    from ..pipeline import prepare
    from ..pipeline.progress import progress
    from ..pipeline.stages import execute
    with progress(ctx) as say:
        with prepare(ctx.ws, "ci", args.stack, args.revision, opts, stages=stages, out=args.output, say=say) as run_:
            say(f"run directory: {run_.dir}")
            execute(run_, stages, keep_going=True)
    r = run_.finish()
    lines = [f"series ci {r['stack']} v{r['revision']} onto {r['onto']}: {r['status'].upper()}"]
    for s in r["stages"]:
        cached = " (cached)" if s.get("cached") else ""
        lines.append(f"  {s['name']:<10} {s['status']:<5} {s['duration_s']:7.1f}s  {s['summary']}{cached}")
    if r["missing"]:
        lines.append(f"  missing patches (not imported): {', '.join(map(str, r['missing']))}")
    lines.append(f"reports: results.json junit.xml patchwork-checks.json summary.md index.html in {r['run_dir']}")
    ctx.emit(r, "\n".join(lines))
    return 2 if r["status"] in ("fail", "error") else 0


# -- --merge, --emit ---------------------------------------------------------------------
def _merge(args: argparse.Namespace, ctx: Context) -> int:
    from ..pipeline.merge import merge_runs
    if args.output is None:
        raise UserError("--merge needs -o DIR: the merged run directory")
    if args.stack or args.revision or args.stages or args.build_patch:
        raise UserError("--merge takes run directories only (the stack and revision are the shards')")
    run_ = merge_runs(ctx.ws, list(args.merge), args.output)
    r = run_.finish()
    lines = [f"series ci --merge of {len(args.merge)} shard(s): {r['stack']} v{r['revision']} onto {r['onto']}: "
             f"{r['status'].upper()}"]
    for s in r["stages"]:
        lines.append(f"  {s['name']:<10} {s['status']:<5} {s['summary']}")
    lines.append(f"reports: results.json junit.xml patchwork-checks.json summary.md index.html in {r['run_dir']}")
    ctx.emit(r, "\n".join(lines))
    return 2 if r["status"] in ("fail", "error") else 0


def _emit(args: argparse.Namespace, ctx: Context) -> int:
    from ..fsutil import atomic_write_text
    from ..report.pipelines import PipelineSpec, emit
    from ..stacks.model import parse_version
    from ..stacks.store import load_stack
    from ..suites import plan_for
    ws = ctx.ws
    ci = ws.config.get("ci", {})
    name = args.stack or ci.get("stack")
    if not name:
        raise UserError("no stack given (and no [ci] stack in series.toml)")
    stack = load_stack(ws, name)
    rev = stack.revision(parse_version(args.revision) if args.revision else None)
    onto = args.onto or (ci.get("onto") if ci.get("stack") == stack.name else None) or rev.base or ci.get("onto")
    tree = args.tree or ci.get("tree")
    if not onto or not tree:
        raise UserError("--emit needs a tree and a base: --tree NAME --onto REF (or [ci] tree and onto)")
    suites = [s.strip() for s in args.suites.split(",") if s.strip()] if args.suites is not None else None
    plan = plan_for(ws.root, ws.config, stack.name, suites=suites)
    spec = PipelineSpec(stack=stack.name, revision=rev.version, tree=tree, onto=onto, patches=rev.indexes,
                        suites=[s.name for s in plan.suites])
    if not spec.patches:
        raise UserError(f"{stack.name} v{rev.version} lists no patch")
    text = emit(args.emit, spec)
    if args.output is None:
        ctx.emit({"emit": args.emit, "text": text, **spec.__dict__}, text)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output, text)
    ctx.emit({"emit": args.emit, "file": str(args.output), **spec.__dict__},
             f"wrote {args.output}: {args.emit} pipeline for {stack.name} v{rev.version} "
             f"({len(spec.patches)} build jobs, {len(spec.suites)} test jobs, a merge)")
    return 0


# -- --all -----------------------------------------------------------------------------
def skip_reason(run_: "Run") -> str | None:
    """Why a revision that was applied is not verified further: already upstream
    (every imported patch is already in the base), or an incomplete import."""
    rev, res = run_.rev, run_.state.apply
    if res is not None:
        tried = [p for p in res.patches if p.status != "missing"]
        if tried and all(p.status == "already-present" for p in tried):
            nums = ", ".join(str(p.index) for p in tried)
            why = f"already upstream: patch {nums} {'is' if len(tried) == 1 else 'are'} already in {res.onto}"
            if rev.missing:
                why += f" (patch {_nums(rev.missing)} not imported)"
            return why
    if rev.missing:
        return (f"incomplete import: patch {_nums(rev.missing)} of {len(rev.indexes)} missing "
                f"(series fetch {run_.stack.name} --revision {rev.version}, or series import)")
    return None


def _nums(xs: list[int]) -> str:
    return ", ".join(map(str, xs))


def _skip_rest(run_: "Run", stages: list[str], reason: str) -> None:
    """Mark the revision skipped: the apply result keeps its per-patch items, every
    other selected stage is `skip` with the same reason."""
    from ..pipeline import StageResult, Status
    from ..pipeline.stages import closure
    ap = run_.result("apply")
    if ap is not None:
        ap.status, ap.summary = Status.SKIP, reason
    for st in closure(stages):
        if run_.result(st.name) is None:
            run_.stages.append(StageResult.skip(st.name, reason))
    run_.selected = list(dict.fromkeys([*run_.selected, *stages]))
    run_.write()


def _unrunnable(ws: "Workspace", stack: "Stack", rev: "Revision", opts: "Options", stages: list[str], reason: str,
                out: Path | None, say: "Progress") -> "Run":
    """A run directory that says why this revision was not run at all."""
    from ..pipeline import Run
    run_ = Run(ws, "ci", stack, rev, opts, onto=opts.onto or rev.base or ws.config.get("ci", {}).get("onto"),
               out=out, say=say)
    _skip_rest(run_, stages, reason)
    return run_


def _run_all(args: argparse.Namespace, ctx: Context, stages: list[str], opts: "Options") -> int:
    """Every revision under one hold of the stack's lock: a stack that another run
    (an import, a fetch, a ci) holds is refused as busy before any revision runs,
    as a single run would be, and none of its revisions is reported for it; no
    other writer gets in between two revisions either."""
    from ..fsutil import exclusive_lock
    from ..stacks.store import load_stack
    ws = ctx.ws
    name = args.stack or ws.config.get("ci", {}).get("stack")
    if not name:
        raise UserError("no stack given (and no [ci] stack in series.toml)")
    load_stack(ws, name)        # an unknown stack is refused before a lock file is made for it
    _check_common(ctx, stages, opts)
    with exclusive_lock(ws.cache.stack_lock(name), f"stack {name}"):
        return _run_all_locked(args, ctx, stages, opts, name)


def _check_common(ctx: Context, stages: list[str], opts: "Options") -> None:
    """What every revision of `--all` would be refused for (an unknown --tree, an
    --onto that is no ref of the tree) is the user's mistake, refused once (exit
    1), not reported as every revision `skip`.  A revision's own problems (its
    recorded base, an incomplete import) stay that revision's `skip`."""
    from ..pipeline import resolve_tree
    from ..pipeline.stages import NEEDS_TREE, closure
    from ..trees import load_tree, resolve_ref
    ws = ctx.ws
    if {s.name for s in closure(stages)} & NEEDS_TREE and opts.onto:
        resolve_ref(resolve_tree(ws, opts.tree, opts.onto, ctx.info), opts.onto)
    elif opts.tree is not None:
        load_tree(ws, opts.tree)


def _run_all_locked(args: argparse.Namespace, ctx: Context, stages: list[str], opts: "Options", name: str) -> int:
    from ..fsutil import atomic_write_json, atomic_write_text
    from ..pipeline import prepare
    from ..pipeline.progress import progress
    from ..pipeline.stages import closure, execute
    from ..stacks.store import load_stack
    ws = ctx.ws
    stack = load_stack(ws, name)
    revs = sorted(stack.revisions, key=lambda r: r.version)
    if not revs:
        raise UserError(f"stack {stack.name} has no revisions")
    if args.output is not None and args.output.exists() and not args.output.is_dir():
        raise UserError(f"{args.output} exists and is not a directory")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    summary_dir = (args.output or ws.cache.ci_all_dir(stamp, stack.name)).resolve()
    gated = "apply" in {s.name for s in closure(stages)}
    entries: list[dict[str, Any]] = []
    started = _now()
    with progress(ctx) as say:
        for n, rev in enumerate(revs):
            say.step("ci --all", n, len(revs), f"v{rev.version}")
            say(f"-- {stack.name} v{rev.version} ({n + 1}/{len(revs)})")
            out = (args.output / f"v{rev.version}") if args.output else None
            t0 = time.monotonic()
            run_: Run
            if not rev.imported_patches():
                run_ = _unrunnable(ws, stack, rev, opts, stages, f"not imported: series fetch {stack.name} "
                                   f"--revision {rev.version} (or series import)", out, say)
            else:
                try:
                    run_ = prepare(ws, "ci", stack.name, str(rev.version), opts, stages=stages, out=out, say=say,
                                   locked=True)
                except UserError as e:
                    run_ = _unrunnable(ws, stack, rev, opts, stages, f"cannot run: {e}", out, say)
                else:
                    with run_:
                        say(f"run directory: {run_.dir}")
                        if gated:
                            execute(run_, ["apply"], keep_going=True)
                            reason = skip_reason(run_)
                            if reason:
                                say(f"v{rev.version}: skip: {reason}")
                                _skip_rest(run_, stages, reason)
                            else:
                                execute(run_, stages, keep_going=True)
                        else:
                            execute(run_, stages, keep_going=True)
            r = run_.finish()
            skipped = r["status"] == "skip"
            entries.append({"revision": rev.version, "status": r["status"], "run_dir": r["run_dir"],
                            "reason": next((s["summary"] for s in r["stages"]), "") if skipped else "",
                            "duration_s": round(time.monotonic() - t0, 3),
                            "stages": {s["name"]: s["status"] for s in r["stages"]},
                            "problems": [f"{s['name']}: {s['summary']}" for s in r["stages"]
                                         if s["status"] in ("fail", "error")],
                            "cached": [s["name"] for s in r["stages"] if s.get("cached")],
                            "rebuilt": {str(i["index"]): i.get("rebuilt", 0) for s in r["stages"]
                                        if s["name"] == "build" for i in s["items"] if not i.get("cached")}})
        say.step("ci --all", len(revs), len(revs), "done")
    worst = _worst([e["status"] for e in entries])
    summary = {"schema": 1, "command": "ci --all", "stack": stack.name, "title": stack.title, "status": worst,
               "started": started, "finished": _now(), "summary_dir": str(summary_dir),
               "selected": stages, "revisions": entries}
    summary_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(summary_dir / "summary.json", summary)
    text = _all_text(summary)
    atomic_write_text(summary_dir / "summary.md", text + "\n")
    ctx.emit(summary, text)
    return 2 if worst in ("fail", "error") else 0


def _worst(statuses: list[str]) -> str:
    from ..pipeline import overall
    return str(overall(statuses))


def _all_text(s: dict[str, Any]) -> str:
    lines = [f"series ci {s['stack']} --all: {s['status'].upper()} ({len(s['revisions'])} revisions)"]
    for e in s["revisions"]:
        what = e["reason"] if e["status"] == "skip" else "  ".join(f"{k} {v}" for k, v in e["stages"].items())
        extra = ""
        if e["cached"]:
            extra = f"  [cached: {', '.join(e['cached'])}]"
        elif e["rebuilt"]:
            extra = "  [rebuilt objects: " + ", ".join(
                f"{'base' if k == '0' else 'patch ' + k} {v}" for k, v in e["rebuilt"].items()) + "]"
        lines.append(f"  v{e['revision']:<3} {e['status']:<5} {e['duration_s']:7.1f}s  {what}{extra}")
        lines += [f"       {p}" for p in e["problems"]]
        lines.append(f"       {e['run_dir']}")
    lines.append(f"summary: {s['summary_dir']}/summary.json")
    return "\n".join(lines)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
