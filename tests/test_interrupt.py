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

pytestmark = pytest.mark.slow

SIGNALS = [signal.SIGINT, signal.SIGKILL]
FRACTIONS = (0.2, 0.65)


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

N = 24


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
        st = small_stack(root, versions=(1, 2, 3), n=12, import_versions=())
        for i, v in enumerate((1, 2, 3)):
            part = write_mbox(root / f"p{v}.mbox", series_mails(12, version=v, missing=tuple(range(2, 12, 3))))
            assert st.series("import", "demo", "--mbox", str(part), *(["--create"] if i == 0 else [])).rc == 0
        olds.update(store_state(st.ws, "demo"))
        mirror = root / "mirror" / "demo"
        mirror.mkdir(parents=True)
        for v, box in st.mboxes.items():
            (mirror / f"v{v}.mbox").write_bytes(box.read_bytes())
        return st, ["fetch", "demo", "--mirror", str(mirror.parent)]

    def between(st: SmallStack) -> None:
        for v, files in store_state(st.ws, "demo").items():
            assert files == olds[v] or len(files) == 12, f"v{v} is neither old nor new"

    def recover(st: SmallStack) -> None:
        r = st.series("fetch", "demo", "--mirror", str(st.ws.parent / "mirror"))
        assert r.rc == 0, r.err
        assert all(len(f) == 12 for f in store_state(st.ws, "demo").values())

    _sweep(tmp_path, sig, make, between, recover)


# ---------------------------------------------------------------------------- record

@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGKILL"])
def test_interrupted_record(tmp_path: Path, sig: signal.Signals) -> None:
    """`series record` after `series edit`: v2 is recorded whole or not at all."""
    olds: dict[int, dict] = {}

    def make(root: Path) -> tuple[SmallStack, list[str]]:
        st = small_stack(root, n=12)
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
        assert now == olds or (set(now) == {1, 2} and len(now[2]) == 13 and now[1] == olds[1]), \
            "the store is neither old nor new"

    def recover(st: SmallStack) -> None:
        if set(store_state(st.ws, "demo")) == {1}:
            r = st.series("record", "demo")
            assert r.rc == 0, r.err
        now = store_state(st.ws, "demo")
        assert set(now) == {1, 2} and len(now[2]) == 13
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
        st = small_stack(root, n=16)
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
        assert now == olds or (set(now) == {1, 2} and len(now[2]) == 16), "the store is neither old nor new"

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
        assert set(now) == {1, 2} and len(now[2]) == 16
        assert repo_state(st.repo) == users["before"]
        _worktrees_clean(st)

    _sweep(tmp_path, sig, make, between, recover)


# ---------------------------------------------------------------------------- series ci (e2e)
# A stack of our own (comments in the tree's own files) on the Debian 6.12 tree,
# its build directory warm: the kill lands in the stage named, which each test
# checks from results.json (the stage is not among those that finished).

STAGE_MARKER = {"apply": "apply: ", "check": "check: ", "build": "building patch 1 (", "boot": "booting under",
                "mail": "mail: "}
STAGE_RESULTS = {"apply": {"apply"}, "check": {"checkpatch", "hygiene"}, "build": {"build"}, "boot": {"test"},
                 "mail": {"mail"}}
STAGE_AGAIN = {"apply": "apply", "check": "checkpatch,hygiene", "build": "build", "boot": "test", "mail": "mail"}
DELAY = {"apply": 0.3, "check": 0.0, "build": 2.0, "boot": 2.0, "mail": 0.5}


def _intr_mbox(repo: Path, base: str, stack: str, token: str) -> str:
    from test_build_boot import make_mbox

    def comment(n: int) -> Callable[[str], str]:
        return lambda s: s.replace("\n", f"\n/* series interruption test {token}: patch {n} */\n", 1)
    cover = (f"From series-test Mon Sep 17 00:00:00 2001\nFrom: Series Test <test@series.invalid>\n"
             f"Date: Mon, 1 Jan 2024 00:00:00 +0000\nSubject: [PATCH v1 0/2] userfaultfd: two comments\n"
             f"Message-ID: <{stack}-0@series.invalid>\n\nTwo comments, for the interruption tests.\n\n")
    return cover + make_mbox(repo, base, [("mm: userfaultfd: a comment", "mm/userfaultfd.c", comment(1)),
                                          ("fs: userfaultfd: a comment", "fs/userfaultfd.c", comment(2))], stack)


