"""series import STACK --mbox PATH [--revision N] [--select A-B] [--create] [--force]"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("import", help="import a posted revision from an mbox, mboxrd, maildir or .gz",
                       description="Import the patches of a posted revision into patches/STACK/vN/, as posted. "
                                   "Replies and other non-patch mails are ignored and counted; missing patches are recorded.")
    p.add_argument("stack")
    p.add_argument("--mbox", required=True, metavar="PATH", help="mbox/mboxrd file (optionally gzipped) or maildir")
    p.add_argument("--revision", metavar="N", help="the revision to import (default: what the subjects say)")
    p.add_argument("--select", metavar="A-B", help="keep patches A..B of a larger posted series, numbered as posted")
    p.add_argument("--create", action="store_true", help="create the stack if it does not exist")
    p.add_argument("--force", action="store_true", help="replace different mails already imported (the old copy is kept aside)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..stacks.importer import import_mailbox, parse_select
    from ..stacks.model import parse_version
    rev = parse_version(args.revision) if args.revision else None
    reports = import_mailbox(ctx.ws, args.stack, Path(args.mbox), revision=rev, select=parse_select(args.select),
                             create=args.create, force=args.force)
    ctx.emit({"imports": [r.to_json() for r in reports]}, "\n".join(r.line() for r in reports))
    return 0
