"""Make the next revision: `series edit` puts a revision on a branch the user
edits, `series record` turns the branch into the next revision in the store.

The branch has b4 prep's layout ("commit" cover strategy): an empty commit at
the base holds the cover letter, followed by b4's tracking block
(`--- b4-submit-tracking ---` and JSON with the change-id, the revision being
prepared and the links of the earlier ones), then one commit per patch.  So
`b4 prep --show-info`, `--edit-cover` and `b4 trailers -u` work on it, and
`series record` takes a branch that b4 prep made as well.

- The branch `series/<stack>/edit` lives in our work repository of the kernel
  tree (never in a user's repository), made compare-and-swap; its worktree is
  sparse unless `--full` (only the files the revision touches are written;
  `git sparse-checkout add PATH` brings more).  It is the one worktree of ours
  that is on a branch, and commits in it are the user's: its own git config
  (`config --worktree`) carries the user's name and address, which b4 needs to
  recognise its cover commit.
- The open edit is a state file (Cache.edit_state): a second `series edit`
  reports it, `series record` and `series rebase` find it.
- `record` refuses, on one line, a branch without a patch, a merge commit, an
  empty commit, uncommitted changes, and an edit begun from a revision older
  than the stack's latest.  It writes `v<N+1>/` (the patches as `git
  format-patch` writes them, `cover.txt` from the cover commit, import.toml),
  appends the revision to stack.toml (base commit, date, change-id, changelog)
  and closes the edit.
- The changelog: the cover's own "Changes in vN+1" lines first, as written,
  then a draft from the pairing with vN: per patch unchanged / changed (commit
  message, code, or both) / added / moved, dropped patches, and what happened
  to the review trailers (stacks.trailers).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import tomli_w

from ..errors import UserError
from ..fsutil import atomic_write_json
from ..git import Git, Worktree
from ..patch import Patch
from ..patchfiles import revision_paths
from ..workspace import Workspace
from .lineage import Pair, pair_revisions
from .model import IMPORT_FILE, PatchInfo, Revision, Stack
from .store import list_stacks, load_stack
from .trailers import CarryPlan, Trailer, plan_carry, rewrite_trailers, what_changed

MAGIC = "--- b4-submit-tracking ---"
MAGIC_NOTE = "# This section is used internally by b4 prep for tracking purposes."
EDITME_LINES = ("- EDITME: describe what is new in this series revision.",
                "- EDITME: use bulletpoints and terse descriptions.")
Say = Callable[[str], None]


def branch_name(stack: str) -> str:
    return f"series/{stack}/edit"


# -- the open edit --------------------------------------------------------------------
@dataclass
class EditState:
    workspace: str
    stack: str
    from_version: int
    new_version: int
    tree: str
    onto: str
    base: str
    worktree: str
    branch: str
    change_id: str
    head: str               # the branch tip series made (the user moves it on)
    sparse: bool
    started: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def state_path(ws: Workspace, stack: str) -> Path:
    return ws.cache.edit_state(ws.root, stack)


def find_edit(ws: Workspace, stack: str) -> EditState | None:
    p = state_path(ws, stack)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
        return EditState(**data)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"the edit state {p} is unreadable ({e}); remove it to start again") from None


def open_edits(ws: Workspace) -> list[EditState]:
    d = ws.cache.edit_states_of(ws.root)
    out = []
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        st = find_edit(ws, f.stem)
        if st is not None:
            out.append(st)
    return out


def default_stack(ws: Workspace) -> str:
    """The stack a command means when none is named: the one being edited, else the
    [ci] stack, else the only stack."""
    edits = open_edits(ws)
    if len(edits) == 1:
        return edits[0].stack
    if len(edits) > 1:
        raise UserError(f"several edits are open ({', '.join(e.stack for e in edits)}); name the stack")
    ci = ws.config.get("ci", {}).get("stack")
    if ci:
        return str(ci)
    stacks = list_stacks(ws)
    if len(stacks) == 1:
        return stacks[0]
    raise UserError(f"no stack given and no default (no open edit, no [ci] stack, "
                    f"{len(stacks)} stacks: {', '.join(stacks) or 'none'}); name the stack")


# -- identity -------------------------------------------------------------------------
def user_identity() -> tuple[str, str] | None:
    """The user's name and address: $GIT_COMMITTER_*, $GIT_AUTHOR_*, else the global
    git config.  None when there is none (then commits say "series")."""
    for prefix in ("GIT_COMMITTER", "GIT_AUTHOR"):
        name, mail = os.environ.get(f"{prefix}_NAME"), os.environ.get(f"{prefix}_EMAIL")
        if name and mail:
            return name, mail
    home = Path.home()
    if home.is_dir():
        g = Git(home)
        name = g.run_proc("config", "--global", "--get", "user.name").stdout.decode().strip()
        mail = g.run_proc("config", "--global", "--get", "user.email").stdout.decode().strip()
        if name and mail:
            return name, mail
    return None


def _identity_env(who: tuple[str, str]) -> dict[str, str]:
    """Commits of an edit are the user's, made now: b4 looks for its cover commit
    among commits of the last year, walking from the tip."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    return {"GIT_COMMITTER_NAME": who[0], "GIT_COMMITTER_EMAIL": who[1], "GIT_COMMITTER_DATE": now}


