"""Generate a revision's mails and validate them, without writing anything.

Shared by `series mail` and `series ci`: apply in a scratch worktree, build the
mails (cover + patches, To/Cc from get_maintainer.pl unless given), then check
headers, threading, the mbox, the b4 parse and the `git am` round trip
(validate.py).  Raises StageFailed when the mails do not validate, UserError
when the revision cannot be mailed; returns what the validation found.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path

from ..errors import StageFailed, UserError
from ..stacks.model import Revision, Stack
from ..trees import Tree, materialize, resolve_ref
from ..workspace import Workspace
from .cover import cover_input
from .format import MailOptions, MailSet, build_mails, refuse_incomplete
from .validate import Validation, apply_in_worktree, check_headers, refuse_conflicts, stack_items, validate


def prepare_mails(ws: Workspace, st: Stack, rev: Revision, tree: Tree, base_ref: str, *,
                  to: list[str] | None = None, cc: list[str] | None = None, sender: str | None = None,
                  template: Path | None = None, use_get_maintainer: bool = True,
                  say: Callable[[str], None] = lambda _m: None) -> tuple[MailSet, Validation, str]:
    refuse_incomplete(st, rev)
    base = resolve_ref(tree, base_ref)
    scratch = ws.cache.mail_scratch(st.name, rev.version)
    try:
        say(f"applying {st.name} v{rev.version} onto {base[:12]} in a scratch worktree")
        applied = apply_in_worktree(tree.work_repo, base, stack_items(rev.imported_patches()), scratch)
        refuse_conflicts(st.name, rev.version, applied)
        gm_root = None
        if use_get_maintainer and (to is None or cc is None):
            with contextlib.suppress(UserError):
                root = materialize(tree, base, ["scripts", "MAINTAINERS"], cache=ws.cache)
                if (root / "scripts" / "get_maintainer.pl").is_file() and (root / "MAINTAINERS").is_file():
                    gm_root = root
        ci = cover_input(ws, st, rev, base_commit=base, diffstat=applied.diffstat)
        opts = MailOptions(to=to, cc=cc, sender=sender, base_commit=base, diffstat=applied.diffstat,
                           maintainers_root=gm_root, template=template)
        ms = build_mails(ws, st, rev, ci.changelog, ci, opts)
        check_headers(ms)
        say("validating the mails: threading, series.mbox, b4 parse, git am round trip")
        found = validate(ms, tree.work_repo, base, applied, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if found.problems:
        raise StageFailed(f"{st.name} v{rev.version}: the generated mails do not validate: "
                          + "; ".join(found.problems))
    return ms, found, base
