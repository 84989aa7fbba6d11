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
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO, git, repo_state
from mailfactory import series_mails, write_mbox
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
    from conftest import make_mbox

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


_KILL_AT = r"""
import importlib, os, signal, sys
module, name = sys.argv[1].rsplit(".", 1)
def killed(*a, **kw):
    os.kill(os.getpid(), signal.SIGKILL)
setattr(importlib.import_module(module), name, killed)
sys.argv = ["series", *sys.argv[2:]]
from series.cli import entry
entry()
"""

# Where `series record` is killed: after the new copy is complete but before it is
# v2/; once it is v2/ but before the manifest lists it; after the manifest, before
# the edit is closed.
KILL_POINTS = ["series.stacks.revdir._finish", "series.stacks.revdir._manifest_append",
               "series.stacks.respin.close_edit"]


@pytest.mark.parametrize("point", KILL_POINTS, ids=["before-swap", "before-manifest", "before-close"])
@pytest.mark.parametrize("next_cmd", ["record", "show"])
def test_record_killed_between_its_revision_and_its_manifest_entry(tmp_path: Path, point: str,
                                                                   next_cmd: str) -> None:
    """A kill at each step after v2's copy is complete: the next run of any command
    that loads the stack (a reader, `show`, as well as a writer) finishes it; v2 is
    then listed in the manifest, and the next `series record` closes the edit."""
    st = small_stack(tmp_path / "s", n=4)
    r = st.series("edit", "demo", "--onto", "main", "--json")
    assert r.rc == 0, r.err
    wt = Path(r.json["worktree"])
    (wt / "mm" / "demo3.c").write_text((wt / "mm" / "demo3.c").read_text() + "int demo3_extra;\n")
    git(wt, "commit", "-qam", "demo: a fixup")
    p = subprocess.run([sys.executable, "-c", _KILL_AT, point, "-C", str(st.ws), "record", "demo"],
                       capture_output=True, text=True, env={**os.environ, **st.env()}, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    stack_dir = st.ws / "patches" / "demo"
    r = st.series(next_cmd, "demo")
    assert r.rc == 0, r.err
    manifest = (stack_dir / "stack.toml").read_text()
    assert "version = 2" in manifest and set(store_state(st.ws, "demo")) == {1, 2}, (r.rc, r.err)
    assert sorted(x.name for x in stack_dir.iterdir() if x.name.startswith(".")) == []
    assert not list(stack_dir.glob("v*/.pending.toml"))
    if next_cmd == "record":
        assert "already recorded demo v2" in r.out and "closed the edit" in r.out, r.out
        assert not wt.exists()
    else:                                 # a reader finished the store; the edit is closed by the next record
        r = st.series("record", "demo")
        assert r.rc == 0 and "already recorded demo v2" in r.out, (r.rc, r.err)
    assert not wt.exists()
    r = st.series("record", "demo")
    assert r.rc == 1 and "no edit of demo is open" in r.err, "the edit stayed open"
    assert (stack_dir / "stack.toml").read_text().count("version = 2") == 1
    assert set(store_state(st.ws, "demo")) == {1, 2}


def _listed_and_on_disk(stack_dir: Path) -> tuple[set[int], set[int]]:
    """(versions stack.toml lists, versions with a v<N>/ directory)."""
    import tomllib
    data = tomllib.loads((stack_dir / "stack.toml").read_text())
    listed = {int(r["version"]) for r in data.get("revisions", [])}
    on_disk = {int(d.name[1:]) for d in stack_dir.iterdir() if d.is_dir() and re.fullmatch(r"v\d+", d.name)}
    return listed, on_disk


# Where `series import` of a new revision is killed: after its complete copy is in
# place as `.v2.incoming-new/` but before it is v2/; once it is v2/ (its old copy,
# if any, not yet settled); right before the manifest is written; after it, before
# the revision's `.pending.toml` is removed.
IMPORT_KILL_POINTS = ["series.stacks.revdir._finish", "series.stacks.revdir._settle",
                      "series.stacks.importer.atomic_write_text", "series.stacks.revdir.complete"]
IMPORT_KILL_IDS = ["before-swap", "after-swap", "before-manifest", "after-manifest"]


@pytest.mark.parametrize("point", IMPORT_KILL_POINTS, ids=IMPORT_KILL_IDS)
@pytest.mark.parametrize("next_cmd", ["import", "show", "list"])
def test_import_killed_between_its_revision_and_its_manifest_entry(tmp_path: Path, point: str,
                                                                   next_cmd: str) -> None:
    """`series import` of v2 into a stack that has v1, killed at each step between
    v2's swap and its manifest entry: the next run of a writer (`import`) or of a
    reader (`show`, `list`) leaves the store old or new, v2 listed in stack.toml if
    and only if v2/ exists; a re-import then reaches the new state (and says so)."""
    st = small_stack(tmp_path / "s", versions=(1, 2), n=4)
    stack_dir = st.ws / "patches" / "demo"
    old = store_state(st.ws, "demo")
    args = ["import", "demo", "--mbox", str(st.mboxes[2])]
    p = subprocess.run([sys.executable, "-c", _KILL_AT, point, "-C", str(st.ws), *args],
                       capture_output=True, text=True, env={**os.environ, **st.env()}, timeout=300)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    r = st.series(*{"import": args, "show": ["show", "demo"], "list": ["list"]}[next_cmd])
    assert r.rc == 0, r.err
    listed, on_disk = _listed_and_on_disk(stack_dir)
    assert listed == on_disk, f"stack.toml lists {sorted(listed)}, the directories are {sorted(on_disk)}"
    now = store_state(st.ws, "demo")
    assert now == old or (set(now) == {1, 2} and now[1] == old[1] and len(now[2]) == 4), \
        "the store is neither old nor new"
    r = st.series(*args)
    assert r.rc == 0, r.err
    assert _listed_and_on_disk(stack_dir) == ({1, 2}, {1, 2})
    assert (stack_dir / "stack.toml").read_text().count("version = 2") == 1
    assert sorted(x.name for x in stack_dir.iterdir() if x.name.startswith(".")) == []
    assert not list(stack_dir.glob("v*/.pending.toml"))
    now = store_state(st.ws, "demo")
    assert set(now) == {1, 2} and now[1] == old[1] and len(now[2]) == 4
    r = st.series(*args)
    assert r.rc == 0 and "v2: unchanged" in r.out, (r.out, r.err)


@pytest.mark.parametrize("point", IMPORT_KILL_POINTS[1:3], ids=IMPORT_KILL_IDS[1:3])
def test_import_create_killed_before_the_manifest(tmp_path: Path, point: str) -> None:
    """`series import --create` of a new stack, killed once v1/ is in place but
    before stack.toml exists: the next import (with or without --create) writes
    the manifest, and the stack is listed with v1."""
    st = small_stack(tmp_path / "s", versions=(1,), n=4, import_versions=())
    stack_dir = st.ws / "patches" / "demo"
    args = ["import", "demo", "--mbox", str(st.mboxes[1])]
    p = subprocess.run([sys.executable, "-c", _KILL_AT, point, "-C", str(st.ws), *args, "--create"],
                       capture_output=True, text=True, env={**os.environ, **st.env()}, timeout=300)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    assert not (stack_dir / "stack.toml").exists()
    r = st.series(*args)
    assert r.rc == 0, r.err
    assert _listed_and_on_disk(stack_dir) == ({1}, {1})
    assert not list(stack_dir.glob("v*/.pending.toml"))
    r = st.series("list")
    assert r.rc == 0 and "demo" in r.out, (r.out, r.err)
    assert len(store_state(st.ws, "demo")[1]) == 4


@pytest.mark.parametrize("fault", ["ENOSPC", "Ctrl-C"])
def test_import_failing_at_its_manifest_takes_its_revision_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 fault: str) -> None:
    """Not killed but failed at the manifest write (a full disk, a Ctrl-C): v2/
    is in place but stack.toml does not list it, so the import takes v2 back
    before it ends: the store is in the old state at once, and nothing is left
    for the next run to finish."""
    import errno
    from series.stacks import importer
    st = small_stack(tmp_path / "s", versions=(1, 2), n=4)
    stack_dir = st.ws / "patches" / "demo"
    old, manifest = store_state(st.ws, "demo"), (stack_dir / "stack.toml").read_text()

    def failing(path: Path, text: str) -> None:
        assert (stack_dir / "v2" / ".pending.toml").is_file()     # the fault lands after the swap
        if fault == "ENOSPC":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        raise KeyboardInterrupt
    monkeypatch.setattr(importer, "atomic_write_text", failing)
    args = ["import", "demo", "--mbox", str(st.mboxes[2])]
    r = st.series(*args)
    assert r.rc != 0 and "Traceback" not in r.err, (r.rc, r.err)
    assert _listed_and_on_disk(stack_dir) == ({1}, {1})
    assert sorted(x.name for x in stack_dir.iterdir() if x.name.startswith(".")) == []
    assert (stack_dir / "stack.toml").read_text() == manifest and store_state(st.ws, "demo") == old
    monkeypatch.undo()
    r = st.series(*args)
    assert r.rc == 0 and "v2: created" in r.out, (r.out, r.err)
    assert _listed_and_on_disk(stack_dir) == ({1, 2}, {1, 2})