# -- the cover letter -----------------------------------------------------------------
def split_stored_cover(text: str | None, fallback_title: str) -> tuple[str, str]:
    """(title, blurb) of a revision's cover.txt: the subject without its [PATCH ...]
    prefix, and the text before the changelog, shortlog, diffstat or signature."""
    if not text:
        return fallback_title, ""
    lines = text.splitlines()
    title = fallback_title
    if lines and lines[0].lower().startswith("subject:"):
        title = re.sub(r"^\s*(\[[^\]]*\]\s*)+", "", lines[0].split(":", 1)[1]).strip() or fallback_title
        lines = lines[1:]
    out: list[str] = []
    for ln in lines:
        if (ln.strip() == "---" or ln == "-- " or re.match(r"^changes in v\d+", ln, re.I)
                or re.match(r"^\S.*\(\d+\):$", ln) or re.match(r"^ \d+ files? changed", ln)
                or re.match(r"^v\d+: <", ln) or re.match(r"^base-commit: ", ln)):
            break
        out.append(ln)
    return title, "\n".join(out).strip()


def history_links(ws: Workspace, stack: Stack, upto: int) -> dict[str, list[str]]:
    """b4's tracking history: vN -> [cover Message-ID] of the posted revisions."""
    return {f"v{r.version}": [r.cover_message_id.strip("<>")] for r in stack.revisions
            if r.version <= upto and r.cover_message_id}


def lore_link(ws: Workspace, rev: Revision) -> str:
    if rev.lore:
        return rev.lore
    if rev.cover_message_id:
        return f"{ws.lore_url.rstrip('/')}/r/{rev.cover_message_id.strip('<>')}"
    return ""


def cover_message(ws: Workspace, stack: Stack, rev: Revision, new_version: int, change_id: str) -> str:
    """The cover commit of an edit of `rev`, as b4 prep would have it after a reroll."""
    title, blurb = split_stored_cover(rev.cover_text, rev.title or stack.title or stack.name)
    parts = [title, "", blurb or "EDITME: describe the series.", "", "---"]
    link = lore_link(ws, rev)
    parts += [f"Changes in v{new_version}:", *EDITME_LINES]
    if link:
        parts.append(f"- Link to v{rev.version}: {link}")
    for r in sorted((r for r in stack.revisions if 1 < r.version <= rev.version and r.changelog),
                    key=lambda r: -r.version):
        parts += ["", f"Changes in v{r.version}:"] + [f"- {ln}" for ln in r.changelog]
        prev = stack.previous(r)
        if prev is not None and lore_link(ws, prev):
            parts.append(f"- Link to v{prev.version}: {lore_link(ws, prev)}")
    tracking = {"series": {"revision": new_version, "change-id": change_id,
                           "prefixes": [p for p in rev.prefixes if p.upper() != "PATCH"], "presubject": "",
                           "history": history_links(ws, stack, rev.version)}}
    return "\n".join(parts).rstrip() + "\n\n" + MAGIC + "\n" + MAGIC_NOTE + "\n" + json.dumps(tracking, indent=2)


@dataclass
class CoverCommit:
    title: str
    blurb: str
    changes: dict[int, list[str]]       # "Changes in vN:" -> its lines, as written
    tracking: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def parse_cover_commit(message: str) -> CoverCommit:
    if MAGIC not in message:
        raise UserError("the cover letter commit has no b4 tracking block")
    text, magic = message.split(MAGIC, 1)
    try:
        tracking = json.loads("{" + magic.split("{", 1)[1])
    except (IndexError, ValueError) as e:
        raise UserError(f"the cover letter's b4 tracking block is not JSON: {e}") from None
    if not isinstance(tracking, dict) or not isinstance(tracking.get("series"), dict):
        raise UserError("the cover letter's b4 tracking block has no 'series'")
    text = re.sub(r"^#.*\n?", "", text, flags=re.M)          # b4: lines starting with # are notes
    text = re.sub(r"^>(#.*)$", r"\1", text, flags=re.M)
    lines = text.strip().splitlines()
    title = lines[0].strip() if lines else ""
    body = lines[1:]
    blurb: list[str] = []
    changes: dict[int, list[str]] = {}
    current: int | None = None
    in_blurb = True
    for ln in body:
        m = re.match(r"^changes in v(\d+):?\s*$", ln.strip(), re.I)
        if m:
            current, in_blurb = int(m.group(1)), False
            changes.setdefault(current, [])
            continue
        if ln.strip() == "---" and in_blurb:
            in_blurb = False
            continue
        if in_blurb:
            blurb.append(ln)
        elif current is not None:
            if ln.startswith("- "):
                changes[current].append(ln[2:].strip())
            elif ln.strip() and changes[current] and (ln.startswith((" ", "\t"))):
                changes[current][-1] += " " + ln.strip()
            elif ln.strip() and not ln.startswith("- "):
                if ln.strip() != "---":
                    current = None
    cc = CoverCommit(title=title, blurb="\n".join(blurb).strip(), changes=changes, tracking=tracking)
    if "EDITME" in title or "EDITME" in cc.blurb:
        cc.notes.append("the cover letter still says EDITME (b4 prep --edit-cover, or edit cover.txt)")
    return cc


