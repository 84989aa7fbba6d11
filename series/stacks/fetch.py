"""`series fetch`: bring every revision the manifest lists, from a mirror or lore (b4)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InfraError, UserError
from ..workspace import Workspace
from .importer import ImportReport, import_mailbox
from .model import Revision
from .store import load_stack, stack_write_lock


@dataclass
class FetchOutcome:
    version: int
    source: str
    report: ImportReport | None = None
    skipped: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"version": self.version, "source": self.source, "skipped": self.skipped,
                **({"import": self.report.to_json()} if self.report else {})}

    def line(self) -> str:
        if self.report:
            return self.report.line()
        return f"v{self.version}: skipped: {self.skipped}"


def _b4_binary() -> str:
    cand = Path(sys.executable).parent / "b4"
    return str(cand) if cand.exists() else "b4"


def fetch_from_lore(ws: Workspace, rev: Revision, dest: Path) -> Path:
    """`b4 mbox` of the revision's cover (or first patch) thread into dest/."""
    msgid = rev.cover_message_id or next((p.message_id for p in rev.patches if p.message_id), "")
    if not msgid:
        raise UserError(f"v{rev.version} has no Message-ID in the manifest to fetch")
    midmask = ws.lore_url.rstrip("/") + "/all/%s"
    cmd = [_b4_binary(), "--config", f"b4.midmask={midmask}", "--config", "b4.cache-expire=0",
           "mbox", "--no-cache", "-o", str(dest), "-n", "thread.mbox", msgid.strip("<>")]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env={**__import__("os").environ, "XDG_CACHE_HOME": str(dest / ".cache")})
    except FileNotFoundError:
        raise InfraError("b4 is not installed (run tools/setup)") from None
    except subprocess.TimeoutExpired:
        raise InfraError(f"b4 mbox {msgid}: timed out talking to {ws.lore_url}") from None
    out = dest / "thread.mbox"
    if proc.returncode != 0 or not out.is_file():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfraError(f"b4 could not fetch <{msgid}> from {ws.lore_url}: {last}")
    return out


def fetch_stack(ws: Workspace, name: str, *, revision: int | None = None, mirror: Path | None = None,
                force: bool = False, missing: bool = False) -> list[FetchOutcome]:
    """Every revision (with `missing`, every one that has no imported patch yet:
    the others are reported skipped), under the stack's lock (held across them:
    a fetch is one write)."""
    load_stack(ws, name)     # an unknown stack is refused before any lock file is made
    with stack_write_lock(ws, name):
        return _fetch_locked(ws, name, revision=revision, mirror=mirror, force=force, missing=missing)


def _fetch_locked(ws: Workspace, name: str, *, revision: int | None, mirror: Path | None,
                  force: bool, missing: bool) -> list[FetchOutcome]:
    stack = load_stack(ws, name)
    revs = [stack.revision(revision)] if revision is not None else stack.revisions
    stored: list[FetchOutcome] = []
    if missing:   # a CI job's checkout that holds the revision (committed, or made by `series record`)
        have = {r.version: len(r.imported_patches()) for r in revs}
        stored = [FetchOutcome(r.version, str(ws.stack_dir(name)),
                               skipped=f"already imported ({have[r.version]} of {r.expected} patches)")
                  for r in revs if have[r.version]]
        revs = [r for r in revs if not have[r.version]]
    if mirror is not None and not mirror.is_dir():
        raise UserError(f"mirror {mirror} is not a directory")
    if mirror is not None and revs and not any(
            (mirror / name / f"v{r.version}.{ext}").exists() for r in revs for ext in ("mbox", "mbox.gz", "mboxrd")):
        # Nothing to import at all: a wrong --mirror must not look like a successful fetch.
        raise UserError(f"mirror {mirror} has no revision of {name} (looked for {mirror / name}/v<N>.mbox)")
    outcomes: list[FetchOutcome] = []
    for rev in revs:
        select = (rev.first_index, rev.first_index + rev.expected - 1) if rev.first_index != 1 or (
            rev.posted_total and rev.posted_total != rev.expected) else None
        if mirror is not None:
            cands = [mirror / name / f"v{rev.version}.{ext}" for ext in ("mbox", "mbox.gz", "mboxrd")]
            src = next((c for c in cands if c.exists()), None)
            if src is None:
                if revision is not None or len(revs) == 1:
                    raise UserError(f"v{rev.version} of {name} is not in the mirror (no {cands[0]})")
                outcomes.append(FetchOutcome(rev.version, str(mirror / name), skipped=f"not in the mirror ({cands[0]})"))
                continue
            rep = import_mailbox(ws, name, src, revision=rev.version, select=select, force=force, locked=True)
            outcomes.append(FetchOutcome(rev.version, str(src), report=rep[0]))
        else:
            with tempfile.TemporaryDirectory(prefix="series-fetch-") as tmp:
                src = fetch_from_lore(ws, rev, Path(tmp))
                rep = import_mailbox(ws, name, src, revision=rev.version, select=select, force=force, locked=True)
                outcomes.append(FetchOutcome(rev.version, ws.lore_url, report=rep[0]))
    return sorted(stored + outcomes, key=lambda o: o.version)
