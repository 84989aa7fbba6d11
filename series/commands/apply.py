"""series apply STACK [vN] --onto REF [--tree NAME] [--json]"""

from __future__ import annotations

import argparse

from ..context import Context
from ..errors import UserError
from ..fsutil import exclusive_lock
from ..stacks.model import parse_version
from ..stacks.store import load_stack
from ..stages.apply import apply_revision
from ..trees import load_tree, resolve_ref


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="apply a revision onto a base in a worktree of ours, with a hunk-level report")
    p.add_argument("stack")
    p.add_argument("revision", nargs="?", help="vN (default: the latest)")
    p.add_argument("--onto", metavar="REF", help="base: a ref, a sha, or debian/X.Y (default: [ci] onto)")
    p.add_argument("--tree", metavar="NAME", help="kernel tree (default: [ci] tree, or the only one)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    ws = ctx.ws
    stack = load_stack(ws, args.stack)
    rev = stack.revision(parse_version(args.revision) if args.revision else None)
    if not rev.imported_patches():
        raise UserError(f"{stack.name} v{rev.version} has no imported patch: series fetch {stack.name} "
                        f"--revision {rev.version} (or series import)")
    tree = load_tree(ws, args.tree)
    onto = args.onto or ws.config.get("ci", {}).get("onto")
    if not onto:
        raise UserError("no base given: use --onto REF")
    resolve_ref(tree, onto)  # bad refs fail before any progress output
    with exclusive_lock(ws.locks / f"{stack.name}.lock", f"stack {stack.name}"):
        ctx.info(f"applying {stack.name} v{rev.version} onto {onto} in tree {tree.name} ...")
        res = apply_revision(ws, stack.name, rev, tree, onto)
    ctx.emit(res.to_json(), res.text())
    return 0 if res.status in ("applied", "partial") else 2
