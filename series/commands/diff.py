"""series diff STACK vA vB"""

from __future__ import annotations

import argparse

from ..context import Context
from ..errors import UserError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("diff", help="pair the patches of two revisions by content (range-diff)",
                       description="Pair patches of two revisions by content, like git range-diff; text is a range-diff, "
                                   "--json gives the pairs (same/changed/added/removed/missing, similarity).")
    p.add_argument("stack")
    p.add_argument("old", metavar="vA", help="the older revision (vN or N)")
    p.add_argument("new", metavar="vB", help="the newer revision (vN or N)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..stacks.lineage import pair_revisions, range_diff_text
    from ..stacks.model import parse_version
    from ..stacks.store import load_stack
    st = load_stack(ctx.ws, args.stack)
    old, new = st.revision(parse_version(args.old)), st.revision(parse_version(args.new))
    for r in (old, new):
        if not r.imported:
            raise UserError(f"{st.name} v{r.version} is not imported (series fetch {st.name} --revision {r.version})")
    pairs = pair_revisions(old, new)
    data = {"stack": st.name, "from": old.version, "to": new.version, "pairs": [p.to_json() for p in pairs]}
    ctx.emit(data, range_diff_text(old, new, pairs))
    return 0
