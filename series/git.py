"""The one wrapper around git.  Every call raises GitError on failure.

Modelled on git-revise: a small typed object; ref updates are
compare-and-swap (`update-ref NEW OLD`) with a reflog message.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .errors import GitError, InfraError

ZERO_OID = "0" * 40


@dataclass
class Git:
    """Run git in `cwd` (a repository or a worktree)."""

    cwd: Path
    env: dict[str, str] = field(default_factory=dict)

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("GIT_AUTHOR_NAME", "series")
        env.setdefault("GIT_AUTHOR_EMAIL", "series@localhost")
        env.setdefault("GIT_COMMITTER_NAME", "series")
        env.setdefault("GIT_COMMITTER_EMAIL", "series@localhost")
        env["GIT_TERMINAL_PROMPT"] = "0"
        env.update(self.env)
        if extra:
            env.update(extra)
        return env

    def run(
        self,
        *args: str,
        input: str | bytes | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        strip: bool = True,
    ) -> str:
        """Run `git ARGS` and return stdout as text.  Raises GitError when check."""
        proc = self.run_proc(*args, input=input, env=env)
        out = proc.stdout.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            raise GitError(list(args), proc.returncode, proc.stderr.decode("utf-8", "replace"), out)
        return out.strip() if strip else out

    def run_proc(
        self, *args: str, input: str | bytes | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git and return the completed process without checking (for callers that
        interpret the exit code themselves, e.g. `git apply --check`)."""
        data = input.encode() if isinstance(input, str) else input
        try:
            return subprocess.run(
                ["git", *args],
                cwd=self.cwd,
                input=data,
                capture_output=True,
                env=self._env(env),
            )
        except FileNotFoundError as e:  # git itself missing
            raise InfraError("git is not installed (apt-get install git)") from e

    def ok(self, *args: str, input: str | bytes | None = None) -> bool:
        return self.run_proc(*args, input=input).returncode == 0

    # -- objects and refs -------------------------------------------------
    def rev_parse(self, rev: str) -> str:
        return self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")

    def try_rev_parse(self, rev: str) -> str | None:
        proc = self.run_proc("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def update_ref(self, ref: str, new: str, old: str | None, message: str) -> None:
        """Compare-and-swap: `old` None means the ref must not exist yet."""
        self.run("update-ref", "-m", message, ref, new, old if old is not None else ZERO_OID)

    def delete_ref(self, ref: str, old: str, message: str = "series: delete") -> None:
        self.run("update-ref", "-m", message, "-d", ref, old)

    def for_each_ref(self) -> str:
        return self.run("for-each-ref", "--format=%(refname) %(objectname)")

    def status_porcelain(self) -> str:
        return self.run("status", "--porcelain=v1", "--untracked-files=all", strip=False)

    def toplevel(self) -> Path:
        return Path(self.run("rev-parse", "--show-toplevel"))

    def is_repo(self) -> bool:
        return self.ok("rev-parse", "--git-dir")

    def patch_id(self, diff: str | bytes) -> str | None:
        """Stable patch-id of a diff (what `git patch-id --stable` prints)."""
        out = self.run("patch-id", "--stable", input=diff)
        return out.split()[0] if out else None


def patch_id(diff: str | bytes) -> str | None:
    """patch-id without needing a repository."""
    return Git(Path(os.getcwd() if Path(os.getcwd()).exists() else "/")).patch_id(diff)
