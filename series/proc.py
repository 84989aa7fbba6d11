"""Child processes that do not outlive series.

A kernel build (`make`) and a guest (`qemu`) run for minutes.  When series is
interrupted (Ctrl-C, SIGINT from a CI runner) it stops them; when it is killed
(SIGKILL, which it cannot catch) the kernel stops them: `die_with_parent` asks,
through prctl(PR_SET_PDEATHSIG), for a SIGKILL to the child when its parent
dies.  An orphaned `make` would otherwise go on writing into a build directory
whose lock the next run has just taken.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from typing import Any

_PR_SET_PDEATHSIG = 1
_prctl: Any
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl    # resolved here, not in the forked child
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _prctl = None


def die_with_parent() -> None:
    """A `preexec_fn`: the child gets SIGKILL when series dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def stop(proc: "subprocess.Popen[str] | subprocess.Popen[bytes]", *, group: bool = False) -> None:
    """Kill a child (its process group when it leads one) and reap it."""
    if proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
