"""Where `series mail` writes: all or nothing, and never over files it did not write."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import UserError
from .format import MailSet


def _ours(name: str) -> bool:
    return name in ("series.mbox", "series.json") or (name.endswith(".patch") and name[:4].isdigit())


def check_output(out: Path, force: bool) -> Path:
    """Where the mails go: absent, an empty directory, or (with --force) an earlier
    output of ours.  --force never replaces a file or a directory holding anything
    else: the user's files are not ours to delete."""
    out = out.expanduser().resolve()
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise UserError(f"{out} exists and is not a directory")
        names = [c.name for c in out.iterdir()]
        if names and not force:
            raise UserError(f"{out} exists and is not empty (use --force to replace an earlier output)")
        foreign = [n for n in names if not _ours(n)]
        if names and ("series.json" not in names or foreign):
            raise UserError(f"{out} holds files that series mail did not write ({', '.join(sorted(foreign)[:3]) or 'no series.json'}); "
                            "not replacing it, even with --force")
    else:
        parent = out.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"cannot make {out}: {parent} is not a directory")
    # Refused now, before any work, rather than after the mails are made: a parent
    # we cannot write in (read-only, someone else's, /proc).
    where = out if out.is_dir() else out.parent
    while not where.exists():
        where = where.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".series-probe-", dir=where))
    except OSError as e:
        raise UserError(f"cannot write the mails under {where}: {e.strerror or e}; choose another -o DIR") from None
    return out


def write_atomically(out: Path, ms: MailSet, force: bool) -> list[Path]:
    out = check_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    old: Path | None = None
    try:
        for m in ms.mails:
            (tmp / m.filename).write_bytes(m.as_bytes())
        (tmp / "series.mbox").write_bytes(ms.mbox_bytes())
        (tmp / "series.json").write_text(json.dumps(ms.to_json(), indent=2) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not out.exists():
            os.rename(old, out)  # put the earlier output back
        raise
    return [out / m.filename for m in ms.mails]
