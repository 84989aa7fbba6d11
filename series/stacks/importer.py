"""`series import`: one posted revision (or several) from a mailbox into the store.

Everything is computed first and written last: a revision directory is built
in a temporary directory next to its final place and renamed into place, so a
killed import leaves nothing that a later run would trust.  A revision new to
the manifest carries its manifest entry in its copy (revdir.write_pending): a
kill after the swap and before stack.toml lists it is finished by the next run
(revdir step 6), as for `series record`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import UserError
from ..fsutil import atomic_write_text
from ..git import patch_id
from ..patch import Patch, patch_filename
from ..workspace import Workspace, check_stack_name
from liblore.utils import split_mbox_as_bytes

from . import revdir
from .mailbox import Mail, clean_header, clean_msgid, find_trailers, load_mails, mailinfo
from .model import IMPORT_FILE, MAX_PATCHES, MAX_VERSION, PatchInfo, Revision, Stack, load_toml
from .store import check_import_record, load_stack, stack_exists, stack_write_lock


@dataclass
class ImportedPatch:
    index: int
    subject: str
    full_subject: str
    author: str
    sender: str
    message_id: str
    date: str
    patch_id: str | None
    trailers: list[str]
    in_body_from: bool
    text: str            # the .patch file content
    raw: bytes

    @property
    def filename(self) -> str:
        return patch_filename(self.index, self.subject)


@dataclass
class ParsedRevision:
    version: int
    version_inferred: bool
    posted_total: int
    first_index: int
    expected: int
    prefixes: list[str]
    patches: dict[int, ImportedPatch]
    cover: Mail | None
    title: str
    date: str
    corrupt: dict[int, str] = field(default_factory=dict)   # index -> why it was not imported


@dataclass
class ImportReport:
    stack: str
    version: int
    status: str                      # created | unchanged | updated | replaced
    present: list[int]
    missing: list[int]
    expected: int
    ignored: dict[str, int] = field(default_factory=dict)
    kept_aside: str | None = None
    notes: list[str] = field(default_factory=list)
    corrupt: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "version": self.version, "status": self.status, "expected": self.expected,
                "present": self.present, "missing": self.missing, "complete": not self.missing,
                "corrupt": [{"index": i, "reason": why} for i, why in sorted(self.corrupt.items())],
                "ignored": self.ignored, "kept_aside": self.kept_aside, "notes": self.notes}

    def line(self) -> str:
        miss = f", missing {', '.join(map(str, self.missing))}" if self.missing else " (complete)"
        bad = "; corrupt (not imported): " + "; ".join(f"patch {i}: {why}" for i, why in sorted(self.corrupt.items())) \
            if self.corrupt else ""
        ign = ", ".join(f"{v} {k}" for k, v in self.ignored.items() if v)
        extra = f"; ignored {ign}" if ign else ""
        aside = f"; previous copy kept in {self.kept_aside}" if self.kept_aside else ""
        return (f"{self.stack} v{self.version}: {self.status}, {len(self.present)} of {self.expected} "
                f"patches{miss}{bad}{extra}{aside}")


def parse_select(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", text) or re.fullmatch(r"\s*(\d+)\s*", text)
    if not m:
        raise UserError(f"--select expects A-B (e.g. 16-20), not {text!r}")
    a, b = int(m.group(1)), int(m.group(m.lastindex or 1))
    if a < 1 or b < a:
        raise UserError(f"--select {text}: need 1 <= A <= B")
    return a, b


def _iso(d: dt.datetime) -> str:
    return d.isoformat()


def _cover_text(m: Mail) -> str:
    return f"Subject: {m.lmsg.full_subject}\n\n{m.lmsg.body}"


def _patch_file(m: Mail) -> str:
    """The patch as `git format-patch` would lay it out, with the mail's own headers:
    the sender, date, subject and Message-Id as posted; the body (in-body From,
    message, trailers, diff) decoded to UTF-8 and otherwise unchanged."""
    lm = m.lmsg
    body = lm.body.replace("\r\n", "\n")
    headers = [
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001",
        f"From: {clean_header(m.msg.get('From'))}",
        f"Date: {clean_header(m.msg.get('Date'))}",
        f"Subject: {clean_header(m.msg.get('Subject'))}",
        f"Message-Id: <{lm.msgid}>",
    ]
    if lm.in_reply_to:
        headers.append(f"In-Reply-To: <{lm.in_reply_to}>")
    headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=UTF-8", "Content-Transfer-Encoding: 8bit"]
    return "\n".join(headers) + "\n\n" + body + ("" if body.endswith("\n") else "\n")


_FILES_CHANGED = re.compile(r"^ (\d+) files? changed", re.M)


def _mail_problem(m: Mail) -> str | None:
    """A mail without a sender or a date would get an empty author or the time of
    the import (b4's fallback): say so instead."""
    if not m.lmsg.fromemail:
        return "no From: header (the author is unknown)"
    date = m.msg.get("Date")
    if date is None:
        return "no Date: header"
    if email.utils.parsedate_tz(clean_header(date)) is None:
        return f"unreadable Date: header {clean_header(date)[:60]!r}"
    return None


def _problem(m: Mail, text: str, what: str) -> str | None:
    """Why a patch mail cannot be imported as it is, or None: the mail's own
    problems, a diff whose hunks are shorter than their headers say, or one that
    holds fewer files than its own diffstat counts (it was cut short).  Such a
    patch is `corrupt`: reported, not imported."""
    if (why := _mail_problem(m)) is not None:
        return why
    try:
        patch = Patch.from_bytes(text.encode("utf-8"), what)
    except UserError as e:
        return str(e).removeprefix(f"{what}: ")
    stat = patch.diff.split("\ndiff --git ", 1)[0]
    said = _FILES_CHANGED.search(stat)
    if said and len(patch.files) < int(said.group(1)):
        return (f"truncated: its diffstat counts {said.group(1)} files, the diff has {len(patch.files)}")
    return None


def _make_patch(m: Mail, index: int) -> ImportedPatch:
    text = _patch_file(m)
    info, message, diff = mailinfo(text.encode("utf-8"))
    author = f"{info.get('Author', '').strip()} <{info.get('Email', '').strip()}>"
    sender = f"{m.lmsg.fromname} <{m.lmsg.fromemail}>"
    return ImportedPatch(
        index=index, subject=m.lmsg.subject, full_subject=m.lmsg.full_subject, author=author, sender=sender,
        message_id=m.lmsg.msgid, date=_iso(m.lmsg.date), patch_id=patch_id(diff) if diff.strip() else None,
        trailers=find_trailers(message), in_body_from=author.lower() != sender.lower(),
        text=text, raw=m.raw,
    )


def classify(mails: list[Mail]) -> tuple[dict[int, list[Mail]], dict[int, Mail], dict[str, int]]:
    """Split mails into patches and covers per revision; count what is ignored."""
    ignored = {"replies": 0, "not-a-patch": 0, "duplicates": 0, "unparseable": 0, "other-revisions": 0}
    seen: set[str] = set()
    patches: dict[int, list[Mail]] = {}
    covers: dict[int, Mail] = {}
    for m in mails:
        lm = m.lmsg
        if lm.msgid in seen:
            ignored["duplicates"] += 1
            continue
        seen.add(lm.msgid)
        if lm.reply:
            ignored["replies"] += 1
        elif lm.counter == 0 and not lm.counters_inferred and lm.expected > 0:
            if lm.revision in covers:
                ignored["duplicates"] += 1
            else:
                covers[lm.revision] = m
        elif lm.has_diff:
            patches.setdefault(lm.revision, []).append(m)
        else:
            ignored["not-a-patch"] += 1
    return patches, covers, ignored


def parse_revisions(path: Path, revision: int | None, select: tuple[int, int] | None) -> tuple[list[ParsedRevision], dict[str, int]]:
    mails, bad = load_mails(path)
    by_rev, covers, ignored = classify(mails)
    ignored["unparseable"] = bad
    if not by_rev:
        bad_note = f", {bad} unreadable" if bad else ""
        raise UserError(f"{path}: no patch found in {len(mails) + bad} message(s){bad_note}")
    explicit = {r for r, ms in by_rev.items() if any(not m.lmsg.revision_inferred for m in ms)}
    if revision is not None:
        if revision in by_rev:
            chosen = {revision: by_rev[revision]}
        elif explicit:
            found = ", ".join(f"v{r}" for r in sorted(explicit))
            raise UserError(f"--revision {revision} contradicts the subjects in {path} (they say {found})")
        elif len(by_rev) == 1:
            # Subjects carry no version ([PATCH n/m]): the user names it.
            chosen = {revision: next(iter(by_rev.values()))}
            if 1 in covers:
                covers[revision] = covers.pop(1)
        else:
            raise UserError(f"--revision {revision}: not found in {path}")
        ignored["other-revisions"] = sum(len(ms) for r, ms in by_rev.items() if r not in chosen and r != revision) if revision in by_rev else 0
    else:
        chosen = by_rev
    out: list[ParsedRevision] = []
    for ver, ms in sorted(chosen.items()):
        if ver < 1:
            raise UserError(f"{path}: the subjects say v{ver}; revisions are numbered from 1 "
                            "(name one with --revision N)")
        if ver > MAX_VERSION:
            raise UserError(f"{path}: the subjects say v{ver}, over the limit of v{MAX_VERSION}")
        posted_total = max(m.lmsg.expected for m in ms)
        cover = covers.get(ver) or covers.get(1 if ver == revision else -1)
        if cover is not None:
            posted_total = max(posted_total, cover.lmsg.expected)
        if posted_total > MAX_PATCHES:
            raise UserError(f"{path}: v{ver} says it has {posted_total} patches, over the limit of {MAX_PATCHES}")
        first, last = (1, posted_total) if select is None else select
        if select is not None and last > posted_total:
            raise UserError(f"--select {first}-{last}: v{ver} was posted with {posted_total} patches")
        patches: dict[int, ImportedPatch] = {}
        corrupt: dict[int, str] = {}
        for m in ms:
            idx = m.lmsg.counter
            if not first <= idx <= last:
                ignored["not-selected"] = ignored.get("not-selected", 0) + 1
                continue
            if idx in patches:
                ignored["duplicates"] += 1
                continue
            text = _patch_file(m)
            why = _problem(m, text, f"patch {idx} <{m.lmsg.msgid}>")
            if why is not None:
                corrupt.setdefault(idx, why)
                continue
            corrupt.pop(idx, None)   # a good copy of it came after a bad one
            patches[idx] = _make_patch(m, idx)
        if not patches and corrupt:
            i, why = min(corrupt.items())
            raise UserError(f"{path}: no patch of v{ver} can be imported: patch {i} is corrupt: {why}"
                            + (f" (and {len(corrupt) - 1} more)" if len(corrupt) > 1 else ""))
        if not patches:
            raise UserError(f"{path}: no patch of v{ver} in the selected range {first}-{last}")
        if cover is not None and (why := _mail_problem(cover)) is not None:
            raise UserError(f"{path}: the cover letter of v{ver} <{cover.lmsg.msgid}>: {why}")
        lead = cover or min(ms, key=lambda m: m.lmsg.counter)
        prefixes = [p for p in lead.lmsg.lsubject.get_extra_prefixes() if not re.fullmatch(r"v\d+|\d+/\d+|PATCH", p, re.I)]
        if lead.lmsg.lsubject.rfc and "RFC" not in prefixes:
            prefixes.insert(0, "RFC")
        out.append(ParsedRevision(
            version=ver, version_inferred=ver not in explicit, posted_total=posted_total, first_index=first,
            expected=last - first + 1, prefixes=prefixes, patches=patches, cover=cover,
            title=cover.lmsg.subject if cover else "", date=_iso(lead.lmsg.date), corrupt=corrupt))
    return out, ignored


# ---------------------------------------------------------------- writing
def _printable(path: Path) -> str:
    """A path as text for a record: bytes that are not UTF-8 (os.fsdecode's
    surrogates) cannot be written as UTF-8, so they become U+FFFD."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _record(pr: ParsedRevision, source: Path, existing: dict[int, dict[str, Any]]) -> dict[str, Any]:
    patches = {i: p for i, p in existing.items()}
    for p in pr.patches.values():
        patches[p.index] = {"index": p.index, "file": p.filename, "subject": p.subject, "author": p.author,
                            "sender": p.sender, "message_id": p.message_id, "date": p.date,
                            "patch_id": p.patch_id or "", "trailers": p.trailers, "in_body_from": p.in_body_from}
    meta: dict[str, Any] = {"version": pr.version, "expected": pr.expected, "first_index": pr.first_index,
                            "posted_total": pr.posted_total, "prefixes": pr.prefixes, "date": pr.date}
    corrupt = {i: why for i, why in pr.corrupt.items() if i not in patches}
    if corrupt:   # why a patch is missing: it came, but cut short or without a sender/date
        meta["corrupt"] = [{"index": i, "reason": why} for i, why in sorted(corrupt.items())]
    if pr.cover is not None:
        meta["cover_message_id"] = pr.cover.lmsg.msgid
        meta["cover_subject"] = pr.cover.lmsg.full_subject
        meta["title"] = pr.title
    return {"source": _printable(source), "revision": meta, "patches": [patches[i] for i in sorted(patches)]}


def read_posted(path: Path) -> dict[str, bytes]:
    """Message-ID -> raw bytes of a posted.mbox (mboxrd)."""
    if not path.is_file():
        return {}
    out: dict[str, bytes] = {}
    for raw in split_mbox_as_bytes(path.read_bytes()):
        mid = clean_msgid(raw)
        if mid:
            out[mid] = raw
    return out


def write_posted(path: Path, mails: dict[str, bytes]) -> None:
    with path.open("wb") as fh:
        for raw in mails.values():
            fh.write(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n")
            body = re.sub(rb"(?m)^(>*From )", rb">\1", raw)
            fh.write(body if body.endswith(b"\n") else body + b"\n")


def _content_digest(d: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(d.iterdir()) if f.suffix == ".patch" or f.name == "cover.txt"}


def normalized(text: str) -> str:
    """A stored mail as two imports compare it: LF line ends, no trailing blank
    lines.  A round trip through an mbox (posted.mbox, lore's mboxrd, a mail
    client) adds or drops the final newline and may turn LF into CRLF; neither
    makes it a different mail."""
    return text.replace("\r\n", "\n").rstrip()


def _stored_text(f: Path) -> str | None:
    try:
        return f.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def write_revision(stack_dir: Path, pr: ParsedRevision, source: Path, force: bool,
                   pending: tuple[dict[str, Any], dict[str, Any] | None] | None = None) -> tuple[str, str | None]:
    """Write v<N>/ (see revdir.py for the swap).  Returns (status, kept_aside).
    `pending`: (manifest entry, manifest header or None) of a revision new to the
    manifest, carried in its copy until the manifest lists it.  Call with the
    stack's lock held."""
    final = stack_dir / f"v{pr.version}"
    existing_rec: dict[int, dict[str, Any]] = {}
    old_digest: dict[str, str] = {}
    if (final / IMPORT_FILE).is_file():
        rec = load_toml(final / IMPORT_FILE)
        existing_rec = {int(p["index"]): p for p in rec.get("patches", []) if isinstance(p, dict)}
        old_digest = _content_digest(final)
        # Same index, a different mail: refuse unless --force.  A stored file that
        # is gone (deleted by hand) is no clash: the mailbox brings it back.
        clashes: list[int] = []
        for i, p in pr.patches.items():
            old = existing_rec.get(i)
            if old is None:
                continue
            if old.get("message_id") != p.message_id:
                clashes.append(i)
                continue
            stored = _stored_text(final / str(old.get("file", "")))
            if stored is not None and normalized(stored) != normalized(p.text):
                clashes.append(i)
        if pr.cover is not None and (final / "cover.txt").is_file():
            stored = _stored_text(final / "cover.txt")
            if stored is not None and normalized(stored) != normalized(_cover_text(pr.cover)):
                clashes.append(0)
        if clashes and not force:
            what = ", ".join("the cover" if i == 0 else f"patch {i}" for i in clashes)
            raise UserError(f"v{pr.version} is already imported with different mails for {what}; "
                            "use --force to replace it (the old copy is kept aside)")
        if clashes:
            existing_rec = {}
    tmp = revdir.make_tmp(stack_dir, pr.version)
    try:
        if final.is_dir() and existing_rec:
            for f in final.iterdir():  # keep what was already there (a partial revision grows)
                if f.is_file():
                    shutil.copy2(f, tmp / f.name)
        for p in pr.patches.values():
            old = existing_rec.get(p.index)
            if old is not None and old.get("file") == p.filename and (tmp / p.filename).is_file():
                continue        # the same mail (else it clashed above): the stored copy stays as it is
            if old is not None and old.get("file") and old["file"] != p.filename:
                (tmp / str(old["file"])).unlink(missing_ok=True)
            (tmp / p.filename).write_text(p.text, encoding="utf-8")
        # The raw mails as posted, one per Message-ID (a growing revision keeps the old ones).
        posted = read_posted(tmp / "posted.mbox")
        if pr.cover is not None:
            posted.setdefault(pr.cover.lmsg.msgid, pr.cover.raw)
        for p in sorted(pr.patches.values(), key=lambda p: p.index):
            posted.setdefault(p.message_id, p.raw)
        write_posted(tmp / "posted.mbox", posted)
        if pr.cover is not None and not (tmp / "cover.txt").is_file():
            (tmp / "cover.txt").write_text(_cover_text(pr.cover), encoding="utf-8")
        record = _record(pr, source, existing_rec)
        try:
            check_import_record(record)
        except (KeyError, ValueError, TypeError) as e:
            raise UserError(f"v{pr.version}: refusing to write an import record that would not load: {e}") from None
        (tmp / IMPORT_FILE).write_text(tomli_w.dumps(record), encoding="utf-8")
        new_digest = _content_digest(tmp)
        if old_digest and new_digest == old_digest:
            shutil.rmtree(tmp)
            return "unchanged", None
        if pending is not None:
            revdir.write_pending(tmp, pending[0], by="import", header=pending[1])
        kind, status = (("new", "created") if not final.exists() else
                        ("grow", "updated") if existing_rec else ("replace", "replaced"))
        kept = revdir.install(stack_dir, pr.version, tmp, kind)
        return status, (str(kept) if kept is not None else None)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_manifest(rev: Revision, pr: ParsedRevision, force: bool) -> None:
    if rev.expected and (rev.expected != pr.expected or rev.first_index != pr.first_index):
        raise UserError(f"v{pr.version} in the manifest has patches {rev.first_index}-{rev.first_index + rev.expected - 1}, "
                        f"the mailbox has {pr.first_index}-{pr.first_index + pr.expected - 1} (use --select?)")
    if force:
        return
    for idx, p in pr.patches.items():
        known = rev.patch(idx)
        if known and known.message_id and known.message_id.strip("<>") != p.message_id:
            raise UserError(f"v{pr.version} patch {idx} is <{p.message_id}> in the mailbox but "
                            f"<{known.message_id}> in the manifest; use --force if that is intended")


def _manifest_revision(pr: ParsedRevision) -> Revision:
    rev = Revision(version=pr.version, prefixes=pr.prefixes, date=pr.date, title=pr.title,
                   cover_subject=pr.cover.lmsg.full_subject if pr.cover else "",
                   cover_message_id=pr.cover.lmsg.msgid if pr.cover else "", expected=pr.expected,
                   first_index=pr.first_index, posted_total=pr.posted_total)
    rev.patches = [PatchInfo(index=p.index, subject=p.subject, author=p.author, message_id=p.message_id, date=p.date)
                   for p in sorted(pr.patches.values(), key=lambda p: p.index)]
    return rev


def known_revision(stack: Stack, pr: ParsedRevision) -> tuple[int, str] | None:
    """(version, what matched) of the manifest's revision that lists this posting's
    cover Message-ID, else one of its patches' Message-IDs; None when none does."""
    if pr.cover is not None:
        mid = pr.cover.lmsg.msgid
        for r in stack.revisions:
            if r.cover_message_id and r.cover_message_id.strip("<>") == mid:
                return r.version, f"the cover <{mid}>"
    ids = {p.message_id for p in pr.patches.values() if p.message_id}
    for r in sorted(stack.revisions, key=lambda r: r.version):
        for p in r.patches:
            if p.message_id and p.message_id.strip("<>") in ids:
                return r.version, f"patch <{p.message_id.strip('<>')}>"
    return None


def import_mailbox(ws: Workspace, name: str, mbox: Path, *, revision: int | None = None,
                   select: tuple[int, int] | None = None, create: bool = False, force: bool = False,
                   locked: bool = False) -> list[ImportReport]:
    """Import under the stack's lock (`locked`: the caller, `series fetch`, holds it)."""
    check_stack_name(name)
    if not locked:
        with stack_write_lock(ws, name) as recovered:
            done = import_mailbox(ws, name, mbox, revision=revision, select=select, create=create,
                                  force=force, locked=True)
            if done:
                done[0].notes[:0] = recovered
            return done
    exists = stack_exists(ws, name)
    if not exists and not create:
        raise UserError(f"unknown stack {name!r}; use --create to start it from this mailbox")
    parsed, ignored = parse_revisions(mbox, revision, select)
    stack = load_stack(ws, name) if exists else Stack(name=name, dir=ws.stack_dir(name))
    # A posting the manifest knows lands in its revision: by Message-ID first (the
    # cover's, else a patch's), the subject's version only when no ID is known.
    for pr in parsed:
        known = known_revision(stack, pr)
        if known is None or known[0] == pr.version:
            continue
        if revision is not None:
            raise UserError(f"--revision {revision} contradicts the manifest: {known[1]} is {name} v{known[0]}")
        pr.version, pr.version_inferred = known[0], False
    if len({pr.version for pr in parsed}) != len(parsed):
        raise UserError(f"{mbox}: two postings in it are the same revision of {name} by their Message-IDs")
    if not exists:
        stack.title = next((p.title for p in parsed if p.title), "") or min(parsed[0].patches.values(), key=lambda p: p.index).subject
    # Validate everything before writing anything, the manifest with the loader's
    # own validator: an import never writes a manifest the next load rejects.
    for pr in parsed:
        if stack.has_revision(pr.version):
            _check_manifest(stack.revision(pr.version), pr, force)
    entries: dict[int, dict[str, Any]] = {}     # the revisions new to the manifest
    for pr in parsed:
        if not stack.has_revision(pr.version):
            rev = _manifest_revision(pr)
            stack.revisions.append(rev)
            entries[pr.version] = rev.to_toml()
    manifest_text = stack.manifest_text() if entries or not exists else None
    header = None if exists else {k: v for k, v in stack.to_toml().items() if k != "revisions"}
    reports: list[ImportReport] = []
    try:
        for pr in parsed:
            owed = (entries[pr.version], header) if pr.version in entries else None
            status, kept = write_revision(stack.dir, pr, mbox, force, owed)
            present = sorted(set(pr.patches) | {p.index for p in stack.revision(pr.version).patches if p.imported})
            rev_indexes = range(pr.first_index, pr.first_index + pr.expected)
            reports.append(ImportReport(stack=name, version=pr.version, status=status, present=present,
                                        missing=[i for i in rev_indexes if i not in present], expected=pr.expected,
                                        ignored={k: v for k, v in ignored.items() if v}, kept_aside=kept,
                                        corrupt={i: why for i, why in pr.corrupt.items() if i not in present}))
        if manifest_text is not None:
            atomic_write_text(stack.manifest_path, manifest_text)
    except BaseException:
        # Not killed but failed (a refused later revision, Ctrl-C, a full disk): the
        # new revisions stack.toml does not list yet are taken back (the old state).
        revdir.take_back(stack.dir, entries)
        raise
    revdir.conclude(stack.dir, entries)      # each new revision's PENDING goes (the manifest lists it)
    return reports
