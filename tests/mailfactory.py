"""Small patch mails of our own, for unit tests (no upstream text)."""

from __future__ import annotations

import email.utils
import http.server
import re
import urllib.parse
import gzip
import mailbox
from email.message import EmailMessage
from pathlib import Path

SENDER = "Ada Lovelace <ada@example.org>"


def diff_for(i: int, version: int = 1, *, lines: int = 6, file: str | None = None) -> str:
    f = file or f"mm/demo{i}.c"
    body = "".join(f"+int demo{i}_{k}(void) {{ return {k * i + version}; }}\n" for k in range(lines))
    return (f"diff --git a/{f} b/{f}\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/{f}\n"
            f"@@ -0,0 +1,{lines} @@\n{body}")


def patch_mail(i: int, n: int, *, version: int = 1, subject: str | None = None, author: str | None = None,
               diff: str | None = None, msgid: str | None = None, cte: str | None = None, charset: str = "utf-8",
               prefix: str = "PATCH", body_extra: str = "", in_reply_to: str | None = None) -> EmailMessage:
    m = EmailMessage()
    vtag = f" v{version}" if version > 1 else ""
    subj = subject or f"demo: add helper number {i}"
    m["Subject"] = f"[{prefix}{vtag} {i}/{n}] {subj}"
    m["From"] = SENDER
    m["To"] = "list@example.org"
    m["Date"] = email.utils.format_datetime(email.utils.parsedate_to_datetime(f"Mon, 01 Jan 2024 10:{i:02d}:00 +0000"))
    m["Message-ID"] = f"<{msgid or f'v{version}-{i}-demo@example.org'}>"
    if in_reply_to:
        m["In-Reply-To"] = f"<{in_reply_to}>"
        m["References"] = f"<{in_reply_to}>"
    inbody = f"From: {author}\n\n" if author else ""
    who = author or SENDER
    text = (f"{inbody}This adds helper {i} for the demo{body_extra}.\n\nSigned-off-by: {who}\n---\n"
            f" {'mm/demo%d.c' % i} | 6 ++++++\n 1 file changed\n\n{diff or diff_for(i, version)}-- \n2.43.0\n")
    m.set_content(text, charset=charset, cte=cte)
    return m


def cover_mail(n: int, *, version: int = 1, title: str = "demo helpers", msgid: str | None = None,
               prefix: str = "PATCH") -> EmailMessage:
    m = EmailMessage()
    vtag = f" v{version}" if version > 1 else ""
    m["Subject"] = f"[{prefix}{vtag} 0/{n}] {title}"
    m["From"] = SENDER
    m["To"] = "list@example.org"
    m["Date"] = "Mon, 01 Jan 2024 09:59:00 +0000"
    m["Message-ID"] = f"<{msgid or f'v{version}-0-demo@example.org'}>"
    m.set_content(f"This series adds {n} demo helpers.\n\nAda Lovelace (1):\n  demo\n")
    return m


def reply_mail(to: EmailMessage, text: str = "Looks good.\n\nReviewed-by: Bob <bob@example.org>\n") -> EmailMessage:
    m = EmailMessage()
    m["Subject"] = "Re: " + str(to["Subject"])
    m["From"] = "Bob <bob@example.org>"
    m["Date"] = "Tue, 02 Jan 2024 09:00:00 +0000"
    mid = str(to["Message-ID"])
    m["Message-ID"] = f"<reply-{mid.strip('<>')}>"
    m["In-Reply-To"] = mid
    m["References"] = mid
    m.set_content(text)
    return m


def series_mails(n: int, *, version: int = 1, missing: tuple[int, ...] = (), cover: bool = True, **kw) -> list[EmailMessage]:
    out = [cover_mail(n, version=version)] if cover else []
    out += [patch_mail(i, n, version=version, **kw) for i in range(1, n + 1) if i not in missing]
    return out


def write_mbox(path: Path, msgs: list[EmailMessage], *, gz: bool = False) -> Path:
    tmp = path.with_suffix(".tmpmbox")
    if tmp.exists():
        tmp.unlink()
    box = mailbox.mbox(str(tmp))
    for m in msgs:
        box.add(m)
    box.flush()
    box.close()
    data = tmp.read_bytes()
    tmp.unlink()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_maildir(path: Path, msgs: list[EmailMessage]) -> Path:
    md = mailbox.Maildir(str(path), create=True)
    for m in msgs:
        md.add(m)
    return path


class LoreHandler(http.server.BaseHTTPRequestHandler):
    """A local stand-in for lore's `/all/<msgid>/t.mbox.gz`: the server's `boxes`
    maps a Message-ID to an mbox file; every path asked for is kept in `hits`."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.hits.append(self.path)
        m = re.match(r"^/all/([^/]+)/t\.mbox\.gz$", self.path)
        box = self.server.boxes.get(urllib.parse.unquote(m.group(1))) if m else None  # type: ignore[attr-defined]
        if box is None:
            self.send_response(404)
            self.end_headers()
            return
        data = gzip.compress(box.read_bytes())
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(404)
        self.end_headers()

    def log_message(self, *a: object) -> None:
        pass