@pytest.fixture(scope="module")
def ci_ws(debian_trees, session_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: ANN001
    from conftest import run_series
    ws = tmp_path_factory.mktemp("intr-ci")
    (ws / "patches").mkdir()
    (ws / "series.toml").write_text('[workspace]\nname = "interrupt"\n[ci]\nstack = "intr"\ntree = "debian"\n'
                                    'onto = "debian/6.12"\n[test]\nsuites = ["uffd-unit-tests", "uffd-move-tests"]\n')
    repo = session_cache / "trees" / "debian.git"
    tag = git(repo, "tag", "--list", "debian/6.12.*").split()[-1]
    base = git(repo, "rev-parse", f"{tag}^{{commit}}").strip()
    box = ws / "intr.mbox"
    box.write_text(_intr_mbox(repo, base, "intr", "fixed"))
    r = run_series("-C", str(ws), "import", "intr", "--mbox", str(box), "--create")
    assert r.rc == 0, r.err
    r = run_series("-C", str(ws), "ci", "-o", str(ws / "warm-up"), subprocess=True, timeout=3600)
    assert r.rc == 0, r.err[-3000:]
    return {"ws": ws, "cache": session_cache, "repo": repo, "base": base}


def _refs(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/tags")


def _orphans(paths: list[str]) -> list[str]:
    """Processes (not this one) whose command line names one of `paths`."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(p in cmd for p in paths):
            out.append(f"{pid}: {cmd[:120]}")
    return out


@pytest.mark.e2e
@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("stage", list(STAGE_MARKER))
def test_ci_interrupted_at_each_stage(ci_ws: dict, stage: str, sig: signal.Signals, tmp_path: Path) -> None:
    import json
    import threading
    import uuid
    from conftest import run_series
    from safety import tree_hash
    ws, cache, repo = ci_ws["ws"], ci_ws["cache"], ci_ws["repo"]
    stack = "intr"
    if stage in ("build", "check"):   # patches never built nor checked: the stage works when the signal lands
        stack = f"intr-{uuid.uuid4().hex[:8]}"
        box = tmp_path / "b.mbox"
        box.write_text(_intr_mbox(repo, ci_ws["base"], stack, uuid.uuid4().hex))
        assert run_series("-C", str(ws), "import", stack, "--mbox", str(box), "--create").rc == 0
    patches_before, refs_before = tree_hash(ws / "patches"), _refs(repo)
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "series", "-C", str(ws), "ci", stack, "-o", str(out)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_capped,
                         env={**os.environ, "SERIES_CACHE": str(cache)})
    seen = threading.Event()
    err_lines: list[str] = []

    def read() -> None:
        assert p.stderr is not None
        for line in p.stderr:
            err_lines.append(line)
            if STAGE_MARKER[stage] in line:
                seen.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert seen.wait(900), "".join(err_lines)[-3000:]
    time.sleep(DELAY[stage])
    assert p.poll() is None, f"the run ended before the signal: {''.join(err_lines)[-2000:]}"
    p.send_signal(sig)
    p.wait(timeout=300)
    reader.join(timeout=60)
    err = "".join(err_lines)
    if sig == signal.SIGINT:
        assert p.returncode == 130 and err.endswith("series: interrupted\n"), (p.returncode, err[-2000:])
        assert "Traceback" not in err
    else:
        assert p.returncode == -signal.SIGKILL
    # results.json: readable; the stage was under way (not among the finished ones).
    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == 1 and res["stack"] == stack
    assert not STAGE_RESULTS[stage] & {s["name"] for s in res["stages"]}, [s["name"] for s in res["stages"]]
    if sig == signal.SIGINT:
        assert res["status"] == "error" and res["error"] == "interrupted" and res["finished"]
    else:
        assert res["finished"] is None
    # Nothing is left running or held; the store and the tree's refs are as they were.
    deadline = time.monotonic() + 30
    while (held_locks(cache) or _orphans([str(out), str(cache / "build")])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert held_locks(cache) == [], "a lock outlived its process"
    assert _orphans([str(out), str(cache / "build")]) == [], "a make or qemu outlived series"
    assert tree_hash(ws / "patches") == patches_before and _refs(repo) == refs_before
    # The next run recovers: that stage (and what it needs) passes.
    r = run_series("-C", str(ws), "ci", stack, "--stages", STAGE_AGAIN[stage], "-o", str(tmp_path / "again"),
                   subprocess=True, timeout=3600)
    assert r.rc == 0, r.err[-3000:]
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["status"] in ("pass", "warn") and again["finished"], again
    assert held_locks(cache) == [] and _refs(repo) == refs_before
    assert tree_hash(ws / "patches") == patches_before
    assert "prunable" not in git(repo, "worktree", "list", "--porcelain")


_KILL_BEFORE_MANIFEST = r"""
import os, signal, sys
import series.stacks.respin as respin
def killed(*a, **kw):
    os.kill(os.getpid(), signal.SIGKILL)
respin._manifest_append = killed
sys.argv = ["series", *sys.argv[1:]]
from series.cli import entry
entry()
"""


@pytest.mark.xfail(strict=True, reason="series record: a kill between the new revision's directory and its "
                                       "manifest entry leaves v2 unlisted, and the next record refuses "
                                       "(reported to the author of record; remove this mark with the fix)")
def test_record_killed_between_its_revision_and_its_manifest_entry(tmp_path: Path) -> None:
    st = small_stack(tmp_path / "s", n=4)
    r = st.series("edit", "demo", "--onto", "main", "--json")
    assert r.rc == 0, r.err
    wt = Path(r.json["worktree"])
    (wt / "mm" / "demo3.c").write_text((wt / "mm" / "demo3.c").read_text() + "int demo3_extra;\n")
    git(wt, "commit", "-qam", "demo: a fixup")
    p = subprocess.run([sys.executable, "-c", _KILL_BEFORE_MANIFEST, "-C", str(st.ws), "record", "demo"],
                       capture_output=True, text=True, env={**os.environ, **st.env()}, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    r = st.series("record", "demo")          # the next run finishes it (or there was nothing to finish)
    manifest = (st.ws / "patches" / "demo" / "stack.toml").read_text()
    assert "version = 2" in manifest and set(store_state(st.ws, "demo")) == {1, 2}, (r.rc, r.err)
