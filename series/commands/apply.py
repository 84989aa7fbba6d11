"""series apply STACK [vN] --onto REF [--tree NAME] [--json]: the apply stage alone."""

from __future__ import annotations

import argparse

from ..context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("apply", help="apply a revision onto a base in a worktree of ours, with a hunk-level report")
    p.add_argument("stack")
    p.add_argument("revision", nargs="?", help="vN (default: the latest)")
    p.add_argument("--onto", metavar="REF", help="base: a ref, a sha, or debian/X.Y (default: the revision's base, "
                                                 "else [ci] onto)")
    p.add_argument("--tree", metavar="NAME", help="kernel tree (default: [ci] tree, or the only one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..pipeline import Options, prepare
    from ..pipeline.stages import execute
    opts = Options(onto=args.onto, tree=args.tree, argv=_argv(args))
    with prepare(ctx.ws, "apply", args.stack, args.revision, opts, stages=["apply"], say=ctx.info) as r:
        execute(r, ["apply"], keep_going=False)
    res = r.state.apply
    assert res is not None
    ctx.emit({**res.to_json(), "results": str(r.path("results.json"))},
             res.text() + f"\nresults: {r.path('results.json')}")
    return 0 if res.status in ("applied", "partial") else 2


def _argv(args: argparse.Namespace) -> list[str]:
    return [args.stack] + ([args.revision] if args.revision else []) + \
        (["--onto", args.onto] if args.onto else []) + (["--tree", args.tree] if args.tree else [])
