"""Reading stacks from the workspace, merged with what imports recorded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError
from ..fsutil import exclusive_lock
from ..workspace import Workspace, check_stack_name
from .model import IMPORT_FILE, PatchInfo, Revision, Stack, check_counts, load_toml, revisions_from_manifest
from .revdir import recover, recover_if_left


@contextlib.contextmanager
def stack_write_lock(ws: Workspace, name: str) -> Iterator[list[str]]:
    """Hold the stack's lock (the one apply, ci, rebase and record take) for a
    write to patches/<name>/, after finishing whatever a killed writer left there.
    A second writer is refused as busy (one line, exit 1).  Yields the notes of
    the recovery (empty when there was nothing to do)."""
    check_stack_name(name)
    with exclusive_lock(ws.cache.stack_lock(name), f"stack {name}"):
        yield recover(ws.stack_dir(name))


def list_stacks(ws: Workspace) -> list[str]:
    if not ws.patches.is_dir():
        return []
    return sorted(d.name for d in ws.patches.iterdir() if (d / "stack.toml").is_file())


def stack_exists(ws: Workspace, name: str) -> bool:
    check_stack_name(name)
    return (ws.patches / name / "stack.toml").is_file()


def load_stack(ws: Workspace, name: str) -> Stack:
    check_stack_name(name)
    d = ws.patches / name
    path = d / "stack.toml"
    if not path.is_file():
        known = ", ".join(list_stacks(ws)) or "none"
        raise UserError(f"unknown stack {name!r} (known: {known})")
    # What a killed writer left is finished first, when no live writer holds the lock.
    recover_if_left(d, lambda: exclusive_lock(ws.cache.stack_lock(name), f"stack {name}"))
    data = load_toml(path)
    revs = revisions_from_manifest(data, path)
    extra = {k: v for k, v in data.items()
             if k not in {"name", "title", "derived_from", "upstream", "description", "revisions"}}
    stack = Stack(name=name, dir=d, title=str(data.get("title", "")), derived_from=data.get("derived_from") or None,
                  upstream=bool(data.get("upstream", False)), description=str(data.get("description", "")),
                  revisions=revs, extra=extra)
    # Revisions that exist on disk but not (yet) in the manifest: a local revision
    # of our own (e.g. made by `series rebase`) records itself in import.toml.
    listed = {r.version for r in revs}
    for sub in sorted(d.glob("v[0-9]*")):
        if sub.is_dir() and sub.name[1:].isdigit() and int(sub.name[1:]) not in listed and (sub / IMPORT_FILE).is_file():
            stack.revisions.append(Revision(version=int(sub.name[1:])))
    for rev in stack.revisions:
        rec_path = stack.rev_dir(rev.version) / IMPORT_FILE
        try:
            attach_import(stack, rev)
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as e:
            raise UserError(f"{rec_path}: malformed import record: {e}") from None
    stack.revisions.sort(key=lambda r: r.version)
    return stack


def attach_import(stack: Stack, rev: Revision) -> None:
    """Merge `v<N>/import.toml` into the revision: which patches are on disk."""
    rdir = stack.rev_dir(rev.version)
    rec_path = rdir / IMPORT_FILE
    if not rec_path.is_file():
        return
    rec = load_toml(rec_path)
    meta = rec.get("revision", {})
    if not isinstance(meta, dict) or not isinstance(rec.get("patches", []), list):
        raise TypeError("[revision] must be a table and [[patches]] a list of tables")
    rev.imported = True
    rev.import_record = rec
    # Fill what the manifest does not say (a stack created by import, or a rebase).
    for key in ("date", "title", "cover_subject", "cover_message_id", "base", "lore", "change_id"):
        if not getattr(rev, key) and meta.get(key):
            setattr(rev, key, meta[key])
    if not rev.prefixes and isinstance(meta.get("prefixes"), list):
        rev.prefixes = list(meta["prefixes"])
    if not rev.changelog and isinstance(meta.get("changelog"), list):
        rev.changelog = list(meta["changelog"])
    check_import_record(rec)
    if not rev.expected:
        rev.expected = int(meta.get("expected", 0))
        rev.first_index = int(meta.get("first_index", 1))
        rev.posted_total = int(meta.get("posted_total", rev.expected))
    cover = rdir / "cover.txt"
    rev.cover_text = cover.read_text(errors="replace") if cover.is_file() else None
    for p in rec.get("patches", []):
        if not isinstance(p, dict):
            raise TypeError(f"a patch entry must be a table, not {p!r}")
        idx = int(p["index"])
        name = str(p["file"])
        if not name or Path(name).name != name or name in (".", ".."):
            # The record names a file of this revision's directory, nothing else.
            raise ValueError(f"patch {idx}: file {name!r} is not a file name in {rdir}")
        info = rev.patch(idx)
        if info is None:
            info = PatchInfo(index=idx, subject=p.get("subject", ""), author=p.get("author", ""),
                             message_id=p.get("message_id", ""), date=p.get("date", ""))
            rev.patches.append(info)
        f = rdir / name
        if f.is_file():
            info.file = f
            info.imported = True
            info.patch_id = p.get("patch_id") or None
            info.trailers = list(p.get("trailers", []))
            if not info.subject:
                info.subject = p.get("subject", "")
            if not info.author:
                info.author = p.get("author", "")
            if not info.message_id:
                info.message_id = p.get("message_id", "")
    rev.patches.sort(key=lambda p: p.index)


def check_import_record(rec: dict[str, object]) -> None:
    """The bounds of an import record (`v<N>/import.toml`): what `attach_import`
    reads, checked before an import writes one and whenever one is loaded."""
    meta = rec.get("revision", {})
    patches = rec.get("patches", [])
    if not isinstance(meta, dict) or not isinstance(patches, list):
        raise TypeError("[revision] must be a table and [[patches]] a list of tables")
    expected = int(meta.get("expected", 0))
    indexes = [int(p["index"]) for p in patches if isinstance(p, dict)]
    check_counts("the import record", expected, int(meta.get("first_index", 1)),
                 int(meta.get("posted_total", expected)), indexes)


def revision_json(rev: Revision) -> dict[str, object]:
    """The `show --json` contract for one revision."""
    return {
        "version": rev.version,
        "prefixes": rev.prefixes,
        "date": rev.date or None,
        "title": rev.title or None,
        "cover_message_id": rev.cover_message_id or None,
        "expected": rev.expected,
        "present": rev.present,
        "missing": rev.missing,
        "complete": rev.complete,
        "imported": rev.imported,
        "base": rev.base,
        "base_note": rev.base_note or None,
        "lore": rev.lore or None,
        "changelog": rev.changelog,
        "merged": rev.merged or None,
        "patches": [
            {"index": p.index, "subject": p.subject, "author": p.author, "message_id": p.message_id or None,
             "patch_id": p.patch_id, "imported": p.imported, "file": str(p.file) if p.file else None}
            for p in sorted(_with_placeholders(rev), key=lambda p: p.index)
        ],
    }


def _with_placeholders(rev: Revision) -> list[PatchInfo]:
    have = {p.index for p in rev.patches}
    return rev.patches + [PatchInfo(index=i) for i in rev.indexes if i not in have]


def stack_json(stack: Stack, only: int | None = None) -> dict[str, object]:
    revs = [stack.revision(only)] if only is not None else stack.revisions
    return {"name": stack.name, "title": stack.title, "derived_from": stack.derived_from,
            "upstream": stack.upstream, "revisions": [revision_json(r) for r in revs]}


def patch_text(p: PatchInfo) -> str:
    if p.file is None:
        raise UserError(f"patch {p.index} is not imported")
    return Path(p.file).read_text(errors="replace")
