"""series trailers STACK vN [--mbox FILE | --lore]"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("trailers", help="read the review trailers given on a revision into the ledger",
                       description="Read the replies to revision vN (--mbox FILE, or its thread on lore through b4 "
                                   "with --lore) and record each Reviewed-by, Acked-by, Tested-by, Reported-by and "
                                   "Suggested-by: who gave it, for which patch (a reply to the cover counts for "
                                   "every patch), from which Message-ID. The trailers already in the posted patches "
                                   "are recorded as 'posted'. The ledger is patches/STACK/trailers.toml; "
                                   "`series show STACK vN --trailers` prints it; `series record` carries them.")
    p.add_argument("stack")
    p.add_argument("revision", help="vN")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--mbox", type=Path, metavar="FILE", help="the replies (mbox, mboxrd, maildir, .gz)")
    g.add_argument("--lore", action="store_true", help="the revision's thread on lore, through b4")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..stacks.store import stack_write_lock
    from ..stacks.model import parse_version
    from ..stacks.trailers import collect
    from ..workspace import check_stack_name
    check_stack_name(args.stack)
    version = parse_version(args.revision)
    with stack_write_lock(ctx.ws, args.stack):
        rep = collect(ctx.ws, args.stack, version, mbox=args.mbox, lore=args.lore)
    ctx.emit(rep.to_json(), rep.text())
    return 0
