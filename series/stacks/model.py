"""The stack manifest (`patches/<stack>/stack.toml`) and what an import recorded.

A manifest is ours: facts (IDs, dates, subjects, authors, bases, links) and
changelog summaries.  The bodies of the mails live in `v<N>/` after an import
(never committed for upstream stacks).
"""

from __future__ import annotations

import tomllib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.items

from ..errors import UserError
from ..fsutil import atomic_write_text

IMPORT_FILE = "import.toml"

# Limits on what a manifest or an import record may say: a number read from a
# file must not decide how much memory `show` takes.  Kernel series stay far
# below both (the largest on lore have a few hundred patches).
MAX_PATCHES = 5000        # patches in one revision (expected, first_index, indexes)
MAX_VERSION = 10000       # the N of vN


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
    change_id: str = ""       # b4's change-id, kept across revisions (recorded by `series record`)
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
        version = int(d["version"])
        if version < 1:
            raise ValueError(f"version must be 1 or more, not {version}")
        if version > MAX_VERSION:
            raise ValueError(f"version {version} is over the limit of {MAX_VERSION}")
        raw_patches = _list(d, "patches")
        if len(raw_patches) > MAX_PATCHES:
            raise ValueError(f"v{version}: {len(raw_patches)} patch entries (the limit is {MAX_PATCHES})")
        patches = [PatchInfo.from_toml(p) for p in raw_patches]
        expected = int(d.get("expected", len(patches)))
        if expected < 0 or int(d.get("first_index", 1)) < 1:
            raise ValueError(f"v{version}: expected must be >= 0 and first_index >= 1")
        check_counts(f"v{version}", expected, int(d.get("first_index", 1)), int(d.get("posted_total", expected)),
                     [p.index for p in patches])
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
            change_id=str(d.get("change_id", "")), changelog=[str(x) for x in _list(d, "changelog")], merged=dict(d.get("merged", {})), patches=patches,
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
        for key in ("base_note", "lore", "change_id"):
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
        """`v<N>/`; while a killed import's swap is unfinished (the next write
        finishes it, see revdir.py), the copy that will be there."""
        final = self.dir / f"v{version}"
        if final.exists():
            return final
        from .revdir import leftover
        return leftover(self.dir, version) or final

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
        """Write the manifest (see manifest_text)."""
        atomic_write_text(self.manifest_path, self.manifest_text())

    def manifest_text(self) -> str:
        """The manifest as it is to be written.  An existing stack.toml is edited in
        place (tomlkit): its comments, key order and layout stay as the author wrote
        them, and only the values series changed are rewritten.  The text is read
        back through the loader's own validation: a manifest the next load would
        reject is refused (UserError) before anything is written."""
        path = self.manifest_path
        old: str | None = None
        if path.is_file():
            try:
                old = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise UserError(f"{path}: cannot read it to update it: {e}") from None
        text = render_manifest(old, self.to_toml(), where=str(path))
        validate_manifest_text(text, path)
        return text


# Keys each table of the manifest may carry that the model writes: one the model
# leaves out (an emptied value) is removed; any other key (the user's) is kept.
_STACK_KEYS = frozenset({"name", "title", "derived_from", "upstream", "description", "revisions"})
_REVISION_KEYS = frozenset({"version", "prefixes", "date", "title", "cover_subject", "cover_message_id", "expected",
                            "first_index", "posted_total", "base", "base_note", "lore", "change_id", "changelog",
                            "merged", "patches"})
_PATCH_KEYS = frozenset({"index", "subject", "author", "message_id", "date", "notes"})


def check_counts(what: str, expected: int, first_index: int, posted_total: int, indexes: list[int]) -> None:
    """The bounds every revision obeys, in a manifest and in an import record."""
    if not 0 <= expected <= MAX_PATCHES:
        raise ValueError(f"{what}: expected = {expected} is out of range (0 to {MAX_PATCHES} patches)")
    if not 1 <= first_index <= MAX_PATCHES:
        raise ValueError(f"{what}: first_index = {first_index} is out of range (1 to {MAX_PATCHES})")
    if not 0 <= posted_total <= MAX_PATCHES:
        raise ValueError(f"{what}: posted_total = {posted_total} is out of range (0 to {MAX_PATCHES})")
    for i in indexes:
        if not 1 <= i <= 2 * MAX_PATCHES:
            raise ValueError(f"{what}: patch index {i} is out of range (1 to {2 * MAX_PATCHES})")


