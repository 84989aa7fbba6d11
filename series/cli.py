"""Argument parsing and the exit-code mapping.  The only place that exits.

Commands live in `series/commands/<name>.py`; each module has
`register(subparsers)` which adds its parser(s) with `set_defaults(func=run)`,
and `run(args, ctx) -> int`.  Modules are discovered, so adding a command
touches no shared file.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import signal
import sys
import threading
import traceback
from typing import NoReturn

from . import __version__, _interrupted_early, commands
from .context import Context, OutputError
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


_in_unraisable = False


def _unraisable(u: "sys.UnraisableHookArgs") -> None:
    """A Ctrl-C that lands in a callback Python cannot raise from (importlib's
    module-lock weakref callback, while the command modules are imported) would
    print "Exception ignored ..." and be lost: the run went on and exited 0 (CI's
    early Ctrl-C sweep, once).  It is raised again in the main thread once this
    hook has returned (a 1 ms SIGALRM: anything raised in the hook is ignored too),
    where the command's `finally` blocks run and main() reports it (exit 130)."""
    global _in_unraisable
    if not isinstance(u.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(u)
        return
    _in_unraisable = True
    signal.signal(signal.SIGALRM, _reraise_interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.001)
    _in_unraisable = False


def _reraise_interrupt(signum: int, frame: object) -> None:
    if _in_unraisable:  # fired before the hook returned: once more, later
        signal.setitimer(signal.ITIMER_REAL, 0.001)
        return
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    try:
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is _interrupted_early:
            # From here on a Ctrl-C is a KeyboardInterrupt: reported below, and the
            # `finally` blocks of the command run (locks, worktrees, results.json).
            sys.unraisablehook = _unraisable
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return _main(argv)
    except KeyboardInterrupt:  # also while the command modules are being imported
        _say("series: interrupted")
        return 130
    except Exception as e:
        if not _interrupted(e):
            raise
        _say("series: interrupted")
        return 130


def _interrupted(e: BaseException) -> bool:
    """Whether `e` is a KeyboardInterrupt that Python wrapped on its way: a Ctrl-C
    while a class is made becomes "RuntimeError: Error calling __set_name__"."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _say(line: str) -> None:
    """One line on stderr, whatever state stderr is in."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


# What to do about an OSError a command did not expect: by errno, one line.
_OS_ADVICE = {
    errno.ENOSPC: "the file system is full: free some space and run again",
    errno.EDQUOT: "the disk quota is exceeded: free some space and run again",
    errno.EROFS: "the file system is read-only: use a writable workspace and cache (SERIES_CACHE)",
    errno.EACCES: "permission denied: check the owner and mode of that path",
    errno.EPERM: "operation not permitted: check the owner and mode of that path",
    errno.ENOTDIR: "a part of that path is a file, not a directory",
    errno.EISDIR: "that path is a directory, not a file",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "that path exists already",
    errno.ENAMETOOLONG: "the path is too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "an input/output error: the disk or file system is failing; check it (dmesg)",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
    errno.ENOMEM: "out of memory",
    errno.EXDEV: "the path is on another file system than expected",
    errno.EINVAL: "the file system does not allow this there (a special file system such as /proc?)",
    errno.ETXTBSY: "the file is busy (being executed)",
}
# Faults of the machine rather than of the input: exit 3 (infrastructure).
_INFRA_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM, errno.EMFILE})


def os_error_line(e: OSError) -> tuple[str, int]:
    """(one line, exit code) for an OSError: what failed, where, and what to do.
    A path under $SERIES_CACHE names the variable, which is what the user can change."""
    from .cache import default_root
    where = e.filename if e.filename is not None else None
    advice = _OS_ADVICE.get(e.errno or 0, e.strerror or str(e))
    text = f"{where}: {advice}" if where is not None else advice
    if where is not None:
        try:
            root = default_root()
            inside = os.path.abspath(os.fsdecode(where)).startswith(str(root) + os.sep) or \
                os.path.abspath(os.fsdecode(where)) == str(root)
        except (OSError, ValueError, TypeError):
            inside = False
        if inside:
            text += f" (it is in the cache: SERIES_CACHE={root}; point SERIES_CACHE to a usable directory)"
    return text, (3 if e.errno in _INFRA_ERRNOS else 1)


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
        _say(f"series: error: {e}")
        rc = e.exit_code
    except KeyboardInterrupt:
        _say("series: interrupted")
        rc = 130
    except BrokenPipeError:
        rc = 0
    except OutputError as e:  # stdout is gone or full (> /dev/full): say so on stderr
        _say(f"series: error: {e}")
        rc = 1
    except OSError as e:
        if os.environ.get("SERIES_DEBUG"):
            traceback.print_exc()
        line, rc = os_error_line(e)
        _say(f"series: error: {line}")
    except MemoryError:
        _say("series: error: out of memory")
        rc = 3
    except Exception as e:  # a bug: still one line, the trace only on request
        if _interrupted(e):
            _say("series: interrupted")
            return 130
        if os.environ.get("SERIES_DEBUG"):
            traceback.print_exc()
        print(f"series: internal error: {type(e).__name__}: {e} (set SERIES_DEBUG=1 for the trace)", file=sys.stderr)
        rc = 3
    return int(rc or 0)


def entry() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    rc = main()
    # What is still buffered for stdout is written now, not by the interpreter at
    # exit (which would print "Exception ignored ..." when stdout is /dev/full).
    try:
        sys.stdout.flush()
    except KeyboardInterrupt:     # Ctrl-C after the work, while its output is written
        _say("series: interrupted")
        rc = 130
    except (OSError, ValueError) as e:
        _say(f"series: error: cannot write to standard output: {getattr(e, 'strerror', None) or e}")
        rc = rc or 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    # The work is done (or was interrupted and reported): a late Ctrl-C must not
    # turn a finished run into a silent death by signal during interpreter exit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(rc)
