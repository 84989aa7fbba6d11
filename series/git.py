"""The one git layer, on GitPython.  Every git process series starts is started here.

- `Git`: run git in a directory (`run`, `run_proc`, `ok`); a failure raises
  `GitError` carrying the command and git's stderr.  Processes are started by
  GitPython (`git.Git.execute`), with our environment overlay.
- `Repo`: a repository (our bare work repository, or a user's, read-only):
  typed object ids (`Oid`), refs moved only by compare-and-swap
  (`update-ref -m MSG REF NEW OLD`), its worktrees, `git fast-import`.
- `Worktree`: the one way a worktree is made, filled (sparse: only given paths
  written, the index complete), moved (detached checkout) and removed.  As a
  context manager it is removed on the way out, also on an exception;
  `Worktree.open_or_add` reuses one at a stable path (the build directory's,
  so make rebuilds only what a checkout changed).

Nothing moves a branch by `checkout -B`, `branch -f` or `update-ref` without
the old value: worktrees are detached, and a branch is set afterwards with
`Repo.update_ref(ref, new, old, message)`, refused when `old` is stale.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, NewType, cast

if TYPE_CHECKING:   # imported where git runs: `series --version`, `series diff` need no GitPython
    import git as gitpython

from .errors import GitError, InfraError

Oid = NewType("Oid", str)
"""A full object id as git prints it (40 or 64 hex digits)."""

ZERO_OID = Oid("0" * 40)
GIT_DEFAULT_IDENTITY = {
    "GIT_AUTHOR_NAME": "series", "GIT_AUTHOR_EMAIL": "series@localhost",
    "GIT_COMMITTER_NAME": "series", "GIT_COMMITTER_EMAIL": "series@localhost",
}


def _executable() -> str:
    import git as gitpython
    return str(gitpython.Git.GIT_PYTHON_GIT_EXECUTABLE or "git")


@dataclass
class Git:
    """Run git in `cwd` (a repository or a worktree)."""

    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        for k, v in GIT_DEFAULT_IDENTITY.items():
            env.setdefault(k, v)
        env["GIT_TERMINAL_PROMPT"] = "0"
        env.update(self.env)
        if extra:
            env.update(extra)
        return env

    def _runner(self, args: Sequence[str]) -> gitpython.Git:
        # GitPython falls back to the process's cwd for a missing directory: never
        # let a command meant for a worktree run somewhere else.
        import git as gitpython
        if not self.cwd.is_dir():
            raise GitError(list(args), 128, f"{self.cwd}: no such directory")
        return gitpython.Git(str(self.cwd))

    # -- running ------------------------------------------------------------
    def run(
        self,
        *args: str,
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        strip: bool = True,
        timeout: float | None = None,
    ) -> str:
        """Run `git ARGS` and return stdout as text.  Raises GitError when check."""
        proc = self.run_proc(*args, input=input, env=env, timeout=timeout)
        out = proc.stdout.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            raise GitError(list(args), proc.returncode, proc.stderr.decode("utf-8", "replace"), out)
        return out.strip() if strip else out

    def run_proc(
        self,
        *args: str,
        input: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git and return the completed process without checking (for callers that
        interpret the exit code themselves, e.g. `git apply --check`).  stdout and
        stderr are bytes, stdout exactly as git wrote it."""
        import git as gitpython
        runner = self._runner(args)
        cmd = [_executable(), *args]
        with contextlib.ExitStack() as stack:
            istream: BinaryIO | None = None
            if input is not None:
                # GitPython hands stdin to Popen as a file: spool the input to one.
                f = stack.enter_context(tempfile.TemporaryFile())
                f.write(input.encode() if isinstance(input, str) else input)
                f.seek(0)
                istream = cast(BinaryIO, f)
            try:
                status, out, err = runner.execute(
                    cmd, istream=istream, with_extended_output=True, with_exceptions=False, as_process=False,
                    stdout_as_string=False, strip_newline_in_stdout=False, env=self._env(env),
                    kill_after_timeout=timeout)
            except gitpython.GitCommandNotFound as e:
                raise InfraError("git is not installed (apt-get install git)") from e
        return subprocess.CompletedProcess(cmd, status, out or b"", (err or "").encode("utf-8", "replace"))

    def ok(self, *args: str, input: str | bytes | None = None) -> bool:
        return self.run_proc(*args, input=input).returncode == 0

    # -- objects and refs -------------------------------------------------
    def rev_parse(self, rev: str) -> Oid:
        """The commit `rev` names; GitError when there is none."""
        proc = self.run_proc("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if proc.returncode != 0:
            raise GitError(["rev-parse", "--verify", rev], proc.returncode, f"no commit {rev!r} in {self.cwd}")
        return Oid(proc.stdout.decode().strip())

    def try_rev_parse(self, rev: str) -> Oid | None:
        proc = self.run_proc("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        return Oid(proc.stdout.decode().strip()) if proc.returncode == 0 else None

    def ref_value(self, ref: str) -> Oid | None:
        """What `ref` (a full ref name) points at, or None when it does not exist."""
        proc = self.run_proc("rev-parse", "--verify", "--quiet", ref)
        return Oid(proc.stdout.decode().strip()) if proc.returncode == 0 else None

    def update_ref(self, ref: str, new: str, old: str | None, message: str) -> None:
        """Compare-and-swap `ref` from `old` to `new`, with a reflog message.
        `old` None means the ref must not exist yet.  GitError when `ref` has moved."""
        if not ref.startswith("refs/"):
            raise GitError(["update-ref", ref], 128, f"{ref}: only full ref names are moved")
        self.run("update-ref", "--create-reflog", "-m", message, ref, new, old if old is not None else ZERO_OID)

    def delete_ref(self, ref: str, old: str, message: str = "series: delete") -> None:
        """Compare-and-swap delete: refused unless `ref` still points at `old`."""
        self.run("update-ref", "-m", message, "-d", ref, old)

    def for_each_ref(self) -> str:
        return self.run("for-each-ref", "--format=%(refname) %(objectname)")

    def status_porcelain(self) -> str:
        return self.run("status", "--porcelain=v1", "--untracked-files=all", strip=False)

    def toplevel(self) -> Path:
        return Path(self.run("rev-parse", "--show-toplevel"))

    def is_repo(self) -> bool:
        return self.ok("rev-parse", "--git-dir")

    def common_dir(self) -> Path:
        return Path(self.run("rev-parse", "--path-format=absolute", "--git-common-dir")).resolve()

    def patch_id(self, diff: str | bytes) -> str | None:
        """Stable patch-id of a diff (what `git patch-id --stable` prints)."""
        out = self.run("patch-id", "--stable", input=diff)
        return out.split()[0] if out else None


class Repo(Git):
    """A repository: ours (bare) or a user's (read-only).  Worktrees and fast-import."""

    def worktree_paths(self) -> list[Path]:
        out = self.run("worktree", "list", "--porcelain")
        return [Path(line[9:]) for line in out.splitlines() if line.startswith("worktree ")]

    def prune_worktrees(self) -> None:
        self.run_proc("worktree", "prune")

    @contextlib.contextmanager
    def fast_import(self, *options: str, config: Mapping[str, str] | None = None) -> Iterator[IO[bytes]]:
        """`git fast-import --quiet --done OPTIONS`: yields its stdin.  Leaving the
        block closes it and waits; GitError when fast-import fails.  On an exception
        the process is killed."""
        args = [a for k, v in (config or {}).items() for a in ("-c", f"{k}={v}")]
        args += ["fast-import", "--quiet", "--done", *options]
        import git as gitpython
        runner = self._runner(args)
        try:
            handle = runner.execute([_executable(), *args], istream=subprocess.PIPE, as_process=True,
                                    with_stdout=False, env=self._env(None))
        except gitpython.GitCommandNotFound as e:
            raise InfraError("git is not installed (apt-get install git)") from e
        proc = cast("subprocess.Popen[bytes]", handle.proc)
        assert proc.stdin is not None and proc.stderr is not None
        try:
            yield proc.stdin
            proc.stdin.close()
            err = proc.stderr.read().decode("utf-8", "replace")
            rc = proc.wait()
        except BaseException:
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait()
            raise
        if rc != 0:
            raise GitError(["fast-import", *options], rc, err)


@dataclass
class Worktree:
    """A worktree of `repo` at `path`, always detached."""

    repo: Repo
    path: Path

    @classmethod
    def at(cls, path: Path) -> "Worktree":
        """The worktree at `path`, its repository found from it."""
        return cls(Repo(Git(path).common_dir()), path)

    @property
    def git(self) -> Git:
        return Git(self.path)

    def head(self) -> Oid:
        return self.git.rev_parse("HEAD")

    # -- making -------------------------------------------------------------
    @classmethod
    def add(cls, repo: Repo, path: Path, commit: str, *, sparse: Iterable[str] | None = None) -> "Worktree":
        """A new detached worktree at `commit` (a stale one of ours at `path` is removed
        first).  With `sparse`, only those paths (relative to the top) are written to
        disk; the index is complete, so commits made there hold the whole tree."""
        wt = cls(repo, path)
        wt.remove()
        path.parent.mkdir(parents=True, exist_ok=True)
        no_checkout = ["--no-checkout"] if sparse is not None else []
        # parallel checkout, a worker per CPU: a kernel tree's ~90,000 files took
        # 60 s with one worker here, 20-25 s with two
        repo.run("-c", "checkout.workers=0", "worktree", "add", "--quiet", "--detach", *no_checkout, str(path),
                 commit)
        try:
            if sparse is not None:
                wt.fill_sparse(sparse)
        except BaseException:
            wt.remove()
            raise
        return wt

    @classmethod
    def open_or_add(cls, repo: Repo, path: Path, commit: str, *, sparse: Iterable[str] | None = None,
                    clean: bool = True) -> "Worktree":
        """Reuse our worktree at `path` when it is healthy, moved to `commit` by a
        detached checkout (only the files that differ are rewritten), else make it
        anew.  `clean`: first abort a `git am`, reset and remove untracked files (an
        apply worktree); without it, files git does not track are kept (a build tree).
        `sparse` None makes the worktree a full checkout."""
        wt = cls(repo, path)
        if wt.is_ours():
            try:
                if clean:
                    wt.clean()
                if sparse is not None:
                    wt.set_sparse(sparse)
                elif wt.is_sparse():
                    wt.git.run("sparse-checkout", "disable")
                wt.checkout(commit)
                return wt
            except GitError:
                pass  # a broken leftover: start again
        return cls.add(repo, path, commit, sparse=sparse)

    @classmethod
    @contextlib.contextmanager
    def temporary(cls, repo: Repo, parent: Path, commit: str, *, sparse: Iterable[str] | None = None,
                  prefix: str = "wt-") -> Iterator["Worktree"]:
        """A worktree at a fresh path under `parent`, removed afterwards."""
        parent.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        path.rmdir()
        with cls.add(repo, path, commit, sparse=sparse) as wt:
            yield wt

    def __enter__(self) -> "Worktree":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- state --------------------------------------------------------------
    def _admin_dir(self) -> Path | None:
        """The administrative directory the `.git` file at `path` names, if any."""
        try:
            text = (self.path / ".git").read_text()
        except (OSError, UnicodeDecodeError):
            return None
        if not text.startswith("gitdir: "):
            return None
        admin = Path(text[8:].strip())
        return (admin if admin.is_absolute() else self.path / admin).resolve()

    def belongs_to_repo(self) -> bool:
        """The `.git` file at `path` names one of `repo`'s worktrees (also a stale one,
        whose administrative directory was pruned)."""
        admin = self._admin_dir()
        return admin is not None and admin.parent.name == "worktrees" and admin.parent.parent == self.repo.common_dir()

    def is_ours(self) -> bool:
        """A worktree of `repo` that git still can read."""
        if not self.belongs_to_repo():
            return False
        proc = self.git.run_proc("rev-parse", "--path-format=absolute", "--git-common-dir")
        if proc.returncode != 0:
            return False
        return Path(proc.stdout.decode().strip()).resolve() == self.repo.common_dir()

    def is_sparse(self) -> bool:
        return self.git.run("config", "--type=bool", "--default=false", "core.sparseCheckout") == "true"

    def am_in_progress(self) -> bool:
        gd = Path(self.git.run("rev-parse", "--absolute-git-dir"))
        return (gd / "rebase-apply").exists()

    # -- moving -------------------------------------------------------------
    def checkout(self, commit: str) -> None:
        """Detached, forced: files that differ are rewritten, the others keep their mtime."""
        self.git.run("checkout", "--detach", "--force", "--quiet", commit)

    def restat(self, paths: Sequence[str]) -> None:
        """Record these files' stat in the index (their content is the index's, their mtime
        was set back): a forced checkout then leaves them, as it leaves any clean file."""
        if paths:
            self.git.run("update-index", "--", *paths)

    def clean(self) -> None:
        """Abort a `git am`, reset to HEAD, remove untracked and ignored files."""
        if self.am_in_progress():
            self.git.run_proc("am", "--abort")
        self.git.run("reset", "--quiet", "--hard", "HEAD")
        self.git.run("clean", "-fdxq")

    def set_sparse(self, paths: Iterable[str]) -> None:
        """Limit the worktree to `paths` (no-cone patterns, anchored).  The setting
        lives in this worktree's own config, never in a user's repository."""
        patterns = sorted({"/" + p.lstrip("/") for p in paths}) or ["/.series-nothing"]
        self.git.run("sparse-checkout", "set", "--no-cone", "--stdin", input="\n".join(patterns) + "\n")

    def attach(self, branch: str, message: str = "series: attach") -> None:
        """Put the worktree on `branch` (a branch name or full ref that points at its
        HEAD, made with `Repo.update_ref`).  The one worktree of ours that is not
        detached is a user's edit worktree (`series edit`): b4 prep needs a branch."""
        ref = branch if branch.startswith("refs/heads/") else f"refs/heads/{branch}"
        if self.repo.ref_value(ref) != self.head():
            raise GitError(["symbolic-ref", "HEAD", ref], 128, f"{ref} does not point at the worktree's HEAD")
        self.git.run("symbolic-ref", "-m", message, "HEAD", ref)

    def branch(self) -> str | None:
        """The full ref of the branch the worktree is on, or None when detached."""
        proc = self.git.run_proc("symbolic-ref", "-q", "HEAD")
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def set_config(self, key: str, value: str) -> None:
        """A setting of this worktree only (`git config --worktree`), never the
        repository's.  `sparse-checkout disable` is git's own way to turn on
        per-worktree config in a bare repository (it moves core.bare aside)."""
        if self.git.run("config", "--type=bool", "--default=false", "extensions.worktreeConfig") != "true":
            self.git.run("sparse-checkout", "disable")
        self.git.run("config", "--worktree", key, value)

    def fill_sparse(self, paths: Iterable[str]) -> None:
        """Populate a `--no-checkout` worktree with only `paths` (the index stays complete)."""
        self.set_sparse(paths)
        self.git.run("read-tree", "-mu", "HEAD")

    # -- removing -----------------------------------------------------------
    def remove(self) -> None:
        """Remove the worktree (also a stale one left by a killed run).  A directory
        at `path` that is not a worktree of `repo` is left alone (`add` then fails on it)."""
        if self.belongs_to_repo():
            self.repo.run_proc("worktree", "remove", "--force", "--force", str(self.path))
            if self.path.exists():
                shutil.rmtree(self.path, ignore_errors=True)
        elif self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()
        self.repo.prune_worktrees()


# -- commands without a repository ----------------------------------------------
def patch_id(diff: str | bytes) -> str | None:
    """patch-id without needing a repository."""
    return Git(Path(os.getcwd() if Path(os.getcwd()).exists() else "/")).patch_id(diff)


def exec_path() -> Path:
    """Where git's own commands (git-send-email, ...) are installed."""
    return Path(Git(Path("/")).run("--exec-path"))


def has_command(name: str) -> bool:
    """Whether `git NAME` is installed (e.g. send-email, from Debian's git-email)."""
    try:
        return os.access(exec_path() / f"git-{name}", os.X_OK)
    except InfraError:
        return False


def send_email(files: Sequence[Path], options: Sequence[str], *, cwd: Path,
               timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    """`git send-email OPTIONS FILES` in `cwd`; the caller reads the exit code."""
    return Git(cwd).run_proc("send-email", *options, *(str(f) for f in files), timeout=timeout)
