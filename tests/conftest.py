"""Shared fixtures.  Tests seal their environment: HOME, git config, dates."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_LORE = (REPO.parent / "shared" / "lore").resolve()
FIXED_DATE = "2024-01-01T00:00:00+0000"


# Fixtures that need what only this machine has (the real mails in ../shared/lore,
# Debian's kernel tarballs in /usr/src): a test using one, directly or through
# another fixture, belongs to the integration tier, marked or not.
INTEGRATION_FIXTURES = frozenset({"lore_dir", "debian_trees", "debian_tree"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)


# --- no silent skips -------------------------------------------------------------
# Under CI=true a skipped test is a failure unless its reason matches one of these
# (a regular expression searched in the skip reason), each with why CI may lack it.
# Everything else a skip can stand for (tools/setup installs the packages, CI has
# ../shared beside the clone) means a test did not run that should have.
ALLOWED_SKIPS: dict[str, str] = {
    r"^UFFDIO_MOVE selftests skipped on this host":
        "the host kernel decides (userfaultfd off, or older than 6.8); the same programs run in the guest (e2e)",
}


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_reason(longrepr: object) -> str:
    """The reason pytest recorded for a skip ('Skipped: ' dropped)."""
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return re.sub(r"^Skipped: ", "", str(text))


def allowed_skip(reason: str) -> bool:
    return any(re.search(pat, reason) for pat in ALLOWED_SKIPS)


def _refuse_skip(rep: pytest.TestReport | pytest.CollectReport) -> None:
    if hasattr(rep, "wasxfail"):
        return      # an expected failure is a known bug, marked and explained in the test, not a skip
    reason = skip_reason(rep.longrepr)
    if allowed_skip(reason):
        return
    rep.outcome = "failed"
    rep.longrepr = (f"skipped under CI=true, which is not on the allowlist (ALLOWED_SKIPS in tests/conftest.py): "
                    f"{reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ANN201
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and _ci():
        _refuse_skip(rep)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # noqa: ANN201
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and _ci():      # a module-level pytest.skip / importorskip
        _refuse_skip(rep)


# --- tests outside the integration tier use nothing only this machine has ----------
# An audit hook refuses, while a test that is not marked integration, e2e or native
# runs, to open anything under ../shared or a Debian kernel tarball, or to start a
# process naming one: such a test would pass here and vanish (or fail) elsewhere.
# ../shared both as named and resolved (it may be a symlink to elsewhere)
_GUARDED = tuple(dict.fromkeys((str(SHARED_LORE.parent), str(REPO.parent / "shared"), "/usr/src/linux-source")))
_guard_on = False


def _audit(event: str, args: tuple) -> None:  # type: ignore[type-arg]
    if not _guard_on or event not in ("open", "subprocess.Popen"):
        return
    names = [args[0]] if event == "open" else [args[0], *(args[1] or ())]
    for n in names:
        if isinstance(n, (str, bytes, os.PathLike)):
            s = os.fsdecode(n)
            if any(g in s for g in _GUARDED):
                raise PermissionError(f"{s}: a test that needs ../shared or a Debian tree must be marked integration")


sys.addaudithook(_audit)


@pytest.fixture(autouse=True)
def _machine_guard(request: pytest.FixtureRequest):  # noqa: ANN201
    global _guard_on
    tiers = ("integration", "e2e", "native")
    _guard_on = not any(request.node.get_closest_marker(m) for m in tiers)
    yield
    _guard_on = False


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SERIES_CACHE for the whole test session: kernel trees and warm build
    directories are made once per run and shared by the tests that need them."""
    env = os.environ.get("SERIES_TEST_CACHE")
    if env:
        p = Path(env)
        p.mkdir(parents=True, exist_ok=True)
        return p
    return tmp_path_factory.mktemp("series-cache")


def _seal(mp: pytest.MonkeyPatch, home: Path, cache: Path) -> None:
    mp.setenv("HOME", str(home))
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for var in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        mp.setenv(var, FIXED_DATE)
    for var, val in (("GIT_AUTHOR_NAME", "Test Author"), ("GIT_AUTHOR_EMAIL", "author@example.org"),
                     ("GIT_COMMITTER_NAME", "Test Committer"), ("GIT_COMMITTER_EMAIL", "committer@example.org")):
        mp.setenv(var, val)
    mp.setenv("SERIES_CACHE", str(cache))
    mp.delenv("SERIES_WORKSPACE", raising=False)
    mp.setenv("SERIES_LORE_URL", "http://127.0.0.1:9/")  # never the real lore
    mp.setenv("LC_ALL", "C.UTF-8")