def own_changelog(cc: CoverCommit, version: int) -> list[str]:
    """The cover's own "Changes in vN" lines: not b4's EDITME placeholders, not the
    link to the previous revision (the mail adds it)."""
    return [ln for ln in cc.changes.get(version, [])
            if "EDITME" not in ln and not re.match(r"^link to v\d+:", ln, re.I)]


# -- series edit ----------------------------------------------------------------------
@dataclass
class EditOutcome:
    state: EditState
    already_open: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**self.state.to_json(), "already_open": self.already_open, "notes": self.notes}

    def text(self) -> str:
        s = self.state
        if self.already_open:
            head = (f"{s.stack}: an edit of v{s.from_version} is already open in {s.worktree} "
                    f"(branch {s.branch}); record it with `series record {s.stack}`")
        else:
            head = (f"{s.stack} v{s.from_version} is on branch {s.branch} in {s.worktree} "
                    f"({'sparse' if s.sparse else 'full'} checkout; base "
                    f"{s.base[:12] if s.onto == s.base else s.onto + ', ' + s.base[:12]}); "
                    f"edit and commit there, then `series record {s.stack}` makes v{s.new_version}")
        return "\n".join([head] + [f"  note: {n}" for n in self.notes])


def start_edit(ws: Workspace, stack_name: str, version: int | None, *, tree_name: str | None = None,
               onto: str | None = None, worktree: Path | None = None, full: bool = False,
               say: Say = lambda _m: None) -> EditOutcome:
    from ..pipeline import resolve_tree
    from ..stages.apply import apply_one, new_log_dir
    from ..trees import resolve_ref
    from ..mail.cover import change_id as stack_change_id
    stack = load_stack(ws, stack_name)
    existing = find_edit(ws, stack.name)
    if existing is not None:
        if version is not None and version != existing.from_version:
            raise UserError(f"an edit of {stack.name} v{existing.from_version} is open in {existing.worktree}; "
                            f"record it (series record {stack.name}) or drop it (series edit {stack.name} --abort) "
                            f"before editing v{version}")
        if not Path(existing.worktree).is_dir():
            raise UserError(f"the edit worktree {existing.worktree} of {stack.name} is gone; "
                            f"series edit {stack.name} --abort drops the edit")
        return EditOutcome(existing, already_open=True)
    if onto is not None and not onto.strip():
        raise UserError("--onto needs a ref (it is empty)")
    rev = stack.revision(version)
    if not rev.imported_patches():
        raise UserError(f"{stack.name} v{rev.version} is not imported: series fetch {stack.name} "
                        f"--revision {rev.version} (or series import)")
    if rev.missing:
        raise UserError(f"{stack.name} v{rev.version} is incomplete (patch(es) {', '.join(map(str, rev.missing))} "
                        "not imported): an edit would lack them")
    latest = stack.revision()
    notes = []
    if latest.version > rev.version:
        notes.append(f"v{latest.version} is the latest revision: `series record` takes only an edit of it")
    ci = ws.config.get("ci", {})
    base_ref = onto or rev.base or (str(ci["onto"]) if ci.get("stack") == stack.name and ci.get("onto") else None)
    if not base_ref:
        raise UserError(f"{stack.name} v{rev.version} records no base: pass --onto REF")
    # A Debian tree named in series.toml is made on first use from its debian/X.Y base.
    hint = base_ref if base_ref.startswith("debian/") else str(ci.get("onto") or base_ref)
    tree = resolve_tree(ws, tree_name, hint, say)
    base = resolve_ref(tree, base_ref)
    repo = tree.work_git
    branch = branch_name(stack.name)
    ref = f"refs/heads/{branch}"
    if repo.ref_value(ref) is not None:
        raise UserError(f"branch {branch} already exists in tree {tree.name}'s repository ({repo.cwd}) "
                        f"but no edit of {stack.name} is open here; remove it with "
                        f"`git -C {repo.cwd} branch -D {branch}` if it is not needed")
    path = (worktree or ws.cache.edit_worktree(ws.root, stack.name)).expanduser().resolve()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if not Worktree(repo, path).belongs_to_repo():
            raise UserError(f"{path} exists and is not empty; choose another --worktree")
    who = user_identity()
    if who is None:
        notes.append("no git identity (user.name/user.email): commits in the edit are by 'series'")
        who = ("series", "series@localhost")
    cid = stack_change_id(stack)
    new_version = rev.version + 1
    sparse = None if full else revision_paths(rev)
    say(f"checking out {stack.name} v{rev.version}'s base {base[:12]} in {path}"
        + ("" if full else f" (sparse: {len(sparse or [])} paths)"))
    wt = Worktree.add(repo, path, base, sparse=sparse)
    try:
        wt.set_config("user.name", who[0])
        wt.set_config("user.email", who[1])
        g = Git(path, env=_identity_env(who))
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        # b4 finds its cover commit by the committer (the user) and a date within a year.
        g.run("commit", "--quiet", "--no-verify", "--allow-empty", "-F", "-",
              input=cover_message(ws, stack, rev, new_version, cid),
              env={"GIT_AUTHOR_NAME": who[0], "GIT_AUTHOR_EMAIL": who[1], "GIT_AUTHOR_DATE": now,
                   "GIT_COMMITTER_DATE": now})
        log_dir = new_log_dir(ws, "edit", stack.name, rev.version)
        for p in rev.imported_patches():
            rep = apply_one(g, path, p, log_dir, stop_on_conflict=False)
            if rep.status not in ("applied", "fuzz"):
                raise UserError(f"{stack.name} v{rev.version} patch {p.index} does not apply to {base_ref} "
                                f"({rep.status}{': ' + rep.how if rep.how else ''}); see {log_dir}")
        head = wt.head()
        repo.update_ref(ref, head, None, f"series edit: {stack.name} v{rev.version} on {base_ref}")
        wt.attach(ref, f"series edit: {stack.name}")
    except BaseException:
        wt.remove()
        cur = repo.ref_value(ref)
        if cur is not None:
            repo.delete_ref(ref, cur, "series edit: failed")
        raise
    state = EditState(workspace=str(ws.root), stack=stack.name, from_version=rev.version, new_version=new_version,
                      tree=tree.name, onto=base_ref, base=base, worktree=str(path), branch=branch, change_id=cid,
                      head=head, sparse=not full,
                      started=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat())
    atomic_write_json(state_path(ws, stack.name), state.to_json())
    if not full:
        notes.append("sparse checkout: `git sparse-checkout add PATH` in the worktree brings more files")
    return EditOutcome(state, notes=notes)


