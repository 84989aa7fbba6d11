"""Cover letters: a jinja2 template with the variables b4 users know.

Variables: `cover` (the blurb: v<N>/cover.txt without its Subject line),
`shortlog`, `diffstat`, `range_diff`, `base_commit`, `change_id`,
`prerequisites` (the `prerequisite-patch-id:` lines), `signature`; and
`changelog` (the "Changes in vN" lines), `history` (every earlier revision:
version, date, link, changelog), `previous_version`, `previous_link`,
`stack`, `version`, `title`, `subject`.

The default template is `series/templates/cover.j2`; a workspace overrides it
with `<workspace>/templates/cover.j2`, or `--template FILE`.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any


from .. import __version__
from ..errors import UserError
from ..patch import Patch, format_diffstat, sum_numstats
from ..stacks.lineage import Pair, pair_revisions, range_diff_text
from ..stacks.model import Revision, Stack
from ..workspace import Workspace
from .changelog import Changelog, compute_changelog

EDITME = "*** EDITME: describe the series (no cover.txt in this revision) ***"


def lore_link(ws: Workspace, rev: Revision) -> str:
    """The lore link of a posted revision: the manifest's, else one made from the cover Message-ID."""
    if rev.lore:
        return rev.lore
    if rev.cover_message_id:
        return f"{ws.lore_url.rstrip('/')}/r/{rev.cover_message_id.strip('<>')}"
    return ""


def change_id(stack: Stack) -> str:
    """Stable across the revisions of a stack: the one `series record` wrote in the
    manifest (the newest revision that has one), else derived from the stack name
    and the first revision's date (b4's shape: YYYYMMDD-<name>-<hash12>)."""
    recorded = [r.change_id for r in sorted(stack.revisions, key=lambda r: r.version) if r.change_id]
    if recorded:
        return recorded[-1]
    first = min(stack.revisions, key=lambda r: r.version) if stack.revisions else None
    date = (first.date if first else "") or ""
    day = re.sub(r"\D", "", date[:10])
    h = hashlib.sha1(f"{stack.name}\0{date}".encode()).hexdigest()[:12]
    return f"{day}-{stack.name}-{h}" if len(day) == 8 else f"{stack.name}-{h}"


def cover_blurb(rev: Revision) -> str:
    if not rev.cover_text:
        return EDITME
    lines = rev.cover_text.splitlines()
    if lines and lines[0].lower().startswith("subject:"):
        lines = lines[1:]
    while lines and not lines[0].strip():
        lines = lines[1:]
    return "\n".join(lines).rstrip() or EDITME


def shortlog(rev: Revision) -> str:
    by: "OrderedDict[str, list[str]]" = OrderedDict()
    for p in rev.imported_patches():
        by.setdefault(_name(p.author) or "(unknown)", []).append(p.subject)
    out = []
    for who, subjects in by.items():
        out.append(f"{who} ({len(subjects)}):")
        out += [f"      {s}" for s in subjects]
        out.append("")
    return "\n".join(out).rstrip()


def _name(author: str) -> str:
    m = re.match(r"\s*\"?([^\"<]*?)\"?\s*<", author)
    return m.group(1).strip() if m and m.group(1).strip() else author.strip()


def diffstat_of_patches(rev: Revision) -> str:
    """A diffstat of the whole revision from its patches alone (no repository needed):
    per file, the lines its patches add and remove, laid out like `git diff --stat`."""
    return format_diffstat(sum_numstats(Patch.load(p.file) for p in rev.imported_patches() if p.file))


def prerequisite_lines(rev: Revision) -> str:
    """`prerequisite-patch-id:` lines as `git format-patch --base` writes them, from the
    revision's import record (`[revision] prerequisites = [...]`: patch-ids or message-ids)."""
    out = []
    for item in rev.import_record.get("revision", {}).get("prerequisites", []) or []:
        s = str(item).strip()
        if re.fullmatch(r"[0-9a-f]{40}", s):
            out.append(f"prerequisite-patch-id: {s}")
        elif "@" in s:
            out.append(f"prerequisite-message-id: <{s.strip('<>')}>")
        elif s:
            out.append(f"prerequisite-change-id: {s}")
    return "\n".join(out)


