"""series show STACK [vN] [--trailers | --lineage]"""

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
    g = p.add_mutually_exclusive_group()
    g.add_argument("--trailers", action="store_true",
                   help="the trailers ledger: who gave which Reviewed-by/Acked-by/... on which patch, from which mail")
    g.add_argument("--lineage", action="store_true",
                   help="the chain of patches across revisions and from the stack it derives from")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _trailers(args: argparse.Namespace, ctx: Context) -> int:
    from ..stacks.model import parse_version
    from ..stacks.store import load_stack
    from ..stacks.trailers import ledger
    st = load_stack(ctx.ws, args.stack)
    only = parse_version(args.revision) if args.revision else None
    revs = {r.version: r for r in st.revisions}
    if only is not None:
        st.revision(only)
    entries = ledger(st, only)
    lines = [f"{st.name}: trailers" + (f" of v{only}" if only is not None else "")]
    for t in entries:
        where = "cover (every patch)" if t.patch == 0 else f"patch {t.patch}"
        origin = f", from v{t.origin_revision} {'cover' if t.origin_patch == 0 else 'patch ' + str(t.origin_patch)}" \
            if t.source == "carried" else ""
        lines.append(f"  v{t.revision} {where}: {t.line}  [{t.source}{origin} <{t.message_id}>]")
    if not entries:
        lines.append("  (none)")
    ctx.emit({"stack": st.name, "revision": only, "trailers": [t.to_json(revs.get(t.revision)) for t in entries]},
             "\n".join(lines))
    return 0


def _lineage(args: argparse.Namespace, ctx: Context) -> int:
    from ..errors import UserError
    from ..stacks.handover import chain
    from ..stacks.store import load_stack
    if args.revision:
        raise UserError("--lineage shows every revision; it takes no vN")
    st = load_stack(ctx.ws, args.stack)
    steps = chain(ctx.ws, st)
    lines = [f"{st.name}" + (f": derived from {st.derived_from}" if st.derived_from else "")]
    for s in steps:
        lines += s.text()
    ctx.emit({"stack": st.name, "derived_from": st.derived_from, "steps": [s.to_json() for s in steps]},
             "\n".join(lines))
    return 0


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
    if getattr(args, "trailers", False):
        return _trailers(args, ctx)
    if getattr(args, "lineage", False):
        return _lineage(args, ctx)
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