def close_edit(ws: Workspace, state: EditState, *, head: str | None = None) -> list[str]:
    """Remove our worktree and branch of an edit (the branch only while it is at
    `head`, or at the tip the edit made), and the state.  Returns notes."""
    from ..trees import load_tree
    notes: list[str] = []
    try:
        repo = load_tree(ws, state.tree).work_git
    except UserError:
        repo = None
    path = Path(state.worktree)
    if repo is not None:
        Worktree(repo, path).remove()
        ref = f"refs/heads/{state.branch}"
        cur = repo.ref_value(ref)
        if cur is not None:
            if cur in (head, state.head) or head is None:
                repo.delete_ref(ref, cur, f"series: close the edit of {state.stack}")
            else:
                notes.append(f"branch {state.branch} moved since; left as it is")
    state_path(ws, state.stack).unlink(missing_ok=True)
    return notes


def abort_edit(ws: Workspace, stack_name: str) -> str:
    state = find_edit(ws, stack_name)
    if state is None:
        raise UserError(f"no edit of {stack_name} is open")
    notes = close_edit(ws, state)
    return (f"dropped the edit of {state.stack} v{state.from_version}: removed {state.worktree} and branch "
            f"{state.branch}; nothing recorded" + "".join(f" ({n})" for n in notes))


# -- series rebase of an open edit ----------------------------------------------------
def rebase_edit(ws: Workspace, state: EditState, ref: str, *, tree_name: str | None = None) -> tuple[bool, str]:
    """Move the edit branch (cover commit and patches) onto `ref` with `git rebase`
    in the edit worktree.  Returns (done, message); on a conflict the rebase is left
    for the user to finish there (`git rebase --continue`)."""
    from ..trees import load_tree, resolve_ref
    tree = load_tree(ws, state.tree if tree_name is None else tree_name)
    if tree.name != state.tree:
        raise UserError(f"the edit of {state.stack} is in tree {state.tree}, not {tree.name}")
    new_base = resolve_ref(tree, ref)
    path = Path(state.worktree)
    if not path.is_dir():
        raise UserError(f"the edit worktree {path} is gone; series edit {state.stack} --abort drops the edit")
    wt = Worktree(tree.work_git, path)
    g = wt.git
    _refuse_dirty(g, path)
    cc = _find_cover(g, "HEAD", str(path))
    old_base = g.rev_parse(f"{cc}^")
    if old_base == new_base:
        return True, f"the edit of {state.stack} is already on {ref} ({new_base[:12]})"
    who = user_identity() or ("series", "series@localhost")
    proc = Git(path, env=_identity_env(who)).run_proc("rebase", "--quiet", "--onto", new_base, old_base)
    if proc.returncode != 0:
        return False, (f"the rebase of the edit of {state.stack} onto {ref} stopped on a conflict in {path}: "
                       "resolve it there and `git rebase --continue` (or `git rebase --abort`)")
    state.onto, state.base = ref, new_base
    atomic_write_json(state_path(ws, state.stack), state.to_json())
    return True, (f"rebased the edit of {state.stack} onto {ref} ({new_base[:12]}) in {path}; "
                  f"`series record {state.stack}` records it")


