"""Pair the patches of two revisions by content, the way `git range-diff` does.

Each patch is reduced to its diff with line numbers and blob ids removed.  The
cost of pairing two patches is how much of the two diffs differs (a
SequenceMatcher ratio over lines); pairs are taken best-first while they stay
above a threshold (range-diff's "creation factor").  Patch-id equality is an
exact match.  A patch that is not imported (missing from the mirror) cannot be
compared by content: it is paired only structurally, with a slot in the other
revision that sits between the same content-paired neighbours, and its status
is `missing`, never `removed`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from ..patch import Patch
from .model import PatchInfo, Revision

THRESHOLD = 0.35          # below this, two patches are different patches


@dataclass
class Pair:
    old: int | None
    new: int | None
    status: str          # same | changed | added | removed | missing
    similarity: float
    old_subject: str = ""
    new_subject: str = ""
    message_changed: bool = False

    def to_json(self) -> dict[str, object]:
        return {"old": self.old, "new": self.new, "status": self.status, "similarity": round(self.similarity, 3),
                "old_subject": self.old_subject, "new_subject": self.new_subject,
                "message_changed": self.message_changed}


@dataclass
class Parsed:
    info: PatchInfo
    patch: Patch

    @property
    def message(self) -> str:
        return self.patch.message

    @property
    def diff_lines(self) -> list[str]:
        return self.patch.normalised_lines


def _message_body(message: str) -> str:
    return "\n".join(l for l in message.splitlines() if not re.match(r"^[\w-]+: .*", l))


def parse_patch(p: PatchInfo) -> Parsed:
    assert p.file is not None
    return Parsed(info=p, patch=Patch.load(p.file))


def similarity(a: Parsed, b: Parsed) -> float:
    if a.info.patch_id and a.info.patch_id == b.info.patch_id:
        return 1.0
    sm = difflib.SequenceMatcher(None, _body(a.diff_lines), _body(b.diff_lines), autojunk=False)
    diff_sim = sm.ratio()
    msg_sim = difflib.SequenceMatcher(None, a.message.split(), b.message.split(), autojunk=False).ratio()
    return 0.85 * diff_sim + 0.15 * msg_sim


def _body(lines: list[str]) -> list[str]:
    """The lines that carry the change (added, removed, context), without file headers."""
    return [l for l in lines if not l.startswith(("diff --git", "--- ", "+++ ", "new file mode", "deleted file mode",
                                                    "similarity index", "rename ", "old mode", "new mode"))]


def _subject_sim(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


def _file_stamp(f: Path | None) -> str | None:
    """The content of a patch file (its hash): an mtime does not change when a
    file is rewritten within one clock tick."""
    if f is None:
        return None
    try:
        return hashlib.sha1(Path(f).read_bytes()).hexdigest()
    except OSError:
        return None


def _revision_key(rev: Revision) -> tuple[object, ...]:
    """Everything pairing reads of a revision: its slots, and per patch the facts and
    the file's identity (so an edited or re-imported patch is a new key)."""
    return (rev.version, tuple(rev.indexes), tuple(rev.missing),
            tuple((p.index, p.subject, p.patch_id, p.imported, str(p.file) if p.file else None,
                   _file_stamp(p.file)) for p in sorted(rev.patches, key=lambda p: p.index)))


_PAIRS: dict[tuple[object, ...], list[Pair]] = {}
_PAIRS_LOCK = threading.Lock()
_PAIRS_MAX = 64


def pair_revisions(old: Revision, new: Revision) -> list[Pair]:
    """Pairs of `old` and `new` (see the module's doc).  Computed once per process for
    the same two revisions (check, changelog and cover of one `series ci` ask for the
    same pairing); each caller gets its own copies."""
    key = (_revision_key(old), _revision_key(new))
    with _PAIRS_LOCK:
        hit = _PAIRS.get(key)
    if hit is None:
        hit = _pair_revisions(old, new)
        with _PAIRS_LOCK:
            if len(_PAIRS) >= _PAIRS_MAX:
                _PAIRS.pop(next(iter(_PAIRS)))
            _PAIRS[key] = hit
    return [dataclasses.replace(p) for p in hit]


