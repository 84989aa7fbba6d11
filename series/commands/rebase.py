"""series rebase [STACK] REF [--from vN] [--tree NAME] [--json] ; series rebase [STACK] --continue|--abort"""

from __future__ import annotations

import argparse

from ..context import Context
from ..errors import UserError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rebase", help="take a revision onto a new base as the next revision (conflict report on failure)")
    p.add_argument("stack", nargs="?", help="the stack's name (default: the one being edited, else the [ci] "
                                            "stack, else the only one)")
    p.add_argument("ref", nargs="?", help="the new base: a ref, a sha, or debian/X.Y")
    p.add_argument("--from", dest="from_version", metavar="vN", help="revision to rebase (default: the latest)")
    p.add_argument("--tree", metavar="NAME", help="kernel tree (default: [ci] tree, or the only one)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--continue", dest="cont", action="store_true", help="after resolving a conflict: finish the rebase")
    g.add_argument("--abort", action="store_true", help="undo a stopped rebase (records nothing)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..stacks.model import parse_version
    from ..stacks.store import stack_write_lock
    from ..stages import rebase as rb
    ws = ctx.ws
    if args.cont or args.abort:
        if args.ref:
            raise UserError("--continue/--abort take at most the stack name")
        if args.from_version or args.tree:
            raise UserError("--from/--tree do not go with --continue/--abort (the stopped rebase knows them)")
        st = args.stack or rb.find_state(ws, None)["stack"]
        with stack_write_lock(ws, st):
            if args.abort:
                msg = rb.abort(ws, st)
                ctx.emit({"stack": st, "aborted": True, "message": msg}, msg)
                return 0
            out = rb.resume(ws, st)
    else:
        from ..stacks import respin
        from ..stacks.store import list_stacks
        if args.stack and not args.ref and args.stack not in list_stacks(ws):
            # `series rebase v6.12`: the ref alone; the stack is the one being edited,
            # else the [ci] stack, else the only one.
            args.stack, args.ref = respin.default_stack(ws), args.stack
        if not args.stack or not args.ref:
            raise UserError("usage: series rebase [STACK] REF [--from vN] (or --continue / --abort)")
        frm = parse_version(args.from_version) if args.from_version else None
        with stack_write_lock(ws, args.stack):
            edit = respin.find_edit(ws, args.stack)
            if edit is not None:
                # An edit is open: its branch moves (cover and patches), nothing is recorded yet.
                if frm is not None:
                    raise UserError(f"an edit of {args.stack} is open: --from does not apply (it rebases the edit)")
                done, msg = respin.rebase_edit(ws, edit, args.ref, tree_name=args.tree)
                ctx.emit({"stack": args.stack, "edit": True, "done": done, "onto": args.ref, "message": msg}, msg)
                return 0 if done else 2
            out = rb.start(ws, args.stack, args.ref, from_version=frm, tree_name=args.tree)
    ctx.emit(out.to_json(), out.text())
    return 0 if out.recorded is not None else 2
