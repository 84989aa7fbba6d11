"""Exception types.  The CLI maps them onto exit codes; nothing else exits.

| code | meaning                                                     |
|------|-------------------------------------------------------------|
| 0    | ok                                                          |
| 1    | user error (bad input, unknown stack or ref, malformed mail) |
| 2    | a check or stage failed                                     |
| 3    | infrastructure error (missing tool, VM would not start)     |
"""

from __future__ import annotations


class SeriesError(Exception):
    """Base class; `exit_code` tells the CLI what to return."""

    exit_code = 3


class UserError(SeriesError):
    exit_code = 1


class StageFailed(SeriesError):
    exit_code = 2


class InfraError(SeriesError):
    exit_code = 3


class GitError(InfraError):
    """A git command failed.  Carries the command and its stderr."""

    def __init__(self, args: list[str], returncode: int, stderr: str, stdout: str = "") -> None:
        self.args_list = args
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        first = (stderr.strip().splitlines() or [f"exit {returncode}"])[-1]
        super().__init__(f"git {' '.join(args[:3])}: {first}")
