"""`series watch`: find revisions of the workspace's stacks that are posted but
not yet imported, import each, run `series ci` on it, write (and optionally
post) its patchwork checks.

Where postings come from:
- a mirror directory: `<mirror>/<stack>/*.mbox` (the `series fetch --mirror`
  layout, any new file dropped there belongs to that stack) and mailboxes at the
  top of the mirror, matched to a stack by its change-id or subject lineage;
- lore, through b4's library (liblore): a search for the stack's change-id or
  the subjects of its newest revision, newer than that revision.

A posting is new when no imported revision of the stack holds its patches (by
Message-ID), so a second scan of the same mirror finds nothing to do.
"""

from __future__ import annotations

import difflib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SeriesError, UserError
from .stacks.importer import ParsedRevision, known_revision, parse_revisions
from .stacks.model import Stack
from .stacks.store import list_stacks, load_stack
from .workspace import Workspace

MBOX_SUFFIXES = (".mbox", ".mbox.gz", ".mboxrd")
_CHANGE_ID = re.compile(r"^change-id:\s*(\S+)\s*$", re.M | re.I)


@dataclass
class Posting:
    """One revision found in a mailbox, matched to a stack."""

    stack: str
    source: Path
    version: int               # as the subjects (or the manifest, by Message-ID) say
    why: str                   # how it was matched: the mirror's directory, change-id, subject lineage
    patches: int
    existing: int | None = None  # the manifest's revision it is (listed but not imported), if any
    posted: int = 0            # the version its subjects say (which of a mailbox's postings to import)

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "source": str(self.source), "version": self.version, "matched_by": self.why,
                "patches": self.patches, "listed_as": self.existing}


@dataclass
class Scan:
    new: list[Posting] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)   # {source, reason}


def mailboxes(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(f for f in d.iterdir() if f.is_file() and f.name.endswith(MBOX_SUFFIXES))


def posted_change_id(pr: ParsedRevision) -> str | None:
    """b4 writes `change-id: <id>` at the end of the cover letter (and the
    patches of a one-patch series)."""
    texts = ([pr.cover.raw.decode("utf-8", "replace")] if pr.cover is not None else []) + \
        [p.raw.decode("utf-8", "replace") for p in pr.patches.values()]
    for t in texts:
        m = _CHANGE_ID.search(t)
        if m:
            return m.group(1)
    return None


def _norm(subject: str) -> str:
    return re.sub(r"\s+", " ", subject.strip().lower())


def stack_change_ids(stack: Stack) -> set[str]:
    from .mail.cover import change_id
    ids = {r.change_id for r in stack.revisions if r.change_id}
    if stack.revisions:
        ids.add(change_id(stack))
    return ids


def lineage_match(stack: Stack, pr: ParsedRevision) -> str | None:
    """How a posting continues the stack, or None: its change-id, else its
    subjects (at least half of its patches carry a subject of the stack's
    newest revision, or the cover's title is the stack's title)."""
    cid = posted_change_id(pr)
    if cid and cid in stack_change_ids(stack):
        return f"change-id {cid}"
    if not stack.revisions:
        return None
    newest = max(stack.revisions, key=lambda r: r.version)
    known = {_norm(p.subject) for p in newest.patches if p.subject}
    subjects = [_norm(p.subject) for p in pr.patches.values()]
    same = sum(1 for s in subjects if s in known)
    if subjects and known and same * 2 >= len(subjects):
        return f"subject lineage ({same} of {len(subjects)} subjects of v{newest.version})"
    if pr.title and stack.title and difflib.SequenceMatcher(None, _norm(pr.title), _norm(stack.title)).ratio() >= 0.9:
        return "subject lineage (the cover's title)"
    return None


def is_new(stack: Stack, pr: ParsedRevision) -> tuple[bool, int | None]:
    """(not yet imported, the manifest's revision it is when listed)."""
    known = known_revision(stack, pr)
    version = known[0] if known else pr.version
    if not stack.has_revision(version):
        return True, None
    rev = stack.revision(version)
    if known is None and rev.imported:
        # the same number, other Message-IDs: a repost the importer will judge
        return True, version
    supplies = set(pr.patches) - set(rev.present)
    return (not rev.imported or bool(supplies)), version


def _consider(ws: Workspace, stacks: dict[str, Stack], src: Path, only: str | None, scan: Scan) -> None:
    try:
        parsed, _ignored = parse_revisions(src, None, None)
    except SeriesError as e:
        scan.ignored.append({"source": str(src), "reason": f"unreadable: {e}"})
        return
    for pr in parsed:
        if only is not None:
            stack, why = stacks[only], "the mirror's directory"
        else:
            hits = [(s, w) for s in stacks.values() if (w := lineage_match(s, pr)) is not None]
            if len(hits) != 1:
                reason = "matches no stack of the workspace" if not hits else \
                    "matches several stacks: " + ", ".join(s.name for s, _ in hits)
                scan.ignored.append({"source": str(src), "reason": f"v{pr.version}: {reason}"})
                continue
            stack, why = hits[0]
        new, existing = is_new(stack, pr)
        if not new:
            continue
        scan.new.append(Posting(stack=stack.name, source=src, version=existing or pr.version, why=why,
                                patches=len(pr.patches), existing=existing, posted=pr.version))


def scan_mirror(ws: Workspace, mirror: Path, stack_names: list[str] | None = None) -> Scan:
    if not mirror.is_dir():
        raise UserError(f"mirror {mirror} is not a directory")
    names = stack_names or list_stacks(ws)
    stacks = {n: load_stack(ws, n) for n in names}
    scan = Scan()
    for name in names:
        for f in mailboxes(mirror / name):
            _consider(ws, stacks, f, name, scan)
    for f in mailboxes(mirror):
        _consider(ws, stacks, f, None, scan)
    return scan


def lore_query(stack: Stack) -> str | None:
    """A lore search for the stack's next postings: its change-id or the
    subjects of its newest revision, after that revision's date."""
    if not stack.revisions:
        return None
    newest = max(stack.revisions, key=lambda r: r.version)
    terms = [f'nq:"change-id: {c}"' for c in sorted(stack_change_ids(stack))]
    terms += [f's:"{p.subject}"' for p in newest.patches[:3] if p.subject and '"' not in p.subject]
    if not terms:
        return None
    q = "(" + " OR ".join(terms) + ")"
    day = re.sub(r"\D", "", (newest.date or "")[:10])
    return q + (f" AND d:{day}.." if len(day) == 8 else "")


def scan_lore(ws: Workspace, into: Path, stack_names: list[str] | None = None) -> Scan:
    """Each stack's search results land in `into/<stack>/lore.mbox`, then are
    scanned as a mirror of that stack (the lineage is checked again: a search
    by subject also finds replies and other series)."""
    import liblore
    from .errors import InfraError
    names = stack_names or list_stacks(ws)
    node = liblore.LoreNode.from_git_config(ws.lore_url.rstrip("/") + "/all", cache_dir=str(into / ".cache"),
                                            cache_ttl=0)
    scan = Scan()
    for name in names:
        stack = load_stack(ws, name)
        q = lore_query(stack)
        if q is None:
            continue
        try:
            data = node.get_mbox_by_query(q, full_threads=True, nocache=True)
        except Exception as e:  # liblore's RemoteError and the network's errors
            raise InfraError(f"lore search for {name} failed at {ws.lore_url}: {e}") from None
        if not data:
            continue
        f = into / name / "lore.mbox"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
        sub = Scan()
        _consider(ws, {name: stack}, f, None, sub)
        scan.new += sub.new
        scan.ignored += sub.ignored
    return scan


def lore_scratch() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="series-watch-")
