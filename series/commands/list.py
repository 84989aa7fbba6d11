"""series list"""

from __future__ import annotations

import argparse
from typing import Any

from ..context import Context


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("list", help="list the stacks of the workspace")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..errors import UserError
    from ..stacks.store import list_stacks, load_stack
    rows: list[dict[str, Any]] = []
    bad: list[tuple[str, str]] = []
    for name in list_stacks(ctx.ws):
        try:
            st = load_stack(ctx.ws, name)
        except UserError as e:
            # One malformed stack must not hide the others: they are listed, and
            # the bad one is named (and the exit code says something is wrong).
            bad.append((name, str(e)))
            continue
        rows.append({"name": name, "title": st.title, "derived_from": st.derived_from,
                     "revisions": [r.version for r in st.revisions],
                     "imported": [r.version for r in st.revisions if r.imported],
                     "incomplete": [r.version for r in st.revisions if r.imported and r.missing]})
    lines = []
    for r in rows:
        revs = " ".join(f"v{v}{'*' if v in r['imported'] else ''}{'!' if v in r['incomplete'] else ''}" for v in r["revisions"])
        lines.append(f"{r['name']:<24} {revs:<28} {r['title']}")
    for name, _why in bad:
        lines.append(f"{name:<24} (cannot be read: see below)")
    if rows:
        lines.append("(* imported, ! incomplete)")
    data: dict[str, Any] = {"stacks": rows}
    if bad:
        data["unreadable"] = [{"name": n, "error": why} for n, why in bad]
    ctx.emit(data, "\n".join(lines) or "no stacks")
    if bad:
        more = f" (and {len(bad) - 1} more stack(s))" if len(bad) > 1 else ""
        raise UserError(f"stack {bad[0][0]} cannot be read: {bad[0][1]}{more}")
    return 0
