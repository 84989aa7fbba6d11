"""Sending: only on an explicit `--send`, always after a dry run.

Through `git send-email` (Debian package `git-email`), to the SMTP server
given by `--smtp HOST:PORT` or series.toml `[mail] smtp = "HOST:PORT"`.  The
mails keep our headers (Message-ID, threading, To/Cc): `--no-thread`,
To/Cc only from the files' headers (author, self and body Cc's suppressed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import git
from ..errors import InfraError, StageFailed, UserError
from ..workspace import Workspace


@dataclass
class SendResult:
    dry_run: str
    sent: str
    server: str


def parse_smtp(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = value, "25"
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c in host for c in " \r\n/"):
        raise UserError(f"not an SMTP server: {value!r} (expected HOST:PORT)")
    return host, int(port)


def smtp_server(ws: Workspace, arg: str | None) -> tuple[str, int]:
    value = arg or ws.config.get("mail", {}).get("smtp")
    if not value:
        raise UserError("--send needs an SMTP server: --smtp HOST:PORT or [mail] smtp in series.toml")
    return parse_smtp(str(value))


def have_send_email() -> bool:
    return git.has_command("send-email")


def _options(host: str, port: int, sender: str, dry_run: bool) -> list[str]:
    cmd = ["--confirm=never", "--no-thread", "--suppress-cc=author", "--suppress-cc=self", "--suppress-cc=body", "--no-chain-reply-to",
           "--no-validate", "--8bit-encoding=UTF-8", "--transfer-encoding=8bit", "--no-format-patch",
           f"--from={sender}", f"--envelope-sender={_bare(sender)}",
           f"--smtp-server={host}", f"--smtp-server-port={port}", "--smtp-encryption=none", "--quiet"]
    if dry_run:
        cmd.append("--dry-run")
    return cmd


def _bare(addr: str) -> str:
    import email.utils
    return email.utils.parseaddr(addr)[1] or addr


def send_files(files: list[Path], host: str, port: int, sender: str, *, cwd: Path) -> SendResult:
    """Dry run, then send.  InfraError when git send-email is absent; StageFailed when sending fails."""
    if not have_send_email():
        raise InfraError("git send-email is not installed (apt-get install git-email)")
    out = []
    for dry in (True, False):
        proc = git.send_email(files, _options(host, port, sender, dry), cwd=cwd, timeout=600)
        stdout, stderr = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            why = (stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise StageFailed(f"git send-email{' --dry-run' if dry else ''} failed: {why}")
        out.append(stdout + stderr)
    return SendResult(dry_run=out[0], sent=out[1], server=f"{host}:{port}")
