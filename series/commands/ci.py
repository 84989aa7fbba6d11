"""series ci [STACK] [vN] [--onto REF] [--tree NAME] [-o DIR] [--stages ...] [--json]"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..context import Context
from ..errors import UserError
from ..stacks.model import parse_version
from ..stacks.store import load_stack


def register(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--top-only", action="store_true", help="build only the top of the revision, not each patch")
    p.add_argument("--boot-timeout", type=float, default=600.0, metavar="S", help="whole-boot limit in seconds (default 600)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..ci import ALL_STAGES, CiOptions, run_ci
    from .build import progress
    ws = ctx.ws
    name = args.stack or ws.config.get("ci", {}).get("stack")
    if not name:
        raise UserError("no stack given (and no [ci] stack in series.toml)")
    st = load_stack(ws, name)
    rev = st.revision(parse_version(args.revision) if args.revision else None)
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip()) if args.stages else ALL_STAGES
    if args.boot_timeout <= 0:
        raise UserError("--boot-timeout must be positive")
    argv = [name, f"v{rev.version}"] + (["--onto", args.onto] if args.onto else []) + \
           (["--tree", args.tree] if args.tree else []) + (["--stages", args.stages] if args.stages else [])
    opts = CiOptions(stack=name, version=rev.version, tree=args.tree, onto=args.onto, out=args.output,
                     stages=stages, per_patch=not args.top_only, boot_timeout_s=args.boot_timeout, argv=argv)
    with progress(ctx) as say:
        r = run_ci(ws, st, rev, opts, say)
    lines = [f"series ci {r['stack']} v{r['revision']} onto {r['onto']}: {r['status'].upper()}"]
    for s in r["stages"]:
        lines.append(f"  {s['name']:<10} {s['status']:<5} {s['duration_s']:7.1f}s  {s['summary']}")
    if r["missing"]:
        lines.append(f"  missing patches (not imported): {', '.join(map(str, r['missing']))}")
    lines.append(f"reports: results.json junit.xml patchwork-checks.json summary.md index.html in {r['run_dir']}")
    ctx.emit(r, "\n".join(lines))
    return 2 if r["status"] in ("fail", "error") else 0