def revisions_from_manifest(data: dict[str, Any], path: Path) -> list[Revision]:
    """The revisions a manifest lists, validated: the one validator of stack.toml,
    used to load it and, before every write, on the text about to be written."""
    revs_raw = data.get("revisions", [])
    if not isinstance(revs_raw, list):
        raise UserError(f"{path}: malformed revision entry: revisions must be a list of tables, not {revs_raw!r}")
    try:
        revs = [Revision.from_toml(r) for r in revs_raw]
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as e:
        raise UserError(f"{path}: malformed revision entry: {e}") from None
    seen: set[int] = set()
    for r in revs:
        if r.version in seen:
            raise UserError(f"{path}: revision v{r.version} is listed twice")
        seen.add(r.version)
    for key in ("title", "derived_from", "description"):
        if key in data and not isinstance(data[key], str):
            raise UserError(f"{path}: {key} must be a string, not {data[key]!r}")
    return revs


def validate_manifest_text(text: str, path: Path) -> None:
    """UserError unless `text` is a manifest that load_stack accepts."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:  # pragma: no cover - tomlkit writes TOML
        raise UserError(f"{path}: refusing to write a manifest that does not parse: {e}") from None
    try:
        revisions_from_manifest(data, path)
    except UserError as e:
        raise UserError(f"refusing to write {path}: it would not load again ({e})") from None


def render_manifest(old: str | None, new: dict[str, Any], where: str = "stack.toml") -> str:
    """The manifest text for `new` (what Stack.to_toml gives), made by editing `old`
    (the file as it is) rather than by writing it afresh."""
    if old is None:
        return tomlkit.dumps(tomlkit.item(new))
    try:
        doc = tomlkit.parse(old)
    except Exception as e:  # tomlkit's errors share no public base class
        raise UserError(f"{where}: malformed TOML, cannot update it: {e}") from None
    _merge_table(doc, new, _STACK_KEYS)
    return tomlkit.dumps(doc)


def _plain(v: Any) -> Any:
    return v.unwrap() if hasattr(v, "unwrap") else v


def _merge_table(table: MutableMapping[str, Any], new: dict[str, Any], known: frozenset[str]) -> None:
    for key in [k for k in table if k in known and k not in new]:
        del table[key]
    for key, value in new.items():
        if key == "revisions" and key in table:
            _merge_list(table, key, value, "version", _REVISION_KEYS)
        elif key == "patches" and key in table:
            _merge_list(table, key, value, "index", _PATCH_KEYS)
        elif key not in table:
            if value not in ([], "", {}):   # an empty value is the default: leave it unsaid
                table[key] = value
        elif _plain(table[key]) != value:
            table[key] = value


def _merge_list(table: MutableMapping[str, Any], key: str, new: list[dict[str, Any]], ident: str,
                known: frozenset[str]) -> None:
    """Merge a list of tables matched by `ident` (version, index): a matched entry
    is edited in place, a new one inserted in order, a gone one removed."""
    items = table[key]
    if not isinstance(items, list) or not all(isinstance(x, MutableMapping) for x in items):
        table[key] = new
        return
    wanted = {e[ident]: e for e in new}
    for i in range(len(items) - 1, -1, -1):
        if _plain(items[i].get(ident)) not in wanted:
            del items[i]
    have = {_plain(x.get(ident)): x for x in items}
    for entry in new:
        cur = have.get(entry[ident])
        if cur is not None:
            _merge_table(cur, entry, known)
            continue
        pos = next((i for i, x in enumerate(items) if _plain(x.get(ident)) > entry[ident]), len(items))
        element: Any = tomlkit.item({k: v for k, v in entry.items() if v not in ([], "", {})})
        if isinstance(items, tomlkit.items.Array):  # an inline array of inline tables
            element = tomlkit.inline_table()
            element.update(entry)
        elif pos > 0 and not items[pos - 1].as_string().endswith("\n\n"):
            element.trivia.indent = "\n"       # a blank line between [[...]] tables
        items.insert(pos, element)


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
