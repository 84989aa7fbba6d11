"""Which paths a patch touches (for sparse worktrees)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_DIFF_GIT = re.compile(r"^diff --git a/(\S+) b/(\S+)\s*$", re.MULTILINE)
_RENAME = re.compile(r"^(?:rename|copy) (?:from|to) (.+)$", re.MULTILINE)
_MINUS_PLUS = re.compile(r"^(?:---|\+\+\+) (?:[ab]/)?(\S+)", re.MULTILINE)


def touched_paths(texts: Iterable[str]) -> list[str]:
    """Every path named on either side of every diff in `texts`."""
    out: set[str] = set()
    for text in texts:
        for a, b in _DIFF_GIT.findall(text):
            out.update((a, b))
        out.update(_RENAME.findall(text))
        out.update(p for p in _MINUS_PLUS.findall(text) if p != "/dev/null")
    return sorted(p for p in out if p and p != "dev/null")
