"""series edit STACK [vN] [--tree NAME] [--worktree DIR] [--full] [--onto REF] ; series edit STACK --abort"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("edit", help="put a revision on a branch to edit (b4 prep's layout); series record makes the next one",
                       description="Put revision vN (default: the latest) of STACK on the branch series/STACK/edit, "
                                   "in a worktree of its own (sparse unless --full): an empty cover letter commit "
                                   "with b4's tracking block at the base, then one commit per patch. Edit, commit, "
                                   "then `series record STACK`. b4 prep --show-info/--edit-cover and b4 trailers -u "
                                   "work there. A second `series edit` reports the open one.")
    p.add_argument("stack")
    p.add_argument("revision", nargs="?", help="vN (default: the latest)")
    p.add_argument("--tree", metavar="NAME", help="kernel tree (default: [ci] tree, or the only one)")
    p.add_argument("--onto", metavar="REF", help="the base (default: the revision's, or [ci] onto)")
    p.add_argument("--worktree", type=Path, metavar="DIR", help="where to check the branch out (default: in the cache)")
    p.add_argument("--full", action="store_true", help="a full checkout (default: only the files the patches touch)")
    p.add_argument("--abort", action="store_true", help="drop the open edit: remove its worktree and branch")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..errors import UserError
    from ..stacks.store import stack_write_lock
    from ..stacks import respin
    from ..stacks.model import parse_version
    from ..workspace import check_stack_name
    ws = ctx.ws
    check_stack_name(args.stack)
    with stack_write_lock(ws, args.stack):
        if args.abort:
            if args.revision or args.worktree or args.full or args.tree or args.onto:
                raise UserError("--abort takes only the stack name")
            msg = respin.abort_edit(ws, args.stack)
            ctx.emit({"stack": args.stack, "aborted": True, "message": msg}, msg)
            return 0
        out = respin.start_edit(ws, args.stack, parse_version(args.revision) if args.revision else None,
                                tree_name=args.tree, onto=args.onto, worktree=args.worktree, full=args.full,
                                say=ctx.info)
    ctx.emit(out.to_json(), out.text())
    return 0
