"""Validation of generated mails before anything is written.

1. headers: no value carries CR or LF (header injection), no line over 998;
2. thread: every mail has a Message-ID of its own; the cover comes first and
   replies to nothing; each patch's In-Reply-To and References name the cover;
3. mbox: series.mbox splits into the same messages as the mail files, in order;
4. b4: the mbox parses back as one complete series with the right count, cover
   included, each message at its place (n/m in mbox order), base-commit and
   change-id seen;
5. git am: in a scratch `git worktree` at the base, the generated patch mails
   apply one by one, and after mail n the tree is the tree after the stack's own
   patch n (so a dropped, reordered or altered patch is named), ending with the
   stack's tree.

`validate` runs 2-5 and returns a `Validation`: what was checked and what was
found.  `prepare_mails` refuses (StageFailed, exit 2) when it found anything.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    steps: list[str | None] = field(default_factory=list)   # the tree after each item (None: it failed)


@dataclass
class Validation:
    """What each check found (an empty list: it passed) and what it saw."""
    found: dict[str, list[str]]
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return [p for ps in self.found.values() for p in ps]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"headers": "pass"}
        out.update({name: "fail" if ps else "pass" for name, ps in self.found.items()})
        out["problems"] = self.problems
        out.update(self.facts)
        return out


def check_headers(ms: MailSet) -> None:
    for m in ms.mails:
        for name, value in m.headers:
            check_header_value(name, value)
        raw = m.as_bytes()
        head = raw.split(b"\n\n", 1)[0]
        if b"\r" in head:
            raise UserError(f"{m.filename}: a header carries CR")
        for line in head.split(b"\n"):
            if len(line) > 998:   # RFC 5322 2.1.1: a line is at most 998 characters
                name = line.split(b":", 1)[0].decode("ascii", "replace")[:40]
                raise UserError(f"{m.filename}: a {name} header line of {len(line)} characters is over the "
                                "998 that RFC 5322 allows: shorten it (a subject, an address list?)")


def b4_problems(ms: MailSet) -> list[str]:
    """Parse the mbox back with b4; return what is wrong (empty list: fine)."""
    problems: list[str] = []
    lmbx = b4.LoreMailbox()
    msgs = split_mbox_as_bytes(ms.mbox_bytes())
    if len(msgs) != len(ms.mails):
        problems.append(f"mbox splits into {len(msgs)} messages, expected {len(ms.mails)}")
    for pos, raw in enumerate(msgs):
        msg = _parse(raw)
        lmsg = b4.LoreMessage(msg)
        if (lmsg.revision, lmsg.counter, lmsg.expected) != (ms.version, pos, ms.total):
            problems.append(f"message {pos + 1} of the mbox is v{lmsg.revision} {lmsg.counter}/{lmsg.expected} "
                            f"({lmsg.full_subject!r}), expected v{ms.version} {pos}/{ms.total}")
        lmbx.add_message(msg)
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
            res.steps.append(wg.run("rev-parse", "HEAD^{tree}") if ok else None)
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


def am_roundtrip(work_repo: Path, base: str, ms: MailSet, expected: Applied, scratch: Path) -> list[str]:
    """`git am` of the patch mails, one by one, compared after each with the stack."""
    got = apply_in_worktree(work_repo, base, mail_items(ms), scratch)
    problems = [f"git am of mail {i}/{ms.total} failed: {why}" for i, _, why in got.failed]
    if len(got.steps) != len(expected.steps):
        problems.append(f"the mails carry {len(got.steps)} patches, the stack {len(expected.steps)}")
    for n, (mine, want) in enumerate(zip(got.steps, expected.steps), start=1):
        if mine is not None and want is not None and mine != want:
            problems.append(f"after mail {n}/{ms.total} the tree is not the stack's after its patch {n}")
    assert expected.tree is not None
    if got.tree != expected.tree:
        names = Git(work_repo).run("diff", "--name-only", expected.tree, got.tree or expected.tree).split()
        problems.append(f"git am of the mails gives tree {got.tree}, the stack gives {expected.tree} "
                        f"(they differ in {', '.join(names) or 'nothing'})")
    return problems


def _header(raw: bytes) -> email.message.Message:
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)


def _ids(value: str | None) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", value or "")


def thread_problems(ms: MailSet) -> list[str]:
    """Threading, read back from the bytes that will be written."""
    problems: list[str] = []
    heads = [(m, _header(m.as_bytes())) for m in ms.mails]
    if not heads:
        return ["no mail"]
    seen: dict[str, str] = {}
    for m, h in heads:
        ids = _ids(h.get("Message-ID"))
        if len(ids) != 1 or "@" not in ids[0]:
            problems.append(f"{m.filename}: Message-ID {h.get('Message-ID')!r} is not one <id@domain>")
            continue
        if ids[0] in seen:
            problems.append(f"{m.filename}: Message-ID <{ids[0]}> is also {seen[ids[0]]}'s")
        seen.setdefault(ids[0], m.filename)
    cover, ch = heads[0]
    cover_ids = _ids(ch.get("Message-ID"))
    if cover.counter != 0:
        problems.append(f"the first mail is {cover.filename}, not the cover letter")
    if ch.get("In-Reply-To") or ch.get("References"):
        problems.append(f"{cover.filename}: the cover replies to {ch.get('In-Reply-To') or ch.get('References')}")
    cid = cover_ids[0] if len(cover_ids) == 1 else None
    for m, h in heads[1:]:
        irt, refs = _ids(h.get("In-Reply-To")), _ids(h.get("References"))
        if irt != [cid]:
            problems.append(f"{m.filename}: In-Reply-To {h.get('In-Reply-To')!r} is not the cover's <{cid}>")
        if cid not in refs:
            problems.append(f"{m.filename}: References {h.get('References')!r} do not name the cover <{cid}>")
    return problems


def mbox_problems(ms: MailSet) -> list[str]:
    """series.mbox holds the mail files' messages, in the same order (mboxrd unquoted)."""
    msgs = split_mbox_as_bytes(ms.mbox_bytes())
    problems = []
    if len(msgs) != len(ms.mails):
        problems.append(f"series.mbox holds {len(msgs)} messages, there are {len(ms.mails)} mail files")
    for n, (raw, m) in enumerate(zip(msgs, ms.mails), start=1):
        if raw.rstrip(b"\n") != m.as_bytes().rstrip(b"\n"):
            problems.append(f"message {n} of series.mbox is not {m.filename}")
    return problems


def validate(ms: MailSet, work_repo: Path, base: str, stack: Applied, scratch: Path) -> Validation:
    """Checks 2-5 on the mails as they would be written (headers: `check_headers`)."""
    v = Validation(found={"thread": thread_problems(ms), "mbox": mbox_problems(ms), "b4": b4_problems(ms),
                          "git_am": am_roundtrip(work_repo, base, ms, stack, scratch)})
    v.facts = {"messages": len(ms.mails), "patches_compared": len(stack.steps), "tree": stack.tree,
               "base_commit": base}
    return v