# -- series record --------------------------------------------------------------------
@dataclass
class DraftEntry:
    new: int | None
    old: int | None
    status: str                 # same | changed | added | dropped | missing
    what: str | None = None     # changed: code | commit message | code and commit message
    moved: bool = False
    subject: str = ""
    old_subject: str = ""

    def line(self, old_version: int) -> str:
        subj = f'"{self.subject or self.old_subject}"'
        if self.status == "dropped":
            return f"Dropped v{old_version} patch {self.old} {subj}"
        if self.status == "added":
            return f"Patch {self.new} {subj}: added"
        if self.status == "missing":
            return f"Patch {self.new} {subj}: cannot compare (v{old_version} counterpart not imported)"
        text = f"Patch {self.new} {subj}: " + ("unchanged" if self.status == "same" else
                                                 "changed (commit message only)" if self.what == "commit message"
                                                 else f"changed ({self.what})")
        if self.moved:
            text += f", moved (was patch {self.old})"
        elif self.old != self.new:
            text += f" (was patch {self.old})"
        if self.old_subject and self.subject and self.old_subject != self.subject:
            text += f', was "{self.old_subject}"'
        return text

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RecordOutcome:
    stack: str
    version: int
    from_version: int
    rev_dir: Path
    base: str
    base_desc: str
    change_id: str
    patches: list[dict[str, Any]]
    own_changelog: list[str]
    draft: list[DraftEntry]
    draft_lines: list[str]
    carry: CarryPlan
    notes: list[str] = field(default_factory=list)
    closed: bool = False
    already: bool = False       # recorded by an earlier, interrupted run

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "version": self.version, "from_version": self.from_version,
                "already_recorded": self.already,
                "revision_dir": str(self.rev_dir), "base": self.base, "base_desc": self.base_desc,
                "change_id": self.change_id, "patches": self.patches, "changelog": self.own_changelog + self.draft_lines,
                "own_changelog": self.own_changelog, "draft": [d.to_json() for d in self.draft],
                "trailers": [pc.to_json() for pc in sorted(self.carry.patches.values(), key=lambda p: p.index)],
                "notes": self.notes, "closed_edit": self.closed}

    def text(self) -> str:
        out = [f"{'already recorded' if self.already else 'recorded'} {self.stack} v{self.version} in "
               f"{self.rev_dir} ({len(self.patches)} patches, "
               f"base {self.base_desc}, change-id {self.change_id})",
               f"changelog (v{self.from_version} -> v{self.version}; in stack.toml, edit it there before mailing):"]
        out += [f"- {ln}" for ln in self.own_changelog]
        out += [f"- {ln}" for ln in self.draft_lines]
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)


def _refuse_dirty(g: Git, where: str | Path) -> None:
    gd = Path(g.run("rev-parse", "--absolute-git-dir"))
    for name, what in (("rebase-merge", "a rebase"), ("rebase-apply", "a rebase or git am"),
                       ("MERGE_HEAD", "a merge"), ("CHERRY_PICK_HEAD", "a cherry-pick")):
        if (gd / name).exists():
            raise UserError(f"{what} is in progress in {where}: finish or abort it first")
    status = g.run("status", "--porcelain=v1", "--untracked-files=normal", strip=False)
    changed = [ln[3:] for ln in status.splitlines() if ln.strip()]
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise UserError(f"uncommitted changes in {where} ({', '.join(changed[:3])}{more}): commit or discard them first")


def _find_cover(g: Git, head: str, where: str) -> str:
    out = g.run("log", "--first-parent", "-F", f"--grep={MAGIC}", "--format=%H", "-n", "1", head)
    if not out:
        raise UserError(f"{where}: no b4 cover letter commit ('{MAGIC}') on the branch; "
                        "not a branch of series edit or b4 prep")
    return out.split()[0]


def _moved(pairs: list[tuple[int, int]]) -> set[int]:
    """New indexes of matched patches that are out of order (not in the longest
    run of pairs whose old indexes increase with the new ones)."""
    seq = sorted(pairs, key=lambda p: p[1])
    n = len(seq)
    best = [1] * n
    prev = [-1] * n
    for i in range(n):
        for j in range(i):
            if seq[j][0] < seq[i][0] and best[j] + 1 > best[i]:
                best[i], prev[i] = best[j] + 1, j
    keep: set[int] = set()
    if n:
        k = max(range(n), key=lambda i: best[i])
        while k != -1:
            keep.add(seq[k][1])
            k = prev[k]
    return {new for _, new in seq if new not in keep}


