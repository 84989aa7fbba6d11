"""series changelog STACK vN [--json]"""

from __future__ import annotations

import argparse

from ..context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("changelog", help="the 'Changes in vN' of a revision: manifest lines plus computed ones",
                       description="Print the changelog of revision vN: what the manifest records, then lines "
                                   "computed from pairing with the previous revision (changed / added / dropped "
                                   "patches, a new base, the checkpatch delta), marked [computed] for you to edit.")
    p.add_argument("stack")
    p.add_argument("revision", help="vN")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..mail.changelog import compute_changelog
    from ..stacks.model import parse_version
    from ..stacks.store import load_stack
    st = load_stack(ctx.ws, args.stack)
    rev = st.revision(parse_version(args.revision))
    cl = compute_changelog(ctx.ws, st, rev)
    text = cl.text()
    if cl.per_patch:
        text += "\nPer patch (below ---):\n"
        for idx, lines in sorted(cl.per_patch.items()):
            text += "".join(f"  {idx}: {ln}\n" for ln in lines)
    ctx.emit(cl.to_json(), text)
    return 0
