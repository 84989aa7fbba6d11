"""series record STACK [--worktree DIR] [--keep-trailers N]"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("record", help="turn the edited branch into the next revision (patches, cover, changelog draft)",
                       description="Record the branch of `series edit STACK` (or a b4 prep branch: --worktree DIR) "
                                   "as revision N+1: the patches as git format-patch writes them, the cover from the "
                                   "cover letter commit, the manifest entry (base commit, date, change-id) and a "
                                   "changelog: the cover's own 'Changes in vN+1' lines, then a draft from the "
                                   "pairing with vN (unchanged / changed: message, code or both / added / dropped / "
                                   "moved) and the review trailers carried (only to unchanged patches) or dropped.")
    p.add_argument("stack")
    p.add_argument("--worktree", type=Path, metavar="DIR", help="the worktree of the branch (default: the open edit's)")
    p.add_argument("--keep-trailers", action="append", metavar="N",
                   help="keep the review trailers of patch N of the new revision although it changed (repeatable, or 1,3)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..stacks.store import stack_write_lock
    from ..stacks import respin
    from ..workspace import check_stack_name
    ws = ctx.ws
    check_stack_name(args.stack)
    with stack_write_lock(ws, args.stack) as recovered:
        out = respin.record(ws, args.stack, worktree=args.worktree, keep_trailers=args.keep_trailers, say=ctx.info)
    out.notes[:0] = recovered
    ctx.emit(out.to_json(), out.text())
    return 0