def draft_entries(old: Revision, pairs: list[Pair], old_p: dict[int, Patch], new_p: dict[int, Patch]) -> list[DraftEntry]:
    moved = _moved([(p.old, p.new) for p in pairs if p.old is not None and p.new is not None])
    out: list[DraftEntry] = []
    for p in pairs:
        if p.old is not None and p.new is not None and p.old in old_p and p.new in new_p:
            what = what_changed(old_p[p.old], new_p[p.new])
            out.append(DraftEntry(p.new, p.old, "same" if what is None else "changed", what, p.new in moved,
                                  p.new_subject, p.old_subject))
        elif p.new is not None and p.status == "added":
            out.append(DraftEntry(p.new, None, "added", subject=p.new_subject))
        elif p.old is not None and p.status == "removed":
            out.append(DraftEntry(None, p.old, "dropped", old_subject=p.old_subject))
        else:
            out.append(DraftEntry(p.new, p.old, "missing", subject=p.new_subject, old_subject=p.old_subject))
    out.sort(key=lambda d: (d.new is None, d.new or 0, d.old or 0))
    return out


def _describe(g: Git, sha: str) -> str:
    tags = g.run_proc("tag", "--points-at", sha).stdout.decode().split()
    return f"{tags[-1]} ({sha[:12]})" if tags else sha[:12]


def _bases(ws: Workspace, state: EditState | None, g: Git, old_ref: str | None, base: str) -> tuple[str | None, str]:
    """(the old revision's base as a commit, a description of the new base).  An edit
    of ours resolves names in its kernel tree (a --path tree's refs are the user's);
    a b4 branch in the user's repository, there."""
    if state is not None:
        from ..trees import describe_ref, load_tree, resolve_ref
        try:
            tree = load_tree(ws, state.tree)
        except UserError:
            tree = None
        if tree is not None:
            old = None
            if old_ref:
                try:
                    old = resolve_ref(tree, old_ref)
                except UserError:
                    old = None
            desc = describe_ref(tree, base)
            return old, f"{desc} ({base[:12]})" if desc != base[:12] else desc
    return (g.try_rev_parse(old_ref) if old_ref else None), _describe(g, base)


def _parse_keep(values: list[str] | None) -> set[int]:
    out: set[int] = set()
    for v in values or []:
        for part in re.split(r"[,\s]+", v.strip()):
            if not part:
                continue
            if not part.isdigit() or int(part) < 1:
                raise UserError(f"--keep-trailers takes patch numbers of the new revision, not {part!r}")
            out.add(int(part))
    return out


