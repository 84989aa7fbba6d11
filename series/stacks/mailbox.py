"""Reading mailboxes (mbox, mboxrd, maildir, gzip) into messages, with b4's parser."""

from __future__ import annotations

import gzip
import hashlib
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import b4
from liblore.utils import split_mbox_as_bytes

from ..errors import UserError

b4.logger.setLevel(logging.CRITICAL)


@dataclass
class Mail:
    raw: bytes
    msg: EmailMessage
    lmsg: "b4.LoreMessage"


def _parse(raw: bytes) -> EmailMessage:
    return b4.email.parser.BytesParser(policy=b4.emlpolicy, _class=EmailMessage).parsebytes(raw)


def read_raw_messages(path: Path) -> list[bytes]:
    """Raw bytes of every message in an mbox/mboxrd file (optionally gzipped) or a maildir."""
    if not path.exists():
        raise UserError(f"no such mailbox: {path}")
    if path.is_dir():
        if not b4.is_maildir(str(path)):
            raise UserError(f"{path} is a directory but not a maildir (no cur/new/tmp)")
        out: list[bytes] = []
        for sub in ("new", "cur"):
            for f in sorted((path / sub).iterdir()):
                if f.is_file():
                    out.append(f.read_bytes())
        return out
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise UserError(f"{path}: corrupt gzip data: {e}") from None
    if not data.startswith(b"From "):
        # A single message saved on its own (an .eml / .patch file).
        return [data] if b"\n\n" in data or b"\r\n\r\n" in data else []
    return [m for m in split_mbox_as_bytes(data) if m.strip()]


def load_mails(path: Path) -> tuple[list[Mail], int]:
    """Parse messages with b4.  Returns the mails and the count of unparseable ones."""
    mails: list[Mail] = []
    bad = 0
    for raw in read_raw_messages(path):
        try:
            msg = _parse(raw)
            if msg.get("Message-ID") is None and msg.get("Subject"):
                # Plain `git format-patch` output has no Message-ID: give it a stable
                # one (from the content), so that importing it twice changes nothing.
                raw = _with_message_id(raw)
                msg = _parse(raw)
            lmsg = b4.LoreMessage(msg)
        except (ValueError, UnicodeError, LookupError):
            bad += 1
            continue
        mails.append(Mail(raw=raw, msg=msg, lmsg=lmsg))
    return mails, bad


def _with_message_id(raw: bytes) -> bytes:
    digest = hashlib.sha1(raw).hexdigest()[:24]
    header = f"Message-ID: <{digest}@series.local.invalid>\n".encode()
    if raw.startswith(b"From "):  # keep an mbox From_ line first
        first, _, rest = raw.partition(b"\n")
        return first + b"\n" + header + rest
    return header + raw


def mailinfo(raw: bytes, what: str = "a mail") -> tuple[dict[str, str], str, bytes]:
    """git mailinfo through b4: (info, commit message, patch).  Honours the in-body From.
    The patch part stays bytes (what `git am` applies; a diff of a file that is not
    UTF-8 must reach GNU patch unchanged).  This is the one mailinfo of series:
    `series.patch.Patch` reads patch files through it.
    A mail git cannot read is the user's input: UserError naming `what`."""
    try:
        info, m, p = b4.get_mailinfo(raw, scissors=False)
    except ValueError:
        raise UserError(f"{what}: git mailinfo cannot read it (not a mail with a patch?)") from None
    return info, m.decode("utf-8", "replace"), bytes(p)


def clean_header(value: object) -> str:
    return b4.LoreMessage.clean_header(str(value) if value is not None else None)


def find_trailers(message: str) -> list[str]:
    trailers, _ = b4.LoreMessage.find_trailers(message, followup=False)
    return [f"{t.name}: {t.value}" for t in trailers]


def clean_msgid(raw: bytes) -> str | None:
    return b4.LoreMessage.get_clean_msgid(_parse(raw))
