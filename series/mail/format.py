"""Lore-ready mails for one revision: one file per message and one mbox.

- Subjects `[<prefixes> PATCH vN n/m]`, the cover as `0/m`.
- Message-IDs `<series-{stack}-v{N}-{n}-{hash8}@{domain}>`: hash8 is derived from
  the revision's content (its patch-ids, in order), so the same revision always
  gets the same IDs and a changed revision gets new ones.
- Shallow threading: every patch has `In-Reply-To:`/`References:` the cover.
- To/Cc: `--to/--cc` when given; else get_maintainer.pl of the kernel tree on
  the patches (maintainers To; lists, reviewers and the rest Cc); else the
  manifest's `to`/`lists`.
- Below each patch's `---`: the per-patch changelog (lineage with the previous
  revision, plus the manifest's per-patch notes).
- The cover ends with `base-commit:`, `change-id:` and `prerequisite-patch-id:`
  lines (b4 and `git format-patch --base` shape) and links the previous revision.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import re
import subprocess
from dataclasses import dataclass, field
from email.header import Header
from pathlib import Path
from typing import Any

from ..errors import InfraError, UserError
from ..patch import Patch, patch_filename
from ..stacks.model import PatchInfo, Revision, Stack
from ..workspace import Workspace
from .changelog import Changelog
from .cover import CoverInput, change_id, render_cover

DEFAULT_DOMAIN = "series.invalid"


@dataclass
class OutMail:
    counter: int                 # 0 = cover
    filename: str
    subject: str
    message_id: str              # without <>
    headers: list[tuple[str, str]]
    body: str

    def as_bytes(self) -> bytes:
        lines = []
        for name, value in self.headers:
            lines.append(f"{name}: {fold(name, value)}")
        return ("\n".join(lines) + "\n\n" + self.body).encode("utf-8")

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None


@dataclass
class MailSet:
    stack: str
    version: int
    total: int
    mails: list[OutMail]
    to: list[str]
    cc: list[str]
    recipients_from: str
    base_commit: str | None
    change_id: str
    notes: list[str] = field(default_factory=list)

    def mbox_bytes(self) -> bytes:
        """mboxrd: a `From ` line per message, `>`-quoting of `From ` lines in bodies.
        Written here, not by `mailbox.mbox` or b4's `save_mboxrd_mbox`: both quote
        mboxo-style (a body line `>From ` is not quoted again, so an mboxrd reader
        loses its `>`), and b4 re-generates the headers (our folded To/Cc) under its
        own `From mboxrd@z` line; neither gives these bytes."""
        out = []
        for m in self.mails:
            raw = m.as_bytes().decode("utf-8")
            body = re.sub(r"^(>*From )", r">\1", raw, flags=re.M)
            out.append(f"From {'0' * 40} Mon Sep 17 00:00:00 2001\n{body}")
            if not out[-1].endswith("\n"):
                out[-1] += "\n"
            out[-1] += "\n"
        return "".join(out).encode("utf-8")

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "version": self.version, "total": self.total, "to": self.to, "cc": self.cc,
                "recipients_from": self.recipients_from, "base_commit": self.base_commit, "change_id": self.change_id,
                "notes": self.notes,
                "mails": [{"counter": m.counter, "file": m.filename, "subject": m.subject,
                           "message_id": m.message_id, "in_reply_to": m.header("In-Reply-To")} for m in self.mails]}


# -- headers -----------------------------------------------------------------------
def check_header_value(name: str, value: str) -> None:
    """Header injection: no CR, LF or NUL in any value we put in a header."""
    if any(c in value for c in "\r\n\0"):
        raise UserError(f"refusing a {name} value with a line break (header injection): {value!r}")


def fold(name: str, value: str) -> str:
    """Long To/Cc lists one address a line (continuation lines), as git send-email writes them."""
    check_header_value(name, value)
    if name.lower() in ("to", "cc") and len(value) > 70:
        addrs = [email.utils.formataddr(a) for a in email.utils.getaddresses([value])]
        return ",\n    ".join(addrs)
    return value


_ADDR_SPEC_RE = re.compile(r"^[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+$")


def _parse_addresses(value: str) -> list[tuple[str, str]]:
    """Every (name, addr-spec) in `value`, strictly: the email module glues or drops
    what it cannot parse ('a@b.c Bcc: x@y' -> 'a@b.cBcc'), so each addr-spec must be
    well formed and appear as such in the value."""
    check_header_value("address", value)
    pairs = email.utils.getaddresses([value])
    if not pairs:
        raise UserError(f"not an e-mail address: {value!r}")
    for _, mail in pairs:
        if not _ADDR_SPEC_RE.match(mail) or mail not in value:
            raise UserError(f"not an e-mail address: {value!r}")
        if not mail.isascii():
            # A mail header carries an ASCII addr-spec (git send-email and most
            # servers take no SMTPUTF8); the name may be anything (RFC 2047).
            raise UserError(f"the address {mail!r} is not ASCII: use its ASCII form (an IDNA domain, "
                            "xn--...) and put other characters in the name")
    return pairs


def _format_addr(name: str, mail: str) -> str:
    if not name:
        return mail
    if re.search(r'[,;:"()<>@\[\]\\.]', name):
        return f'"{email.utils.quote(name)}" <{mail}>'
    return f"{name} <{mail}>"


def split_addresses(values: list[str]) -> list[str]:
    """--to/--cc values: each may hold several comma-separated addresses (as git
    send-email accepts them); every one must be an address.  Nothing is dropped."""
    return [_format_addr(n, m) for v in values for n, m in _parse_addresses(v)]


def encode_addr(addr: str) -> str:
    pairs = _parse_addresses(addr)
    if len(pairs) != 1:
        raise UserError(f"one address expected, not {len(pairs)}: {addr!r}")
    name, mail = pairs[0]
    if name and not name.isascii():
        name = Header(name, "utf-8").encode()
    return email.utils.formataddr((name, mail)) if name else mail


def encode_subject(subject: str) -> str:
    return subject if subject.isascii() else Header(subject, "utf-8", maxlinelen=10_000).encode()


def subject_prefix(rev: Revision, counter: int, total: int) -> str:
    pre = [p for p in rev.prefixes if p.upper() != "PATCH"] + ["PATCH"]
    if rev.version > 1:
        pre.append(f"v{rev.version}")
    if total > 1 or counter == 0:
        width = len(str(total))
        pre.append(f"{str(counter).zfill(width)}/{total}")
    return "[" + " ".join(pre) + "]"


def content_hash(stack: Stack, rev: Revision) -> str:
    h = hashlib.sha1(f"{stack.name}\0v{rev.version}\0".encode())
    for p in rev.imported_patches():
        ident = p.patch_id or hashlib.sha1(Path(p.file).read_bytes()).hexdigest() if p.file else p.subject
        h.update(f"{p.index}:{ident}\0".encode())
    return h.hexdigest()[:8]


def domain_for(ws: Workspace, sender: str) -> str:
    d = ws.config.get("mail", {}).get("domain")
    if d:
        return str(d)
    _, mail = email.utils.parseaddr(sender)
    return mail.rsplit("@", 1)[1] if "@" in mail else DEFAULT_DOMAIN


def message_id(stack: Stack, rev: Revision, counter: int, chash: str, domain: str) -> str:
    return f"series-{stack.name}-v{rev.version}-{counter}-{chash}@{domain}"


def default_sender(ws: Workspace, stack: Stack, rev: Revision) -> str:
    cfg = ws.config.get("mail", {}).get("from")
    if cfg:
        return str(cfg)
    if stack.extra.get("sender"):
        return str(stack.extra["sender"])
    import os
    name, mail = os.environ.get("GIT_AUTHOR_NAME"), os.environ.get("GIT_AUTHOR_EMAIL")
    if name and mail:
        return f"{name} <{mail}>"
    pats = rev.imported_patches()
    if pats and pats[0].author:
        return pats[0].author
    raise UserError("no sender: pass --from 'Name <mail>' or set [mail] from in series.toml")


def mail_dates(rev: Revision, n: int) -> list[str]:
    base: dt.datetime | None = None
    if rev.date:
        try:
            base = dt.datetime.fromisoformat(rev.date)
        except ValueError:
            base = None
    if base is None:
        base = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if base.tzinfo is None:
        base = base.replace(tzinfo=dt.timezone.utc)
    return [email.utils.format_datetime(base + dt.timedelta(seconds=i)) for i in range(n)]


# -- recipients ------------------------------------------------------------------
def parse_get_maintainer(out: str) -> tuple[list[str], list[str]]:
    """Maintainers (and supporters) To; lists, reviewers and anyone else Cc."""
    to: list[str] = []
    cc: list[str] = []
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        # "Name <addr> (role:SECTION (with parens))" or "list@host (open list:SECTION)"
        m = re.match(r"^(.*?>|[^\s<>]+@[^\s<>]+)\s*\((.*)\)\s*$", line)
        addr, role = (m.group(1), m.group(2).lower()) if m else (line, "")
        if role.startswith(("maintainer", "supporter", "chief penguin")):
            to.append(addr)
        else:
            cc.append(addr)
    return _dedup(to), [a for a in _dedup(cc) if a not in to]


def _dedup(xs: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for x in xs:
        key = email.utils.parseaddr(x)[1].lower() or x.lower()
        if key not in seen:
            seen.add(key)
            out.append(x)
    return out


def run_get_maintainer(root: Path, files: list[Path]) -> tuple[list[str], list[str]]:
    script = root / "scripts" / "get_maintainer.pl"
    if not script.is_file():
        raise UserError(f"{script} is missing")
    cmd = ["perl", str(script), "--no-tree", "--no-git", "--no-git-fallback", "--roles", "--m", "--r", "--l",
           "--no-s", *map(str, files)]
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    except FileNotFoundError as e:
        raise InfraError("perl is not installed (apt-get install perl): needed by get_maintainer.pl") from e
    if proc.returncode != 0:
        raise InfraError(f"get_maintainer.pl failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return parse_get_maintainer(proc.stdout)


# -- bodies ------------------------------------------------------------------------
_SIG = re.compile(r"\n-- \n[^\n]*\n*\Z")


def patch_body(p: PatchInfo, sender: str, notes: list[str], signature: str) -> tuple[str, str]:
    """(subject without prefix, body) of a patch mail made from the posted patch file."""
    assert p.file is not None
    patch = Patch.load(p.file)
    message, diffpart = patch.message, patch.diff
    subject = patch.subject.strip() or p.subject
    author = f"{patch.author_name} <{patch.author_email}>" if patch.author_email else p.author
    out = []
    if author and email.utils.parseaddr(author)[1].lower() != email.utils.parseaddr(sender)[1].lower():
        out.append(f"From: {author}\n\n")
    out.append(message.rstrip("\n") + "\n")
    rest = diffpart
    if rest.startswith("---\n"):
        rest = rest[4:]
    m = _SIG.search(rest)
    if m:
        rest = rest[:m.start()] + "\n"
    out.append("---\n")
    if notes:
        out.append("\n".join(notes) + "\n\n")
    out.append(rest.rstrip("\n") + "\n")
    out.append(f"-- \n{signature}\n")
    return subject, "".join(out)


# -- the mail set -----------------------------------------------------------------
@dataclass
class MailOptions:
    to: list[str] | None = None          # None: computed
    cc: list[str] | None = None
    sender: str | None = None
    base_commit: str | None = None
    diffstat: str | None = None
    maintainers_root: Path | None = None  # a materialized tree with scripts/ + MAINTAINERS
    template: Path | None = None


def refuse_incomplete(stack: Stack, rev: Revision) -> None:
    if not rev.imported:
        raise UserError(f"{stack.name} v{rev.version} cannot be mailed: it is not imported "
                        f"(series fetch {stack.name} / series import)")
    if rev.missing:
        what = ", ".join(map(str, rev.missing))
        noun = "patch" if len(rev.missing) == 1 else "patches"
        verb = "is" if len(rev.missing) == 1 else "are"
        raise UserError(f"{stack.name} v{rev.version} cannot be mailed: {noun} {what} {verb} missing (not imported)")


def recipients(ws: Workspace, stack: Stack, rev: Revision, opts: MailOptions) -> tuple[list[str], list[str], str, list[str]]:
    """(to, cc, where from, notes)."""
    notes: list[str] = []
    to: list[str] | None = None
    cc: list[str] | None = None
    source = "options"
    if opts.to is None or opts.cc is None:
        if opts.maintainers_root is not None:
            gm_to, gm_cc = run_get_maintainer(opts.maintainers_root, [p.file for p in rev.imported_patches() if p.file])
            to, cc, source = gm_to, gm_cc, "get_maintainer.pl"
        else:
            notes.append("get_maintainer.pl not run: no kernel tree for this revision's base")
            m_to = [str(x) for x in stack.extra.get("to", [])]
            m_cc = [str(x) for x in stack.extra.get("cc", [])] + [str(x) for x in stack.extra.get("lists", [])]
            to, cc, source = m_to, m_cc, "manifest" if (m_to or m_cc) else "none"
    if opts.to is not None:
        to = split_addresses(opts.to)
    if opts.cc is not None:
        cc = split_addresses(opts.cc)
    if opts.to is not None and opts.cc is not None:
        source = "options"
    to_l = _dedup([encode_addr(a) for a in (to or [])])
    to_keys = {email.utils.parseaddr(a)[1].lower() for a in to_l}
    cc_l = [a for a in _dedup([encode_addr(a) for a in (cc or [])]) if email.utils.parseaddr(a)[1].lower() not in to_keys]
    return to_l, cc_l, source, notes


def build_mails(ws: Workspace, stack: Stack, rev: Revision, changelog: Changelog, cover_in: CoverInput,
                opts: MailOptions) -> MailSet:
    refuse_incomplete(stack, rev)
    for v in (opts.to or []) + (opts.cc or []) + ([opts.sender] if opts.sender else []):
        check_header_value("address", v)
    sender = opts.sender or default_sender(ws, stack, rev)
    check_header_value("From", sender)
    sender_h = encode_addr(sender)
    to, cc, source, notes = recipients(ws, stack, rev, opts)
    patches = rev.imported_patches()
    total = len(patches)
    chash = content_hash(stack, rev)
    domain = domain_for(ws, sender)
    dates = mail_dates(rev, total + 1)
    cid = change_id(stack)
    cover_in.sender = sender
    sig = str(ws.config.get("mail", {}).get("signature") or f"series {__import__('series').__version__}")
    title = rev.title or stack.title or stack.name
    cover_mid = message_id(stack, rev, 0, chash, domain)

    def headers(counter: int, subject: str, mid: str) -> list[tuple[str, str]]:
        check_header_value("Subject", subject)
        h = [("From", sender_h), ("Date", dates[counter]), ("Subject", encode_subject(subject)),
             ("Message-ID", f"<{mid}>")]
        if counter > 0:
            h += [("In-Reply-To", f"<{cover_mid}>"), ("References", f"<{cover_mid}>")]
        if to:
            h.append(("To", ", ".join(to)))
        if cc:
            h.append(("Cc", ", ".join(cc)))
        h += [("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=UTF-8"),
              ("Content-Transfer-Encoding", "8bit")]
        if counter == 0:
            h.append(("X-Series-Change-Id", cid))
        return h

    cover_subject = f"{subject_prefix(rev, 0, total)} {title}"
    cover_body = render_cover(ws, cover_in, opts.template)
    mails = [OutMail(0, "0000-cover-letter.patch", cover_subject, cover_mid, headers(0, cover_subject, cover_mid),
                     cover_body)]
    for n, p in enumerate(patches, start=1):
        subj, body = patch_body(p, sender, changelog.per_patch.get(p.index, []), sig)
        subject = f"{subject_prefix(rev, n, total)} {subj}"
        mid = message_id(stack, rev, n, chash, domain)
        mails.append(OutMail(n, patch_filename(n, subj), subject, mid, headers(n, subject, mid), body))
    return MailSet(stack=stack.name, version=rev.version, total=total, mails=mails, to=to, cc=cc,
                   recipients_from=source, base_commit=opts.base_commit, change_id=cid, notes=notes)
