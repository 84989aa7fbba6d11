"""series show STACK [vN]"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..context import Context

if TYPE_CHECKING:
    from ..stacks.model import Revision


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("show", help="show a stack's revisions and patches (what is imported, what is missing)")
    p.add_argument("stack")
    p.add_argument("revision", nargs="?", help="vN (default: every revision)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _text(rev: Revision) -> list[str]:
    state = "not imported" if not rev.imported else ("complete" if rev.complete else f"incomplete: missing {', '.join(map(str, rev.missing))}")
    pre = f"[{' '.join(rev.prefixes)}] " if rev.prefixes else ""
    lines = [f"v{rev.version} {pre}{rev.title}  {rev.date}  {len(rev.present)}/{rev.expected} ({state})"]
    if rev.cover_message_id:
        lines.append(f"  cover: <{rev.cover_message_id}>")
    lines.append(f"  base: {rev.base or rev.base_note or 'unknown'}")
    by = {p.index: p for p in rev.patches}
    for i in rev.indexes:
        p = by.get(i)
        mark = "ok " if p and p.imported else "-- "
        subj = p.subject if p else "(unknown)"
        who = f"  [{p.author}]" if p and p.author else ""
        lines.append(f"  {mark}{i:>2}/{rev.posted_total or rev.expected} {subj}{who}")
    if rev.merged:
        lines.append(f"  merged: {rev.merged.get('release', '')}")
    return lines


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..stacks.model import parse_version
    from ..stacks.store import load_stack, stack_json
    st = load_stack(ctx.ws, args.stack)
    only = parse_version(args.revision) if args.revision else None
    data = stack_json(st, only)
    lines = [f"{st.name}: {st.title}" + (f" (derived from {st.derived_from})" if st.derived_from else "")]
    for rev in ([st.revision(only)] if only is not None else st.revisions):
        lines += _text(rev)
    ctx.emit(data, "\n".join(lines))
    return 0
