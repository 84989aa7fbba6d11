"""The "Changes in vN" of a revision.

Two sources, kept apart so the author can tell them apart:
- `manifest`: what stack.toml records for the revision (posted changelogs, our notes);
- `computed`: what can be derived: per paired patch changed / added / dropped
  (lineage pairing with the previous revision), a new base, and the checkpatch
  delta when check results exist for both revisions.  Computed lines are marked
  `[computed]` in text output, for the author to edit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..stacks.lineage import Pair, pair_revisions
from ..stacks.model import Revision, Stack, load_toml
from ..workspace import Workspace

COMPUTED_MARK = "[computed]"


@dataclass
class Line:
    text: str
    source: str            # manifest | computed
    kind: str = "note"     # note | changed | added | dropped | missing | base | checkpatch
    patch: int | None = None

    def render(self) -> str:
        return f"{COMPUTED_MARK} {self.text}" if self.source == "computed" else self.text

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "source": self.source, "kind": self.kind, "patch": self.patch}


@dataclass
class Changelog:
    stack: str
    version: int
    previous: int | None
    lines: list[Line] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    per_patch: dict[int, list[str]] = field(default_factory=dict)   # new index -> lines below `---`

    def text(self) -> str:
        out = [f"Changes in v{self.version}:"]
        if self.previous is None:
            out.append("- first revision")
        out += [f"- {ln.render()}" for ln in self.lines]
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "version": self.version, "previous": self.previous,
                "lines": [ln.to_json() for ln in self.lines], "pairs": [p.to_json() for p in self.pairs],
                "per_patch": {str(k): v for k, v in sorted(self.per_patch.items())}}


def _q(s: str) -> str:
    return f'"{s}"' if s else "(unknown subject)"


def pair_lines(pairs: list[Pair], old: Revision, new: Revision) -> list[Line]:
    out: list[Line] = []
    for p in pairs:
        if p.status == "same":
            continue
        if p.status == "changed":
            what = f"patch {p.new} {_q(p.new_subject)}: changed since v{old.version} patch {p.old} ({p.similarity:.0%} similar)"
            if p.old_subject and p.new_subject and p.old_subject != p.new_subject:
                what += f", was {_q(p.old_subject)}"
            out.append(Line(what, "computed", "changed", p.new))
        elif p.status == "added":
            out.append(Line(f"patch {p.new} {_q(p.new_subject)}: new in v{new.version}", "computed", "added", p.new))
        elif p.status == "removed":
            out.append(Line(f"dropped v{old.version} patch {p.old} {_q(p.old_subject)}", "computed", "dropped", None))
        elif p.status == "missing":
            where = []
            if p.old is not None and p.old in old.missing:
                where.append(f"v{old.version}")
            if p.new is not None and p.new in new.missing:
                where.append(f"v{new.version}")
            label = f"patch {p.new}" if p.new is not None else f"v{old.version} patch {p.old}"
            out.append(Line(f"{label} {_q(p.new_subject or p.old_subject)}: not imported in {' and '.join(where) or 'one revision'}, "
                            "cannot compare", "computed", "missing", p.new))
    return out


def per_patch_notes(pairs: list[Pair], old: Revision | None, new: Revision,
                    manifest_notes: dict[int, list[str]] | None = None) -> dict[int, list[str]]:
    """Lines for below the `---` of each patch of `new`."""
    notes: dict[int, list[str]] = {i: list((manifest_notes or {}).get(i, [])) for i in new.indexes}
    if old is None:
        return {k: v for k, v in notes.items() if v}
    for p in pairs:
        if p.new is None:
            continue
        if p.status == "changed":
            s = f"v{new.version}: changed since v{old.version} ({p.similarity:.0%} similar to v{old.version} patch {p.old})"
            if p.old_subject != p.new_subject and p.old_subject:
                s += f"; was {_q(p.old_subject)}"
            notes[p.new].insert(0, s)
        elif p.status == "same" and (p.message_changed or p.old_subject != p.new_subject):
            notes[p.new].insert(0, f"v{new.version}: commit message changed since v{old.version}, code unchanged")
        elif p.status == "same":
            notes[p.new].insert(0, f"v{new.version}: no change since v{old.version}")
        elif p.status == "added":
            notes[p.new].insert(0, f"v{new.version}: new in v{new.version}")
        elif p.status == "missing":
            notes[p.new].insert(0, f"v{new.version}: v{old.version} counterpart not imported, cannot compare")
    return {k: v for k, v in notes.items() if v}


def manifest_patch_notes(stack: Stack, version: int) -> dict[int, list[str]]:
    """Per-patch `changelog = [...]` entries of stack.toml, when the manifest has any."""
    if not stack.manifest_path.is_file():
        return {}
    data = load_toml(stack.manifest_path)
    for r in data.get("revisions", []):
        if int(r.get("version", 0)) == version:
            return {int(p["index"]): [str(x) for x in p.get("changelog", [])]
                    for p in r.get("patches", []) if p.get("changelog")}
    return {}


def check_counts(ws: Workspace, stack: str, version: int) -> dict[str, int] | None:
    """Counts of the newest checkpatch result recorded for this revision, if any."""
    best: tuple[float, dict[str, int]] | None = None
    if not ws.runs.is_dir():
        return None
    for f in list(ws.runs.glob("*/results.json")) + list(ws.runs.glob("*/*/results.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if data.get("stack") != stack or str(data.get("revision", "")).lower().lstrip("v") != str(version):
            continue
        for st in data.get("stages", []):
            if st.get("name") in ("check", "checkpatch") and st.get("status") not in ("skip", "error"):
                mt = f.stat().st_mtime
                if best is None or mt > best[0]:
                    best = (mt, {k: int(v) for k, v in (st.get("counts") or {}).items() if isinstance(v, int)})
    return best[1] if best else None


def checkpatch_line(old: dict[str, int] | None, new: dict[str, int] | None, old_v: int, new_v: int) -> Line | None:
    if new is None:
        return None
    keys: list[str] = [k for k in ("errors", "warnings", "checks") if k in new] or sorted(new)
    if old is None:
        now = ", ".join(f"{new[k]} {k}" for k in keys)
        return Line(f"checkpatch: {now} (no result for v{old_v})", "computed", "checkpatch")
    parts = []
    for k in keys:
        a, b = old.get(k, 0), new.get(k, 0)
        parts.append(f"{k} {a} -> {b}" if a != b else f"{k} {b}")
    return Line(f"checkpatch v{old_v} -> v{new_v}: " + ", ".join(parts), "computed", "checkpatch")


def compute_changelog(ws: Workspace, stack: Stack, rev: Revision, *, pairs: list[Pair] | None = None) -> Changelog:
    prev = stack.previous(rev)
    cl = Changelog(stack=stack.name, version=rev.version, previous=prev.version if prev else None)
    cl.lines += [Line(t, "manifest") for t in rev.changelog]
    mnotes = manifest_patch_notes(stack, rev.version)
    if prev is None:
        cl.per_patch = per_patch_notes([], None, rev, mnotes)
        return cl
    if pairs is None:
        pairs = pair_revisions(prev, rev) if prev.imported and rev.imported else []
    cl.pairs = pairs
    if not (prev.imported and rev.imported):
        which = " and ".join(f"v{r.version}" for r in (prev, rev) if not r.imported)
        cl.lines.append(Line(f"{which} not imported: patches cannot be compared", "computed", "missing"))
    # A revision made by `series record` carries its drafted lines (pairing, trailers,
    # base) in the manifest's changelog already: they are not computed twice.
    drafted = bool(rev.import_record.get("revision", {}).get("changelog_drafted"))
    if not drafted:
        cl.lines += pair_lines(pairs, prev, rev)
    if rev.base and rev.base != prev.base and not drafted:
        was = f" (was {prev.base})" if prev.base else ""
        cl.lines.append(Line(f"new base: {rev.base}{was}", "computed", "base"))
    ck = checkpatch_line(check_counts(ws, stack.name, prev.version), check_counts(ws, stack.name, rev.version),
                         prev.version, rev.version)
    if ck:
        cl.lines.append(ck)
    cl.per_patch = per_patch_notes(pairs, prev, rev, mnotes)
    return cl

