"""`series rebase`: take a revision onto a new base as the next revision.

Patches are applied one by one (see stages.apply) in a detached worktree of
ours (Cache.rebase_worktree: keyed by workspace, tree, stack, version and base);
our branch series-rebase/<ws12>/<stack>/v<N+1> is then moved to the result,
compare-and-swap.  When every patch applies, the new revision is
written as patches/<stack>/v<N+1>/ (`git format-patch` files + import.toml,
made in a temp dir and renamed into place).  Patches already in the new base
are dropped and said so in the changelog.  On a conflict nothing is recorded:
the worktree is left at the stopping point and a state file
(Cache.rebase_state_dir(workspace, stack)/rebase-state.json) lets `--continue`
and `--abort` finish or undo.  A state naming a worktree outside the cache's
worktree directory is refused: `--abort` removes only worktrees of ours.  rerere is enabled in our work repository, so a
resolution made once is replayed the next time the same conflict appears
(this needs `git am -3`, i.e. preimage blobs in the repository).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ..stacks import revdir
from ..errors import UserError
from ..fsutil import atomic_write_json
from ..git import Git, Worktree
from ..patch import Patch
from ..stacks.model import IMPORT_FILE, Revision, Stack
from ..stacks.store import load_stack
from ..patchfiles import revision_paths
from ..trees import Tree, describe_ref, load_tree, resolve_ref
from ..workspace import Workspace
from .apply import (ApplyResult, PatchReport, _am_in_progress, apply_one, commit_worktree,
                    move_branch, new_log_dir, prepare_worktree)

STATE_FILE = "rebase-state.json"


@dataclass
class RebaseOutcome:
    result: ApplyResult
    recorded: int | None = None        # the new version, when recorded
    rev_dir: Path | None = None
    message: str = ""
    in_progress: bool = False

    def to_json(self) -> dict[str, Any]:
        d = self.result.to_json()
        d.update({"from_version": self.result.version, "new_version": self.recorded,
                  "revision_dir": str(self.rev_dir) if self.rev_dir else None,
                  "in_progress": self.in_progress, "message": self.message})
        return d

    def text(self) -> str:
        return self.result.text() + ("\n" + self.message if self.message else "")


def state_path(ws: Workspace, stack: str) -> Path:
    return ws.cache.rebase_state_dir(ws.root, stack) / STATE_FILE


def _read_state(ws: Workspace, p: Path) -> dict[str, Any]:
    try:
        state = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"the rebase state {p} is unreadable ({e}); remove it to start again") from None
    if not isinstance(state, dict) or not {"stack", "worktree", "tree"} <= set(state):
        raise UserError(f"the rebase state {p} is not one of ours; remove it to start again")
    if not isinstance(state["worktree"], str) or not ws.cache.is_inside_worktrees(Path(state["worktree"])):
        # --continue resets and cleans it, --abort removes it: only ever a worktree of ours.
        raise UserError(f"the rebase state {p} names {state['worktree']!r}, which is not under "
                        f"{ws.cache.worktrees}; refusing to touch it (remove {p} to start again)")
    return state


def find_state(ws: Workspace, stack: str | None) -> dict[str, Any]:
    if stack:
        p = state_path(ws, stack)
        if not p.is_file():
            raise UserError(f"no rebase of {stack} in progress")
        return _read_state(ws, p)
    states = ws.cache.rebase_states_of(ws.root)
    found = sorted(states.glob(f"*/{STATE_FILE}")) if states.is_dir() else []
    if not found:
        raise UserError("no rebase in progress")
    if len(found) > 1:
        names = ", ".join(f.parent.name for f in found)
        raise UserError(f"several rebases in progress ({names}); name the stack")
    return _read_state(ws, found[0])


def _next_version(stack: Stack) -> int:
    on_disk = [int(d.name[1:]) for d in stack.dir.glob("v[0-9]*") if d.name[1:].isdigit()]
    return max([r.version for r in stack.revisions] + on_disk + [0]) + 1


def start(ws: Workspace, stack_name: str, onto: str, *, from_version: int | None = None,
          tree_name: str | None = None) -> RebaseOutcome:
    stack = load_stack(ws, stack_name)
    rev = stack.revision(from_version)
    if state_path(ws, stack.name).is_file():
        raise UserError(f"a rebase of {stack.name} is in progress: series rebase --continue or --abort")
    if not rev.imported_patches():
        raise UserError(f"{stack.name} v{rev.version} has no imported patch: series fetch {stack.name} "
                        f"--revision {rev.version} (or series import)")
    if rev.missing:
        # Refuse before any work: the rebased revision would silently lack them.
        raise UserError(f"{stack.name} v{rev.version} is incomplete (patch(es) {', '.join(map(str, rev.missing))} "
                        f"not imported): a rebased revision would lack them; import them first")
    tree = load_tree(ws, tree_name)
    base = resolve_ref(tree, onto)
    new_v = _next_version(stack)
    branch = f"series-rebase/{ws.cache.workspace_key(ws.root)}/{stack.name}/v{new_v}"
    wt = ws.cache.rebase_worktree(ws.root, tree.name, stack.name, new_v, base)
    log_dir = new_log_dir(ws, "rebase", stack.name, rev.version)
    # Sparse: only the files the revision touches (`git sparse-checkout disable` in it gives the rest).
    sparse = revision_paths(rev)
    g = prepare_worktree(tree, wt, base, sparse=sparse).git
    state: dict[str, Any] = {
        "workspace": str(ws.root), "stack": stack.name, "from_version": rev.version, "new_version": new_v,
        "onto": onto, "base_commit": base, "tree": tree.name, "worktree": str(wt), "branch": branch,
        "branch_tip": tree.work_git.ref_value(f"refs/heads/{branch}"),
        "log_dir": str(log_dir), "next_index": None, "reports": [],
    }
    return _run(ws, stack, rev, tree, g, state, [i for i in (rev.indexes or [p.index for p in rev.imported_patches()])])


def _run(ws: Workspace, stack: Stack, rev: Revision, tree: Tree, g: Git, state: dict[str, Any],
         todo: list[int]) -> RebaseOutcome:
    wt = Path(state["worktree"])
    log_dir = Path(state["log_dir"])
    reports = [_report_from_json(r) for r in state["reports"]]
    present = {p.index: p for p in rev.imported_patches()}
    stopped: int | None = None
    for n, idx in enumerate(todo):
        p = present.get(idx)
        if stopped is not None:
            reports.append(PatchReport(index=idx, subject=p.subject if p else "", status="not-attempted",
                                       how=f"stopped at patch {stopped}"))
            continue
        if p is None or p.file is None:
            info = rev.patch(idx)
            reports.append(PatchReport(index=idx, subject=info.subject if info else "", status="missing",
                                       how="not imported"))
            continue
        rep = apply_one(g, wt, p, log_dir, stop_on_conflict=True)
        reports.append(rep)
        if rep.status == "conflict":
            stopped = idx
            state["next_index"] = idx
            state["reports"] = [r.to_json() for r in reports]
            state["todo"] = todo[n + 1:]
    result = _result(state, reports, tree, stopped)
    head = g.rev_parse("HEAD")
    move_branch(tree, state["branch"], head, state.get("branch_tip"),
                f"series rebase: {stack.name} v{rev.version} onto {state['onto']}"
                + (f": stopped at patch {stopped}" if stopped is not None else ""))
    state["branch_tip"] = head
    if stopped is not None:
        atomic_write_json(state_path(ws, stack.name), state)
        return RebaseOutcome(result, in_progress=True, message=(
            f"stopped at patch {stopped}: resolve it in {wt}, then `series rebase --continue` "
            f"(or `series rebase --abort`); nothing was recorded"))
    if result.status == "partial":
        _drop_state(ws, stack.name)
        return RebaseOutcome(result, message=(
            f"not recorded: patch(es) {', '.join(map(str, result.missing))} of v{rev.version} are missing "
            f"(not imported); a rebased revision would be incomplete"))
    rev_dir = _record(ws, stack, rev, tree, g, state, reports)
    _drop_state(ws, stack.name)
    result.status = "applied"
    return RebaseOutcome(result, recorded=state["new_version"], rev_dir=rev_dir,
                         message=f"recorded {stack.name} v{state['new_version']} in {rev_dir}")


def _result(state: dict[str, Any], reports: list[PatchReport], tree: Tree, stopped: int | None) -> ApplyResult:
    statuses = {r.status for r in reports}
    status = "conflict" if stopped is not None or "conflict" in statuses else (
        "partial" if "missing" in statuses else "applied")
    return ApplyResult(stack=state["stack"], version=state["from_version"], onto=state["onto"],
                       base_commit=state["base_commit"], status=status, patches=reports,
                       worktree=Path(state["worktree"]), branch=state["branch"], log_dir=Path(state["log_dir"]),
                       base_desc=describe_ref(tree, state["base_commit"]), stopped_at=stopped)


def _report_from_json(d: dict[str, Any]) -> PatchReport:
    from .apply import FileReport
    return PatchReport(index=d["index"], subject=d["subject"], status=d["status"],
                       files=[FileReport(**{k: f.get(k, 0) for k in ("path", "hunks", "clean", "offset", "fuzz", "rejected")})
                              for f in d.get("files", [])],
                       commit=d.get("commit"), how=d.get("how"), method=d.get("method"),
                       rejects=list(d.get("rejects", [])))


def _drop_state(ws: Workspace, stack: str) -> None:
    p = state_path(ws, stack)
    if p.exists():
        p.unlink()


def resume(ws: Workspace, stack_name: str | None) -> RebaseOutcome:
    """`--continue`: commit the resolved patch, apply the rest, record."""
    state = find_state(ws, stack_name)
    stack = load_stack(ws, state["stack"])
    rev = stack.revision(state["from_version"])
    tree = load_tree(ws, state["tree"])
    wt = Path(state["worktree"])
    if not wt.is_dir():
        raise UserError(f"the rebase worktree {wt} is gone; series rebase --abort")
    g = Git(wt)
    idx = int(state["next_index"])
    # Leftovers of GNU patch: copies are in the log directory.
    for name in g.run("ls-files", "-o", "-z", strip=False).split("\0"):
        if name.endswith((".rej", ".orig")):
            (wt / name).unlink(missing_ok=True)
    unresolved = _conflict_markers(g)
    if unresolved:
        raise UserError(f"unresolved conflict markers in {', '.join(unresolved[:5])} (in {wt})")
    g.run("add", "-A", "-f", ".")
    g.run_proc("rerere")  # record the resolution for next time
    reports = [_report_from_json(r) for r in state["reports"]]
    rep = next(r for r in reports if r.index == idx)
    if _am_in_progress(g):
        proc = g.run_proc("am", "--continue")
        if proc.returncode != 0:
            g.run("am", "--skip")  # the resolution left nothing to commit
            rep.status, rep.how = "already-present", "resolved to no change"
        else:
            rep.status, rep.how = "fuzz", "conflict resolved by hand"
    else:
        p = rev.patch(idx)
        assert p is not None and p.file is not None
        mi = Patch.load(p.file)
        if g.run_proc("diff", "--cached", "--quiet").returncode == 0:
            rep.status, rep.how = "already-present", "resolved to no change"
        else:
            commit_worktree(g, mi)
            rep.status, rep.how = "fuzz", "conflict resolved by hand"
    if rep.status == "fuzz":
        rep.commit = g.rev_parse("HEAD")
    state["reports"] = [r.to_json() for r in reports if r.status != "not-attempted"]
    state["next_index"] = None
    return _run(ws, stack, rev, tree, g, state, list(state.get("todo", [])))


def _conflict_markers(g: Git) -> list[str]:
    out = g.run_proc("diff", "HEAD", "--name-only").stdout.decode().split()
    bad = []
    for name in out:
        f = g.cwd / name
        if f.is_file():
            text = f.read_text(errors="replace")
            if re.search(r"^<<<<<<< |^>>>>>>> ", text, re.M):
                bad.append(name)
    return bad


def abort(ws: Workspace, stack_name: str | None) -> str:
    """`--abort`: remove our worktree and branch; record nothing.  find_state has
    refused a state whose worktree is not under the cache's worktree directory."""
    state = find_state(ws, stack_name)
    tree = load_tree(ws, state["tree"])
    wt = Path(state["worktree"])
    assert ws.cache.is_inside_worktrees(wt)
    Worktree(tree.work_git, wt).remove()
    ref = f"refs/heads/{state['branch']}"
    cur = tree.work_git.ref_value(ref)
    note = ""
    if cur is not None and cur == state.get("branch_tip"):
        tree.work_git.delete_ref(ref, cur, "series rebase --abort")
    elif cur is not None:
        note = f" (branch {state['branch']} moved since; left as it is)"
    _drop_state(ws, state["stack"])
    return (f"aborted the rebase of {state['stack']} v{state['from_version']} onto {state['onto']}; "
            f"nothing recorded{note}")


