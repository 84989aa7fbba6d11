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
from typing import NoReturn

from . import __version__, commands
from .context import Context
from .errors import SeriesError


class UsageError(Exception):
    """A command-line mistake found by argparse (reported as one line, exit 1)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one `series: error:` line (exit 1), not a
    usage block and exit 2.  Sub-parsers inherit the class."""

    def error(self, message: str) -> "NoReturn":
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
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
    _fill_help(p)
    return p


# Help for the arguments every command shares, where a module left it out.
_COMMON_HELP = {
    "stack": "the stack's name (patches/STACK/stack.toml)",
    "json": "print the result as JSON on stdout (progress stays off)",
    "revision": "the revision: vN or N",
    "version": "the revision: vN or N",
}


def _fill_help(parser: argparse.ArgumentParser) -> None:
    """Every command and argument has help text: a sub-command's description
    defaults to its one-line help, common arguments get theirs."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, sp in action.choices.items():
                if not sp.description and helps.get(name):
                    sp.description = str(helps[name])
                _fill_help(sp)
        elif action.help is None and action.dest in _COMMON_HELP:
            action.help = _COMMON_HELP[action.dest]


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while the command modules are being imported
        print("series: interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    # argparse exits 2 on usage errors; a usage error is a user error (1), on one line.
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        print(f"series: error: {e}", file=sys.stderr)
        return 1
    except SystemExit as e:  # --help, --version
        code = e.code if isinstance(e.code, int) else 1
        return 0 if code == 0 else 1
    if not getattr(args, "func", None):
        parser.print_help()
        print("series: error: no command given (see series --help)", file=sys.stderr)
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
    rc = main()
    # The work is done (or was interrupted and reported): a late Ctrl-C must not
    # turn a finished run into a silent death by signal during interpreter exit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(rc)
