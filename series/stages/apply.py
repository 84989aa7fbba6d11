"""Apply a revision of a stack onto a base, in a worktree of ours, with a
per-patch and per-file hunk report.

Per patch the result is `applied`, `fuzz` (offset/fuzz, or a 3-way merge),
`conflict`, `already-present` (the change is already in the base) or `missing`
(not imported).  The hunk report comes from GNU patch (`patch --dry-run
--verbose`), which says per hunk whether it applied exactly, at an offset or
with fuzz, or failed.  Commits are made like `git am` (author, date and message
from the mail): `git am -3` when the preimage blobs are in the repository,
`git am` when the diff applies exactly, else GNU patch + commit.
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InfraError, UserError
from ..patch import FileChange, Patch
from ..git import Git, Worktree
from ..stacks.model import PatchInfo, Revision
from ..patchfiles import revision_paths
from ..trees import Tree, describe_ref, resolve_ref
from ..workspace import Workspace

PATCH_HUNK_RE = re.compile(r"^Hunk #(\d+) (succeeded at -?\d+|FAILED at -?\d+|ignored)(.*)$")


# -- the report -------------------------------------------------------------------
@dataclass
class FileReport:
    """Per file, each hunk counted once: `clean` (where the diff says), `offset`
    (exactly, at other lines), `fuzz` (with fuzz, at an offset or not), `rejected`."""
    path: str
    hunks: int
    clean: int = 0
    fuzz: int = 0
    rejected: int = 0
    note: str | None = None
    offset: int = 0

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "hunks": self.hunks, "clean": self.clean, "offset": self.offset,
                             "fuzz": self.fuzz, "rejected": self.rejected}
        if self.note:
            d["note"] = self.note
        return d


@dataclass
class PatchReport:
    index: int
    subject: str
    status: str                       # applied|fuzz|conflict|already-present|missing
    files: list[FileReport] = field(default_factory=list)
    commit: str | None = None
    how: str | None = None            # how the status was decided
    method: str | None = None         # git-am, git-am-3way, patch
    rejects: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"index": self.index, "subject": self.subject, "status": self.status,
                             "files": [f.to_json() for f in self.files], "commit": self.commit}
        if self.how:
            d["how"] = self.how
        if self.method:
            d["method"] = self.method
        if self.rejects:
            d["rejects"] = self.rejects
        return d


@dataclass
class ApplyResult:
    stack: str
    version: int
    onto: str
    base_commit: str
    status: str                       # applied|conflict|partial
    patches: list[PatchReport]
    worktree: Path | None
    branch: str | None = None
    log_dir: Path | None = None
    base_desc: str | None = None
    stopped_at: int | None = None     # rebase mode: the conflicting patch

    @property
    def missing(self) -> list[int]:
        return [p.index for p in self.patches if p.status == "missing"]

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "version": self.version, "onto": self.onto, "base_commit": self.base_commit,
                "base": self.base_desc, "status": self.status, "patches": [p.to_json() for p in self.patches],
                "missing": self.missing, "worktree": str(self.worktree) if self.worktree else None,
                "branch": self.branch, "log_dir": str(self.log_dir) if self.log_dir else None}

    def text(self) -> str:
        lines = [f"{self.stack} v{self.version} onto {self.onto} ({self.base_commit[:12]}): {self.status}"]
        for p in self.patches:
            extra = f" ({p.how})" if p.how else ""
            lines.append(f"  [{p.index}] {p.status:<15} {p.subject}{extra}")
            for f in p.files:
                note = f" ({f.note})" if f.note else ""
                lines.append(f"        {f.path}: {f.hunks} hunks, {f.clean} clean, {f.offset} offset, {f.fuzz} fuzz, "
                             f"{f.rejected} rejected{note}")
            for r in p.rejects:
                lines.append(f"        rejects: {r}")
        if self.worktree:
            lines.append(f"worktree: {self.worktree}" + (f" (branch {self.branch})" if self.branch else ""))
        if self.log_dir:
            lines.append(f"log: {self.log_dir}")
        return "\n".join(lines)


# -- GNU patch ---------------------------------------------------------------------
def _patch_cmd() -> str:
    exe = shutil.which("patch")
    if not exe:
        raise InfraError("GNU patch is not installed (apt-get install patch)")
    return exe


def run_patch(worktree: Path, diff_file: Path, *, dry_run: bool, reverse: bool = False) -> subprocess.CompletedProcess[str]:
    args = [_patch_cmd(), "-p1", "--force", "--no-backup-if-mismatch", "--verbose", "-i", str(diff_file)]
    if dry_run:
        args.append("--dry-run")
    if reverse:
        args.append("--reverse")
    return subprocess.run(args, cwd=worktree, capture_output=True, text=True, errors="replace")


def hunk_report(files: Sequence[FileChange], output: str) -> list[FileReport]:
    """Per-file counts from `patch --verbose` output, matched to the diff's files in order
    (the files with hunks: `Patch.text_files`)."""
    sections: list[list[str]] = []
    for line in output.splitlines():
        if line.startswith(("checking file ", "patching file ", "can't find file to patch")):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
    reports: list[FileReport] = []
    for n, fd in enumerate(files):
        rep = FileReport(path=fd.path, hunks=len(fd.hunks))
        sec = sections[n] if n < len(sections) else []
        fuzz = offset = rejected = 0
        ignored = False
        for line in sec:
            m = PATCH_HUNK_RE.match(line)
            if m:
                what, rest = m.group(2), m.group(3)
                if what.startswith("FAILED") or what == "ignored":
                    rejected += 1
                elif "fuzz" in rest:
                    fuzz += 1
                elif "offset" in rest:
                    offset += 1
            elif re.match(r"^\d+ out of \d+ hunks? ignored", line) or line.startswith("can't find file"):
                ignored = True
                rep.note = "file not in the base"
        if ignored or not sec:
            rejected = rep.hunks
            fuzz = offset = 0
        rep.rejected = min(rejected, rep.hunks)
        rep.fuzz = min(fuzz, rep.hunks - rep.rejected)
        rep.offset = min(offset, rep.hunks - rep.rejected - rep.fuzz)
        rep.clean = rep.hunks - rep.rejected - rep.fuzz - rep.offset
        reports.append(rep)
    return reports


# -- already present ------------------------------------------------------------------
def _subsequence(needles: Sequence[str], hay: list[str]) -> bool:
    """The lines appear in this order and close together (within a window a few
    times the hunk's size), not merely somewhere in the file."""
    want = [n.rstrip() for n in needles]
    if not want:
        return True
    window = 3 * len(want) + 20
    for start, line in enumerate(hay):
        if line != want[0]:
            continue
        pos, k = start + 1, 1
        end = min(len(hay), start + window)
        while k < len(want) and pos < end:
            if hay[pos] == want[k]:
                k += 1
            pos += 1
        if k == len(want):
            return True
    return False


def added_lines_present(worktree: Path, files: Sequence[FileChange]) -> bool:
    """True when, in every file, every hunk's added lines are present (in order);
    a hunk that only removes lines counts when its removed block is gone."""
    if not files:
        return False
    for fd in files:
        f = worktree / fd.path
        if fd.is_removed:
            if f.exists():
                return False
            continue
        if not f.is_file():
            return False
        content = [ln.rstrip() for ln in f.read_text(errors="replace").splitlines()]
        for h in fd.hunks:
            if h.added:
                if not _subsequence(h.added, content):
                    return False
            elif h.removed and _contiguous(h.removed, content):
                return False
    return True


def _contiguous(block: Sequence[str], hay: list[str]) -> bool:
    b = [x.rstrip() for x in block]
    for i in range(len(hay) - len(b) + 1):
        if hay[i:i + len(b)] == b:
            return True
    return False


def already_present(g: Git, worktree: Path, diff_file: Path, files: Sequence[FileChange]) -> str | None:
    """How the change was found in the tree, or None."""
    if g.run_proc("apply", "--reverse", "--check", str(diff_file)).returncode == 0:
        return "reverse-applies"
    if added_lines_present(worktree, files):
        return "all added lines present"
    return None


# -- commits ----------------------------------------------------------------------------
def commit_worktree(g: Git, patch: Patch) -> str:
    """Commit the worktree as `git am` would commit the patch (author, date, message)."""
    g.run("add", "-A", "-f", ".")
    env = {"GIT_AUTHOR_NAME": patch.author_name or "unknown",
           "GIT_AUTHOR_EMAIL": patch.author_email or "unknown@localhost"}
    if patch.date:
        env["GIT_AUTHOR_DATE"] = patch.date
    g.run("commit", "--quiet", "--no-verify", "--allow-empty", "-F", "-", input=patch.commit_message, env=env)
    return g.rev_parse("HEAD")


def preimage_blobs_exist(g: Git, files: Sequence[FileChange]) -> bool:
    blobs = [f.old_blob for f in files if f.old_blob and set(f.old_blob) != {"0"}]
    if not blobs or len(blobs) != len([f for f in files if not f.is_added]):
        return False
    out = g.run("cat-file", "--batch-check", input="\n".join(blobs) + "\n")
    return all(line.split()[1:2] == ["blob"] for line in out.splitlines()) and len(out.splitlines()) == len(blobs)


def reset_worktree(g: Git) -> None:
    if _am_in_progress(g):
        g.run_proc("am", "--abort")
    g.run("reset", "--quiet", "--hard", "HEAD")
    g.run("clean", "-fdxq")


def _am_in_progress(g: Git) -> bool:
    gd = Path(g.run("rev-parse", "--absolute-git-dir"))
    return (gd / "rebase-apply").exists()


# -- one patch ------------------------------------------------------------------------
def apply_one(g: Git, worktree: Path, p: PatchInfo, log_dir: Path, *, stop_on_conflict: bool) -> PatchReport:
    """Apply one imported patch on top of the worktree's HEAD and commit it.
    On conflict: with stop_on_conflict the worktree is left at the conflict
    (am -3 conflict markers, or patch output with .rej files); else it is reset."""
    assert p.file is not None
    pdir = log_dir / f"{p.index:04d}"
    pdir.mkdir(parents=True, exist_ok=True)
    patch = Patch.load(p.file)
    files = patch.text_files
    diff_file = pdir / "diff"           # what GNU patch and `git apply` read: the mail's patch part
    diff_file.write_bytes(patch.diff_bytes)
    rep = PatchReport(index=p.index, subject=p.subject or patch.subject, status="conflict")
    dry = run_patch(worktree, diff_file, dry_run=True)
    (pdir / "patch-dry-run.log").write_text(dry.stdout + dry.stderr)
    rep.files = hunk_report(files, dry.stdout)
    rejected = sum(f.rejected for f in rep.files)
    inexact = sum(f.fuzz + f.offset for f in rep.files)
    blobs = preimage_blobs_exist(g, files)

    def am(*extra: str) -> bool:
        proc = g.run_proc("am", "--quiet", "--keep-cr", *extra, str(p.file))
        (pdir / "git-am.log").write_bytes(proc.stdout + proc.stderr)
        return proc.returncode == 0

    if rejected or inexact:
        # Before applying with offset/fuzz, ask whether the change is already there:
        # fuzz can apply an already-merged hunk a second time.
        how = already_present(g, worktree, diff_file, files)
        if how:
            rep.status, rep.how = "already-present", how
            return rep

    if rejected == 0:
        if am("-3") if blobs else am():
            rep.method = "git-am-3way" if blobs else "git-am"
        else:
            reset_worktree(g)
            res = run_patch(worktree, diff_file, dry_run=False)
            (pdir / "patch.log").write_text(res.stdout + res.stderr)
            if res.returncode != 0:
                reset_worktree(g)
                raise InfraError(f"patch {p.index}: GNU patch dry run succeeded but the real run failed (see {pdir})")
            commit_worktree(g, patch)
            rep.method = "patch"
        rep.commit = g.rev_parse("HEAD")
        rep.status = "fuzz" if inexact else "applied"
        if inexact:
            rep.how = "hunks applied at an offset or with fuzz"
        return rep

    if blobs:
        if am("-3"):
            rep.commit, rep.status, rep.method = g.rev_parse("HEAD"), "fuzz", "git-am-3way"
            rep.how = "3-way merge with the preimage blobs"
            return rep
        if _am_in_progress(g) and not g.run("ls-files", "-u") and g.run_proc("diff", "--cached", "--quiet").returncode != 0:
            # rerere replayed a recorded resolution for every conflict: finish the patch.
            if g.run_proc("am", "--continue").returncode == 0:
                rep.commit, rep.status, rep.method = g.rev_parse("HEAD"), "fuzz", "git-am-3way"
                rep.how = "3-way merge; conflicts resolved by a recorded resolution (git rerere)"
                return rep
        reset_worktree(g)

    # A conflict: keep the rejected hunks in the log directory.
    rep.status = "conflict"
    res = run_patch(worktree, diff_file, dry_run=False)
    (pdir / "patch.log").write_text(res.stdout + res.stderr)
    rej_dir = pdir / "rejects"
    for line in g.run("ls-files", "-o", "-z", strip=False).split("\0"):
        if line.endswith(".rej"):
            dest = rej_dir / line
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(worktree / line, dest)
            rep.rejects.append(str(dest))
    if stop_on_conflict:
        if blobs:  # leave the 3-way conflict (markers + rerere preimage) rather than .rej files
            reset_worktree(g)
            am("-3")
            rep.method = "git-am-3way"
            if not _am_in_progress(g):
                rep.method = "patch"
        else:
            rep.method = "patch"
    else:
        reset_worktree(g)
    return rep


# -- a revision ---------------------------------------------------------------------
def new_log_dir(ws: Workspace, cmd: str, stack: str, version: int | None = None) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    d = ws.cache.run_dir(stamp, cmd, stack, version)
    d.mkdir(parents=True, exist_ok=True)
    return d


def prepare_worktree(tree: Tree, path: Path, base: str, sparse: list[str] | None = None) -> Worktree:
    """Our worktree at `path`, detached at `base` and clean: reused when healthy
    (fast), else made anew.  With `sparse`, only those paths are checked out."""
    return Worktree.open_or_add(tree.work_git, path, base, sparse=sparse)


def move_branch(tree: Tree, branch: str, new: str, old: str | None, message: str) -> None:
    """Set our branch `branch` to `new`, compare-and-swap from `old` (None: absent)."""
    tree.work_git.update_ref(f"refs/heads/{branch}", new, old, message)


def apply_revision(ws: Workspace, stack: str, rev: Revision, tree: Tree, onto: str, *,
                   log_dir: Path | None = None, branch: str | None = None,
                   stop_on_conflict: bool = False, worktree: Path | None = None) -> ApplyResult:
    """Apply `rev` onto `onto` in a detached worktree of ours; then our branch
    series/<stack>/v<N> is moved (compare-and-swap) to the result."""
    base = resolve_ref(tree, onto)
    log_dir = log_dir or new_log_dir(ws, "apply", stack, rev.version)
    branch = branch or f"series/{stack}/v{rev.version}"
    branch_old = tree.work_git.ref_value(f"refs/heads/{branch}")
    wt = worktree or ws.cache.apply_worktree(tree.name, stack, rev.version, base)
    sparse = revision_paths(rev)
    g = prepare_worktree(tree, wt, base, sparse=sparse).git
    reports: list[PatchReport] = []
    stopped: int | None = None
    present = {p.index: p for p in rev.imported_patches()}
    for idx in rev.indexes or sorted(present):
        p = present.get(idx)
        if p is None or p.file is None:
            info = rev.patch(idx)
            reports.append(PatchReport(index=idx, subject=info.subject if info else "", status="missing",
                                       how="not imported"))
            continue
        if stopped is not None:
            reports.append(PatchReport(index=idx, subject=p.subject, status="not-attempted",
                                       how=f"stopped at patch {stopped}"))
            continue
        rep = apply_one(g, wt, p, log_dir, stop_on_conflict=stop_on_conflict)
        reports.append(rep)
        if rep.status == "conflict" and stop_on_conflict:
            stopped = idx
    statuses = {r.status for r in reports}
    if "conflict" in statuses:
        status = "conflict"
    elif "missing" in statuses:
        status = "partial"
    else:
        status = "applied"
    move_branch(tree, branch, g.rev_parse("HEAD"), branch_old,
                f"series apply: {stack} v{rev.version} onto {onto} ({base[:12]}): {status}")
    return ApplyResult(stack=stack, version=rev.version, onto=onto, base_commit=base, status=status,
                       patches=reports, worktree=wt, branch=branch, log_dir=log_dir,
                       base_desc=describe_ref(tree, base), stopped_at=stopped)


def tempdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
