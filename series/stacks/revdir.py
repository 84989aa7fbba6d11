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
   one and is removed; a replaced one is kept as `v<N>.replaced-<stamp>/`;
6. a new revision's copy carries `PENDING` (written by `write_pending`: its
   manifest entry, for a new stack the manifest's header too, and for `series
   record` the trailers it carried); `conclude` writes what the manifest does not
   have yet, then `PENDING` goes.  Import and record both end this way.  A kill
   from step 2 on is finished by the next run: the copy won at step 2, so what
   it still owes the manifest is owed by the store, and the recovery completes
   it.  An exception in the writer itself (Ctrl-C, a full disk, a refused
   manifest) instead takes back a new revision the manifest does not list yet
   (`take_back`): the store is back in its old state.

`recover()` (run under the lock before every write) finds what a killed writer
left between those steps and completes the swap, so no revision ever vanishes.
Readers that come before the recovery see the incoming copy, else the outgoing
one, through `Stack.rev_dir` (`series show` never reports a half-swapped revision
as absent); `load_stack` runs the recovery itself when it sees leftovers and the
stack's lock is free (`recover_if_left`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Callable

import tomli_w

from ..errors import UserError
from ..fsutil import atomic_write_text
from .model import load_toml, render_manifest, validate_manifest_text

_TMP = re.compile(r"^\.v(\d+)\.(?:[0-9a-z_]+\.tmp|tmp-\d+)$")
_INCOMING = re.compile(r"^\.v(\d+)\.incoming-(new|grow|replace-[0-9TZ]+)$")
_OUTGOING = re.compile(r"^\.v(\d+)\.outgoing-(new|grow|replace-[0-9TZ]+)$")
_FINAL = re.compile(r"^v(\d+)$")
PENDING = ".pending.toml"       # in v<N>/: what the writer still owes the store (step 6)


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
    for version, pending in _pending(stack_dir):
        notes.append(complete(stack_dir, version, pending))
    return notes


def _pending(stack_dir: Path) -> list[tuple[int, Path]]:
    out = []
    for p in sorted(stack_dir.iterdir()):
        m = _FINAL.match(p.name)
        if m and (p / PENDING).is_file() and not p.is_symlink():
            out.append((int(m.group(1)), p / PENDING))
    return out


def write_pending(tmp: Path, entry: dict[str, Any], *, by: str, header: dict[str, Any] | None = None,
                  trailers: list[dict[str, Any]] | None = None) -> None:
    """Step 6's debt, written into the new copy `tmp` before it is installed: the
    manifest entry `entry` of the new revision, the manifest's `header` (name,
    title...) when the stack has no manifest yet, the trailers to add to the
    stack's ledger.  `by` names the writer for the user (`import`, `record`).
    The caller has validated the manifest with the entry (`manifest_with`,
    `Stack.manifest_text`) before it writes anything."""
    data: dict[str, Any] = {"by": by, "manifest": entry}
    if header is not None:
        data["stack"] = header
    if trailers:
        data["trailers"] = trailers
    (tmp / PENDING).write_text(tomli_w.dumps(data), encoding="utf-8")


def manifest_with(path: Path, entry: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """stack.toml with one more [[revisions]] entry, appended as text (the
    manifest's comments and layout stay as the author wrote them), or, when there
    is no stack.toml and `header` is given, a new one; validated by the loader's
    own validator (UserError when the next load would reject it)."""
    if header is not None and not path.exists():
        text = render_manifest(None, {**header, "revisions": [entry]}, where=str(path))
    else:
        try:
            old = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: cannot read it to update it: {e}") from None
        text = old.rstrip("\n") + "\n\n" + tomli_w.dumps({"revisions": [entry]})
    validate_manifest_text(text, path)
    return text


def manifest_lists(path: Path, version: int) -> bool:
    """Whether stack.toml (at `path`) has an entry for v<version>; False when there
    is no stack.toml (a new stack's first import)."""
    if not path.exists():
        return False
    revs = load_toml(path).get("revisions", [])
    return isinstance(revs, list) and any(isinstance(r, dict) and r.get("version") == version for r in revs)


def _manifest_append(path: Path, entry: dict[str, Any], header: dict[str, Any] | None) -> None:
    atomic_write_text(path, manifest_with(path, entry, header))


def complete(stack_dir: Path, version: int, pending: Path) -> str:
    """Step 6: write what `v<N>/`'s PENDING owes the store (the manifest entry
    unless the manifest lists v<N> already, the trailers), then remove it.
    Idempotent: a kill anywhere in it is finished by the next run, and the store
    ends in the new state.  Returns a note for the user."""
    from .model import Stack
    from .trailers import Trailer, load_stored, save_stored
    data = load_toml(pending)
    entry, header, by = data.get("manifest"), data.get("stack"), str(data.get("by", "write"))
    if not isinstance(entry, dict) or entry.get("version") != version or \
            (header is not None and not isinstance(header, dict)):
        raise UserError(f"{pending}: malformed (no manifest entry for v{version}); remove it by hand")
    manifest = stack_dir / "stack.toml"
    wrote = not manifest_lists(manifest, version)
    if wrote:
        _manifest_append(manifest, entry, header)
    carried = data.get("trailers", [])
    if isinstance(carried, list) and carried:
        stack = Stack(name=stack_dir.name, dir=stack_dir)
        try:
            items = [Trailer.from_toml(t) for t in carried]
        except (KeyError, ValueError, TypeError) as e:
            raise UserError(f"{pending}: malformed trailer entry: {e}") from None
        save_stored(stack, load_stored(stack) + items)
    pending.unlink()
    return (f"finished the interrupted {by} of v{version}: " +
            ("its manifest entry written" if wrote else "nothing left to write"))


def conclude(stack_dir: Path, versions: Iterable[int]) -> None:
    """Step 6 by the writer itself, once its new revisions are installed (and its
    own manifest write, if it makes one, is done): complete each.  On an exception
    the new revisions the manifest does not list yet are taken back."""
    versions = list(versions)
    try:
        for v in versions:
            pending = stack_dir / f"v{v}" / PENDING
            if pending.is_file():
                complete(stack_dir, v, pending)
    except BaseException:
        take_back(stack_dir, versions)
        raise


def take_back(stack_dir: Path, versions: Iterable[int]) -> None:
    """A writer's exception before its new revisions are complete: each `v<N>/`
    that still carries PENDING and that the manifest does not list is removed
    (renamed to a temporary name first, so that a kill in the removal leaves a
    stale temporary directory, which the next writer removes, and never half a
    revision).  A manifest that cannot be read counts as listing it: kept."""
    for v in versions:
        final = stack_dir / f"v{v}"
        if not (final / PENDING).is_file():
            continue
        try:
            listed = manifest_lists(stack_dir / "stack.toml", v)
        except UserError:
            listed = True
        if listed:
            continue
        gone = make_tmp(stack_dir, v)
        try:
            os.rename(final, gone)
        except OSError:
            os.rmdir(gone)
            continue
        shutil.rmtree(gone, ignore_errors=True)


def needs_recovery(stack_dir: Path) -> bool:
    """Whether a killed writer left something here (cheap: one listing)."""
    try:
        names = os.listdir(stack_dir)
    except OSError:
        return False
    for n in names:
        if _TMP.match(n) or _INCOMING.match(n) or _OUTGOING.match(n):
            return True
        if _FINAL.match(n) and os.path.isfile(os.path.join(stack_dir, n, PENDING)):
            return True
    return False


def recover_if_left(stack_dir: Path, lock: Callable[[], "contextlib.AbstractContextManager[object]"]) -> list[str]:
    """For a reader (`load_stack`): when a killed writer left something, recover it
    under the stack's lock if the lock is free.  A live writer holding the lock (it
    made what is seen, and finishes it), a read-only workspace or an unusable cache
    leave it for the next writer: the reader sees the copy that will win."""
    if not needs_recovery(stack_dir):
        return []
    try:
        with lock():
            return recover(stack_dir)
    except (UserError, OSError):
        return []
