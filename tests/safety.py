"""What the safety tests (hostile input, interruption, concurrency) check, in one place.

- `tree_hash(dir)`: every file's path, mode and bytes (and every symlink's
  target) under a directory: two equal hashes mean a byte-identical tree.
- `assert_refused(r)`: exit 1, one `series: error:` line, no traceback.
- `cache_problems(cache)`: what a next run could not trust: a lock still held,
  a temporary directory left behind, a `results.json` that does not parse, a
  half-swapped revision directory.
- `store_state(ws)`: what the store says (revisions, patches on disk, their bytes).
- `small_stack(...)`: a user repository, a 3-patch stack posted as mails (our own
  text), a workspace and a cache with the repository registered as a tree.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import git, run_series
from mailfactory import series_mails, write_mbox


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        h.update(f"D {rel_dir}\n".encode("utf-8", "surrogateescape"))
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h.update(f"F {os.path.join(rel_dir, name)} {stat.S_IMODE(st.st_mode):o}\n".encode("utf-8", "surrogateescape"))
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode("utf-8", "surrogateescape"))
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def assert_refused(r, rc: int = 1, needle: str | None = None) -> None:  # noqa: ANN001
    lines = r.err.strip().splitlines()
    assert r.rc == rc, f"rc={r.rc} (wanted {rc})\nstdout: {r.out[-2000:]}\nstderr: {r.err[-3000:]}"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{r.err[-3000:]}"
    assert lines[0].startswith("series: error: "), lines[0]
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    if needle is not None:
        assert needle in lines[0], lines[0]


def held_locks(cache: Path) -> list[str]:
    """Lock files some process still holds (flock)."""
    out = []
    for f in sorted((cache / "locks").glob("*.lock")) if (cache / "locks").is_dir() else []:
        fd = os.open(f, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            out.append(f.name)
        finally:
            os.close(fd)
    for f in sorted((cache / "build").glob("*/lock")) if (cache / "build").is_dir() else []:
        fd = os.open(f, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            out.append(str(f.relative_to(cache)))
        finally:
            os.close(fd)
    return out


def cache_problems(cache: Path, ws: Path | None = None) -> list[str]:
    """What a next run could not trust in the cache (and the workspace's store)."""
    problems = [f"lock held: {n}" for n in held_locks(cache)]
    if (cache / "runs").is_dir():
        for res in sorted((cache / "runs").glob("*/results.json")):
            try:
                data = json.loads(res.read_text())
            except ValueError:
                data = None
            if not isinstance(data, dict):
                problems.append(f"results.json does not parse: {res}")
    if ws is not None and (ws / "patches").is_dir():
        for sd in (ws / "patches").iterdir():
            for p in sd.iterdir() if sd.is_dir() else []:
                if p.name.startswith(".v"):
                    problems.append(f"half-written revision left in the store: {p}")
    return problems


def store_state(ws: Path, stack: str) -> dict[int, dict[str, str]]:
    """version -> {file name: sha256} of what `series show` says is imported."""
    r = run_series("-C", str(ws), "show", stack, "--json")
    assert r.rc == 0, r.err
    out: dict[int, dict[str, str]] = {}
    for rev in r.json["revisions"]:
        files = {}
        for p in rev["patches"]:
            if p["imported"]:
                files[Path(p["file"]).name] = hashlib.sha256(Path(p["file"]).read_bytes()).hexdigest()
        out[rev["version"]] = files
    return out


@dataclass
class SmallStack:
    ws: Path
    cache: Path
    repo: Path
    tree: str
    mboxes: dict[int, Path]     # version -> the posted mails of that revision

    def env(self) -> dict[str, str]:
        return {"SERIES_CACHE": str(self.cache)}

    def series(self, *args: str, proc: bool = False, **kw):  # noqa: ANN003, ANN201
        env = {**self.env(), **kw.pop("env", {})}
        if proc:
            return run_proc(["-C", str(self.ws), *args], env=env, **kw)
        return run_series("-C", str(self.ws), *args, env=env, **kw)


def small_stack(root: Path, *, versions: tuple[int, ...] = (1,), n: int = 3, tree: str = "mini",
                import_versions: tuple[int, ...] = (1,)) -> SmallStack:
    """A workspace `root/ws` with stack `demo` (revisions `import_versions` imported
    from our own mails), a cache `root/cache`, and a user repository registered as
    tree `tree` whose `main` the patches apply onto (they add new files)."""
    root.mkdir(parents=True, exist_ok=True)
    repo = root / "linux"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "U")
    git(repo, "config", "user.email", "u@example.org")
    (repo / "README").write_text("a small tree\n")
    (repo / "mm").mkdir()
    (repo / "mm" / "Makefile").write_text("obj-y += core.o\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    ws = root / "ws"
    (ws / "patches").mkdir(parents=True)
    (ws / "series.toml").write_text('[workspace]\nname = "safety"\n')
    cache = root / "cache"
    mboxes = {v: write_mbox(root / f"demo-v{v}.mbox", series_mails(n, version=v)) for v in versions}
    st = SmallStack(ws=ws, cache=cache, repo=repo, tree=tree, mboxes=mboxes)
    for i, v in enumerate(import_versions):
        r = st.series("import", "demo", "--mbox", str(mboxes[v]), *(["--create"] if i == 0 else []))
        assert r.rc == 0, r.err
    r = st.series("tree", "add", tree, "--path", str(repo))
    assert r.rc == 0, r.err
    return st


MEMORY_CAP = 3 << 30     # the address space a CLI process under test may take


def _capped() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_proc(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120,
             stdout_path: str | None = None, cwd: Path | None = None):  # noqa: ANN201
    """The real CLI (`python -m series ARGS`) in a process of its own, with a memory
    cap and a timeout: a regression that reads /dev/zero or builds a huge list
    fails the test instead of taking the machine down with it."""
    import sys
    from conftest import REPO, Result
    out = open(stdout_path, "w") if stdout_path else subprocess.PIPE  # noqa: SIM115
    try:
        p = subprocess.run([sys.executable, "-m", "series", *argv], stdout=out, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd or REPO,
                           preexec_fn=_capped)
    finally:
        if stdout_path:
            out.close()  # type: ignore[union-attr]
    return Result(p.returncode, p.stdout or "", p.stderr)


def python_with_fault(code: str) -> list[str]:
    """argv for a `python -c` that runs `code` and then the CLI as the `series`
    script does (argv[0] "series"): for faults injected into the real process."""
    import sys
    return [sys.executable, "-c", code]


def run_cli_proc(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
