"""Which paths patches touch (for sparse worktrees): thin helpers over `series.patch.Patch`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .patch import Patch

if TYPE_CHECKING:
    from .stacks.model import Revision


def touched_paths(texts: Iterable[str]) -> list[str]:
    """Every path named on either side of every diff in `texts` (patch mails, as
    `git am` reads them)."""
    out: set[str] = set()
    for text in texts:
        out.update(Patch.from_bytes(text.encode("utf-8", "surrogateescape"), "a patch mail").touched_paths)
    return sorted(out)


def revision_paths(rev: "Revision") -> list[str]:
    """The paths the imported patches of `rev` touch (a sparse worktree's set)."""
    out: set[str] = set()
    for p in rev.imported_patches():
        if p.file:
            out.update(Patch.load(p.file).touched_paths)
    return sorted(out)
