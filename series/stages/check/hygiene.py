"""Series hygiene, in the manner of netdev's patch CI: sign-offs, Fixes: tags,
subject numbering, the cover letter, recipients against get_maintainer.pl,
trailing whitespace and CRLF.  Each check yields items {check, status, message}
with status pass | warn | fail | skip."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any

from ...patch import Patch
from ...stacks.mailbox import load_mails


@dataclass
class Item:
    check: str
    status: str          # pass | warn | fail | skip
    message: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "message": self.message}


def _addr(value: str) -> tuple[str, str]:
    name, addr = parseaddr(value)
    return name.strip().strip('"'), addr.strip()


def _norm_name(n: str) -> str:
    return " ".join(n.replace('"', "").split()).casefold()


def _fmt(a: tuple[str, str]) -> str:
    return f"{a[0]} <{a[1]}>" if a[0] else f"<{a[1]}>"


def signoffs(message: str) -> list[tuple[str, str]]:
    return [_addr(m.group(1)) for m in re.finditer(r"^Signed-off-by:\s*(.+?)\s*$", message, re.M | re.I)]


# -- per-patch checks -------------------------------------------------------------
def check_signoff(pm: Patch) -> list[Item]:
    """The author (the in-body From when there is one) signs off; a sender who is not
    the author signs off too (the chain)."""
    sobs = signoffs(pm.message)
    items: list[Item] = []
    who = "in-body From" if pm.in_body_from else "From"
    if not sobs:
        return [Item("signed-off-by", "fail", f"no Signed-off-by: line (author {_fmt(pm.author)})")]
    by_mail = [s for s in sobs if s[1].casefold() == pm.author[1].casefold()]
    by_name = [s for s in sobs if pm.author[0] and _norm_name(s[0]) == _norm_name(pm.author[0])]
    if by_mail:
        if pm.author[0] and not any(_norm_name(s[0]) == _norm_name(pm.author[0]) for s in by_mail):
            items.append(Item("signed-off-by", "fail", f"author ({who}) {_fmt(pm.author)} signs off with another "
                                                       f"name: {_fmt(by_mail[0])}"))
        else:
            items.append(Item("signed-off-by", "pass", f"author ({who}) {_fmt(pm.author)} signed off"))
    elif by_name:
        items.append(Item("signed-off-by", "fail", f"author ({who}) {_fmt(pm.author)} signs off with another "
                                                   f"address: {_fmt(by_name[0])}"))
    else:
        items.append(Item("signed-off-by", "fail", f"no Signed-off-by: from the author ({who}) {_fmt(pm.author)}"))
    if pm.in_body_from and pm.sender[1] and pm.sender[1].casefold() != pm.author[1].casefold():
        if any(s[1].casefold() == pm.sender[1].casefold() for s in sobs):
            items.append(Item("signed-off-by", "pass", f"sender {_fmt(pm.sender)} signed off (chain)"))
        else:
            items.append(Item("signed-off-by", "warn", f"sender {_fmt(pm.sender)} is not the author and has no "
                                                       "Signed-off-by: (broken chain)"))
    return items


FIXES_RE = re.compile(r'^Fixes:\s*(?P<sha>[0-9a-fA-F]+)\s+\("(?P<subject>.*)"\)\s*$')


@dataclass
class CommitLookup:
    """How Fixes: commits are found: None when the tree has no history."""
    lookup: Callable[[str], str | None] | None   # sha -> subject, or None when absent
    reason: str = ""


def check_fixes(pm: Patch, commits: CommitLookup) -> list[Item]:
    lines = [l for l in pm.message.splitlines() if re.match(r"^fixes:", l, re.I)]
    if not lines:
        return [Item("fixes", "pass", "no Fixes: tags")]
    items: list[Item] = []
    for line in lines:
        m = FIXES_RE.match(line.strip())
        if not m or not line.startswith("Fixes:"):
            items.append(Item("fixes", "fail", f"malformed tag (want Fixes: <12+ hex> (\"subject\")): {line.strip()}"))
            continue
        sha, subj = m.group("sha"), m.group("subject")
        if len(sha) < 12:
            items.append(Item("fixes", "fail", f"Fixes: sha {sha} has {len(sha)} digits (12 or more wanted)"))
            continue
        if commits.lookup is None:
            items.append(Item("fixes", "skip", f"Fixes: {sha[:12]} well formed; existence not checked: {commits.reason}"))
            continue
        found = commits.lookup(sha)
        if found is None:
            items.append(Item("fixes", "fail", f"Fixes: {sha[:12]} is not a commit of the tree"))
        elif found.strip() != subj.strip():
            items.append(Item("fixes", "fail", f"Fixes: {sha[:12]} quotes \"{subj}\" but the commit is \"{found}\""))
        else:
            items.append(Item("fixes", "pass", f"Fixes: {sha[:12]} (\"{subj}\") found in the tree"))
    return items


def check_whitespace(raw: bytes) -> list[Item]:
    items: list[Item] = []
    crlf = raw.count(b"\r\n")
    items.append(Item("crlf", "fail", f"{crlf} lines end with CRLF") if crlf
                 else Item("crlf", "pass", "no CRLF line endings"))
    bad: list[int] = []
    in_diff = False
    for n, line in enumerate(raw.replace(b"\r\n", b"\n").split(b"\n"), 1):
        if line.startswith(b"diff --git "):
            in_diff = True
        elif in_diff and line.startswith(b"+") and not line.startswith(b"+++ ") and line.rstrip(b" \t") != line:
            bad.append(n)
    if bad:
        shown = ", ".join(str(n) for n in bad[:10]) + (" ..." if len(bad) > 10 else "")
        items.append(Item("trailing-whitespace", "fail", f"{len(bad)} added lines end with whitespace "
                                                         f"(patch lines {shown})"))
    else:
        items.append(Item("trailing-whitespace", "pass", "no trailing whitespace on added lines"))
    return items


# -- subjects and numbering ----------------------------------------------------------
@dataclass
class Prefix:
    tags: list[str]              # e.g. ["PATCH"], ["RFC", "PATCH"], ["PATCH", "net-next"]
    version: int | None
    n: int | None
    m: int | None


def parse_prefix(subject: str) -> Prefix | None:
    head = re.match(r"^((?:\s*\[[^\]]*\])*)", subject)   # always matches (possibly empty)
    groups = re.findall(r"\[([^\]]*)\]", head.group(1) if head else "")
    if not groups:
        return None
    tags: list[str] = []
    version = n = m = None
    for tok in " ".join(groups).split():
        if re.fullmatch(r"[vV]\d+", tok):
            version = int(tok[1:])
        elif re.fullmatch(r"\d+/\d+", tok):
            n, m = (int(x) for x in tok.split("/"))
        else:
            tags.append(tok)
    return Prefix(tags=tags, version=version, n=n, m=m)


def check_numbering(version: int, subjects: dict[int, str], missing: list[int],
                    posted_total: int | None) -> tuple[dict[int, list[Item]], list[Item]]:
    """Per-patch subject items, and revision-level items (gaps, totals, prefixes)."""
    per: dict[int, list[Item]] = {}
    prefixes: dict[int, Prefix] = {}
    for idx, subj in sorted(subjects.items()):
        pf = parse_prefix(subj)
        if pf is None or pf.n is None or pf.m is None:
            per[idx] = [Item("subject", "fail", f"no [PATCH n/m] numbering in {subj!r}")]
            continue
        prefixes[idx] = pf
        want = f"v{version} " if version > 1 else ""
        if pf.version is None and version > 1:
            per[idx] = [Item("subject", "fail", f"subject lacks v{version}: [{' '.join(pf.tags)} {pf.n}/{pf.m}]")]
        elif pf.version is not None and pf.version != version:
            per[idx] = [Item("subject", "fail", f"subject says v{pf.version}, the revision is v{version}")]
        elif pf.n != idx:
            per[idx] = [Item("subject", "fail", f"numbered {pf.n}/{pf.m} but is patch {idx} of the revision")]
        else:
            per[idx] = [Item("subject", "pass", f"[{' '.join(pf.tags)} {want}{pf.n}/{pf.m}]".replace("  ", " "))]
    rev_items: list[Item] = []
    if not prefixes:
        return per, rev_items
    tagsets = {tuple(p.tags) for p in prefixes.values()}
    if len(tagsets) > 1:
        rev_items.append(Item("subject-prefixes", "fail", "inconsistent prefixes: " +
                              ", ".join(sorted("[" + " ".join(t) + "]" for t in tagsets))))
    else:
        rev_items.append(Item("subject-prefixes", "pass", "consistent prefixes [" + " ".join(next(iter(tagsets))) + "]"))
    totals = {p.m for p in prefixes.values() if p.m is not None}   # prefixes hold only numbered ones
    if len(totals) > 1:
        rev_items.append(Item("numbering", "fail", f"patches disagree on the total: {sorted(totals)}"))
        return per, rev_items
    total = totals.pop()
    numbers = sorted(p.n for p in prefixes.values() if p.n is not None)
    dups = sorted({x for x in numbers if numbers.count(x) > 1})
    first = min(min(numbers), min(missing)) if missing else min(numbers)
    gaps = [x for x in range(first, total + 1) if x not in numbers and x not in missing]
    problems = []
    if dups:
        problems.append(f"numbers used twice: {dups}")
    if gaps:
        problems.append(f"gaps in numbering (not known missing): {gaps}")
    if posted_total and total != posted_total:
        problems.append(f"numbered out of {total}, the manifest says {posted_total}")
    if any(x > total for x in numbers):
        problems.append(f"numbers above the total {total}")
    if problems:
        rev_items.append(Item("numbering", "fail", "; ".join(problems)))
    else:
        note = f" (missing from the import: {missing})" if missing else ""
        rev_items.append(Item("numbering", "pass", f"numbered {first}..{total} of {total} without gaps{note}"))
    return per, rev_items


def check_cover(n_patches: int, cover_text: str | None, cover_subject: str = "") -> Item:
    if n_patches <= 1:
        return Item("cover-letter", "pass", "single patch: no cover letter needed")
    if cover_text and cover_text.strip():
        return Item("cover-letter", "pass", f"cover letter present{': ' + cover_subject if cover_subject else ''}")
    return Item("cover-letter", "fail", f"{n_patches} patches but no cover letter")


# -- recipients ----------------------------------------------------------------------
@dataclass
class Named:
    name: str
    email: str
    role: str        # the get_maintainer.pl role text, e.g. "maintainer:MEMORY MANAGEMENT"

    @property
    def is_list(self) -> bool:
        return "list" in self.role.split(":", 1)[0]


def get_maintainer_command(scripts_root: Path, patch: Path) -> list[str]:
    return ["perl", str(scripts_root / "scripts" / "get_maintainer.pl"), "--no-tree", "--no-git",
            "--no-git-fallback", str(patch)]


def run_get_maintainer(scripts_root: Path, patch: Path, timeout: float = 300) -> list[Named]:
    """The people and lists get_maintainer.pl names for the files a patch touches."""
    proc = subprocess.run(get_maintainer_command(scripts_root, patch), cwd=scripts_root, capture_output=True,
                          timeout=timeout)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"get_maintainer.pl exited {proc.returncode}: {err[-1] if err else ''}")
    return parse_get_maintainer(proc.stdout.decode("utf-8", "replace"))


def parse_get_maintainer(text: str) -> list[Named]:
    out: list[Named] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or "@" not in line:
            continue
        m = re.match(r"^(.*?)\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)\s*$", line)
        who, role = (m.group(1), m.group(2)) if m else (line, "")
        name, addr = _addr(who)
        if addr:
            out.append(Named(name=name, email=addr, role=role))
    return out


def check_recipients(named: list[Named], to: list[tuple[str, str]], cc: list[tuple[str, str]]) -> Item:
    posted = {a.casefold() for _, a in to + cc}
    if not posted:
        return Item("recipients", "skip", "the posted mail's To/Cc are unknown (no posted.mbox)")
    absent = [n for n in named if n.email.casefold() not in posted]
    if not absent:
        return Item("recipients", "pass", f"all {len(named)} maintainers/reviewers/lists named by get_maintainer.pl "
                                          "were copied")
    people = [n for n in absent if not n.is_list]
    lists = [n for n in absent if n.is_list]
    parts = []
    if people:
        parts.append("people: " + ", ".join(f"{_fmt((n.name, n.email))} ({n.role.split(':', 1)[0]})" for n in people))
    if lists:
        parts.append("lists: " + ", ".join(n.email for n in lists))
    return Item("recipients", "warn", "not copied: " + "; ".join(parts))


def posted_headers(mbox_path: Path) -> dict[str, dict[str, Any]]:
    """Message-ID (without <>) -> {"to": [...], "cc": [...]} from the raw posted mails."""
    out: dict[str, dict[str, Any]] = {}
    if not mbox_path.is_file():
        return out
    mails, _ = load_mails(mbox_path)
    for m in mails:
        mid, msg = m.lmsg.msgid, m.msg
        out[mid] = {"to": [(n, a) for n, a in getaddresses([str(x) for x in msg.get_all("To", [])]) if a],
                    "cc": [(n, a) for n, a in getaddresses([str(x) for x in msg.get_all("Cc", [])]) if a]}
    return out
