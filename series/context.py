"""What a command receives: the parsed options, the workspace, and output helpers."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .workspace import Workspace


def _stdout() -> TextIO:
    return sys.stdout


def _stderr() -> TextIO:
    return sys.stderr


class OutputError(Exception):
    """stdout cannot be written (not a closed pipe): the CLI says so on stderr."""


@dataclass
class Context:
    workspace_arg: str | None
    json: bool = False
    quiet: bool = False
    # The streams current when the Context is made (not when this module was
    # imported): the CLI run in process by the tests writes to captured ones.
    out: TextIO = field(default_factory=_stdout)
    err: TextIO = field(default_factory=_stderr)
    _ws: Workspace | None = None

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            from .workspace import find_workspace
            self._ws = find_workspace(self.workspace_arg)
        return self._ws

    def emit(self, data: Any, text: str | None = None) -> None:
        """Print `data` as JSON in --json mode, else `text` (or a plain rendering).
        A stdout that cannot be written (a full disk, /dev/full) is an OutputError;
        a closed pipe stays a BrokenPipeError (the reader has gone: not an error)."""
        try:
            if self.json:
                self.out.write(json.dumps(data, indent=2, default=str) + "\n")
            elif text is not None:
                self.out.write(text if text.endswith("\n") or not text else text + "\n")
            self.out.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"cannot write to standard output: {e.strerror or e}") from None

    def info(self, msg: str) -> None:
        """Progress and notes: stderr, silent in --json and --quiet modes."""
        if not self.json and not self.quiet:
            self.err.write(msg + "\n")
            self.err.flush()

    @property
    def interactive(self) -> bool:
        return not self.json and not self.quiet and self.err.isatty()
