"""series ci [STACK] [vN] [--onto REF] [--tree NAME] [-o DIR] [--stages ...] [--json]"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..context import Context
from ..errors import UserError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ci", help="run every stage on a revision (apply, checkpatch, hygiene, build, boot/test, mail) "
                                  "and write results.json, JUnit, patchwork checks and an HTML dashboard",
                       description="The demo CI. Defaults come from [ci] in series.toml (stack, tree, onto). "
                                   "A Debian tree named there is made from /usr/src on first use.")
    p.add_argument("stack", nargs="?", help="default: [ci] stack")
    p.add_argument("revision", nargs="?", help="vN (default: the latest)")
    p.add_argument("--onto", metavar="REF", help="base (default: the revision's base, else [ci] onto)")
    p.add_argument("--tree", metavar="NAME", help="kernel tree (default: [ci] tree; a Debian one is made on first use)")
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="run directory (default: $SERIES_CACHE/runs/...)")
    p.add_argument("--stages", metavar="LIST", help="comma-separated subset of apply,checkpatch,hygiene,build,test,mail")
    p.add_argument("--suites", metavar="LIST", help="comma-separated test suites (default: [test] suites in series.toml)")
    p.add_argument("--top-only", action="store_true", help="build only the top of the revision, not each patch")
    p.add_argument("--boot-timeout", type=float, default=600.0, metavar="S", help="whole-boot limit in seconds (default 600)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..errors import UserError
    from ..pipeline import Options, prepare
    from ..pipeline.progress import progress
    from ..pipeline.stages import STAGE_NAMES, execute
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages is not None else list(STAGE_NAMES)
    if args.boot_timeout <= 0:
        raise UserError("--boot-timeout must be positive")
    suites = [s.strip() for s in args.suites.split(",") if s.strip()] if args.suites is not None else None
    argv = ([args.stack] if args.stack else []) + ([args.revision] if args.revision else []) + \
        (["--onto", args.onto] if args.onto else []) + (["--tree", args.tree] if args.tree else []) + \
        (["--stages", args.stages] if args.stages else []) + (["--suites", args.suites] if args.suites else [])
    opts = Options(onto=args.onto, tree=args.tree, per_patch=not args.top_only, boot_timeout_s=args.boot_timeout,
                   suites=suites, argv=argv)
    with progress(ctx) as say:
        with prepare(ctx.ws, "ci", args.stack, args.revision, opts, stages=stages, out=args.output, say=say) as run_:
            say(f"run directory: {run_.dir}")
            execute(run_, stages, keep_going=True)
    r = run_.finish()
    lines = [f"series ci {r['stack']} v{r['revision']} onto {r['onto']}: {r['status'].upper()}"]
    for s in r["stages"]:
        lines.append(f"  {s['name']:<10} {s['status']:<5} {s['duration_s']:7.1f}s  {s['summary']}")
    if r["missing"]:
        lines.append(f"  missing patches (not imported): {', '.join(map(str, r['missing']))}")
    lines.append(f"reports: results.json junit.xml patchwork-checks.json summary.md index.html in {r['run_dir']}")
    ctx.emit(r, "\n".join(lines))
    return 2 if r["status"] in ("fail", "error") else 0
