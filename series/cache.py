"""Every directory and file under `$SERIES_CACHE`, named in one place.

    $SERIES_CACHE/
      trees.toml                      the tree registry (NAME -> kind, path, repo)
      trees/<tree>.git                our work repository per tree (bare)
      worktrees/<tree>/<stack>-v<N>-<base12>   apply worktrees (sparse)
      worktrees/<tree>/rebase-<ws12>-<stack>-v<N>-<base12>   a rebase's worktree (sparse)
      build/<tree>-<base12>-<cfg8>/   a warm build directory (src/ obj/ logs/ lock results/)
      ccache/                         ccache's store for kernel builds (CCACHE_DIR)
      runs/<stamp>-<command>-<stack>-v<N>/     one pipeline run (results.json, logs)
      runs/<stamp>-ci-<stack>-all/    the summary of one `series ci --all`
      mutate/<tree>-<base12>-<cfg8>/<stack>-v<N>.json   `series mutate`'s verdicts, kept across
                                      runs so a re-run resumes (copied into the run as mutants.json)
      report/                         `series report`'s default output (the dashboard)
      locks/<name>.lock               flock files (stack, tree, build dir, registry)
      rebase/<workspace-key>/<stack>/state.json   an unfinished `series rebase`
      edit/<workspace-key>/<stack>.json    an open `series edit` (its worktree, branch, base)
      worktrees/edit/<workspace-key>-<stack>   the default worktree of `series edit` (the user edits there)
      check/                          checkpatch / get_maintainer result cache
      materialized/<sha>/             scripts/ and MAINTAINERS of a commit, extracted once
      mail/<stack>-v<N>-<pid>/        scratch for the mail round trip
      qemu-accel.json                 the KVM-or-TCG probe verdict

Nothing else under the cache is written by series; nothing computes a cache
path backwards from another path.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


def default_root() -> Path:
    """$SERIES_CACHE, else $XDG_CACHE_HOME/series, else ~/.cache/series."""
    env = os.environ.get("SERIES_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "series").resolve()


@dataclass(frozen=True)
class Cache:
    root: Path

    @classmethod
    def default(cls) -> "Cache":
        return cls(default_root())

    # -- trees ---------------------------------------------------------------
    @property
    def trees_registry(self) -> Path:
        return self.root / "trees.toml"

    @property
    def trees(self) -> Path:
        return self.root / "trees"

    def tree_repo(self, tree: str) -> Path:
        return self.trees / f"{tree}.git"

    # -- worktrees -------------------------------------------------------------
    @property
    def worktrees(self) -> Path:
        return self.root / "worktrees"

    def apply_worktree(self, tree: str, stack: str, version: int, base: str) -> Path:
        """Keyed by tree as well as stack, revision and base: two trees with the
        same base commit never share a worktree."""
        return self.worktrees / tree / f"{stack}-v{version}-{base[:12]}"

    def rebase_worktree(self, workspace: Path, tree: str, stack: str, version: int, base: str) -> Path:
        """A rebase keeps its worktree across commands: keyed by the workspace too."""
        return self.worktrees / tree / f"rebase-{self.workspace_key(workspace)}-{stack}-v{version}-{base[:12]}"

    # -- builds ----------------------------------------------------------------
    @property
    def builds(self) -> Path:
        return self.root / "build"

    def build_dir(self, tree: str, base: str, config_hash: str) -> Path:
        return self.builds / f"{tree}-{base[:12]}-{config_hash}"

    def build_dirs_with_config(self, config_hash: str) -> list[Path]:
        """Every build directory of one kernel config (any tree, any base)."""
        return sorted(self.builds.glob(f"*-{config_hash}")) if self.builds.is_dir() else []

    @property
    def ccache(self) -> Path:
        return self.root / "ccache"

    # -- runs ------------------------------------------------------------------
    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, stamp: str, command: str, stack: str, version: int | None) -> Path:
        return self.runs / (f"{stamp}-{command}-{stack}" + (f"-v{version}" if version is not None else ""))

    def ci_all_dir(self, stamp: str, stack: str) -> Path:
        """The summary of a `series ci --all` (the revisions' runs are ordinary run directories)."""
        return self.runs / f"{stamp}-ci-{stack}-all"

    def mutants_state(self, stack: str, version: int, tree: str, base: str, config_hash: str) -> Path:
        """`series mutate`'s verdicts for one revision on one (tree, base, config):
        kept across runs, so a re-run resumes; each run copies it as mutants.json."""
        return self.root / "mutate" / f"{tree}-{base[:12]}-{config_hash}" / f"{stack}-v{version}.json"

    @property
    def report(self) -> Path:
        return self.root / "report"

    # -- locks -----------------------------------------------------------------
    @property
    def locks(self) -> Path:
        return self.root / "locks"

    def lock(self, name: str) -> Path:
        return self.locks / f"{name}.lock"

    def stack_lock(self, stack: str) -> Path:
        return self.lock(stack)

    # -- rebase, check, mail, qemu ---------------------------------------------
    @property
    def rebase_states(self) -> Path:
        return self.root / "rebase"

    @staticmethod
    def workspace_key(workspace: Path) -> str:
        return hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:12]

    def rebase_states_of(self, workspace: Path) -> Path:
        """The rebase states of one workspace (one directory per stack)."""
        return self.rebase_states / self.workspace_key(workspace)

    def rebase_state_dir(self, workspace: Path, stack: str) -> Path:
        """Keyed by the workspace as well as the stack."""
        return self.rebase_states_of(workspace) / stack

    # -- series edit -----------------------------------------------------------
    @property
    def edit_states(self) -> Path:
        return self.root / "edit"

    def edit_states_of(self, workspace: Path) -> Path:
        """The open edits of one workspace (one JSON file per stack)."""
        return self.edit_states / self.workspace_key(workspace)

    def edit_state(self, workspace: Path, stack: str) -> Path:
        return self.edit_states_of(workspace) / f"{stack}.json"

    def edit_worktree(self, workspace: Path, stack: str) -> Path:
        """Where `series edit` puts a stack's branch when no --worktree is given."""
        return self.worktrees / "edit" / f"{self.workspace_key(workspace)}-{stack}"

    @property
    def check(self) -> Path:
        return self.root / "check"

    @property
    def materialized_root(self) -> Path:
        return self.root / "materialized"

    def materialized(self, sha: str) -> Path:
        return self.materialized_root / sha

    def mail_scratch(self, stack: str, version: int) -> Path:
        return self.root / "mail" / f"{stack}-v{version}-{os.getpid()}"

    @property
    def mutants(self) -> Path:
        """bench/mutants' and series mutate's scratch (mutated kernels, guest images)."""
        return self.root / "mutants"

    @property
    def qemu_accel(self) -> Path:
        return self.root / "qemu-accel.json"

    def is_inside_worktrees(self, path: Path) -> bool:
        """True when `path`, symlinks resolved, lies under our worktree directory."""
        try:
            path.resolve().relative_to(self.worktrees.resolve())
        except ValueError:
            return False
        return True