# ---------------------------------------------------------------------------- Ctrl-C at start-up
# Python installs its own SIGINT handler (KeyboardInterrupt) before site, the .pth
# files and the script run: a Ctrl-C in a command's first milliseconds met it and
# ended in a traceback (or "Fatal Python error: init_sys_streams").  tools/setup's
# `series` script has env(1) start Python with SIGINT blocked and takes it first.

def _setup_script(dest: Path) -> Path:
    """The `series` script as tools/setup writes it (its block run with the checkout
    as `top` and `dest` as the directory holding .venv/bin/)."""
    (dest / ".venv" / "bin").mkdir(parents=True)
    block = subprocess.run(["sed", "-n", "/^venv_py=/,/^fi$/p", str(REPO / "tools" / "setup")],
                           capture_output=True, text=True, check=True).stdout
    assert "series.tmp" in block, "tools/setup has no block writing the series script"
    subprocess.run(["bash", "-c", f'set -euo pipefail; top="$1"; {block}', "setup", str(REPO)], cwd=dest, check=True)
    script = dest / ".venv" / "bin" / "series"
    assert script.is_file(), "tools/setup wrote no series script (env --block-signal missing?)"
    return script


def _early_sigint_sweep(script: Path, ws: Path, delays: list[float], env: dict[str, str]) -> tuple[list[str], int]:
    """SIGINT `script -C ws list` after each delay.  Returns the outcomes that are
    not one of: killed by SIGINT before Python ran (silent), `series: interrupted`
    and 130, the complete run (exit 0); and how many were `series: interrupted`."""
    bad, interrupted = [], 0
    for d in delays:
        p = subprocess.Popen([str(script), "-C", str(ws), "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
        time.sleep(d)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        ok = ((p.returncode == -signal.SIGINT and err == "") or
              (p.returncode == 130 and err == "series: interrupted\n") or
              (p.returncode == 0 and err == "" and out == "no stacks\n"))
        interrupted += p.returncode == 130
        if not ok:
            bad.append(f"{d * 1000:.1f} ms: exit {p.returncode}: {err[-300:]!r}")
    return bad, interrupted


def test_ctrl_c_in_the_first_milliseconds(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "patches").mkdir(parents=True)
    (ws / "series.toml").write_text('[workspace]\nname = "t"\n')
    env = {k: v for k, v in os.environ.items() if k != "SERIES_DEBUG"}
    env["SERIES_CACHE"] = str(tmp_path / "cache")
    ours = _setup_script(tmp_path / "setup")
    # The delays cover a whole run of the command, whatever the machine's load.
    took = []
    for _ in range(3):
        t = time.monotonic()
        assert subprocess.run([str(ours), "-C", str(ws), "list"], env=env, capture_output=True).returncode == 0
        took.append(time.monotonic() - t)
    whole = sorted(took)[1]
    delays = [whole * k / 40 for k in range(41)] * 2
    # pip's own script as a control shows the gap only now and then (it depends on the load), so
    # it is not asserted here: bench/early-sigint --pip measures it; the lines below fail when
    # the script's blocking or its handler is taken out (tried).
    bad, interrupted = _early_sigint_sweep(ours, ws, delays, env)
    assert bad == []
    # A Ctrl-C is not lost either (SIGINT left blocked would end every run in exit 0).
    assert interrupted >= len(delays) // 4, f"only {interrupted} of {len(delays)} runs were interrupted"