def _pair_revisions(old: Revision, new: Revision) -> list[Pair]:
    po = {p.index: parse_patch(p) for p in old.imported_patches()}
    pn = {p.index: parse_patch(p) for p in new.imported_patches()}
    scores = sorted(((similarity(a, b), i, j) for i, a in po.items() for j, b in pn.items()), reverse=True)
    matched: dict[int, tuple[int, float]] = {}
    used_new: set[int] = set()
    for s, i, j in scores:
        if s < THRESHOLD or i in matched or j in used_new:
            continue
        matched[i] = (j, s)
        used_new.add(j)
    pairs: list[Pair] = []
    subj_old = {p.index: p.subject for p in _all(old)}
    subj_new = {p.index: p.subject for p in _all(new)}
    for i, (j, s) in matched.items():
        same = bool(po[i].info.patch_id) and po[i].info.patch_id == pn[j].info.patch_id
        msg_changed = _message_body(po[i].message) != _message_body(pn[j].message)
        pairs.append(Pair(i, j, "same" if same else "changed", 1.0 if same else s, subj_old.get(i, ""),
                          subj_new.get(j, ""), msg_changed))
    # Structural pairing of slots that cannot be compared by content.
    free_old = [i for i in old.indexes if i not in matched]
    free_new = [j for j in new.indexes if j not in used_new]
    anchors = sorted((i, j) for i, (j, _) in matched.items())

    def bracket(idx: int, side: int) -> tuple[int, int]:
        before = [a for a in anchors if a[side] < idx]
        after = [a for a in anchors if a[side] > idx]
        return (before[-1][1 - side] if before else -1, after[0][1 - side] if after else 10**9)

    missing_old = set(old.missing)
    missing_new = set(new.missing)
    for i in list(free_old):
        lo, hi = bracket(i, 0)
        either = [j for j in free_new if i in missing_old or j in missing_new]
        # Prefer a slot between the same content-paired neighbours; when the
        # anchors cross (patches were reordered) any slot that cannot be compared
        # will do: an unmatched patch next to a missing one is unknown, not removed.
        cands = [j for j in either if lo < j < hi] or either
        if not cands:
            continue
        j = max(cands, key=lambda j: (_subject_sim(subj_old.get(i, ""), subj_new.get(j, "")), -abs(j - i)))
        pairs.append(Pair(i, j, "missing", 0.0, subj_old.get(i, ""), subj_new.get(j, "")))
        free_old.remove(i)
        free_new.remove(j)
    for i in free_old:
        pairs.append(Pair(i, None, "missing" if i in missing_old else "removed", 0.0, subj_old.get(i, ""), ""))
    for j in free_new:
        pairs.append(Pair(None, j, "missing" if j in missing_new else "added", 0.0, "", subj_new.get(j, "")))
    pairs.sort(key=lambda p: (p.new if p.new is not None else (p.old or 0) + 0.5, p.old or 0))
    return pairs


def _all(rev: Revision) -> list[PatchInfo]:
    return rev.patches


def range_diff_text(old: Revision, new: Revision, pairs: list[Pair]) -> str:
    """A `git range-diff`-style rendering: one line per pair, then the diff of the diffs."""
    po = {p.index: parse_patch(p) for p in old.imported_patches()}
    pn = {p.index: parse_patch(p) for p in new.imported_patches()}
    sym = {"same": "=", "changed": "!", "added": ">", "removed": "<", "missing": "?"}
    out: list[str] = []
    for pr in pairs:
        left = f"{pr.old}: {(po[pr.old].info.patch_id or '')[:8] if pr.old in po else '--------'}" if pr.old else "-: --------"
        right = f"{pr.new}: {(pn[pr.new].info.patch_id or '')[:8] if pr.new in pn else '--------'}" if pr.new else "-: --------"
        subject = pr.new_subject or pr.old_subject
        note = f" ({pr.similarity:.0%})" if pr.status == "changed" else ""
        if pr.status == "missing":
            note = " (not imported: cannot compare)"
        out.append(f"{left} {sym[pr.status]} {right} {subject}{note}")
        if pr.old_subject and pr.new_subject and pr.old_subject != pr.new_subject:
            out.append(f"    @@ Subject: {pr.old_subject}")
            out.append(f"    ## Subject: {pr.new_subject}")
        if pr.status == "changed" and pr.old in po and pr.new in pn:
            a = po[pr.old].message.splitlines() + ["---"] + po[pr.old].diff_lines
            b = pn[pr.new].message.splitlines() + ["---"] + pn[pr.new].diff_lines
            for line in list(difflib.unified_diff(a, b, lineterm="", n=2))[2:]:
                out.append("    " + line)
            out.append("")
    return "\n".join(out) + "\n"