def _record(ws: Workspace, stack: Stack, rev: Revision, tree: Tree, g: Git, state: dict[str, Any],
            reports: list[PatchReport]) -> Path:
    new_v = int(state["new_version"])
    base = state["base_commit"]
    dest = stack.rev_dir(new_v)
    if dest.exists():
        raise UserError(f"{dest} already exists; not overwriting it")
    tmp = revdir.make_tmp(stack.dir, new_v)   # a killed run's leftover is removed by the next writer
    try:
        commits = g.run("rev-list", "--reverse", f"{base}..HEAD").split()
        g.run("format-patch", "--quiet", "--no-signature", "--zero-commit", f"--subject-prefix=PATCH v{new_v}",
              "--numbered", "-o", str(tmp), f"{base}..HEAD")
        files = sorted(f.name for f in tmp.glob("*.patch"))
        applied = [r for r in reports if r.commit]
        dropped = [r for r in reports if r.status == "already-present"]
        desc = describe_ref(tree, base)
        changelog = [f"Rebased v{rev.version} onto {state['onto']} ({desc}, {base[:12]}) with series rebase: "
                     f"{len(applied)} patch(es) applied"
                     + (f", {sum(1 for r in applied if r.status == 'fuzz')} with offset/fuzz/merge" if any(r.status == 'fuzz' for r in applied) else "")
                     + "."]
        for r in dropped:
            changelog.append(f"Dropped v{rev.version} patch {r.index} \"{r.subject}\": already in {desc} ({r.how}).")
        patches = []
        for n, (sha, fname) in enumerate(zip(commits, files), start=1):
            info = g.run("log", "-1", "--format=%s%x00%an <%ae>%x00%aI", sha).split("\0")
            diff = g.run("show", "--format=", sha, strip=False)
            pid = g.patch_id(diff) or ""
            src = applied[n - 1] if n - 1 < len(applied) else None
            patches.append({"index": n, "file": fname, "subject": info[0], "author": info[1], "message_id": "",
                            "patch_id": pid, "date": info[2], "commit": sha,
                            **({"rebased_from": src.index} if src else {})})
        now = _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")
        record = {
            "source": f"series rebase of v{rev.version}",
            "revision": {"version": new_v, "expected": len(patches), "first_index": 1, "posted_total": len(patches),
                         "base": base, "changelog": changelog, "date": now, "title": rev.title or stack.title,
                         "prefixes": list(rev.prefixes)},
            "patches": patches,
        }
        (tmp / IMPORT_FILE).write_text(tomli_w.dumps(record))
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
