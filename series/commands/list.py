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
    from ..stacks.store import list_stacks, load_stack
    rows: list[dict[str, Any]] = []
    for name in list_stacks(ctx.ws):
        st = load_stack(ctx.ws, name)
        rows.append({"name": name, "title": st.title, "derived_from": st.derived_from,
                     "revisions": [r.version for r in st.revisions],
                     "imported": [r.version for r in st.revisions if r.imported],
                     "incomplete": [r.version for r in st.revisions if r.imported and r.missing]})
    lines = []
    for r in rows:
        revs = " ".join(f"v{v}{'*' if v in r['imported'] else ''}{'!' if v in r['incomplete'] else ''}" for v in r["revisions"])
        lines.append(f"{r['name']:<24} {revs:<28} {r['title']}")
    if lines:
        lines.append("(* imported, ! incomplete)")
    ctx.emit({"stacks": rows}, "\n".join(lines) or "no stacks")
    return 0