@pytest.fixture(scope="session", autouse=True)
def sealed_session(session_home: Path, session_cache: Path):  # noqa: ANN201
    """The same seal for session- and module-scoped fixtures, which are set up
    before any function-scoped fixture (a module fixture that ran the CLI used to
    see the caller's HOME and SERIES_CACHE)."""
    mp = pytest.MonkeyPatch()
    _seal(mp, session_home, session_cache)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def sealed_env(monkeypatch: pytest.MonkeyPatch, session_home: Path, session_cache: Path) -> None:
    _seal(monkeypatch, session_home, session_cache)


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def json(self):  # noqa: ANN201
        import json
        return json.loads(self.out)


def _stream(errors: str) -> io.TextIOWrapper:
    """A captured stream as the process has it: UTF-8 (LC_ALL=C.UTF-8), strict on
    stdout (unencodable text is an error there too), backslashreplace on stderr."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors=errors)


def _text(stream: io.TextIOWrapper) -> str:
    """What `subprocess.run(text=True)` makes of the bytes: UTF-8, universal newlines."""
    stream.flush()
    data = stream.buffer.getvalue()  # type: ignore[attr-defined]
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def run_series(*args: str, cwd: Path | None = None, input: str | None = None, timeout: float = 3600,
               env: dict[str, str] | None = None, subprocess: bool = False) -> Result:
    """Run the CLI as a user would and return its exit code, stdout and stderr.

    In process by default: `series.cli.main(args)` with stdin/stdout/stderr
    captured, `cwd` and `env` (overlaid on os.environ) in force for the call
    and restored after (`timeout` applies to the subprocess only).
    `subprocess=True` runs `python -m series` instead, for what only a process
    has: signals, SIGPIPE, file descriptors, a lock held by another process,
    the interpreter's own start and exit."""
    if subprocess:
        return run_series_proc(*args, cwd=cwd, input=input, timeout=timeout, env=env)
    from series import cli
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_io = sys.stdin, sys.stdout, sys.stderr
    out, err = _stream("strict"), _stream("backslashreplace")
    try:
        os.environ.update(env or {})
        os.chdir(cwd or REPO)
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(input or ""), out, err
        try:
            rc = cli.main(list(args))
        except SystemExit as e:  # what `sys.exit` in a command would have done to the process
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_io
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return Result(rc, _text(out), _text(err))


def run_series_proc(*args: str, cwd: Path | None = None, input: str | None = None, timeout: float = 3600,
                    env: dict[str, str] | None = None) -> Result:
    """Run the real CLI in a subprocess (exit codes and stderr as a user sees them)."""
    proc = subprocess.run([sys.executable, "-m", "series", *args], cwd=cwd or REPO, input=input,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def series():  # noqa: ANN201
    return run_series


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "patches").mkdir(parents=True)
    (ws / "series.toml").write_text('[workspace]\nname = "test"\n')
    return ws


@pytest.fixture
def repo_workspace(tmp_path: Path) -> Path:
    """A copy of this repository's workspace (manifests only), so imports don't touch the checkout."""
    import shutil
    ws = tmp_path / "repo-ws"
    shutil.copytree(REPO / "patches", ws / "patches",
                    ignore=lambda d, names: [n for n in names if n.startswith("v") and n[1:].isdigit()
                                             and "uffd-move-selftests" not in d])
    shutil.copy(REPO / "series.toml", ws / "series.toml")
    return ws


@pytest.fixture(scope="session")
def lore_dir() -> Path:
    if not (SHARED_LORE / "uffd-move").is_dir():
        pytest.skip(f"../shared/lore is absent ({SHARED_LORE}): the real mails are not on this machine")
    return SHARED_LORE


