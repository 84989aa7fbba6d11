"""One patch, parsed once: a `git format-patch`-style mail as stored in
`patches/<stack>/v<N>/`, read by every part of series through `Patch`.

The mail is read by b4 (`get_mailinfo`, which is `git mailinfo`, and b4's
header parser): subject, author (the in-body From when there is one), date,
Message-ID, commit message, trailers.  The diff is read by `unidiff`: files
(source and target path, blobs, modes, added/removed/renamed/binary), hunks
with their lines, counts.  Derived from those: the touched paths (for sparse
worktrees), the stable patch-id, a diffstat laid out like `git diff --stat`,
and the normalised diff lines lineage compares.

`Patch.load(path)` is cached per process (keyed by the path, checked against
the file's bytes: an mtime has the granularity of a clock tick, and a file
rewritten within one keeps it): each file is parsed once however many readers
ask, and again when its content changes.  A diff that
cannot be parsed (a truncated hunk, a stray line) is a `UserError` naming the
file.
"""

from __future__ import annotations

import codecs
import email.parser
import email.utils
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from pathlib import Path

import b4
from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet
from unidiff.constants import DEV_NULL

from .errors import UserError
from .git import patch_id as _git_patch_id
from .stacks.mailbox import clean_header, find_trailers, mailinfo

_INDEX = re.compile(r"^index ([0-9a-f]{7,64})\.\.([0-9a-f]{7,64})")
_GIT_HEADERS = ("diff --git ", "old mode ", "new mode ", "deleted file mode ", "new file mode ", "copy from ",
                "copy to ", "rename from ", "rename to ", "similarity index ", "dissimilarity index ", "index ")
_MODE = re.compile(r"^(old|new|new file|deleted file) mode (\d+)$")


# -- the diff ------------------------------------------------------------------------
@dataclass(frozen=True)
class Hunk:
    source_start: int
    source_length: int
    target_start: int
    target_length: int
    section: str                          # the text after the second @@ (a function name), or ""
    lines: tuple[tuple[str, str], ...]    # (kind, text): kind '+', '-', ' ' or '\\' (no newline at end)

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(t for k, t in self.lines if k == "+")

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(t for k, t in self.lines if k == "-")


@dataclass(frozen=True)
class FileChange:
    """One file of a diff.  Paths are relative to the tree (the a/ b/ prefix
    stripped, as `patch -p1` and `git am` strip it); None on the /dev/null side."""
    source_path: str | None
    target_path: str | None
    header: tuple[str, ...]               # the git extended header: diff --git, modes, index, rename from/to
    hunks: tuple[Hunk, ...] = ()
    old_blob: str | None = None
    new_blob: str | None = None
    old_mode: str | None = None
    new_mode: str | None = None
    is_binary: bool = False
    is_copied: bool = False
    source_name: str = ""                 # as written on the --- line (with its prefix)
    target_name: str = ""                 # as written on the +++ line

    @property
    def path(self) -> str:
        """The file's name after the patch (before it, for a deleted file)."""
        return self.target_path or self.source_path or "?"

    @property
    def is_added(self) -> bool:
        return self.source_path is None

    @property
    def is_removed(self) -> bool:
        return self.target_path is None

    @property
    def is_renamed(self) -> bool:
        return (not self.is_copied and self.source_path is not None and self.target_path is not None
                and self.source_path != self.target_path)

    @property
    def is_mode_change(self) -> bool:
        return self.old_mode is not None and self.new_mode is not None and self.old_mode != self.new_mode

    @property
    def added(self) -> int:
        return sum(len(h.added) for h in self.hunks)

    @property
    def removed(self) -> int:
        return sum(len(h.removed) for h in self.hunks)


def _unquote(name: str) -> str:
    """git writes unusual file names C-quoted ("a/\\303\\251.c")."""
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        raw = codecs.escape_decode(name[1:-1].encode("utf-8", "surrogateescape"))[0]
        return bytes(raw).decode("utf-8", "surrogateescape")
    return name


def _strip_prefix(name: str | None) -> str | None:
    """-p1: the first path component (a/, b/) goes."""
    if name is None or name == DEV_NULL:
        return None
    name = _unquote(name.split("\t")[0].strip())
    if name == DEV_NULL:
        return None
    return name.split("/", 1)[1] if "/" in name else name


def _line_text(value: str) -> str:
    if value.endswith("\n"):
        value = value[:-1]
    return value[:-1] if value.endswith("\r") else value


