"""Reading mailboxes (mbox, mboxrd, maildir, gzip) into messages, with b4's parser."""

from __future__ import annotations

import email.parser
import gzip
import hashlib
import io
import logging
import os
import stat
import zlib
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import b4
from liblore.utils import split_mbox_as_bytes

from ..errors import UserError

b4.logger.setLevel(logging.CRITICAL)

# Limits on a mailbox (a mail from a list is untrusted input): its size on disk,
# its size once decompressed, and how many messages it holds.  Real threads are
# a few MB; the largest series on lore are far below all three.
MAX_MAILBOX_BYTES = 128 * 1024 * 1024
MAX_MESSAGES = 20000


@dataclass
class Mail:
    raw: bytes
    msg: EmailMessage
    lmsg: "b4.LoreMessage"


def _parse(raw: bytes) -> EmailMessage:
    msg = email.parser.BytesParser(policy=b4.emlpolicy, _class=EmailMessage).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def _mib(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB"


def _read_regular(path: Path, what: str) -> bytes:
    """The bytes of a regular file, at most MAX_MAILBOX_BYTES.  A FIFO, a device or
    a socket is refused before it is opened (a FIFO would wait for a writer,
    /dev/zero would never end)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file")
        raise UserError(f"{what} {path} is {kind}, not a regular file: save the mailbox to a file first")
    if st.st_size > MAX_MAILBOX_BYTES:
        raise UserError(f"{what} {path} is {st.st_size} bytes, over the limit of {_mib(MAX_MAILBOX_BYTES)} "
                        "for a mailbox: split it")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_MAILBOX_BYTES + 1)
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if len(data) > MAX_MAILBOX_BYTES:  # it grew while we read it
        raise UserError(f"{what} {path} is over the limit of {_mib(MAX_MAILBOX_BYTES)} for a mailbox: split it")
    return data


def _gunzip(data: bytes, path: Path) -> bytes:
    """Decompress, stopping at MAX_MAILBOX_BYTES of output (a gzip bomb is refused
    after that much, never unpacked whole)."""
    try:
        out = bytearray()
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            while len(out) <= MAX_MAILBOX_BYTES:    # a read returns what one block gives
                chunk = gz.read(min(1 << 20, MAX_MAILBOX_BYTES + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: corrupt gzip data: {e}") from None
    if len(out) > MAX_MAILBOX_BYTES:
        raise UserError(f"{path}: decompresses to more than the limit of {_mib(MAX_MAILBOX_BYTES)} for a mailbox")
    return bytes(out)


def _too_many(path: Path, n: int) -> UserError:
    return UserError(f"{path} holds {n} messages or more, over the limit of {MAX_MESSAGES}: split it")


def read_raw_messages(path: Path) -> list[bytes]:
    """Raw bytes of every message in an mbox/mboxrd file (optionally gzipped) or a maildir."""
    if not path.exists():
        raise UserError(f"no such mailbox: {path}")
    if path.is_dir():
        if not b4.is_maildir(str(path)):
            raise UserError(f"{path} is a directory but not a maildir (no cur/new/tmp)")
        out: list[bytes] = []
        total = 0
        for sub in ("new", "cur"):
            for f in sorted((path / sub).iterdir()):
                if not f.is_file():      # also skips FIFOs and devices, and links to them
                    continue
                if len(out) >= MAX_MESSAGES:
                    raise _too_many(path, len(out) + 1)
                raw = _read_regular(f, "message")
                total += len(raw)
                if total > MAX_MAILBOX_BYTES:
                    raise UserError(f"maildir {path} holds more than the limit of {_mib(MAX_MAILBOX_BYTES)} "
                                    "for a mailbox: split it")
                out.append(raw)
        return out
    data = _read_regular(path, "mailbox")
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(data, path)
    if not data.startswith(b"From "):
        # A single message saved on its own (an .eml / .patch file).
        return [data] if b"\n\n" in data or b"\r\n\r\n" in data else []
    if data.count(b"\nFrom ") >= MAX_MESSAGES:
        raise _too_many(path, data.count(b"\nFrom ") + 1)
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