def history(ws: Workspace, stack: Stack, rev: Revision) -> list[dict[str, Any]]:
    return [{"version": r.version, "date": r.date[:10] if r.date else "", "link": lore_link(ws, r),
             "cover_message_id": r.cover_message_id or None, "changelog": list(r.changelog),
             "title": r.title, "complete": r.complete}
            for r in sorted(stack.revisions, key=lambda r: r.version) if r.version < rev.version]


def signature(ws: Workspace, sender: str | None) -> str:
    sig = ws.config.get("mail", {}).get("signature")
    if sig:
        return str(sig)
    return sender or f"series {__version__}"


@dataclass
class CoverInput:
    stack: Stack
    rev: Revision
    changelog: Changelog
    pairs: list[Pair]
    base_commit: str | None
    diffstat: str | None = None
    sender: str | None = None


def template_for(ws: Workspace, override: Path | None = None) -> tuple[str, str]:
    """(template text, where it came from).  A template from the workspace or the
    command line is untrusted: read with limits (sandbox.read_template)."""
    from .sandbox import read_template
    if override is not None:
        if not override.is_file():
            raise UserError(f"no such template: {override}")
        return read_template(override, str(override)), str(override)
    local = ws.root / "templates" / "cover.j2"
    if local.is_file():
        return read_template(local, str(local)), str(local)
    res = resources.files("series").joinpath("templates/cover.j2")
    return res.read_text(), "series/templates/cover.j2 (default)"


def variables(ws: Workspace, ci: CoverInput) -> dict[str, Any]:
    stack, rev = ci.stack, ci.rev
    prev = stack.previous(rev)
    rd = ""
    if prev is not None and prev.imported and rev.imported and ci.pairs:
        rd = range_diff_text(prev, rev, ci.pairs).rstrip()
    return {
        "cover": cover_blurb(rev),
        "shortlog": shortlog(rev),
        "diffstat": ci.diffstat if ci.diffstat is not None else diffstat_of_patches(rev),
        "range_diff": rd,
        "base_commit": ci.base_commit or "",
        "change_id": change_id(stack),
        "prerequisites": prerequisite_lines(rev),
        "signature": signature(ws, ci.sender),
        "changelog": [ln.render() for ln in ci.changelog.lines],
        "history": history(ws, stack, rev),
        "previous_version": prev.version if prev else None,
        "previous_link": lore_link(ws, prev) if prev else "",
        "stack": stack.name,
        "version": rev.version,
        "title": rev.title or stack.title,
        "subject": rev.title or stack.title,
    }


def render_cover(ws: Workspace, ci: CoverInput, template: Path | None = None) -> str:
    from .sandbox import render_untrusted
    text, where = template_for(ws, template)
    # Sandboxed (no attribute leads out of the template), in a child process with
    # time, memory and output limits: a workspace's template is untrusted input.
    out = render_untrusted(text, variables(ws, ci), where)
    return re.sub(r"\n{3,}", "\n\n", out).rstrip("\n") + "\n"


def cover_input(ws: Workspace, stack: Stack, rev: Revision, *, base_commit: str | None = None,
                diffstat: str | None = None, sender: str | None = None) -> CoverInput:
    prev = stack.previous(rev)
    pairs = pair_revisions(prev, rev) if prev is not None and prev.imported and rev.imported else []
    cl = compute_changelog(ws, stack, rev, pairs=pairs)
    return CoverInput(stack=stack, rev=rev, changelog=cl, pairs=pairs, base_commit=base_commit or rev.base,
                      diffstat=diffstat, sender=sender)
