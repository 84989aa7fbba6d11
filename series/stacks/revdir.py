"""Revision directories (`patches/<stack>/v<N>/`): written beside their place and
swapped in so that a kill at any instant leaves either the old revision or the
new one, and the next writer finishes what was started.

A writer holds the stack's lock (`store.stack_write_lock`) and:

1. builds the new copy in `.v<N>.<random>.tmp/` (a kill here leaves a stale
   temporary directory: the old revision is untouched; the next writer removes it);
2. renames it to `.v<N>.incoming-<kind>/`: from here on the new copy is complete
   and will win (`kind`: `new`, `grow` or `replace-<stamp>`);
3. renames the old `v<N>/` to `.v<N>.outgoing-<kind>/`;
4. renames the incoming copy to `v<N>/`;
5. settles the outgoing copy: a grown revision's old copy is a subset of the new
   one and is removed; a replaced one is kept as `v<N>.replaced-<stamp>/`.

`recover()` (run under the lock before every write) finds what a killed writer
left between those steps and completes the swap, so no revision ever vanishes.
Readers that come before the recovery see the incoming copy, else the outgoing
one, through `Stack.rev_dir` (`series show` never reports a half-swapped revision
as absent).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import shutil
from pathlib import Path

_TMP = re.compile(r"^\.v(\d+)\.(?:[0-9a-z_]+\.tmp|tmp-\d+)$")
_INCOMING = re.compile(r"^\.v(\d+)\.incoming-(new|grow|replace-[0-9TZ]+)$")
_OUTGOING = re.compile(r"^\.v(\d+)\.outgoing-(new|grow|replace-[0-9TZ]+)$")


def stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def make_tmp(stack_dir: Path, version: int) -> Path:
    """A fresh `.v<N>.<random>.tmp/` with the mode the umask gives (not 0700)."""
    stack_dir.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = stack_dir / f".v{version}.{secrets.token_hex(6)}.tmp"
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse a directory fsync
        pass
    finally:
        os.close(fd)


def install(stack_dir: Path, version: int, tmp: Path, kind: str) -> Path | None:
    """Swap the complete copy `tmp` in as `v<N>/` (steps 2-5).  `kind` is `new`,
    `grow` or `replace`.  Returns where a replaced old copy was kept, else None."""
    if kind == "replace":
        kind = f"replace-{stamp()}"
    incoming = stack_dir / f".v{version}.incoming-{kind}"
    os.rename(tmp, incoming)
    _fsync_dir(stack_dir)
    return _finish(stack_dir, version, incoming)


def _finish(stack_dir: Path, version: int, incoming: Path) -> Path | None:
    kind = incoming.name.split(".incoming-", 1)[1]
    final = stack_dir / f"v{version}"
    outgoing = stack_dir / f".v{version}.outgoing-{kind}"
    if final.exists():
        os.rename(final, outgoing)
    os.rename(incoming, final)
    _fsync_dir(stack_dir)
    return _settle(stack_dir, version, outgoing)


def _settle(stack_dir: Path, version: int, outgoing: Path) -> Path | None:
    if not outgoing.exists():
        return None
    kind = outgoing.name.split(".outgoing-", 1)[1]
    if kind.startswith("replace-"):
        aside = stack_dir / f"v{version}.replaced-{kind.removeprefix('replace-')}"
        os.rename(outgoing, aside)
        return aside
    shutil.rmtree(outgoing)
    return None


def leftover(stack_dir: Path, version: int) -> Path | None:
    """Where a reader finds v<N> while a swap is unfinished: the incoming copy (it
    is complete), else the outgoing one; None when there is nothing half-done."""
    if not stack_dir.is_dir():
        return None
    names = sorted(p.name for p in stack_dir.iterdir())
    for rx in (_INCOMING, _OUTGOING):
        for n in names:
            m = rx.match(n)
            if m and int(m.group(1)) == version:
                return stack_dir / n
    return None


def recover(stack_dir: Path) -> list[str]:
    """Finish or undo what a killed writer left (call with the stack's lock held).
    Returns one note per thing done, for the user."""
    notes: list[str] = []
    if not stack_dir.is_dir():
        return notes
    entries = sorted(stack_dir.iterdir())
    for p in entries:
        if _TMP.match(p.name) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            notes.append(f"removed {p.name}, left by an interrupted write")
    for p in entries:
        m = _INCOMING.match(p.name)
        if not m or not p.is_dir():
            continue
        version = int(m.group(1))
        # The new copy is complete, so it wins: an old copy already moved out is
        # settled (dropped when grown, kept aside when replaced), then the swap ends.
        for out in sorted(stack_dir.glob(f".v{version}.outgoing-*")):
            if _OUTGOING.match(out.name):
                _settle(stack_dir, version, out)
        _finish(stack_dir, version, p)
        notes.append(f"finished the interrupted write of v{version}")
    for p in sorted(stack_dir.iterdir()):
        m = _OUTGOING.match(p.name)
        if not m or not p.is_dir():
            continue
        version = int(m.group(1))
        final = stack_dir / f"v{version}"
        if final.exists():
            _settle(stack_dir, version, p)
            notes.append(f"finished the interrupted write of v{version}")
        else:
            os.rename(p, final)
            notes.append(f"restored v{version} from an interrupted write")
    return notes
