"""series mutate STACK [vN] --onto REF [--functions F,...] [--max N] [--only ID,...] [--suites ...] [--seed S]
[--list] [--json]

Mutation testing of the C functions a revision touches: would the selected
test suites notice if this code were subtly wrong?  Applies and builds the
revision (warm build directory), makes small mutants of the functions its
hunks touch (series/mutate/operators.py lists the operators), builds each
incrementally, boots it once per suite and reports each mutant killed (by
which test or kernel problem), survived or skipped (does not compile, object
unchanged).  The verdicts are kept per revision, base and config: a re-run
resumes.  Exit 0 when the run completed (survivors are questions for a human,
not failures).  `--list` prints the mutants a run would try, in its order,
building and booting nothing (bench/mutants-eval.toml was made with it).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..context import Context

if TYPE_CHECKING:
    from ..mutate.engine import Options as MOptions
    from ..pipeline import Options, StageResult


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .build import add_common
    p = sub.add_parser("mutate", help="mutation testing: would the suites notice a subtly wrong function the "
                                      "revision touches?")
    add_common(p)
    p.add_argument("--functions", metavar="F,...", help="only these functions (comma-separated)")
    p.add_argument("--max", type=int, metavar="N", help="run at most the first N mutants of the seeded order")
    p.add_argument("--seed", type=int, default=0, help="the order's seed (default 0)")
    p.add_argument("--only", metavar="ID,...",
                   help="run only the mutants with these ids (from an earlier run's report or --list; "
                        "same --functions and --operators), e.g. to check that a new test kills them")
    p.add_argument("--operators", metavar="LIST",
                   help="comma-separated operators (default: all: delete-stmt, negate-cond, drop-term, errno, "
                        "drop-flag, swap-andor, off-by-one)")
    p.add_argument("--equivalent", metavar="FILE",
                   help="mutants no test can kill, with the reason (bench/mutants-equivalent.toml's format): "
                        "a listed survivor is reported `equivalent`, not counted")
    p.add_argument("--list", action="store_true",
                   help="print the mutants the run would try, in its order (id, file, function, operator; the "
                        "diffs with --json), and build and boot nothing: the revision is applied, the sources "
                        "read at its top")
    p.add_argument("--test-timeout", type=int, default=30, metavar="S",
                   help="per-program limit in the guest (default 30: a hang is a kill, found fast)")
    p.add_argument("--boot-timeout", type=float, default=420.0, metavar="S",
                   help="whole-boot limit (a mutant's boot is also bounded by 4x the baseline's, at least 30 s)")
    p.set_defaults(func=run)


def mutate_stage(out: dict[str, Any]) -> "StageResult":
    """The run page's section: the counts, and a row per mutant (killed: pass,
    survived: warn, with its diff, equivalent and skipped: skip)."""
    from ..pipeline import StageResult, Status
    s = out["summary"]
    kind = {"killed": "pass", "survived": "warn", "equivalent": "skip", "skipped": "skip"}
    items: list[dict[str, Any]] = [
        {"name": f"{m['file']}:{m['function']} {m['operator']} {m['id']}", "status": kind[m["status"]],
         "summary": m["status"] + (": " + ", ".join(m.get("killed_by", [])) if m.get("killed_by") else "")
         + (f" ({m['reason']})" if m.get("reason") else ""), "diff": m["diff"]} for m in out["mutants"]]
    rates = ", ".join(f"{n} {k}/{s['ran']}" for n, k in s["killed_by_suite"].items())
    summary = (f"{s['killed']}/{s['ran']} killed ({rates}); {s['survived']} survived, "
               f"{len(s['equivalent'])} equivalent, {sum(s['skipped'].values())} skipped")
    return StageResult(name="mutate", status=Status.WARN if s["survived"] else Status.PASS, summary=summary,
                       items=items, log=out["html"], counts={"killed": s["killed"], "survived": s["survived"]},
                       extra={"mutants_json": out["mutants_json"]})


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..errors import UserError
    from ..mutate.engine import Options as MOptions
    from ..mutate.engine import load_equivalent, run_mutants, text_report
    from ..mutate.operators import OPERATORS
    from ..pipeline import prepare
    from ..pipeline.progress import progress
    from ..pipeline.stages import execute, test_plan
    from .build import options
    if args.max is not None and args.max < 1:
        raise UserError("--max must be at least 1")
    funcs = [f.strip() for f in args.functions.split(",") if f.strip()] if args.functions else None
    if args.functions is not None and not funcs:
        raise UserError("--functions needs at least one name")
    only = [i.strip() for i in args.only.split(",") if i.strip()] if args.only else None
    if args.only is not None and not only:
        raise UserError("--only needs at least one mutant id")
    ops = tuple(o.strip() for o in args.operators.split(",") if o.strip()) if args.operators else OPERATORS
    unknown = [o for o in ops if o not in OPERATORS]
    if unknown or not ops:
        raise UserError(f"unknown operator(s) {', '.join(unknown) or '(none given)'} (known: {', '.join(OPERATORS)})")
    opts = options(args, "mutate")
    opts.per_patch = False        # the top of the revision only: mutants are made there
    opts.build_base = False
    mo = MOptions(functions=funcs, max=args.max, only=only, seed=args.seed, jobs=args.jobs,
                  test_timeout_s=args.test_timeout, boot_timeout_s=args.boot_timeout, operators=ops)
    if args.equivalent:
        from pathlib import Path
        mo.equivalent = load_equivalent(Path(args.equivalent))
    if args.list:
        return list_run(args, ctx, opts, mo)
    with progress(ctx) as say:
        with prepare(ctx.ws, "mutate", args.stack, args.revision, opts, stages=["build"], say=say) as r:
            execute(r, ["build"], keep_going=False)
            st = r.result("build")
            assert st is not None
            if r.state.build is None or st.status.failed or st.status == "skip":
                from ..errors import StageFailed
                raise StageFailed(f"build: {st.summary} ({r.dir})")
            test_plan(r)
            out = run_mutants(r, mo)
            r.add(mutate_stage(out))
    suites = out["key"]["suites"]
    head = [f"mutate {r.stack.name} v{r.rev.version} onto {r.onto}"
            + (f" (incomplete: patch {', '.join(map(str, r.rev.missing))} missing)" if r.rev.missing else ""),
            "functions: " + "; ".join(f"{t['file']}: {', '.join(t['functions'])}" for t in out["targets"]),
            f"{out['generated']} mutants generated; seed {mo.seed}" + (f", --max {mo.max}" if mo.max else "")]
    ctx.emit(out, "\n".join(head) + "\n" + text_report(out["summary"], out["mutants"], suites)
             + f"\nmutants: {r.path('mutants.json')}\nsurvivors: {r.path('mutants.html')}")
    return 0


def list_run(args: argparse.Namespace, ctx: Context, opts: "Options", mo: "MOptions") -> int:
    """`--list`: the apply stage only; the revision's C files (and the FILE: of
    --functions) read at its top commit with git, and engine.select, the code
    path a run takes, on them.  Whether the kernel build compiles a file is
    read from the warm build directory of (tree, base, config) when it has a
    kernel; without one every file is kept, and the output says so."""
    import tempfile
    from pathlib import Path

    from ..errors import StageFailed
    from ..mutate.engine import object_of, revision_changes, select, sources_at
    from ..pipeline import prepare
    from ..pipeline.progress import progress
    from ..pipeline.stages import execute, test_plan
    from ..stages.build import build_dir_for, bzimage_path
    with progress(ctx) as say:
        with prepare(ctx.ws, "mutate", args.stack, args.revision, opts, stages=["apply"], say=say) as r:
            execute(r, ["apply"], keep_going=False)
            st, res = r.result("apply"), r.state.apply
            assert st is not None
            if res is None or st.status.failed:
                raise StageFailed(f"apply: {st.summary} ({r.dir})")
            assert r.tree is not None
            commits = [p.commit for p in res.patches if p.commit]
            head = commits[-1] if commits else res.base_commit
            plan = test_plan(r)
            obj = build_dir_for(r.ws.cache, r.tree.name, res.base_commit, plan.config_hash) / "obj"
            known = bzimage_path(obj).is_file()
            changes = revision_changes([p.file for p in r.rev.imported_patches() if p.file is not None])
            paths = set(changes) | {f.rsplit(":", 1)[0] for f in mo.functions or [] if ":" in f}
            with tempfile.TemporaryDirectory(prefix="series-mutate-list-") as tmp:
                sources_at(r.tree.work_git, head, paths, Path(tmp))
                sel = select(Path(tmp), changes, mo.functions, mo.operators, mo.seed, mo.max,
                             compiled=(lambda f: (obj / object_of(f)).is_file()) if known else None,
                             only=mo.only)
    out: dict[str, Any] = {
        "stack": r.stack.name, "revision": r.rev.version, "tree": r.tree.name, "onto": r.onto,
        "base_commit": res.base_commit, "head": head, "config": plan.config_hash, "functions": mo.functions,
        "operators": list(mo.operators), "seed": mo.seed, "max": mo.max, "missing": r.rev.missing,
        "targets": [{"file": t.file, "functions": t.functions} for t in sel.targets], "not_built": sel.outside,
        "compiled_checked": known, "generated": len(sel.generated),
        "mutants": [{"position": i, "id": m.id, "file": m.file, "function": m.function, "operator": m.operator,
                     "diff": m.diff} for i, m in enumerate(sel.chosen, 1)]}
    head_lines = [f"mutate --list {r.stack.name} v{r.rev.version} onto {r.onto} ({res.base_commit[:12]}); "
                  f"{out['generated']} mutants generated; seed {mo.seed}" + (f", --max {mo.max}" if mo.max else ""),
                  "functions: " + "; ".join(f"{t.file}: {', '.join(t.functions)}" for t in sel.targets)]
    if sel.outside:
        head_lines.append(f"not in this kernel build (not mutated): {', '.join(sel.outside)}")
    if not known:
        head_lines.append("no kernel built yet for this tree, base and config: files it does not compile "
                          "are not left out (a run would leave them out)")
    rows = [f"  {m['position']:4} {m['id']} {m['file']}:{m['function']} {m['operator']}" for m in out["mutants"]]
    ctx.emit(out, "\n".join(head_lines + rows))
    return 0

