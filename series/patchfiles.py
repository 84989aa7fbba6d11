"""Which paths a patch touches (for sparse worktrees)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stacks.model import Revision

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


def revision_paths(rev: "Revision") -> list[str]:
    """The paths the imported patches of `rev` touch (a sparse worktree's set)."""
    return touched_paths(Path(p.file).read_text(errors="replace") for p in rev.imported_patches() if p.file)
