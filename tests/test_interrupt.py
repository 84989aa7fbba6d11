"""Interruption (issue 11): SIGINT and SIGKILL sent to the real process during
import, fetch, record and rebase (and, in the e2e tier, at each stage of
`series ci`).  Whatever instant the signal lands at:

- a SIGINT ends in one line, `series: interrupted`, exit 130 (or the run had
  finished: exit 0);
- right after it, the store is in the old state or the new one (never between),
  and the user's repository (its refs and worktree) is untouched;
- the next run recovers: it succeeds and reaches the new state, with no lock
  held, no half-written revision, no stale worktree, every results.json valid.

The signals land at several fractions of the time the same command takes
uninterrupted, counted from the moment it holds the stack's lock (so never in
the interpreter's start, which is Python's, not series').
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO, git, repo_state
from mailfactory import patch_mail, series_mails, write_mbox
from safety import MEMORY_CAP, SmallStack, cache_problems, held_locks, small_stack, store_state

SIGNALS = [signal.SIGINT, signal.SIGKILL]
FRACTIONS = (0.15, 0.5, 0.85)


def _capped() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _start(st: SmallStack, args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "series", "-C", str(st.ws), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_capped,
                            env={**os.environ, **st.env(), **(extra_env or {})})


def _lock_held_by(st: SmallStack, stack: str, pid: int) -> bool:
    try:
        return (st.cache / "locks" / f"{stack}.lock").read_text().strip() == str(pid)
    except OSError:
        return False


def _run_until_locked(st: SmallStack, args: list[str], stack: str = "demo") -> tuple[subprocess.Popen[str], float]:
    """Start the command; return once it holds the stack's lock (its work has begun)."""
    p = _start(st, args)
    t0 = time.monotonic()
    while not _lock_held_by(st, stack, p.pid) and p.poll() is None:
        if time.monotonic() - t0 > 120:
            p.kill()
            raise AssertionError("the command never took the stack's lock")
        time.sleep(0.005)
    return p, time.monotonic()


def _measure(st: SmallStack, args: list[str]) -> float:
    p, t = _run_until_locked(st, args)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return max(time.monotonic() - t, 0.05)


def _interrupt(st: SmallStack, args: list[str], sig: signal.Signals, delay: float) -> None:
    p, _ = _run_until_locked(st, args)
    time.sleep(delay)
    sent = p.poll() is None
    if sent:
        p.send_signal(sig)
    out, err = p.communicate(timeout=300)
    if not sent or p.returncode == 0:
        assert p.returncode == 0, err          # it had finished before the signal
    elif sig == signal.SIGINT:
        assert p.returncode == 130 and err.endswith("series: interrupted\n"), (p.returncode, err)
        assert "Traceback" not in err and err.count("\n") <= 2, err
    else:
        assert p.returncode == -signal.SIGKILL, (p.returncode, err)
    # The kernel drops an flock when the last descriptor of it closes: a child the
    # killed process had just forked holds one until its exec (milliseconds).
    deadline = time.monotonic() + 10
    while held_locks(st.cache) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert held_locks(st.cache) == [], "a lock outlived its process"


def _sweep(tmp_path: Path, sig: signal.Signals, make: Callable[[Path], tuple[SmallStack, list[str]]],
           check_between: Callable[[SmallStack], None], recover: Callable[[SmallStack], None]) -> None:
    st, args = make(tmp_path / "measure")
    took = _measure(st, args)
    for k, frac in enumerate(FRACTIONS):
        st, args = make(tmp_path / f"k{k}")
        _interrupt(st, args, sig, frac * took)
        check_between(st)
        recover(st)
        assert cache_problems(st.cache, st.ws) == []


def _worktrees_clean(st: SmallStack) -> None:
    """Every worktree our tree repository knows exists, and none is prunable."""
    repo = st.cache / "trees" / f"{st.tree}.git"
    if not repo.is_dir():
        return
    listing = git(repo, "worktree", "list", "--porcelain")
    assert "prunable" not in listing, listing
    for line in listing.splitlines():
        if line.startswith("worktree "):
            assert Path(line.split(" ", 1)[1]).exists(), listing


# ---------------------------------------------------------------------------- import

N = 40


def _partial() -> list:  # noqa: ANN202
    return series_mails(N, missing=tuple(range(2, N, 2)))


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGKILL"])
def test_interrupted_import(tmp_path: Path, sig: signal.Signals) -> None:
    states: dict[str, dict] = {}

    def make(root: Path) -> tuple[SmallStack, list[str]]:
        st = small_stack(root, versions=(1,), n=N, import_versions=())
        part = write_mbox(root / "partial.mbox", _partial())
        assert st.series("import", "demo", "--mbox", str(part), "--create").rc == 0
        states["old"] = store_state(st.ws, "demo")
        return st, ["import", "demo", "--mbox", str(st.mboxes[1])]

    def between(st: SmallStack) -> None:
        now = store_state(st.ws, "demo")
        assert now == states["old"] or len(now[1]) == N, "the store is neither old nor new"

    def recover(st: SmallStack) -> None:
        r = st.series("import", "demo", "--mbox", str(st.mboxes[1]))
        assert r.rc == 0, r.err
        assert len(store_state(st.ws, "demo")[1]) == N

    _sweep(tmp_path, sig, make, between, recover)