def parse_diff(text: str, what: str = "a patch") -> tuple[FileChange, ...]:
    """The files of a unified (git) diff.  Text before the first file (a diffstat,
    notes) and after the last hunk (a signature) is ignored.  A diff unidiff cannot
    parse (a truncated hunk, a stray line inside one) is a UserError naming `what`."""
    try:
        ps = PatchSet(text)
    except UnidiffParseError as e:
        raise UserError(f"{what}: corrupt patch: {e}") from None
    files: list[FileChange] = []
    for pf in ps:
        # The git extended header; a hunkless file (a rename, a mode change) is followed
        # by whatever comes next (a signature), which unidiff files with it.
        header = tuple(x for x in (_line_text(x) for x in (pf.patch_info or [])) if x.startswith(_GIT_HEADERS))
        old_blob = new_blob = old_mode = new_mode = None
        copied = False
        for line in header:
            if (m := _INDEX.match(line)):
                old_blob, new_blob = m.group(1), m.group(2)
            elif (mm := _MODE.match(line)):
                if mm.group(1) in ("old", "deleted file"):
                    old_mode = mm.group(2)
                else:
                    new_mode = mm.group(2)
            elif line.startswith("copy from "):
                copied = True
        hunks = tuple(
            Hunk(source_start=h.source_start, source_length=h.source_length, target_start=h.target_start,
                 target_length=h.target_length, section=h.section_header or "",
                 lines=tuple((ln.line_type or " ", _line_text(ln.value)) for ln in h
                             if ln.line_type in ("+", "-", " ", "\\")))
            for h in pf)
        files.append(FileChange(
            source_path=_strip_prefix(pf.source_file), target_path=_strip_prefix(pf.target_file),
            header=header, hunks=hunks, old_blob=old_blob, new_blob=new_blob, old_mode=old_mode,
            new_mode=new_mode, is_binary=bool(pf.is_binary_file), is_copied=copied,
            source_name=pf.source_file or "", target_name=pf.target_file or ""))
    return tuple(files)


def normalise(files: Sequence[FileChange]) -> list[str]:
    """The diff as lineage compares it: file headers without blob ids (`index`
    lines) and hunks without line numbers (`@@ <section>`)."""
    out: list[str] = []
    for f in files:
        out += [line for line in f.header if not line.startswith("index ")]
        if f.is_binary:
            out.append("GIT binary patch")   # the payload is not compared (unidiff does not keep it)
        if f.hunks:
            out += [f"--- {f.source_name}", f"+++ {f.target_name}"]
        for h in f.hunks:
            out.append("@@" + (f" {h.section}" if h.section else ""))
            out += [k + t for k, t in h.lines]
    return out