def unique_name(prefix: str) -> str:
    """A kernel tree name no other test, in this session or an earlier one sharing
    SERIES_TEST_CACHE, has used: the tree registry lives in the cache."""
    import uuid
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def user_tree(path: Path) -> Path:
    """A user's git tree of our own at `path`: branch main, an identity, a README (not committed)."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "U")
    git(path, "config", "user.email", "u@example.org")
    (path / "README").write_text("a tree\n")
    return path


def commit_files(repo: Path, msg: str, **files: str) -> str:
    """Write `files` (name -> text) into the checkout `repo`, commit them, return the commit."""
    for name, text in files.items():
        p = repo / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        git(repo, "add", name)
    git(repo, "commit", "-qm", msg)
    return git(repo, "rev-parse", "HEAD").strip()


def make_mbox(repo: Path, base: str, patches: "list[tuple[str, str, Callable[[str], str]]]", stack: str, *,
              version: int = 1, numbers: list[int] | None = None, total: int | None = None) -> str:
    """Mails `[PATCH vN i/total]` in `git format-patch`'s shape, one per (subject, path, edit): the
    diff made with difflib from the file at `base` in `repo` as the earlier patches left it.  `numbers`
    gives each patch its i (default 1..n: a revision with a patch missing skips its number)."""
    import difflib
    numbers = numbers or list(range(1, len(patches) + 1))
    total = total or len(patches)
    state: dict[str, str] = {}
    mails = []
    for i, (subject, path, edit) in zip(numbers, patches, strict=True):
        old = state.get(path)
        if old is None:
            old = git(repo, "show", f"{base}:{path}")
        new = state[path] = edit(old)
        diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}"))
        mails.append(
            f"From series-test Mon Sep 17 00:00:00 2001\nFrom: Series Test <test@series.invalid>\n"
            f"Date: Mon, {version} Jan 2024 00:0{i}:00 +0000\nSubject: [PATCH v{version} {i}/{total}] {subject}\n"
            f"Message-ID: <{stack}-v{version}-{i}@series.invalid>\n\n{subject}.\n\n"
            f"Signed-off-by: Series Test <test@series.invalid>\n---\ndiff --git a/{path} b/{path}\n{diff}--\n2.39.0\n\n")
    return "".join(mails)


def repo_state(path: Path) -> tuple[str, str]:
    """What a user's repository looks like: refs and worktree status (for safety tests)."""
    return (git(path, "for-each-ref", "--format=%(refname) %(objectname)"),
            git(path, "status", "--porcelain=v1", "--untracked-files=all"))


# --- kernel trees (trees/apply) ---
DEBIAN_SRC = Path("/usr/src")


def _trees_ws(root: Path, cache: Path):  # noqa: ANN202
    from series.workspace import Workspace
    return Workspace(root=root, cache=cache, config={})


@pytest.fixture(scope="session")
def debian_trees(session_cache: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The real Debian 6.12 and 6.1 trees, made once per session (one repository, tree name 'debian')."""
    from series import trees
    for v in ("6.12", "6.1"):
        if not (DEBIAN_SRC / f"linux-source-{v}.tar.xz").is_file():
            pytest.skip(f"linux-source-{v} is not installed")
    ws = _trees_ws(tmp_path_factory.mktemp("trees-ws"), session_cache)
    trees.ensure_debian_tree(ws, "debian", "6.12")
    return trees.ensure_debian_tree(ws, "debian", "6.1")


@pytest.fixture(scope="session")
def uffd_workspace(lore_dir: Path, session_cache: Path, session_home: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with the real uffd-move mails imported (v1..v6), made once per session."""
    import shutil
    ws = tmp_path_factory.mktemp("uffd-ws")
    shutil.copytree(REPO / "patches" / "uffd-move", ws / "patches" / "uffd-move",
                    ignore=lambda d, names: [n for n in names if n.startswith("v") and n[1:].isdigit()])
    (ws / "series.toml").write_text('[workspace]\nname = "uffd"\n')
    r = run_series("fetch", "uffd-move", "--mirror", str(lore_dir), cwd=ws,
                   env={"SERIES_CACHE": str(session_cache), "HOME": str(session_home), "GIT_CONFIG_NOSYSTEM": "1"})
    if r.rc != 0:
        pytest.fail(f"series fetch uffd-move failed: {r.err.strip()}")
    return ws
