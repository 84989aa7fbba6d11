"""Argument parsing and the exit-code mapping.  The only place that exits.

Commands live in `series/commands/<name>.py`; each module has
`register(subparsers)` which adds its parser(s) with `set_defaults(func=run)`,
and `run(args, ctx) -> int`.  Modules are discovered, so adding a command
touches no shared file.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import traceback

from . import __version__, commands
from .context import Context
from .errors import SeriesError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="series",
        description="Keep a kernel patch series alive through its respins, and verify each one the way CI would.",
        epilog="exit codes: 0 ok, 1 user error, 2 a check or stage failed, 3 infrastructure error",
    )
    p.add_argument("--version", action="version", version=f"series {__version__}")
    p.add_argument("--workspace", "-C", metavar="DIR", help="workspace directory (default: $SERIES_WORKSPACE, or the nearest parent with series.toml)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{mod.name}")
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # argparse exits 2 on usage errors; a usage error is a user error (1).
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        return 0 if code == 0 else 1
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    ctx = Context(workspace_arg=args.workspace, json=getattr(args, "json", False), quiet=args.quiet)
    try:
        rc = args.func(args, ctx)
    except SeriesError as e:
        print(f"series: error: {e}", file=sys.stderr)
        rc = e.exit_code
    except KeyboardInterrupt:
        print("series: interrupted", file=sys.stderr)
        rc = 130
    except BrokenPipeError:
        rc = 0
    except Exception as e:  # a bug: still one line, the trace only on request
        if os.environ.get("SERIES_DEBUG"):
            traceback.print_exc()
        print(f"series: internal error: {type(e).__name__}: {e} (set SERIES_DEBUG=1 for the trace)", file=sys.stderr)
        rc = 3
    return int(rc or 0)


def entry() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