# -- diffstat ------------------------------------------------------------------------
def format_diffstat(stats: Iterable[tuple[str, int, int]], width: int = 80) -> str:
    """(name, added, removed) per file, laid out as `git diff --stat` lays them out
    (git's diff.c show_stats: the same name and graph widths, the same scaling),
    with the summary line.  Files are shown sorted by name."""
    rows = sorted(stats)
    if not rows:
        return ""
    max_len = max(len(n) for n, _, _ in rows)
    max_change = max(a + d for _, a, d in rows)
    number_width = len(str(max_change))
    width = max(width, 16 + 6 + number_width)
    graph_width = max_change
    name_width = max_len
    if name_width + number_width + 6 + graph_width > width:
        if graph_width > width * 3 // 8 - number_width - 6:
            graph_width = max(width * 3 // 8 - number_width - 6, 6)
        if name_width > width - number_width - 6 - graph_width:
            name_width = width - number_width - 6 - graph_width
        else:
            graph_width = width - number_width - 6 - name_width

    def scale(it: int) -> int:
        return 0 if not it else 1 + (it * (graph_width - 1) // max_change)

    out: list[str] = []
    for name, added, removed in rows:
        prefix, room = "", name_width
        if name_width < len(name):
            prefix, room = "...", name_width - 3
            name = name[len(name) - room:]
            if "/" in name:
                name = name[name.index("/"):]
        add, rem = added, removed
        if graph_width <= max_change:
            total = scale(add + rem)
            if total < 2 and add and rem:
                total = 2
            if add < rem:
                add = scale(add)
                rem = total - add
            else:
                rem = scale(rem)
                add = total - rem
        n = added + removed
        out.append(f" {prefix}{name:<{room}} | {n:>{number_width}}{' ' if n else ''}{'+' * add}{'-' * rem}")
    ins, dels = sum(a for _, a, _ in rows), sum(d for _, _, d in rows)
    summary = f" {len(rows)} file{'s' if len(rows) != 1 else ''} changed"
    if ins or not dels:
        summary += f", {ins} insertion{'s' if ins != 1 else ''}(+)"
    if dels or not ins:
        summary += f", {dels} deletion{'s' if dels != 1 else ''}(-)"
    return "\n".join(out + [summary])


def sum_numstats(patches: Iterable["Patch"]) -> list[tuple[str, int, int]]:
    """Per file, the lines added and removed by all the patches together (a
    revision's diffstat from its patches alone)."""
    per: dict[str, list[int]] = {}
    for p in patches:
        for name, a, d in p.numstat:
            acc = per.setdefault(name, [0, 0])
            acc[0] += a
            acc[1] += d
    return [(n, a, d) for n, (a, d) in per.items()]


# -- names -------------------------------------------------------------------------
def slug(subject: str) -> str:
    """The file-name part of a subject, as `git format-patch` makes it except that
    `_` and `.` become `-` too (the names the store has always used)."""
    s = re.sub(r"[^A-Za-z0-9]+", "-", subject).strip("-")
    return s[:52].rstrip("-") or "patch"


def patch_filename(index: int, subject: str) -> str:
    return f"{index:04d}-{slug(subject)}.patch"


# -- the mail ------------------------------------------------------------------------
def _headers(raw: bytes, what: str) -> EmailMessage:
    try:
        msg = email.parser.BytesParser(policy=b4.emlpolicy, _class=EmailMessage).parsebytes(raw, headersonly=True)
    except (ValueError, UnicodeError, LookupError) as e:
        raise UserError(f"{what}: unreadable mail headers: {e}") from None
    assert isinstance(msg, EmailMessage)
    return msg


def _address(value: object) -> tuple[str, str]:
    name, addr = email.utils.parseaddr(clean_header(value) if value is not None else "")
    return name.strip().strip('"'), addr.strip()


@dataclass(frozen=True, eq=False)
class Patch:
    """A patch mail, parsed.  `message` is the commit message body as `git
    mailinfo` gives it (no subject line); `diff` is everything from the `---`
    separator on (the diffstat, the diff, the signature), as `git am` sees it."""
    what: str                           # where it came from, for messages (a path)
    raw: bytes
    subject: str                        # without the [PATCH ...] prefix (mailinfo, in-body Subject wins)
    posted_subject: str                 # the Subject: header as posted, prefix included
    author_name: str                    # the in-body From when there is one, else the sender
    author_email: str
    sender: tuple[str, str]             # the From: header (name, address)
    date: str
    message_id: str | None
    message: str
    diff_bytes: bytes
    files: tuple[FileChange, ...]
    trailers: tuple[str, ...] = field(default=())

    # -- building ----------------------------------------------------------------
    @classmethod
    def from_bytes(cls, raw: bytes, what: str = "a patch") -> "Patch":
        info, message, diff_bytes = mailinfo(raw, what)
        msg = _headers(raw, what)
        diff_text = diff_bytes.decode("utf-8", "replace")
        return cls(
            what=what, raw=raw, subject=info.get("Subject", ""),
            posted_subject=" ".join(clean_header(msg.get("Subject", "")).split()),
            author_name=info.get("Author", ""), author_email=info.get("Email", ""),
            sender=_address(msg.get("From")), date=info.get("Date", ""),
            message_id=b4.LoreMessage.get_clean_msgid(msg) or None,
            message=message, diff_bytes=diff_bytes, files=parse_diff(diff_text, what),
            trailers=tuple(find_trailers(message)))

    @classmethod
    def load(cls, path: Path | str) -> "Patch":
        """The patch file at `path`, parsed once per process (and again when it changes)."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise UserError(f"{p}: cannot read the patch: {e.strerror or e}") from None
        key = str(p.resolve())
        with _LOCK:
            hit = _CACHE.get(key)
            if hit is not None and hit.raw == raw:
                return hit
            patch = cls.from_bytes(raw, str(p))
            _CACHE[key] = patch
            return patch

    # -- derived -------------------------------------------------------------------
    @property
    def author(self) -> tuple[str, str]:
        return (self.author_name, self.author_email)

    @property
    def author_line(self) -> str:
        """`Name <address>`, or "" when mailinfo found no author."""
        if not self.author_email:
            return ""
        return f"{self.author_name} <{self.author_email}>" if self.author_name else f"<{self.author_email}>"

    @property
    def in_body_from(self) -> bool:
        """The author is not the sender (an in-body From: named someone else)."""
        return (self.author_name.casefold(), self.author_email.casefold()) != \
            (self.sender[0].casefold(), self.sender[1].casefold())

    @property
    def commit_message(self) -> str:
        """The message `git am` commits: subject, blank line, body."""
        body = self.message.strip()
        return self.subject + ("\n\n" + body if body else "") + "\n"

    @cached_property
    def diff(self) -> str:
        return self.diff_bytes.decode("utf-8", "replace")

    @property
    def text_files(self) -> tuple[FileChange, ...]:
        """Files with hunks (what GNU patch reports on; not pure renames, mode changes, binaries)."""
        return tuple(f for f in self.files if f.hunks)

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)

    @property
    def touched_paths(self) -> list[str]:
        """Every path on either side of every file (a sparse worktree needs both)."""
        out = {p for f in self.files for p in (f.source_path, f.target_path) if p}
        return sorted(out)

    @property
    def numstat(self) -> list[tuple[str, int, int]]:
        """(path, added, removed) per file, as `git apply --numstat` counts them
        (the new name of a renamed file; 0 and 0 for a binary or mode-only change)."""
        return [(f.path, f.added, f.removed) for f in self.files]

    @property
    def diffstat(self) -> str:
        return format_diffstat(self.numstat)

    @cached_property
    def patch_id(self) -> str | None:
        """`git patch-id --stable` of the diff (None without a diff)."""
        return _git_patch_id(self.diff_bytes) if self.files else None

    @cached_property
    def normalised_lines(self) -> list[str]:
        return normalise(self.files)


_CACHE: dict[str, Patch] = {}
_LOCK = threading.RLock()
