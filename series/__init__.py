"""series: keep a kernel patch series alive through its respins."""

import os as _os
import signal as _signal
import sys as _sys

__version__ = "0.1.0"


def _interrupted_early(signum: int, frame: object) -> None:
    """Ctrl-C while the CLI is still starting (importing its modules): nothing has
    been done yet, so there is nothing to clean up: one line, exit 130."""
    _os.write(2, b"series: interrupted\n")
    _os._exit(130)


# As early as our code runs, when this process is the CLI (the `series` script, or
# `python -m series`, for which argv[0] is "-m" while the package is imported);
# before it, the .pth line tools/setup installs does the same while Python starts.
# cli.main() hands SIGINT back to Python's KeyboardInterrupt once it can report it.
if _sys.argv and (_os.path.basename(_sys.argv[0]) == "series" or _sys.argv[0] == "-m"):
    _signal.signal(_signal.SIGINT, _interrupted_early)