# ---------------------------------------------------------------------------- fetch

@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGKILL"])
def test_interrupted_fetch(tmp_path: Path, sig: signal.Signals) -> None:
    olds: dict[int, dict] = {}

    def make(root: Path) -> tuple[SmallStack, list[str]]:
        st = small_stack(root, versions=(1, 2, 3), n=20, import_versions=())
        for i, v in enumerate((1, 2, 3)):
            part = write_mbox(root / f"p{v}.mbox", series_mails(20, version=v, missing=tuple(range(2, 20, 3))))
            assert st.series("import", "demo", "--mbox", str(part), *(["--create"] if i == 0 else [])).rc == 0
        olds.update(store_state(st.ws, "demo"))
        mirror = root / "mirror" / "demo"
        mirror.mkdir(parents=True)
        for v, box in st.mboxes.items():
            (mirror / f"v{v}.mbox").write_bytes(box.read_bytes())
        return st, ["fetch", "demo", "--mirror", str(mirror.parent)]

    def between(st: SmallStack) -> None:
        for v, files in store_state(st.ws, "demo").items():
            assert files == olds[v] or len(files) == 20, f"v{v} is neither old nor new"

    def recover(st: SmallStack) -> None:
        r = st.series("fetch", "demo", "--mirror", str(st.ws.parent / "mirror"))
        assert r.rc == 0, r.err
        assert all(len(f) == 20 for f in store_state(st.ws, "demo").values())

    _sweep(tmp_path, sig, make, between, recover)


# ---------------------------------------------------------------------------- record

@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGKILL"])
def test_interrupted_record(tmp_path: Path, sig: signal.Signals) -> None:
    """`series record` after `series edit`: v2 is recorded whole or not at all."""
    olds: dict[int, dict] = {}

    def make(root: Path) -> tuple[SmallStack, list[str]]:
        st = small_stack(root, n=20)
        r = st.series("edit", "demo", "--onto", "main", "--json")
        assert r.rc == 0, r.err
        wt = Path(r.json["worktree"])
        (wt / "mm" / "demo3.c").write_text((wt / "mm" / "demo3.c").read_text() + "int demo3_extra;\n")
        git(wt, "commit", "-qam", "demo: a fixup")
        olds.clear()
        olds.update(store_state(st.ws, "demo"))
        return st, ["record", "demo"]

    def between(st: SmallStack) -> None:
        now = store_state(st.ws, "demo")
        assert now == olds or (set(now) == {1, 2} and len(now[2]) == 21 and now[1] == olds[1]), \
            "the store is neither old nor new"

    def recover(st: SmallStack) -> None:
        if set(store_state(st.ws, "demo")) == {1}:
            r = st.series("record", "demo")
            assert r.rc == 0, r.err
        now = store_state(st.ws, "demo")
        assert set(now) == {1, 2} and len(now[2]) == 21
        r = st.series("show", "demo", "v2", "--json")
        assert r.rc == 0 and r.json["revisions"][0]["complete"], r.err
        manifest = (st.ws / "patches" / "demo" / "stack.toml").read_text()
        assert "version = 2" in manifest, "v2 is on disk but the manifest does not list it"
        _worktrees_clean(st)

    _sweep(tmp_path, sig, make, between, recover)


# ---------------------------------------------------------------------------- rebase

@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGKILL"])
def test_interrupted_rebase(tmp_path: Path, sig: signal.Signals) -> None:
    """`series rebase demo newbase`: the user's repository is never touched; the
    next run (after --abort when a rebase was left stopped) records v2 whole."""
    olds: dict[int, dict] = {}
    users: dict[str, tuple[str, str]] = {}

    def make(root: Path) -> tuple[SmallStack, list[str]]:
        st = small_stack(root, n=25)
        (st.repo / "NEWS").write_text("a new base\n")
        git(st.repo, "add", "NEWS")
        git(st.repo, "commit", "-qm", "a new base")
        git(st.repo, "tag", "newbase")
        git(st.repo, "checkout", "-q", "HEAD~1")       # the user is elsewhere, detached
        users["before"] = repo_state(st.repo)
        olds.clear()
        olds.update(store_state(st.ws, "demo"))
        return st, ["rebase", "demo", "newbase"]

    def between(st: SmallStack) -> None:
        assert repo_state(st.repo) == users["before"], "the user's repository changed"
        now = store_state(st.ws, "demo")
        assert now == olds or (set(now) == {1, 2} and len(now[2]) == 25), "the store is neither old nor new"

    def recover(st: SmallStack) -> None:
        if set(store_state(st.ws, "demo")) == {1}:
            r = st.series("rebase", "demo", "newbase")
            if r.rc != 0:            # a rebase was left (stopped): abort it, then again
                assert "rebase" in r.err, r.err
                ra = st.series("rebase", "demo", "--abort")
                assert ra.rc == 0, ra.err
                r = st.series("rebase", "demo", "newbase")
            assert r.rc == 0, r.err
        now = store_state(st.ws, "demo")
        assert set(now) == {1, 2} and len(now[2]) == 25
        assert repo_state(st.repo) == users["before"]
        _worktrees_clean(st)

    _sweep(tmp_path, sig, make, between, recover)
