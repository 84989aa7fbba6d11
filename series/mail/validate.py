"""Validation of generated mails before anything is written.

1. headers: no value carries CR or LF (header injection);
2. b4: the mbox parses back as one complete series, in order, with the right
   count, cover included, base-commit and change-id seen;
3. git am: in a scratch `git worktree` at the base, the generated patch mails
   apply and give the same tree as the stack's own patches applied (empty diff).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import b4
from liblore.utils import split_mbox_as_bytes

from ..errors import UserError
from ..git import Git, Repo, Worktree
from ..patchfiles import touched_paths
from ..stacks.mailbox import _parse
from ..stacks.model import PatchInfo
from .format import MailSet, check_header_value


@dataclass
class Applied:
    ok: bool
    head: str | None = None
    tree: str | None = None
    failed: list[tuple[int, str, str]] = field(default_factory=list)   # (index, subject, why)
    diffstat: str = ""


def check_headers(ms: MailSet) -> None:
    for m in ms.mails:
        for name, value in m.headers:
            check_header_value(name, value)
        raw = m.as_bytes()
        head = raw.split(b"\n\n", 1)[0]
        if b"\r" in head:
            raise UserError(f"{m.filename}: a header carries CR")


def b4_problems(ms: MailSet) -> list[str]:
    """Parse the mbox back with b4; return what is wrong (empty list: fine)."""
    problems: list[str] = []
    lmbx = b4.LoreMailbox()
    msgs = split_mbox_as_bytes(ms.mbox_bytes())
    if len(msgs) != len(ms.mails):
        problems.append(f"mbox splits into {len(msgs)} messages, expected {len(ms.mails)}")
    for raw in msgs:
        lmbx.add_message(_parse(raw))
    lser = lmbx.get_series(ms.version, reroll=False, codereview_trailers=False)
    if lser is None:
        return problems + [f"b4 finds no v{ms.version} series in the mbox"]
    if not lser.complete:
        problems.append("b4 sees an incomplete series")
    if lser.expected != ms.total:
        problems.append(f"b4 expects {lser.expected} patches, we made {ms.total}")
    if not lser.has_cover:
        problems.append("b4 sees no cover letter")
    for m in ms.mails:
        got = lser.patches[m.counter] if m.counter < len(lser.patches) else None
        if got is None:
            problems.append(f"b4 misses {m.counter}/{ms.total}")
        elif got.msgid != m.message_id:
            problems.append(f"b4 has {got.msgid} at {m.counter}/{ms.total}, expected {m.message_id}")
    if ms.base_commit and lser.base_commit != ms.base_commit:
        problems.append(f"b4 reads base-commit {lser.base_commit}, expected {ms.base_commit}")
    if lser.change_id != ms.change_id:
        problems.append(f"b4 reads change-id {lser.change_id}, expected {ms.change_id}")
    return problems


def _am_one(g: Git, data: bytes) -> tuple[bool, str]:
    proc = g.run_proc("am", "--quiet", "--no-3way", input=data)
    if proc.returncode == 0:
        return True, ""
    why = (proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")).strip().splitlines()
    g.run_proc("am", "--abort")
    detail = "; ".join(l for l in why if l.startswith(("error:", "Patch failed", "fatal:")))[:300]
    return False, detail or (why[-1] if why else "git am failed")


def apply_in_worktree(work_repo: Path, base: str, items: list[tuple[int, str, bytes]], scratch: Path) -> Applied:
    """`git am` each item onto `base` in a detached worktree of `work_repo` made
    under the directory `scratch` and removed afterwards.
    items: (index, subject, mail bytes).  Every patch is tried (a failed one skipped),
    so all the conflicting ones are named."""
    # Only the files the patches touch are written (a kernel checkout is ~90k files).
    sparse = touched_paths(data.decode("utf-8", "replace") for _, _, data in items)
    with Worktree.temporary(Repo(work_repo), scratch, base, sparse=sparse, prefix="am-") as wt:
        wg = wt.git
        res = Applied(ok=True)
        for idx, subject, data in items:
            ok, why = _am_one(wg, data)
            if not ok:
                res.ok = False
                res.failed.append((idx, subject, why))
        res.head = wg.run("rev-parse", "HEAD")
        res.tree = wg.run("rev-parse", "HEAD^{tree}")
        res.diffstat = wg.run("diff", "--stat", "--summary", base, "HEAD", strip=False).rstrip()
        return res


def stack_items(patches: list[PatchInfo]) -> list[tuple[int, str, bytes]]:
    return [(p.index, p.subject, Path(p.file).read_bytes()) for p in patches if p.file]


def mail_items(ms: MailSet) -> list[tuple[int, str, bytes]]:
    return [(m.counter, m.subject, m.as_bytes()) for m in ms.mails if m.counter > 0]


def refuse_conflicts(stack: str, version: int, applied: Applied) -> None:
    if applied.ok:
        return
    names = ", ".join(f'{i} "{s}"' for i, s, _ in applied.failed)
    noun = "patch" if len(applied.failed) == 1 else "patches"
    first = applied.failed[0][2]
    raise UserError(f"{stack} v{version} cannot be mailed: {noun} {names} "
                    f"{'does' if len(applied.failed) == 1 else 'do'} not apply to its base ({first})")


def am_roundtrip(work_repo: Path, base: str, ms: MailSet, expected_tree: str, scratch: Path) -> list[str]:
    got = apply_in_worktree(work_repo, base, mail_items(ms), scratch)
    problems = [f"git am of mail {i}/{ms.total} failed: {why}" for i, _, why in got.failed]
    if got.tree != expected_tree:
        diff = Git(work_repo).run("diff", "--stat", expected_tree, got.tree or expected_tree)
        problems.append(f"git am of the mails gives tree {got.tree}, the stack gives {expected_tree}: {diff}")
    return problems

