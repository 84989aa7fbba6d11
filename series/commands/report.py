"""series report [-o DIR] [--runs DIR]... [--json]

A static HTML dashboard across every stored run ($SERIES_CACHE/runs/*/results.json):
stacks × revisions × stages, what changed between revisions, a per-test history.
The output directory is self-contained (relative links, the runs' pages and
logs copied in), so it can be copied or served anywhere.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..context import Context
from ..errors import UserError

if TYPE_CHECKING:
    from ..workspace import Workspace


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="write a static HTML dashboard of every stored run (stack × revision × stage)",
                       description="Reads $SERIES_CACHE/runs/*/results.json (and --runs DIR); writes DIR/index.html "
                                   "with the runs' pages and logs beside it, every link relative.")
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="output directory (default: $SERIES_CACHE/report)")
    p.add_argument("--runs", type=Path, action="append", metavar="DIR",
                   help="also read the runs under DIR (e.g. a `series ci -o DIR`); repeatable")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _workspace(ctx: Context) -> "Workspace | None":
    """The workspace when there is one (the range-diff pairing needs the stacks);
    the dashboard is written without it otherwise."""
    if ctx.workspace_arg or os.environ.get("SERIES_WORKSPACE"):
        return ctx.ws
    try:
        return ctx.ws
    except UserError:
        return None


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..cache import Cache
    from ..report.dashboard import write_report
    ws = _workspace(ctx)
    cache = ws.cache if ws is not None else Cache.default()
    out: Path = (args.output or cache.report).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    roots = [cache.runs, *[d.resolve() for d in (args.runs or [])]]
    for d in args.runs or []:
        if not d.is_dir():
            raise UserError(f"--runs {d}: not a directory")
    for d in roots:
        try:
            out.relative_to(d)
        except ValueError:
            continue
        raise UserError(f"{out} lies inside the runs directory {d}: choose another output directory")
    generated = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    res = write_report(out, roots, ws, generated=generated, progress=None)
    text = f"dashboard: {res['index']} ({res['runs']} runs, stacks: {', '.join(res['stacks']) or 'none'})"
    for p in res["problems"]:
        text += f"\n  not shown: {p}"
    ctx.emit(res, text)
    return 0
