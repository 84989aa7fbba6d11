"""The stack manifest (`patches/<stack>/stack.toml`) and what an import recorded.

A manifest is ours: facts (IDs, dates, subjects, authors, bases, links) and
changelog summaries.  The bodies of the mails live in `v<N>/` after an import
(never committed for upstream stacks).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..errors import UserError
from ..fsutil import atomic_write_text

IMPORT_FILE = "import.toml"


@dataclass
class PatchInfo:
    index: int
    subject: str = ""
    author: str = ""
    message_id: str = ""
    date: str = ""
    notes: str = ""           # e.g. "message-id inferred from numbering"
    # Filled from the import record when the revision is imported:
    file: Path | None = None
    patch_id: str | None = None
    imported: bool = False
    trailers: list[str] = field(default_factory=list)

    @classmethod
    def from_toml(cls, d: dict[str, Any]) -> "PatchInfo":
        if not isinstance(d, dict):
            raise TypeError(f"a patch entry must be a table, not {d!r}")
        return cls(index=int(d["index"]), subject=str(d.get("subject", "")), author=str(d.get("author", "")),
                   message_id=str(d.get("message_id", "")), date=str(d.get("date", "")), notes=str(d.get("notes", "")))

    def to_toml(self) -> dict[str, Any]:
        d: dict[str, Any] = {"index": self.index, "subject": self.subject, "author": self.author,
                             "message_id": self.message_id}
        if self.date:
            d["date"] = self.date
        if self.notes:
            d["notes"] = self.notes
        return d


@dataclass
class Revision:
    version: int
    prefixes: list[str] = field(default_factory=list)
    date: str = ""
    title: str = ""
    cover_subject: str = ""
    cover_message_id: str = ""
    expected: int = 0
    first_index: int = 1      # patches 16-20 of 21: first_index 16, expected 5
    posted_total: int = 0     # the N of [PATCH n/N] as posted
    base: str | None = None   # a commit, when known
    base_note: str = ""       # what the cover said about the base
    lore: str = ""
    changelog: list[str] = field(default_factory=list)
    merged: dict[str, Any] = field(default_factory=dict)
    patches: list[PatchInfo] = field(default_factory=list)
    # From the import record:
    imported: bool = False
    cover_text: str | None = None
    import_record: dict[str, Any] = field(default_factory=dict)

    @property
    def indexes(self) -> list[int]:
        return list(range(self.first_index, self.first_index + self.expected))

    @property
    def present(self) -> list[int]:
        return [p.index for p in self.patches if p.imported]

    @property
    def missing(self) -> list[int]:
        have = set(self.present)
        return [i for i in self.indexes if i not in have]

    @property
    def complete(self) -> bool:
        return self.imported and not self.missing

    def patch(self, index: int) -> PatchInfo | None:
        for p in self.patches:
            if p.index == index:
                return p
        return None

    def imported_patches(self) -> list[PatchInfo]:
        return [p for p in sorted(self.patches, key=lambda p: p.index) if p.imported]

    @classmethod
    def from_toml(cls, d: dict[str, Any]) -> "Revision":
        if not isinstance(d, dict):
            raise TypeError(f"a revision entry must be a table, not {d!r}")
        patches = [PatchInfo.from_toml(p) for p in _list(d, "patches")]
        expected = int(d.get("expected", len(patches)))
        version = int(d["version"])
        if version < 1:
            raise ValueError(f"version must be 1 or more, not {version}")
        if expected < 0 or int(d.get("first_index", 1)) < 1:
            raise ValueError(f"v{version}: expected must be >= 0 and first_index >= 1")
        if isinstance(d.get("base"), (int, float, bool, list, dict)):
            raise TypeError(f"v{version}: base must be a string (a commit)")
        if not isinstance(d.get("merged", {}), dict):
            raise TypeError(f"v{version}: merged must be a table")
        return cls(
            version=version, prefixes=[str(x) for x in _list(d, "prefixes")], date=str(d.get("date", "")),
            title=str(d.get("title", "")), cover_subject=str(d.get("cover_subject", "")),
            cover_message_id=str(d.get("cover_message_id", "")), expected=expected,
            first_index=int(d.get("first_index", 1)), posted_total=int(d.get("posted_total", expected)),
            base=d.get("base") or None, base_note=str(d.get("base_note", "")), lore=str(d.get("lore", "")),
            changelog=[str(x) for x in _list(d, "changelog")], merged=dict(d.get("merged", {})), patches=patches,
        )

    def to_toml(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": self.version, "prefixes": self.prefixes}
        for key in ("date", "title", "cover_subject", "cover_message_id"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        d["expected"] = self.expected
        if self.first_index != 1:
            d["first_index"] = self.first_index
        if self.posted_total and self.posted_total != self.expected:
            d["posted_total"] = self.posted_total
        if self.base:
            d["base"] = self.base
        for key in ("base_note", "lore"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.changelog:
            d["changelog"] = self.changelog
        if self.merged:
            d["merged"] = self.merged
        d["patches"] = [p.to_toml() for p in sorted(self.patches, key=lambda p: p.index)]
        return d


@dataclass
class Stack:
    name: str
    dir: Path
    title: str = ""
    derived_from: str | None = None
    upstream: bool = False    # bodies are fetched, never committed
    description: str = ""
    revisions: list[Revision] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.dir / "stack.toml"

    def revision(self, version: int | None = None) -> Revision:
        """The given revision, or the latest one.  UserError when unknown."""
        if not self.revisions:
            raise UserError(f"stack {self.name} has no revisions")
        if version is None:
            return max(self.revisions, key=lambda r: r.version)
        for r in self.revisions:
            if r.version == version:
                return r
        known = ", ".join(f"v{r.version}" for r in sorted(self.revisions, key=lambda r: r.version))
        raise UserError(f"stack {self.name} has no revision v{version} (known: {known})")

    def has_revision(self, version: int) -> bool:
        return any(r.version == version for r in self.revisions)

    def previous(self, rev: Revision) -> Revision | None:
        older = [r for r in self.revisions if r.version < rev.version]
        return max(older, key=lambda r: r.version) if older else None

    def rev_dir(self, version: int) -> Path:
        return self.dir / f"v{version}"

    def to_toml(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.title:
            d["title"] = self.title
        if self.derived_from:
            d["derived_from"] = self.derived_from
        d["upstream"] = self.upstream
        if self.description:
            d["description"] = self.description
        d.update(self.extra)
        d["revisions"] = [r.to_toml() for r in sorted(self.revisions, key=lambda r: r.version)]
        return d

    def save(self) -> None:
        atomic_write_text(self.manifest_path, tomli_w.dumps(self.to_toml()))


def parse_version(text: str) -> int:
    """'v3', '3' -> 3; UserError otherwise."""
    t = text.strip().lower().removeprefix("v")
    if not t.isdigit() or int(t) < 1:
        raise UserError(f"not a revision: {text!r} (expected vN or N)")
    return int(t)


def _list(d: dict[str, Any], key: str) -> list[Any]:
    """A list-valued key (a string is not a list of characters)."""
    v = d.get(key, [])
    if not isinstance(v, list):
        raise TypeError(f"{key} must be a list, not {v!r}")
    return v


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: malformed TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror or e}") from None
