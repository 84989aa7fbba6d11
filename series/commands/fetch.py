"""series fetch STACK [--revision N] [--mirror DIR]"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fetch", help="import every revision the manifest lists, from lore (b4) or a local mirror",
                       description="Bring every revision of STACK listed in its manifest: from lore through b4 "
                                   "(address: [lore] url in series.toml or $SERIES_LORE_URL), or from a mirror laid "
                                   "out as DIR/<stack>/v<N>.mbox.")
    p.add_argument("stack")
    p.add_argument("--revision", metavar="N", help="only this revision (default: every revision the manifest lists)")
    p.add_argument("--mirror", metavar="DIR", help="local mirror (e.g. ../shared/lore) instead of lore")
    p.add_argument("--force", action="store_true", help="replace revisions imported from different mails")
    p.add_argument("--missing", action="store_true",
                   help="only revisions with no imported patch; a stored one is reported skipped (CI jobs)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..stacks.fetch import fetch_stack
    from ..stacks.model import parse_version
    rev = parse_version(args.revision) if args.revision else None
    mirror = Path(args.mirror).expanduser().resolve() if args.mirror else None
    outcomes = fetch_stack(ctx.ws, args.stack, revision=rev, mirror=mirror, force=args.force,
                           missing=args.missing)
    ctx.emit({"stack": args.stack, "revisions": [o.to_json() for o in outcomes]},
             "\n".join(o.line() for o in outcomes))
    return 0
