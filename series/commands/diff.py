"""series diff STACK vA vB ; series diff STACK_A vA STACK_B vB"""

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
    p.add_argument("new", metavar="vB", help="the newer revision (vN or N); or STACK_B when a vB follows")
    p.add_argument("new_version", nargs="?", metavar="vB",
                   help="with `diff STACK_A vA STACK_B vB`: pair across two stacks (a handover)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..stacks.lineage import pair_revisions, range_diff_text
    from ..stacks.model import parse_version
    from ..stacks.store import load_stack
    st = load_stack(ctx.ws, args.stack)
    st_new = load_stack(ctx.ws, args.new) if args.new_version else st
    new_v = args.new_version or args.new
    old, new = st.revision(parse_version(args.old)), st_new.revision(parse_version(new_v))
    for s, r in ((st, old), (st_new, new)):
        if not r.imported:
            raise UserError(f"{s.name} v{r.version} is not imported (series fetch {s.name} --revision {r.version})")
    pairs = pair_revisions(old, new)
    data = {"stack": st.name, "from": old.version, "to": new.version, "pairs": [p.to_json() for p in pairs]}
    if st_new is not st:
        # Across a handover: also which new patches were split off or renamed beyond line similarity.
        from ..stacks.handover import pair_across
        data.update({"from_stack": st.name, "to_stack": st_new.name,
                     "lineage": [ln.to_json() for ln in pair_across(old, new)]})
    ctx.emit(data, range_diff_text(old, new, pairs))
    return 0
