"""series tree add NAME (--path DIR | --debian X.Y) ; series tree list [--json]"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import cast

from ..context import Context
from ..errors import UserError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tree", help="kernel trees: adopt a checkout or make one from Debian's linux-source")
    tsub = p.add_subparsers(dest="tree_cmd", metavar="SUBCOMMAND")
    a = tsub.add_parser("add", help="register a kernel tree")
    a.add_argument("name", help="the tree's name (letters, digits, '.', '_', '-'), used with --tree NAME")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--path", metavar="DIR", help="an existing kernel checkout (used read-only)")
    src.add_argument("--debian", metavar="X.Y", help="import /usr/src/linux-source-X.Y.tar.xz (apt package linux-source-X.Y)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=run)
    lst = tsub.add_parser("list", help="list the registered trees with their path and tags")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=run)
    p.set_defaults(func=run, tree_cmd=None)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..trees import add_debian, add_path, list_trees
    ws = ctx.ws
    if args.tree_cmd == "add":
        start = time.monotonic()
        if args.path:
            tree = add_path(ws, args.name, Path(args.path))
        else:
            tree = add_debian(ws, args.name, args.debian, log=ctx.info)
        data = {**tree.to_json(), "seconds": round(time.monotonic() - start, 1)}
        tags = cast("list[str]", data["tags"])
        ctx.emit(data, f"tree {tree.name} ({tree.kind}): {tree.path}  tags: {' '.join(tags) or '-'}")
        return 0
    if args.tree_cmd == "list":
        trees = list_trees(ws)
        rows = [t.to_json() for t in trees]
        text = "\n".join(f"{t['name']:<12} {t['kind']:<7} {t['path']}  "
                         + (f"(missing: {t['missing']})" if t.get("missing") else ' '.join(cast('list[str]', t['tags'])))
                         for t in rows)
        ctx.emit({"trees": rows}, text or "no kernel trees registered (series tree add NAME --debian 6.12)")
        return 0
    raise UserError("series tree: say add or list (series tree --help)")
