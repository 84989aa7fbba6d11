"""series cover STACK vN [--template FILE] [--base COMMIT] [--json]"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cover", help="render the cover letter of a revision (jinja2 template)",
                       description="Render the cover letter of revision vN from a jinja2 template: "
                                   "<workspace>/templates/cover.j2 if present, else the package default. "
                                   "Variables: cover, shortlog, diffstat, range_diff, base_commit, change_id, "
                                   "prerequisites, signature, changelog, history (every earlier revision with "
                                   "its lore link), previous_version, previous_link, stack, version, title.")
    p.add_argument("stack")
    p.add_argument("revision", help="vN")
    p.add_argument("--template", type=Path, help="a jinja2 template file (overrides the workspace's)")
    p.add_argument("--base", help="the base commit to print as base-commit: (default: the manifest's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..mail.cover import change_id, cover_input, history, render_cover, template_for
    from ..stacks.model import parse_version
    from ..stacks.store import load_stack
    ws = ctx.ws
    st = load_stack(ws, args.stack)
    rev = st.revision(parse_version(args.revision))
    ci = cover_input(ws, st, rev, base_commit=args.base)
    text = render_cover(ws, ci, args.template)
    _, where = template_for(ws, args.template)
    data = {"stack": st.name, "version": rev.version, "template": where, "change_id": change_id(st),
            "base_commit": ci.base_commit, "history": history(ws, st, rev), "text": text}
    ctx.emit(data, text)
    return 0
