"""The trailers ledger: who gave which Reviewed-by, Acked-by, Tested-by,
Reported-by and Suggested-by, on which patch of which revision, in which mail.

`patches/<stack>/trailers.toml` holds what `series trailers` read from the
replies to a revision (`source = "reply"`; a reply to the cover counts for
every patch of that revision: `patch = 0`) and what `series record` carried
to a new revision (`source = "carried"`, with the revision and patch it came
from).  Trailers that are already in the posted patches are part of the
ledger as `posted`: they are read from the imported patch files of every
posted revision (one that has Message-IDs), and `series trailers` writes them
down too.

Carrying (`plan_carry`): a trailer reaches a patch of the new revision only
where that patch is unchanged from the patch the trailer was given on: the
same `git patch-id --stable` and the same commit message (subject and body,
trailers aside), because a reviewer reviewed both.  Where the patch changed,
Reviewed-by, Acked-by and Tested-by are dropped and the plan says why (code,
commit message, or both), unless the caller keeps them (`--keep-trailers N`).
Reported-by and Suggested-by say where a change came from, not that its code
was checked: they stay.

Replies are matched to patches by Message-ID (In-Reply-To, then References,
then the thread inside the mailbox), then by subject ("Re: [PATCH v2 3/3]").
Trailers are found with b4's follow-up trailer parser, which skips quoted
lines, so a reply that quotes the patch does not "give" the patch's own tags.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import b4
import tomli_w

from ..errors import UserError
from ..fsutil import atomic_write_text
from ..patch import Patch
from .mailbox import Mail
from .model import Revision, Stack, load_toml

if TYPE_CHECKING:
    from ..workspace import Workspace

LEDGER_FILE = "trailers.toml"
KINDS = ("Reviewed-by", "Acked-by", "Tested-by", "Reported-by", "Suggested-by")
REVIEW_KINDS = frozenset({"reviewed-by", "acked-by", "tested-by"})   # about the code: dropped when it changes
_CANON = {k.lower(): k for k in KINDS}
_TRAILER_LINE = re.compile(r"^([A-Za-z][\w-]*):\s*(\S.*)$")


@dataclass(frozen=True)
class Trailer:
    revision: int
    patch: int                      # 0: a reply to the cover, for every patch of the revision
    kind: str                       # one of KINDS
    who: str                        # "Name <address>" as given
    message_id: str                 # the reply (or the posted patch) it is in, without <>
    source: str                     # reply | posted | carried
    date: str = ""
    sender: str = ""                # the From: of the reply
    origin_revision: int | None = None   # carried: where it was given
    origin_patch: int | None = None

    @property
    def line(self) -> str:
        return f"{self.kind}: {self.who}"

    @property
    def email(self) -> str:
        return email.utils.parseaddr(self.who)[1].lower()

    @property
    def name(self) -> str:
        return email.utils.parseaddr(self.who)[0] or self.who

    def ident(self) -> tuple[str, str]:
        """The same person giving the same kind of trailer."""
        return (self.kind.lower(), self.email or self.who.lower())

    def key(self) -> tuple[object, ...]:
        return (self.revision, self.patch, self.kind.lower(), self.email or self.who.lower(), self.message_id,
                self.source)

    def to_toml(self) -> dict[str, Any]:
        d: dict[str, Any] = {"revision": self.revision, "patch": self.patch, "kind": self.kind, "who": self.who,
                             "message_id": self.message_id, "source": self.source}
        for k in ("date", "sender"):
            if getattr(self, k):
                d[k] = getattr(self, k)
        if self.origin_revision is not None:
            d["origin_revision"] = self.origin_revision
        if self.origin_patch is not None:
            d["origin_patch"] = self.origin_patch
        return d

    @classmethod
    def from_toml(cls, d: dict[str, Any]) -> "Trailer":
        kind = _CANON.get(str(d["kind"]).lower())
        if kind is None:
            raise ValueError(f"unknown trailer kind {d['kind']!r}")
        return cls(revision=int(d["revision"]), patch=int(d["patch"]), kind=kind, who=str(d["who"]),
                   message_id=str(d.get("message_id", "")), source=str(d.get("source", "reply")),
                   date=str(d.get("date", "")), sender=str(d.get("sender", "")),
                   origin_revision=int(d["origin_revision"]) if "origin_revision" in d else None,
                   origin_patch=int(d["origin_patch"]) if "origin_patch" in d else None)

    def to_json(self, rev: Revision | None = None) -> dict[str, Any]:
        d = self.to_toml()
        d["name"], d["email"] = self.name, self.email
        d["for"] = "cover (every patch)" if self.patch == 0 else f"patch {self.patch}"
        if rev is not None:
            d["patches"] = rev.indexes if self.patch == 0 else [self.patch]
        return d


def canonical_kind(name: str) -> str | None:
    return _CANON.get(name.strip().lower())


# -- the ledger file --------------------------------------------------------------------
def ledger_path(stack: Stack) -> Path:
    return stack.dir / LEDGER_FILE


def load_stored(stack: Stack) -> list[Trailer]:
    p = ledger_path(stack)
    if not p.is_file():
        return []
    data = load_toml(p)
    items = data.get("trailers", [])
    if not isinstance(items, list):
        raise UserError(f"{p}: [[trailers]] must be a list of tables")
    try:
        return [Trailer.from_toml(t) for t in items]
    except (KeyError, ValueError, TypeError) as e:
        raise UserError(f"{p}: malformed trailer entry: {e}") from None


def save_stored(stack: Stack, entries: Iterable[Trailer]) -> None:
    items = sorted(dedup(entries), key=lambda t: (t.revision, t.patch, t.source, t.kind, t.email, t.message_id))
    header = ("# The trailers ledger of this stack (series trailers / series record): who gave which\n"
              "# trailer on which patch (0 = the cover: every patch), from which mail, on which revision.\n")
    atomic_write_text(ledger_path(stack), header + tomli_w.dumps({"trailers": [t.to_toml() for t in items]}))


def dedup(entries: Iterable[Trailer]) -> list[Trailer]:
    seen: set[tuple[object, ...]] = set()
    out: list[Trailer] = []
    for t in entries:
        if t.key() not in seen:
            seen.add(t.key())
            out.append(t)
    return out


# -- posted trailers --------------------------------------------------------------------
def is_posted(rev: Revision) -> bool:
    """A revision that went to a list: it has a cover or patch Message-ID.  A revision
    made by `series record` has none until it is mailed."""
    return bool(rev.cover_message_id or any(p.message_id for p in rev.patches))


def trailers_in(message: str) -> list[tuple[str, str]]:
    """(kind, who) of the ledger's kinds in a commit message's trailers."""
    out = []
    for t in b4.LoreMessage.find_trailers(message, followup=False)[0]:
        kind = canonical_kind(t.name)
        if kind:
            out.append((kind, " ".join(str(t.value).split())))
    return out


def posted_trailers(rev: Revision) -> list[Trailer]:
    if not is_posted(rev):
        return []
    out: list[Trailer] = []
    for p in rev.imported_patches():
        assert p.file is not None
        patch = Patch.load(p.file)
        mid = (patch.message_id or p.message_id or "").strip("<>")
        for kind, who in trailers_in(patch.message):
            out.append(Trailer(revision=rev.version, patch=p.index, kind=kind, who=who, message_id=mid,
                               source="posted", date=p.date))
    return out


def ledger(stack: Stack, version: int | None = None) -> list[Trailer]:
    """Stored entries and the posted ones, of one revision or all."""
    out = list(load_stored(stack))
    for rev in stack.revisions:
        if rev.imported:
            out += posted_trailers(rev)
    out = dedup(out)
    if version is not None:
        out = [t for t in out if t.revision == version]
    return sorted(out, key=lambda t: (t.revision, t.patch, t.source != "posted", t.kind, t.email))


# -- replies ----------------------------------------------------------------------------
@dataclass
class Collected:
    trailers: list[Trailer] = field(default_factory=list)
    replies: int = 0                 # replies to this revision read
    unmatched: int = 0               # replies that answer no known patch of the revision
    other: int = 0                   # mails that are not replies (the patches themselves, ...)


def _known_ids(rev: Revision) -> dict[str, int]:
    known: dict[str, int] = {}
    if rev.cover_message_id:
        known[rev.cover_message_id.strip("<>")] = 0
    for p in rev.patches:
        if p.message_id:
            known[p.message_id.strip("<>")] = p.index
    return known


def _ids(value: object) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", str(value or ""))


def _target(m: Mail, known: dict[str, int], by_id: dict[str, Mail], rev: Revision) -> int | None:
    """The patch (0: the cover) of `rev` that `m` answers, or None."""
    seen: set[str] = set()
    cur: Mail | None = m
    while cur is not None and cur.lmsg.msgid not in seen:
        seen.add(cur.lmsg.msgid)
        parents = _ids(cur.msg.get("In-Reply-To")) + list(reversed(_ids(cur.msg.get("References"))))
        for mid in parents:
            if mid in known:
                return known[mid]
        cur = next((by_id[mid] for mid in parents if mid in by_id and mid not in seen), None)
    # By subject: "Re: [PATCH v2 3/3] ..." (b4 parses the counters of a reply too).
    lm = m.lmsg
    if lm.revision == rev.version and not lm.revision_inferred or (rev.version == 1 and lm.revision == 1):
        if lm.counter == 0 and lm.expected:
            return 0
        if lm.counter in rev.indexes:
            info = rev.patch(lm.counter)
            if info is None or not info.subject or _same_subject(info.subject, lm.subject):
                return lm.counter
    return None


def _same_subject(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return " ".join(s.lower().split())
    return norm(a) == norm(b)


def collect_replies(rev: Revision, mails: Sequence[Mail]) -> Collected:
    known = _known_ids(rev)
    by_id = {m.lmsg.msgid: m for m in mails}
    res = Collected()
    for m in mails:
        if m.lmsg.msgid in known or not (m.lmsg.reply or m.msg.get("In-Reply-To")):
            res.other += 1
            continue
        target = _target(m, known, by_id, rev)
        if target is None:
            res.unmatched += 1
            continue
        res.replies += 1
        sender = f"{m.lmsg.fromname} <{m.lmsg.fromemail}>" if m.lmsg.fromname else m.lmsg.fromemail
        date = m.lmsg.date.isoformat() if m.lmsg.date else ""
        found, _ = b4.LoreMessage.find_trailers(m.lmsg.body, followup=True)
        for t in found:
            kind = canonical_kind(t.name)
            if kind is None:
                continue
            res.trailers.append(Trailer(revision=rev.version, patch=target, kind=kind, who=" ".join(str(t.value).split()),
                                        message_id=m.lmsg.msgid, source="reply", date=date, sender=sender))
    res.trailers = dedup(res.trailers)
    return res


# -- carrying -----------------------------------------------------------------------------
def message_without_trailers(patch: Patch) -> str:
    """Subject and body of the commit message with the trailer lines taken out."""
    lines = [ln for ln in patch.message.splitlines() if not _looks_like_trailer(ln)]
    return patch.subject.strip() + "\n\n" + "\n".join(lines).strip()


def _looks_like_trailer(line: str) -> bool:
    m = _TRAILER_LINE.match(line.strip())
    return bool(m and ("@" in m.group(2) or m.group(1).lower() in ("fixes", "link", "closes", "cc", "change-id")))


def what_changed(old: Patch, new: Patch) -> str | None:
    """None when the two are the same patch (same patch-id and commit message);
    else "code", "commit message" or "code and commit message"."""
    code = old.patch_id != new.patch_id
    msg = message_without_trailers(old) != message_without_trailers(new)
    if code and msg:
        return "code and commit message"
    if code:
        return "code"
    if msg:
        return "commit message"
    return None


@dataclass
class PatchCarry:
    index: int                                  # in the new revision
    old: int | None                             # the paired patch of the old revision
    carried: list[Trailer] = field(default_factory=list)     # added to the patch (from the ledger)
    kept: list[Trailer] = field(default_factory=list)        # changed, but kept on request
    dropped: list[tuple[Trailer, str]] = field(default_factory=list)   # (trailer, why)
    remove_lines: list[str] = field(default_factory=list)    # posted trailer lines to take out of the file
    add_lines: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "old": self.old, "carried": [t.line for t in self.carried],
                "kept": [t.line for t in self.kept],
                "dropped": [{"trailer": t.line, "why": why, "revision": t.revision, "message_id": t.message_id}
                            for t, why in self.dropped]}


@dataclass
class CarryPlan:
    patches: dict[int, PatchCarry]
    lost: list[tuple[Trailer, str]] = field(default_factory=list)   # trailers of dropped patches

    def lines(self, old_version: int, new_version: int) -> list[str]:
        """Changelog lines naming the trailers that were dropped or kept, and why."""
        out: list[str] = []
        for pc in sorted(self.patches.values(), key=lambda p: p.index):
            for t, why in pc.dropped:
                out.append(f"Patch {pc.index}: dropped \"{t.line}\" (given on v{t.revision}"
                           f"{' patch ' + str(t.patch) if t.patch else ' cover'}): {why}")
            for t in pc.kept:
                out.append(f"Patch {pc.index}: kept \"{t.line}\" although the patch changed since v{old_version} "
                           "(--keep-trailers)")
        for t, why in self.lost:
            out.append(f"Dropped \"{t.line}\" of v{t.revision} patch {t.patch}: {why}")
        return out


def live_trailers(stack: Stack, rev: Revision, entries: Sequence[Trailer]) -> dict[int, list[Trailer]]:
    """Per patch of `rev`, the trailers that hold for it: given on `rev` (to the patch
    or to the cover) or posted in it, or given on an earlier revision on a patch that
    is the same as this one (patch-id and message)."""
    out: dict[int, list[Trailer]] = {p.index: [] for p in rev.imported_patches()}
    patches = {p.index: Patch.load(p.file) for p in rev.imported_patches() if p.file}
    older = {r.version: r for r in stack.revisions if r.version < rev.version and r.imported}
    older_patches: dict[tuple[int, int], Patch] = {}
    for t in entries:
        if t.revision == rev.version:
            targets = list(out) if t.patch == 0 else [t.patch] if t.patch in out else []
            for i in targets:
                out[i].append(t)
        elif t.revision in older:
            orev = older[t.revision]
            sources = [p.index for p in orev.imported_patches()] if t.patch == 0 else [t.patch]
            for k in sources:
                info = orev.patch(k)
                if info is None or info.file is None:
                    continue
                op = older_patches.setdefault((orev.version, k), Patch.load(info.file))
                for i, p in patches.items():
                    if what_changed(op, p) is None:
                        out[i].append(replace(t, patch=k))
    for i in out:
        out[i] = _unique_people(out[i])
    return out


def _unique_people(ts: Sequence[Trailer]) -> list[Trailer]:
    """One trailer per (kind, person), in the order they were given (the earliest
    revision, then the date): that is the order they are added in."""
    seen: set[tuple[str, str]] = set()
    out = []
    for t in sorted(ts, key=lambda t: (t.revision, t.date, t.patch)):
        if t.ident() not in seen:
            seen.add(t.ident())
            out.append(t)
    return out


def plan_carry(stack: Stack, old: Revision, new: dict[int, Patch], pairs: Sequence[tuple[int | None, int | None]],
               *, keep: Iterable[int] = ()) -> CarryPlan:
    """What happens to the trailers of `old` in the new revision (`new`: index ->
    parsed patch; `pairs`: (old index, new index) from lineage pairing)."""
    keep_set = set(keep)
    live = live_trailers(stack, old, ledger(stack))
    old_patches = {p.index: Patch.load(p.file) for p in old.imported_patches() if p.file}
    plan = CarryPlan(patches={j: PatchCarry(index=j, old=None) for j in new})
    for i, j in pairs:
        if j is None:
            if i is not None:
                plan.lost += [(t, f"v{old.version} patch {i} is not in v{old.version + 1}")
                              for t in live.get(i, [])]
            continue
        if i is None or i not in old_patches:
            continue
        pc = plan.patches[j]
        pc.old = i
        present = {ident for ident in (Trailer(0, 0, k, w, "", "").ident() for k, w in trailers_in(new[j].message))}
        change = what_changed(old_patches[i], new[j])
        for t in live.get(i, []):
            in_file = t.ident() in present
            if change is None or t.kind.lower() not in REVIEW_KINDS:
                if not in_file:
                    pc.carried.append(t)
                    pc.add_lines.append(t.line)
            elif j in keep_set:
                pc.kept.append(t)
                if not in_file:
                    pc.add_lines.append(t.line)
            else:
                pc.dropped.append((t, f"the {change} changed since v{old.version}"))
                if in_file:
                    pc.remove_lines.append(t.line)
    return plan


def rewrite_trailers(text: str, add: Sequence[str], remove: Sequence[str]) -> str:
    """A `git format-patch` file with trailer lines added to (at the end of the
    trailer block) and taken out of its commit message; the diff is untouched."""
    if not add and not remove:
        return text
    lines = text.split("\n")
    try:
        sep = lines.index("---")
    except ValueError:
        raise UserError("a patch file without a '---' line: cannot place its trailers") from None
    gone = {" ".join(r.split()).lower() for r in remove}
    head = [ln for ln in lines[:sep] if " ".join(ln.split()).lower() not in gone]
    while head and not head[-1].strip():
        head.pop()
    existing = {" ".join(ln.split()).lower() for ln in head}
    new = [a for a in add if " ".join(a.split()).lower() not in existing]
    if new:
        last = head[-1] if head else ""
        if not (_TRAILER_LINE.match(last.strip()) and _looks_like_trailer(last)):
            head.append("")
        head += new
    had_blank = sep > 0 and lines[sep - 1] == ""
    return "\n".join(head + ([""] if had_blank else []) + lines[sep:])


# -- series trailers ------------------------------------------------------------------------
@dataclass
class TrailersReport:
    stack: str
    version: int
    source: str
    new: list[Trailer]
    known: int
    collected: Collected
    posted: int

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "version": self.version, "source": self.source,
                "new": [t.to_json() for t in self.new], "already_known": self.known, "posted": self.posted,
                "replies": self.collected.replies, "unmatched_replies": self.collected.unmatched}

    def text(self) -> str:
        head = (f"{self.stack} v{self.version}: {len(self.new)} new trailer(s) in the ledger "
                f"({self.collected.replies} replies read from {self.source}"
                + (f", {self.collected.unmatched} answer no patch of v{self.version}" if self.collected.unmatched else "")
                + f"; {self.known} already known; {self.posted} in the posted patches)")
        return "\n".join([head] + [f"  {'cover' if t.patch == 0 else 'patch ' + str(t.patch)}: {t.line}  "
                                   f"[{t.source} <{t.message_id}>]" for t in self.new])


def collect(ws: "Workspace", stack_name: str, version: int, *, mbox: Path | None = None,
            lore: bool = False) -> TrailersReport:
    """Read the replies to a revision (a mailbox, or its thread on lore through b4)
    and the trailers of its posted patches into the ledger."""
    import tempfile

    from .fetch import fetch_from_lore
    from .mailbox import load_mails
    from .store import load_stack
    stack = load_stack(ws, stack_name)
    rev = stack.revision(version)
    mails: list[Mail] = []
    source = "the posted patches"
    if mbox is not None:
        mails, _bad = load_mails(mbox)
        source = str(mbox)
    elif lore:
        with tempfile.TemporaryDirectory(prefix="series-trailers-") as tmp:
            mails, _bad = load_mails(fetch_from_lore(ws, rev, Path(tmp)))
        source = ws.lore_url
    if (mbox is not None or lore) and not _known_ids(rev) and not mails:
        raise UserError(f"{source}: no mail")
    got = collect_replies(rev, mails) if mails else Collected()
    if (mbox is not None or lore) and not _known_ids(rev) and got.replies == 0:
        raise UserError(f"{stack.name} v{version} has no Message-ID (not posted?) and no reply in {source} "
                        f"names it in its subject")
    posted = posted_trailers(rev) if rev.imported else []
    stored = load_stored(stack)
    have = {t.key() for t in stored}
    new = [t for t in dedup(got.trailers + posted) if t.key() not in have]
    if new:
        save_stored(stack, stored + new)
    known = len([t for t in dedup(got.trailers + posted) if t.key() in have])
    return TrailersReport(stack=stack.name, version=version, source=source, new=new, known=known, collected=got,
                          posted=len(posted))