def record(ws: Workspace, stack_name: str, *, worktree: Path | None = None, keep_trailers: list[str] | None = None,
           say: Say = lambda _m: None) -> RecordOutcome:
    stack = load_stack(ws, stack_name)
    state = find_edit(ws, stack.name)
    keep = _parse_keep(keep_trailers)
    if worktree is not None:
        path = worktree.expanduser().resolve()
        if state is not None and Path(state.worktree).resolve() != path:
            state = None      # a branch of the user's (b4 prep), not our edit
    elif state is not None:
        path = Path(state.worktree)
    else:
        raise UserError(f"no edit of {stack.name} is open: series edit {stack.name} (or --worktree DIR for a "
                        "b4 prep branch)")
    if not path.is_dir():
        raise UserError(f"{path} is not a directory (the edit worktree is gone?)")
    g = Git(path)
    if not g.is_repo():
        raise UserError(f"{path} is not a git worktree")
    where = str(path)
    _refuse_dirty(g, where)
    head = g.rev_parse("HEAD")
    branch = (g.run_proc("symbolic-ref", "-q", "--short", "HEAD").stdout.decode().strip() or "HEAD (detached)")
    cover = _find_cover(g, head, f"{where} ({branch})")
    parents = g.run("rev-list", "--parents", "-n", "1", cover).split()[1:]
    if len(parents) != 1:
        raise UserError(f"the cover letter commit {cover[:12]} on {branch} has {len(parents)} parents; "
                        "it must sit on the base")
    base = parents[0]
    if g.run("diff-tree", "--no-commit-id", "--name-only", "-r", cover):
        raise UserError(f"the cover letter commit {cover[:12]} on {branch} changes files; it must be empty")
    commits = [ln.split() for ln in g.run("rev-list", "--reverse", "--parents", f"{cover}..{head}").splitlines()]
    if not commits:
        raise UserError(f"nothing to record: {branch} has no commit after the cover letter")
    for c in commits:
        if len(c) > 2:
            subj = g.run("log", "-1", "--format=%s", c[0])
            raise UserError(f"merge commit {c[0][:12]} \"{subj}\" on {branch}: record takes a linear series")
        if not g.run("diff-tree", "--no-commit-id", "--name-only", "-r", c[0]):
            subj = g.run("log", "-1", "--format=%s", c[0])
            raise UserError(f"commit {c[0][:12]} \"{subj}\" on {branch} is empty: drop it or give it a change")
    cc = parse_cover_commit(g.run("log", "-1", "--format=%B", cover, strip=False))
    series = cc.tracking["series"]
    try:
        tracked = int(series.get("revision", 0))
    except (TypeError, ValueError):
        raise UserError("the cover letter's tracking block has no revision number") from None
    from_version = state.from_version if state is not None else tracked - 1
    latest = stack.revision()
    if from_version == latest.version - 1 and _recorded_from(latest, head, from_version):
        return _recorded_already(ws, stack, latest, state, head, branch)
    if from_version < latest.version:
        hint = (f"series edit {stack.name} --abort, then series edit {stack.name}" if state is not None
                else f"rebase the branch onto v{latest.version}")
        raise UserError(f"the edit was started from v{from_version}, but {stack.name}'s latest revision is "
                        f"v{latest.version}: {hint}")
    if from_version > latest.version:
        raise UserError(f"the branch prepares v{from_version + 1}, but {stack.name}'s latest revision is "
                        f"v{latest.version}")
    new_version = from_version + 1
    old = stack.revision(from_version)
    dest = stack.rev_dir(new_version)
    if dest.exists() or stack.has_revision(new_version):
        raise UserError(f"{stack.name} v{new_version} exists already ({dest}); not overwriting it")
    notes = list(cc.notes)
    from ..mail.cover import change_id as stack_change_id
    cid = stack_change_id(stack)
    if series.get("change-id") and series["change-id"] != cid:
        notes.append(f"the branch's change-id {series['change-id']} is not the stack's; keeping {cid}")
    prefixes = [p for p in (old.prefixes or series.get("prefixes") or []) if str(p).upper() != "PATCH"]
    from . import revdir
    tmp = revdir.make_tmp(stack.dir, new_version)
    try:
        g.run("-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false", "-c", "format.useAutoBase=false",
              "-c", "format.signature=", "format-patch", "--quiet", "--zero-commit", "--no-signature",
              "--no-cover-letter", "--numbered", "--no-thread", "--suffix=.patch", "--no-to", "--no-cc",
              f"--subject-prefix={' '.join([*prefixes, 'PATCH'])} v{new_version}", "-o", str(tmp),
              f"{cover}..{head}")
        files = sorted(tmp.glob("*.patch"))
        if len(files) != len(commits):
            raise UserError(f"git format-patch wrote {len(files)} files for {len(commits)} commits")
        new_p = {i: Patch.load(f) for i, f in enumerate(files, start=1)}
        new_rev = Revision(version=new_version, expected=len(files), imported=True, patches=[
            PatchInfo(index=i, subject=p.subject, author=p.author_line, file=files[i - 1], patch_id=p.patch_id,
                      imported=True) for i, p in new_p.items()])
        old_p = {p.index: Patch.load(p.file) for p in old.imported_patches() if p.file}
        if not old.imported:
            notes.append(f"v{old.version} is not imported: its patches cannot be compared")
        pairs = pair_revisions(old, new_rev) if old.imported else \
            [Pair(None, j, "added", 0.0, "", p.subject) for j, p in new_p.items()]
        draft = draft_entries(old, pairs, old_p, new_p)
        carry = plan_carry(stack, old, new_p, [(p.old, p.new) for p in pairs], keep=keep)
        unknown = keep - set(new_p)
        if unknown:
            raise UserError(f"--keep-trailers {', '.join(map(str, sorted(unknown)))}: v{new_version} has patches "
                            f"1-{len(new_p)}")
        for j, f in enumerate(files, start=1):
            pc = carry.patches[j]
            if pc.add_lines or pc.remove_lines:
                f.write_text(rewrite_trailers(f.read_text(encoding="utf-8"), pc.add_lines, pc.remove_lines),
                             encoding="utf-8")
        new_p = {i: Patch.load(f) for i, f in enumerate(files, start=1)}
        draft_lines = [d.line(old.version) for d in draft]
        for pc in sorted(carry.patches.values(), key=lambda p: p.index):
            for t in pc.carried:
                draft_lines.append(f"Patch {pc.index}: carried \"{t.line}\" (given on v{t.revision}, unchanged since)")
        draft_lines += carry.lines(old.version, new_version)
        old_base, base_desc = _bases(ws, state, g, old.base, base)
        if old.base and old_base != base:
            draft_lines.append(f"New base: {base_desc} (v{old.version}: {old.base})")
        own = own_changelog(cc, new_version)
        changelog = own + draft_lines
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        title = cc.title if cc.title and "EDITME" not in cc.title else (old.title or stack.title)
        cover_subject = f"[{' '.join([*prefixes, 'PATCH'])} v{new_version} 0/{len(files)}] {title}"
        (tmp / "cover.txt").write_text(f"Subject: {cover_subject}\n\n{cc.blurb.strip()}\n", encoding="utf-8")
        commit_of = {i: c[0] for i, c in enumerate(commits, start=1)}
        patches: list[dict[str, Any]] = []
        for i, p in new_p.items():
            pc = carry.patches[i]
            d: dict[str, Any] = {
                "index": i, "file": files[i - 1].name, "subject": p.subject, "author": p.author_line,
                "message_id": "", "date": _iso_date(p.date), "patch_id": p.patch_id or "",
                "trailers": list(p.trailers), "commit": commit_of[i]}
            if pc.old is not None:
                d["from"] = pc.old
            if pc.carried:
                d["carried"] = [t.line for t in pc.carried]
            if pc.dropped:
                d["dropped"] = [f"{t.line} ({why})" for t, why in pc.dropped]
            if pc.kept:
                d["kept"] = [t.line for t in pc.kept]
            patches.append(d)
        meta: dict[str, Any] = {
            "version": new_version, "expected": len(files), "first_index": 1, "posted_total": len(files),
            "prefixes": prefixes, "date": now, "title": title, "cover_subject": cover_subject, "base": base,
            "change_id": cid, "changelog": changelog, "changelog_drafted": True, "from_version": old.version,
            "draft": [{k: v for k, v in d.to_json().items() if v is not None} for d in draft]}
        record_data = {"source": f"series record of {branch} ({head[:12]}), an edit of v{old.version}",
                       "revision": meta, "patches": patches}
        (tmp / IMPORT_FILE).write_text(tomli_w.dumps(record_data), encoding="utf-8")
        manifest_rev = Revision(
            version=new_version, prefixes=prefixes, date=now, title=title, cover_subject=cover_subject,
            expected=len(files), base=base, base_note=f"{base_desc}; recorded by series record from {branch}",
            change_id=cid, changelog=changelog,
            patches=[PatchInfo(index=d["index"], subject=d["subject"], author=d["author"], date=d["date"])
                     for d in patches])
        revdir.manifest_with(stack.manifest_path, manifest_rev.to_toml())   # refused before anything is written
        carried = [replace_carried(t, new_version, pc.index)
                   for pc in carry.patches.values() for t in pc.carried + pc.kept]
        # What v<N+1>/ owes the store once it is in place (revdir step 6): written
        # by conclude below, or by the next run when this one is killed first.
        revdir.write_pending(tmp, manifest_rev.to_toml(), by="record", trailers=[t.to_toml() for t in carried])
        revdir.install(stack.dir, new_version, tmp, "new")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    revdir.conclude(stack.dir, [new_version])
    out = RecordOutcome(stack=stack.name, version=new_version, from_version=old.version, rev_dir=dest, base=base,
                        base_desc=base_desc, change_id=cid,
                        patches=[{k: v for k, v in d.items() if k != "trailers"} for d in patches],
                        own_changelog=own, draft=draft, draft_lines=draft_lines, carry=carry, notes=notes)
    if state is not None:
        out.notes += close_edit(ws, state, head=head)
        out.closed = True
        out.notes.append(f"closed the edit: removed {state.worktree} and branch {state.branch}")
    return out


