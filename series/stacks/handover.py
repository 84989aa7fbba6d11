"""Lineage across revisions and across a handover (`derived_from`): which patch
of the newer revision comes from which of the older, how similar they are, and
whether the author changed.

Pairing is `lineage.pair_revisions` (content, best-first, the same within a
stack and across two).  On top of it, for the patches it leaves unpaired:
a new patch whose changed lines' words are mostly found in one old patch
derives from it.  If that old patch is paired already, the new one was split
off from it (`split`); if it is not, the two are the same patch changed beyond
line-level similarity (typically a rename, UFFDIO_REMAP -> UFFDIO_MOVE, that
touches most lines), paired as `changed`.  Words, not lines, survive a rename.
"""

from __future__ import annotations

import email.utils
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import UserError
from ..patch import Patch
from ..workspace import Workspace
from .lineage import pair_revisions
from .model import PatchInfo, Revision, Stack
from .store import load_stack

DERIVED = 0.6          # share of a new patch's changed words found in an old one


@dataclass
class Link:
    old: int | None
    new: int | None
    status: str                 # same | changed | split | added | removed | missing
    similarity: float
    old_subject: str = ""
    new_subject: str = ""
    old_author: str = ""
    new_author: str = ""
    how: str = ""               # "lines" (pair_revisions) or "words" (a rename or a split)

    @property
    def author_changed(self) -> bool:
        a, b = (email.utils.parseaddr(x)[1].lower() for x in (self.old_author, self.new_author))
        return bool(a and b and a != b)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["similarity"] = round(self.similarity, 3)
        d["author_changed"] = self.author_changed
        return d


@dataclass
class Step:
    old_stack: str
    old_version: int
    new_stack: str
    new_version: int
    links: list[Link] = field(default_factory=list)
    note: str = ""

    @property
    def handover(self) -> bool:
        return self.old_stack != self.new_stack

    def to_json(self) -> dict[str, Any]:
        return {"from": {"stack": self.old_stack, "version": self.old_version},
                "to": {"stack": self.new_stack, "version": self.new_version}, "handover": self.handover,
                "note": self.note or None, "links": [ln.to_json() for ln in self.links]}

    def text(self) -> list[str]:
        head = f"{self.old_stack} v{self.old_version} -> {self.new_stack} v{self.new_version}"
        head += " (handover):" if self.handover else ":"
        if self.note:
            return [f"{head} {self.note}"]
        out = [head]
        for ln in self.links:
            old = f"{ln.old} \"{ln.old_subject}\"" if ln.old is not None else "-"
            new = f"{ln.new} \"{ln.new_subject}\"" if ln.new is not None else "-"
            if ln.status in ("same", "changed", "split"):
                what = {"same": "same", "changed": f"changed, {ln.similarity:.0%} similar",
                        "split": f"split off, {ln.similarity:.0%} of it from {ln.old}"}[ln.status]
                if ln.how == "words" and ln.status == "changed":
                    what += " (by words: renamed?)"
                who = (f"author {_name(ln.old_author)} -> {_name(ln.new_author)}" if ln.author_changed
                       else f"author {_name(ln.new_author or ln.old_author)}")
                out.append(f"  {old} -> {new}: {what}; {who}")
            elif ln.status == "added":
                out.append(f"  new {new}: added ({_name(ln.new_author)})")
            elif ln.status == "removed":
                out.append(f"  {old}: not carried on")
            else:
                out.append(f"  {old} -> {new}: not imported, cannot compare")
        return out


def _name(author: str) -> str:
    name, addr = email.utils.parseaddr(author)
    return name or addr or "unknown"


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")


def _words(p: Patch) -> Counter[str]:
    """The words of the lines a patch adds or removes (not the context, not headers)."""
    c: Counter[str] = Counter()
    for f in p.files:
        for h in f.hunks:
            for kind, text in h.lines:
                if kind in "+-":
                    c.update(w.lower() for w in _WORD.findall(text))
    return c


def _contained(part: Counter[str], whole: Counter[str]) -> float:
    total = sum(part.values())
    return sum((part & whole).values()) / total if total else 0.0


def _author(info: PatchInfo | None, p: Patch | None) -> str:
    if p is not None and p.author_line:
        return p.author_line
    return info.author if info is not None else ""


def pair_across(old: Revision, new: Revision) -> list[Link]:
    """Pairs of `old` and `new` (any two revisions, of one stack or two), with splits
    and word-level derivation for what line pairing left apart."""
    pairs = pair_revisions(old, new)
    po = {p.index: Patch.load(p.file) for p in old.imported_patches() if p.file}
    pn = {p.index: Patch.load(p.file) for p in new.imported_patches() if p.file}
    links = [Link(p.old, p.new, p.status, p.similarity, p.old_subject, p.new_subject,
                  _author(old.patch(p.old) if p.old is not None else None, po.get(p.old) if p.old is not None else None),
                  _author(new.patch(p.new) if p.new is not None else None, pn.get(p.new) if p.new is not None else None),
                  "lines" if p.status in ("same", "changed") else "")
             for p in pairs]
    words_old = {i: _words(p) for i, p in po.items()}
    paired_old = {ln.old for ln in links if ln.status in ("same", "changed") and ln.old is not None}
    for ln in [x for x in links if x.status == "added" and x.new in pn]:
        assert ln.new is not None
        wn = _words(pn[ln.new])
        best = max(((_contained(wn, wo), i) for i, wo in words_old.items()), default=(0.0, -1))
        if best[0] < DERIVED:
            continue
        i = best[1]
        ln.old, ln.similarity, ln.how = i, best[0], "words"
        info = old.patch(i)
        ln.old_subject = info.subject if info is not None and info.subject else po[i].subject
        ln.old_author = _author(info, po[i])
        if i in paired_old:
            ln.status = "split"
        else:
            ln.status = "changed"
            paired_old.add(i)
            links = [x for x in links if not (x.status == "removed" and x.old == i)]
    links.sort(key=lambda x: (x.new if x.new is not None else (x.old or 0) + 0.5, x.old or 0))
    return links


def step(old_stack: Stack, old: Revision, new_stack: Stack, new: Revision) -> Step:
    st = Step(old_stack.name, old.version, new_stack.name, new.version)
    missing = [f"{s.name} v{r.version}" for s, r in ((old_stack, old), (new_stack, new)) if not r.imported]
    if missing:
        st.note = (f"cannot pair: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not imported "
                   f"(series fetch / series import)")
        return st
    st.links = pair_across(old, new)
    return st


def chain(ws: Workspace, stack: Stack) -> list[Step]:
    """The handover from the stack it derives from (that stack's latest revision to
    this one's first), then each revision to the next."""
    steps: list[Step] = []
    revs = sorted(stack.revisions, key=lambda r: r.version)
    if stack.derived_from and revs:
        try:
            origin = load_stack(ws, stack.derived_from)
        except UserError as e:
            steps.append(Step(stack.derived_from, 0, stack.name, revs[0].version, note=f"cannot pair: {e}"))
        else:
            if origin.revisions:
                steps.append(step(origin, origin.revision(), stack, revs[0]))
    for a, b in zip(revs, revs[1:]):
        steps.append(step(stack, a, stack, b))
    return steps