def _recorded_from(rev: Revision, head: str, from_version: int) -> bool:
    """Whether `rev` is what `series record` made of this branch at `head` (a record
    killed after its revision was in place, before it closed the edit)."""
    src = str((rev.import_record or {}).get("source", ""))
    return src.startswith("series record of ") and src.endswith(f" ({head[:12]}), an edit of v{from_version}")


def _recorded_already(ws: Workspace, stack: Stack, rev: Revision, state: EditState | None, head: str,
                      branch: str) -> RecordOutcome:
    rec = rev.import_record or {}
    patches = [{k: v for k, v in p.items() if k != "trailers"} for p in rec.get("patches", []) if isinstance(p, dict)]
    base = rev.base or ""
    out = RecordOutcome(stack=stack.name, version=rev.version, from_version=rev.version - 1,
                        rev_dir=stack.rev_dir(rev.version), base=base, base_desc=base[:12], change_id=rev.change_id,
                        patches=patches, own_changelog=[], draft=[], draft_lines=list(rev.changelog),
                        carry=CarryPlan(patches={}), already=True,
                        notes=[f"{branch} at {head[:12]} was recorded as v{rev.version} already "
                               "(by a series record that was interrupted before it closed the edit)"])
    if state is not None:
        out.notes += close_edit(ws, state, head=head)
        out.closed = True
        out.notes.append(f"closed the edit: removed {state.worktree} and branch {state.branch}")
    return out


def replace_carried(t: Trailer, version: int, index: int) -> Trailer:
    return Trailer(revision=version, patch=index, kind=t.kind, who=t.who, message_id=t.message_id, source="carried",
                   date=t.date, sender=t.sender, origin_revision=t.revision, origin_patch=t.patch)


def _iso_date(date: str) -> str:
    import email.utils
    try:
        return email.utils.parsedate_to_datetime(date).isoformat()
    except (TypeError, ValueError):
        return date



__all__ = ["EditOutcome", "EditState", "RecordOutcome", "abort_edit", "default_stack", "find_edit", "open_edits",
           "rebase_edit", "record", "start_edit"]
