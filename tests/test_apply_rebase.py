"""series apply / series rebase: worktrees of ours, hunk reports, already-present, safety."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import tomli_w

from conftest import commit_files, git, repo_state, run_series, unique_name

LINES = [f"line {i}" for i in range(1, 41)]


def _write_stack(ws: Path, name: str, patch_files: list[Path], expected: int | None = None) -> None:
    d = ws / "patches" / name
    (d / "v1").mkdir(parents=True)
    (d / "stack.toml").write_text(tomli_w.dumps({"name": name, "title": f"{name} test stack", "upstream": False}))
    pats = []
    for i, f in enumerate(patch_files, start=1):
        dest = d / "v1" / f.name
        dest.write_bytes(f.read_bytes())
        subj = re.search(r"^Subject: (?:\[[^]]*\] )?(.*)$", f.read_text(), re.M).group(1)
        pats.append({"index": i, "file": f.name, "subject": subj, "author": "A U Thor <a@example.org>",
                     "message_id": f"{name}-{i}@example.org", "date": "2024-01-01T00:00:00+00:00"})
    rec = {"revision": {"version": 1, "expected": expected or len(pats), "title": f"{name} test stack"},
           "patches": pats}
    (d / "v1" / "import.toml").write_text(tomli_w.dumps(rec))


@pytest.fixture
def mini(workspace: Path, tmp_path: Path):  # noqa: ANN201
    """A user repository (a path tree) and a 3-patch stack made on its `main`; branches
    `up` (patch 1 already merged) and `other` (line 5 changed differently)."""
    user = tmp_path / "linux"
    user.mkdir()
    git(user, "init", "-q", "-b", "main")
    git(user, "config", "user.name", "U")
    git(user, "config", "user.email", "u@example.org")
    base = commit_files(user, "base", **{"a.c": "\n".join(LINES) + "\n"})
    git(user, "checkout", "-qb", "work")
    l2 = list(LINES)
    l2[4] = "line 5 changed by patch 1"
    commit_files(user, "mini: change line 5", **{"a.c": "\n".join(l2) + "\n"})
    commit_files(user, "mini: add b.c", **{"b.c": "int b;\n"})
    l3 = list(l2)
    l3[29] = "line 30 changed by patch 3"
    commit_files(user, "mini: change line 30", **{"a.c": "\n".join(l3) + "\n"})
    out = tmp_path / "fp"
    git(user, "format-patch", "-q", "-o", str(out), f"{base}..work")
    git(user, "checkout", "-q", "-b", "up", base)
    commit_files(user, "upstream merged patch 1", **{"a.c": "\n".join(l2) + "\n"})
    git(user, "checkout", "-q", "-b", "other", base)
    lo = list(LINES)
    lo[3:6] = ["line 4 rewritten", "line 5 rewritten", "line 6 rewritten"]
    commit_files(user, "upstream changed it otherwise", **{"a.c": "\n".join(lo) + "\n"})
    git(user, "checkout", "-q", "main")
    files = sorted(out.glob("*.patch"))
    _write_stack(workspace, "mini", files)
    _write_stack(workspace, "mini-partial", files, expected=4)
    name = unique_name("mini")
    r = run_series("tree", "add", name, "--path", str(user), cwd=workspace)
    assert r.rc == 0, r.err
    return workspace, user, name


def test_apply_clean_commits_in_our_worktree(mini) -> None:  # noqa: ANN001
    ws, user, tree = mini
    before = repo_state(user)
    r = run_series("apply", "mini", "v1", "--onto", "main", "--tree", tree, "--json", cwd=ws)
    assert r.rc == 0, r.err
    j = r.json
    assert j["status"] == "applied" and j["version"] == 1 and j["stack"] == "mini"
    assert j["base_commit"] == git(user, "rev-parse", "main").strip()
    assert [p["status"] for p in j["patches"]] == ["applied"] * 3
    assert j["patches"][0]["files"] == [{"path": "a.c", "hunks": 1, "clean": 1, "offset": 0, "fuzz": 0, "rejected": 0}]
    wt = Path(j["worktree"])
    assert "worktrees" in wt.parts and not str(wt).startswith(str(user))
    # the worktree is detached; our branch was moved (compare-and-swap) to its HEAD
    assert git(wt, "rev-parse", "--abbrev-ref", "HEAD").strip() == "HEAD"
    assert git(wt, "rev-parse", "refs/heads/series/mini/v1").strip() == git(wt, "rev-parse", "HEAD").strip()
    assert j["branch"] == "series/mini/v1"
    log = git(wt, "log", "--format=%an|%s", "-3").splitlines()
    assert log == ["Test Author|mini: change line 30", "Test Author|mini: add b.c", "Test Author|mini: change line 5"]
    assert j["patches"][2]["commit"] == git(wt, "rev-parse", "HEAD").strip()
    assert repo_state(user) == before


def test_already_present_and_partial(mini) -> None:  # noqa: ANN001
    ws, user, tree = mini
    before = repo_state(user)
    r = run_series("apply", "mini-partial", "--onto", "up", "--tree", tree, "--json", cwd=ws)
    assert r.rc == 0, r.err
    j = r.json
    assert [p["status"] for p in j["patches"]] == ["already-present", "applied", "applied", "missing"]
    assert j["patches"][0]["how"] == "reverse-applies"
    assert j["status"] == "partial" and j["missing"] == [4]
    assert repo_state(user) == before


def test_conflict_report_keeps_rejects(mini) -> None:  # noqa: ANN001
    ws, user, tree = mini
    before = repo_state(user)
    r = run_series("apply", "mini", "--onto", "other", "--tree", tree, "--json", cwd=ws)
    assert r.rc == 2
    j = r.json
    p1 = j["patches"][0]
    assert p1["status"] == "conflict"
    assert p1["files"] == [{"path": "a.c", "hunks": 1, "clean": 0, "offset": 0, "fuzz": 0, "rejected": 1}]
    assert p1["rejects"] and Path(p1["rejects"][0]).is_file()
    assert Path(p1["rejects"][0]).is_relative_to(Path(j["log_dir"]))
    assert [p["status"] for p in j["patches"][1:]] == ["applied", "applied"]
    assert repo_state(user) == before


def test_offset_and_fuzz_are_counted_per_hunk(mini, tmp_path: Path) -> None:  # noqa: ANN001
    """On a base with 3 lines added at the top and line 27 changed: patch 1's hunk
    applies exactly 3 lines down (offset), patch 3's only with fuzz (its first
    context line differs); GNU patch, run by the test, says the same."""
    ws, user, tree = mini
    shifted = ["new 1", "new 2", "new 3"] + list(LINES)
    shifted[3 + 26] = "line 27 edited upstream"
    git(user, "checkout", "-q", "-b", "shifted", "main")
    commit_files(user, "upstream: lines at the top, line 27 edited", **{"a.c": "\n".join(shifted) + "\n"})
    git(user, "checkout", "-q", "main")
    r = run_series("apply", "mini", "--onto", "shifted", "--tree", tree, "--json", cwd=ws)
    assert r.rc == 0, r.err
    j = r.json
    assert [p["status"] for p in j["patches"]] == ["fuzz", "applied", "fuzz"]
    got = _counts(j)
    assert got == [(1, "fuzz", {"a.c": (1, 0, 1, 0, 0)}), (2, "applied", {"b.c": (1, 1, 0, 0, 0)}),
                   (3, "fuzz", {"a.c": (1, 0, 0, 1, 0)})]
    mails = sorted((ws / "patches" / "mini" / "v1").glob("*.patch"))
    assert gnu_patch_oracle(user / ".git", git(user, "rev-parse", "shifted").strip(), mails, tmp_path) == got
    assert j["patches"][0]["how"] == "hunks applied at an offset or with fuzz"
    wt = Path(j["worktree"])
    assert (wt / "a.c").read_text().splitlines()[7] == "line 5 changed by patch 1"
    assert (wt / "a.c").read_text().splitlines()[32] == "line 30 changed by patch 3"


def test_rebase_conflict_abort_continue_and_record(mini) -> None:  # noqa: ANN001
    ws, user, tree = mini
    before = repo_state(user)
    r = run_series("rebase", "mini", "other", "--tree", tree, "--json", cwd=ws)
    assert r.rc == 2
    j = r.json
    assert j["status"] == "conflict" and j["new_version"] is None and j["in_progress"]
    assert not (ws / "patches" / "mini" / "v2").exists()
    # a second rebase refuses while one is in progress
    r2 = run_series("rebase", "mini", "other", "--tree", tree, cwd=ws)
    assert r2.rc == 1 and "in progress" in r2.err
    r = run_series("rebase", "--abort", cwd=ws)
    assert r.rc == 0, r.err
    assert not Path(j["worktree"]).exists()
    assert not (ws / "patches" / "mini" / "v2").exists()
    # again, then resolve by hand and continue
    j = run_series("rebase", "mini", "other", "--tree", tree, "--json", cwd=ws).json
    wt = Path(j["worktree"])
    assert "<<<<<<<" in (wt / "a.c").read_text()  # a 3-way conflict: the preimage blobs exist
    resolved = list(LINES)
    resolved[3:6] = ["line 4 rewritten", "line 5 changed by patch 1", "line 6 rewritten"]
    (wt / "a.c").write_text("\n".join(resolved) + "\n")
    r = run_series("rebase", "--continue", "--json", cwd=ws)
    assert r.rc == 0, r.err + r.out
    j = r.json
    assert j["new_version"] == 2 and j["status"] == "applied"
    r = run_series("show", "mini", "v2", "--json", cwd=ws)
    assert r.rc == 0, r.err
    rev = r.json["revisions"][0]
    assert rev["base"] == git(user, "rev-parse", "other").strip()
    assert rev["present"] == [1, 2, 3] and rev["complete"]
    assert any("Rebased v1 onto other" in c for c in rev["changelog"])
    # rerere: the same rebase again reuses the recorded resolution, no stop
    import shutil
    shutil.rmtree(ws / "patches" / "mini" / "v2")
    r = run_series("rebase", "mini", "other", "--tree", tree, "--from", "v1", "--json", cwd=ws)
    assert r.rc == 0, r.out + r.err
    assert "rerere" in r.json["patches"][0]["how"]
    assert repo_state(user) == before


def test_rebase_clean_records_next_version(mini) -> None:  # noqa: ANN001
    ws, user, tree = mini
    r = run_series("rebase", "mini", "up", "--tree", tree, "--json", cwd=ws)
    assert r.rc == 0, r.err
    j = r.json
    assert j["new_version"] == 2
    rev = run_series("show", "mini", "v2", "--json", cwd=ws).json["revisions"][0]
    assert rev["expected"] == 2  # patch 1 is already in `up`: dropped, and said so
    assert any("Dropped v1 patch 1" in c for c in rev["changelog"])
    patches = sorted((ws / "patches" / "mini" / "v2").glob("*.patch"))
    assert len(patches) == 2 and "[PATCH v2 1/2]" in patches[0].read_text()


def test_lock_refuses_second_run(mini) -> None:  # noqa: ANN001
    ws, user, tree = mini
    from series.fsutil import exclusive_lock
    from series.workspace import find_workspace
    w = find_workspace(str(ws))
    with exclusive_lock(w.locks / "mini.lock", "stack mini"):   # held by another process: this one
        r = run_series("apply", "mini", "--onto", "main", "--tree", tree, cwd=ws, subprocess=True)
    assert r.rc == 1 and "busy" in r.err and len(r.err.strip().splitlines()) == 1


def test_stale_worktree_recovered(mini) -> None:  # noqa: ANN001
    ws, user, tree = mini
    j = run_series("apply", "mini", "--onto", "main", "--tree", tree, "--json", cwd=ws).json
    wt = Path(j["worktree"])
    (wt / "a.c").write_text("garbage left by a killed run\n")
    (wt / "junk.rej").write_text("x")
    j2 = run_series("apply", "mini", "--onto", "main", "--tree", tree, "--json", cwd=ws).json
    assert j2["status"] == "applied" and not (wt / "junk.rej").exists()
    import shutil
    shutil.rmtree(wt)  # gone without `git worktree remove`
    r = run_series("apply", "mini", "--onto", "main", "--tree", tree, "--json", cwd=ws)
    assert r.rc == 0 and r.json["status"] == "applied", r.err


def test_two_trees_with_the_same_base_get_their_own_worktrees(mini, tmp_path: Path) -> None:  # noqa: ANN001
    """Two --path trees whose `main` is the same commit: each apply works in a
    worktree of its own tree's repository, and neither disturbs the other's."""
    ws, user, tree = mini
    clone = tmp_path / "linux-clone"
    git(tmp_path, "clone", "-q", str(user), str(clone))
    tree2 = tree + "-b"
    assert run_series("tree", "add", tree2, "--path", str(clone), cwd=ws).rc == 0
    assert git(user, "rev-parse", "main") == git(clone, "rev-parse", "main")
    cache = Path(os.environ["SERIES_CACHE"])
    j1 = run_series("apply", "mini", "--onto", "main", "--tree", tree, "--json", cwd=ws).json
    j2 = run_series("apply", "mini", "--onto", "main", "--tree", tree2, "--json", cwd=ws).json
    assert j1["status"] == j2["status"] == "applied" and j1["base_commit"] == j2["base_commit"]
    wt1, wt2 = Path(j1["worktree"]), Path(j2["worktree"])
    assert wt1 != wt2
    for wt, name in ((wt1, tree), (wt2, tree2)):
        common = Path(git(wt, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())
        assert common.resolve() == (cache / "trees" / f"{name}.git").resolve()
    # the first tree's worktree and branch are as its apply left them
    assert wt1.is_dir() and git(wt1, "rev-parse", "HEAD").strip() == j1["patches"][-1]["commit"]
    assert git(wt1, "rev-parse", "refs/heads/series/mini/v1") == git(wt1, "rev-parse", "HEAD")
    assert git(wt2, "rev-parse", "refs/heads/series/mini/v1") == git(wt2, "rev-parse", "HEAD")


def _second_workspace(ws: Path, tmp_path: Path) -> Path:
    import shutil
    ws2 = tmp_path / "ws2"
    shutil.copytree(ws, ws2)
    return ws2


def test_rebase_state_is_kept_per_workspace(mini, tmp_path: Path) -> None:  # noqa: ANN001
    """Two workspaces with a stack of the same name rebase at the same time: each
    has its own state and worktree; aborting one leaves the other to continue."""
    ws, user, tree = mini
    ws2 = _second_workspace(ws, tmp_path)
    j1 = run_series("rebase", "mini", "other", "--tree", tree, "--json", cwd=ws).json
    r2 = run_series("rebase", "mini", "other", "--tree", tree, "--json", cwd=ws2)
    assert r2.rc == 2, r2.err
    j2 = r2.json
    assert j1["in_progress"] and j2["in_progress"]
    wt1, wt2 = Path(j1["worktree"]), Path(j2["worktree"])
    assert wt1 != wt2 and j1["branch"] != j2["branch"]
    r = run_series("rebase", "--abort", cwd=ws)
    assert r.rc == 0, r.err
    assert not wt1.exists() and wt2.is_dir() and "<<<<<<<" in (wt2 / "a.c").read_text()
    assert run_series("rebase", "--continue", cwd=ws).rc == 1          # nothing left in ws
    resolved = list(LINES)
    resolved[3:6] = ["line 4 rewritten", "line 5 changed by patch 1", "line 6 rewritten"]
    (wt2 / "a.c").write_text("\n".join(resolved) + "\n")
    r = run_series("rebase", "--continue", "--json", cwd=ws2)
    assert r.rc == 0, r.err + r.out
    assert r.json["new_version"] == 2
    assert (ws2 / "patches" / "mini" / "v2").is_dir() and not (ws / "patches" / "mini" / "v2").exists()


def _state_file(ws: Path) -> Path:
    import json
    cache = Path(os.environ["SERIES_CACHE"])
    found = [p for p in (cache / "rebase").rglob("rebase-state.json")
             if json.loads(p.read_text()).get("workspace") == str(ws.resolve())]
    assert len(found) == 1, found
    return found[0]


def test_rebase_refuses_a_state_naming_a_directory_outside_our_worktrees(mini, tmp_path: Path) -> None:  # noqa: ANN001
    """--abort removes, --continue resets and cleans the worktree a state file
    names: neither may touch a directory that is not a worktree of ours."""
    import json
    ws, user, tree = mini
    r = run_series("rebase", "mini", "other", "--tree", tree, "--json", cwd=ws)
    assert r.rc == 2, r.err
    ours = Path(r.json["worktree"])
    victim = tmp_path / "victim"          # a repository of the user's, say
    victim.mkdir()
    git(victim, "init", "-q")
    (victim / "precious.txt").write_text("the user's file\n")
    state = _state_file(ws)
    data = json.loads(state.read_text())
    for forged in (str(victim), str(ours / ".." / ".." / ".." / ".." / "victim")):
        data["worktree"] = forged
        state.write_text(json.dumps(data))
        for cmd in ("--abort", "--continue"):
            r = run_series("rebase", cmd, cwd=ws)
            assert r.rc == 1, (cmd, r.out, r.err)
            assert "refusing" in r.err and len(r.err.strip().splitlines()) == 1
            assert (victim / "precious.txt").read_text() == "the user's file\n"
    assert state.is_file() and ours.is_dir()


@pytest.mark.parametrize("args, needle", [
    (["apply", "nosuch", "--onto", "main"], "unknown stack"),
    (["apply", "mini", "v9", "--onto", "main"], "no revision v9"),
    (["apply", "mini", "--onto", "no-such-ref"], "unknown ref"),
    (["apply", "mini", "--onto", "main", "--tree", "nosuchtree"], "unknown kernel tree"),
    (["rebase", "mini"], "usage"),
    (["rebase", "--continue"], "no rebase in progress"),
    (["apply", "mini", "vX", "--onto", "main"], "not a revision"),
])
def test_bad_input_one_line(mini, args: list[str], needle: str) -> None:  # noqa: ANN001
    ws, user, tree = mini
    if "--tree" not in args and args[0] == "apply":
        args = [*args, "--tree", tree]
    r = run_series(*args, cwd=ws)
    assert r.rc == 1, r.out + r.err
    assert needle in r.err and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


def _slow_patch(tmp_path: Path) -> tuple[Path, Path]:
    """A `patch` first in PATH that says it started (a flag file), then waits, then
    runs the real GNU patch: the interrupt lands while a patch is being applied."""
    import shutil
    real = shutil.which("patch")
    assert real, "GNU patch is needed"
    bindir = tmp_path / "slowbin"
    bindir.mkdir()
    flag = tmp_path / "patch-started"
    shim = bindir / "patch"
    shim.write_text(f"#!/bin/sh\ntouch '{flag}'\nsleep 30\nexec '{real}' \"$@\"\n")
    shim.chmod(0o755)
    return bindir, flag


@pytest.mark.parametrize("command", ["apply", "rebase"])
def test_sigint_midway_leaves_user_repo_and_store_intact(mini, tmp_path: Path, command: str) -> None:  # noqa: ANN001
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) while a
    patch is being applied: exit 130 with one line, the user's refs and worktree
    unchanged, the store still readable, nothing recorded, and the next run works."""
    import os
    import signal
    import sys
    import time
    ws, user, tree = mini
    (user / "wip.c").write_text("uncommitted work of the user\n")   # a dirty user worktree
    before = repo_state(user)
    bindir, flag = _slow_patch(tmp_path)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    args = ["apply", "mini", "--onto", "main"] if command == "apply" else ["rebase", "mini", "up"]
    proc = subprocess.Popen([sys.executable, "-m", "series", *args, "--tree", tree], cwd=ws, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "patch never started"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "series: interrupted"
    assert repo_state(user) == before
    show = run_series("show", "mini", "--json", cwd=ws)
    assert show.rc == 0, show.err
    assert [r["version"] for r in show.json["revisions"]] == [1]   # nothing half-recorded
    assert not (ws / "patches" / "mini" / "v2").exists()
    assert not [p for p in (ws / "patches" / "mini").iterdir() if p.name.startswith(".")]
    # the next run recovers the worktree the interrupted one left
    again = run_series(*args, "--tree", tree, "--json", cwd=ws)
    assert again.rc == 0, again.err + again.out
    assert again.json["status"] == "applied"
    assert repo_state(user) == before


# -- integration: the real uffd-move mails on the real Debian trees ---------------------
def _counts(j: dict) -> list[tuple]:
    return [(p["index"], p["status"], {f["path"]: (f["hunks"], f["clean"], f["offset"], f["fuzz"], f["rejected"])
                                       for f in p["files"]}) for p in j["patches"]]


def _newest(repo: Path, prefix: str) -> str:
    tags = subprocess.run(["git", "--git-dir", str(repo), "tag", "--list", f"{prefix}.*", "--sort=version:refname"],
                          capture_output=True, text=True, check=True).stdout.split()
    return subprocess.run(["git", "--git-dir", str(repo), "rev-parse", f"{tags[-1]}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()


_HUNK = re.compile(r"^Hunk #\d+ (succeeded|FAILED|ignored) at \d+(?: with fuzz (\d+))?(?: \(offset (-?\d+) lines?\))?\.$")


def gnu_patch_oracle(repo: Path, base: str, mails: list[Path], tmp: Path) -> list[tuple]:
    """What GNU patch says, run by this test on its own copy of the files: per patch
    and per file, hunks (total, clean, offset, fuzz, rejected).  Each mail is applied
    in order (patch -p1 --force, its default fuzz) after a dry run; one with a
    rejected hunk is left out, as `series apply` does, and the next goes on."""
    paths = sorted({m.group(1) for f in mails for m in re.finditer(r"^\+\+\+ b/(\S+)$", f.read_text(), re.M)})
    root = tmp / "oracle"
    root.mkdir()
    for path in paths:
        blob = subprocess.run(["git", "--git-dir", str(repo), "show", f"{base}:{path}"], capture_output=True)
        if blob.returncode == 0:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(blob.stdout)
    out = []
    for i, mail in enumerate(mails, start=1):
        dry = subprocess.run(["patch", "-p1", "--force", "--dry-run", "--verbose", "-i", str(mail)], cwd=root,
                             capture_output=True, text=True)
        files: dict[str, list[int]] = {}
        cur = None
        for line in dry.stdout.splitlines():
            if line.startswith("checking file "):
                cur = files.setdefault(line.removeprefix("checking file "), [0, 0, 0, 0, 0])
            elif line.startswith("|+++ b/"):                       # a file the tree does not have
                cur = files.setdefault(line.removeprefix("|+++ b/"), [0, 0, 0, 0, 0])
            elif (m := _HUNK.match(line)) is not None:
                assert cur is not None, line
                cur[0] += 1
                if m.group(1) != "succeeded":
                    cur[4] += 1
                elif m.group(2):
                    cur[3] += 1
                elif m.group(3):
                    cur[2] += 1
                else:
                    cur[1] += 1
        rejected = any(c[4] for c in files.values())
        inexact = any(c[2] or c[3] for c in files.values())
        if not rejected:
            subprocess.run(["patch", "-p1", "--force", "--quiet", "-i", str(mail)], cwd=root, check=True)
        status = "conflict" if rejected else "fuzz" if inexact else "applied"
        out.append((i, status, {k: tuple(v) for k, v in files.items()}))
    return out


# Pinned: uffd-move v2 as posted, onto the Debian trees.  (total, clean, offset, fuzz, rejected) per file.
V2_ONTO = {
    "debian/6.1": [
        (1, "fuzz", {"mm/rmap.c": (2, 0, 2, 0, 0)}),
        (2, "fuzz", {"fs/userfaultfd.c": (2, 0, 2, 0, 0), "include/linux/rmap.h": (1, 1, 0, 0, 0),
                     "include/linux/userfaultfd_k.h": (1, 0, 0, 1, 0),
                     "include/uapi/linux/userfaultfd.h": (4, 0, 1, 3, 0), "mm/huge_memory.c": (1, 0, 1, 0, 0),
                     "mm/khugepaged.c": (1, 0, 1, 0, 0), "mm/userfaultfd.c": (1, 0, 1, 0, 0)}),
        (3, "conflict", {"tools/testing/selftests/mm/uffd-common.c": (3, 0, 0, 0, 3),
                         "tools/testing/selftests/mm/uffd-common.h": (1, 0, 0, 0, 1),
                         "tools/testing/selftests/mm/uffd-unit-tests.c": (3, 0, 0, 0, 3)}),
    ],
    "debian/6.12": [
        (1, "fuzz", {"mm/rmap.c": (2, 0, 0, 2, 0)}),
        (2, "conflict", {"fs/userfaultfd.c": (2, 0, 0, 2, 0), "include/linux/rmap.h": (1, 0, 0, 1, 0),
                         "include/linux/userfaultfd_k.h": (1, 0, 0, 1, 0),
                         "include/uapi/linux/userfaultfd.h": (4, 0, 0, 1, 3), "mm/huge_memory.c": (1, 0, 0, 1, 0),
                         "mm/khugepaged.c": (1, 0, 0, 0, 1), "mm/userfaultfd.c": (1, 0, 0, 1, 0)}),
        (3, "conflict", {"tools/testing/selftests/mm/uffd-common.c": (3, 0, 2, 1, 0),
                         "tools/testing/selftests/mm/uffd-common.h": (1, 0, 0, 0, 1),
                         "tools/testing/selftests/mm/uffd-unit-tests.c": (3, 0, 0, 3, 0)}),
    ],
}


@pytest.mark.integration
@pytest.mark.parametrize("onto", ["debian/6.12", "debian/6.1"])
def test_uffd_v2_hunk_report_pinned_and_equal_to_gnu_patch(debian_trees, uffd_workspace: Path, onto: str,  # noqa: ANN001
                                                           tmp_path: Path) -> None:
    runs = [run_series("apply", "uffd-move", "v2", "--onto", onto, "--tree", "debian", "--json", cwd=uffd_workspace)
            for _ in range(2)]
    for r in runs:
        assert r.rc == 2, r.err                       # a patch conflicts on both trees
        assert r.json["status"] == "conflict"
    assert _counts(runs[0].json) == _counts(runs[1].json)  # stable
    got = _counts(runs[0].json)
    assert got == V2_ONTO[onto]
    repo = Path(os.environ["SERIES_CACHE"]) / "trees" / "debian.git"
    base = _newest(repo, onto)
    assert runs[0].json["base_commit"] == base
    mails = sorted((uffd_workspace / "patches" / "uffd-move" / "v2").glob("000[1-9]-*.patch"))
    assert gnu_patch_oracle(repo, base, mails, tmp_path) == got
    # the text says the same
    text = run_series("apply", "uffd-move", "v2", "--onto", onto, "--tree", "debian", cwd=uffd_workspace).out
    for _, _, files in got:
        for path, (hunks, clean, offset, fuzz, rejected) in files.items():
            assert f"{path}: {hunks} hunks, {clean} clean, {offset} offset, {fuzz} fuzz, {rejected} rejected" in text


def _hunks_added(mail: Path) -> dict[tuple[str, int], list[str]]:
    """(file, hunk number) -> the hunk's added lines, read by this test from the mail."""
    out: dict[tuple[str, int], list[str]] = {}
    path, n, left = None, 0, 0
    for line in mail.read_text().split("\n"):
        if left <= 0 and line.startswith("+++ b/"):
            path, n = line[6:], 0
        elif left <= 0 and line.startswith("@@ ") and path:
            n += 1
            m = re.match(r"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@", line)
            old, new = int(m.group(1) or 1), int(m.group(2) or 1)
            left = old + new     # lines of this hunk still to read, counted from both sides
            out[(path, n)] = []
        elif left > 0:
            tag = line[:1]
            left -= 2 if tag == " " else 1
            if tag == "+":
                out[(path, n)].append(line[1:])
    return out


def present_by_gnu_tools(root: Path, mail: Path, tmp: Path) -> dict[tuple[str, int], str]:
    """Per hunk, whether GNU tools find the change in the files under root:
    `reverse` (patch -R applies it, all context may be fuzzed away), `inserted-into`
    (GNU diff aligns the added lines with the file deleting none of them, and the
    lines the file has in between are fewer than the hunk adds), else `absent`."""
    rev = subprocess.run(["patch", "-p1", "-R", "--force", "--dry-run", "-F3", "--verbose", "-i", str(mail)],
                         cwd=root, capture_output=True, text=True).stdout
    verdict: dict[tuple[str, int], str] = {}
    cur = None
    for line in rev.splitlines():
        if line.startswith("checking file "):
            cur = line.removeprefix("checking file ")
        elif (m := re.match(r"^Hunk #(\d+) succeeded", line)) and cur:
            verdict[(cur, int(m.group(1)))] = "reverse"
    for (path, n), added in _hunks_added(mail).items():
        if (path, n) in verdict:
            continue
        verdict[(path, n)] = "absent"
        if not added or not (root / path).is_file():
            continue
        block = tmp / "block"
        block.write_text("\n".join(added) + "\n")
        d = subprocess.run(["diff", str(block), str(root / path)], capture_output=True, text=True).stdout
        cmds = [ln for ln in d.splitlines() if re.match(r"^\d", ln)]
        if any(re.match(r"^[\d,]+[cd]", c) for c in cmds):
            continue                                        # some added line is not in the file
        inside = 0
        for c in cmds:                                      # "KaL1,L2": file lines after block line K
            k, rng = c.split("a")
            lo, _, hi = rng.partition(",")
            if 1 <= int(k) < len(added):
                inside += int(hi or lo) - int(lo) + 1
        if inside < len(added):
            verdict[(path, n)] = "inserted-into"
    return verdict


def _extract(repo: Path, base: str, mails: list[Path], root: Path) -> None:
    for f in mails:
        for path in re.findall(r"^\+\+\+ b/(\S+)$", f.read_text(), re.M):
            blob = subprocess.run(["git", "--git-dir", str(repo), "show", f"{base}:{path}"], capture_output=True)
            if blob.returncode == 0:
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                (root / path).write_bytes(blob.stdout)


@pytest.mark.integration
def test_uffd_v6_already_present_on_612_not_on_61(debian_trees, uffd_workspace: Path, tmp_path: Path) -> None:  # noqa: ANN001
    """UFFDIO_MOVE was merged in 6.8: on 6.12 the imported v6 patches are found
    already present, on 6.1 none is.  Each claim is checked with GNU patch and GNU
    diff on the test's own copy of the files, hunk by hunk."""
    repo = Path(os.environ["SERIES_CACHE"]) / "trees" / "debian.git"
    mails = {int(f.name[:4]): f for f in (uffd_workspace / "patches" / "uffd-move" / "v6").glob("000[1-9]-*.patch")}
    for onto, rc, want in (("debian/6.12", 0, {1: "already-present", 2: "missing", 3: "already-present",
                                               4: "already-present", 5: "already-present"}),
                           ("debian/6.1", 2, {1: "fuzz", 2: "missing", 3: "conflict", 4: "conflict",
                                              5: "conflict"})):
        r = run_series("apply", "uffd-move", "v6", "--onto", onto, "--tree", "debian", "--json", cwd=uffd_workspace)
        assert r.rc == rc, r.err
        j = r.json
        base = _newest(repo, onto)
        assert j["base_commit"] == base and j["missing"] == [2]
        assert {p["index"]: p["status"] for p in j["patches"]} == want
        root = tmp_path / onto.replace("/", "-")
        root.mkdir()
        _extract(repo, base, list(mails.values()), root)
        for i, mail in sorted(mails.items()):
            verdict = present_by_gnu_tools(root, mail, tmp_path)
            assert verdict, mail
            if want[i] == "already-present":
                assert "absent" not in verdict.values(), (onto, i, verdict)
            else:
                assert "absent" in verdict.values(), (onto, i, verdict)
    how = {p["index"]: p.get("how") for p in run_series("apply", "uffd-move", "v6", "--onto", "debian/6.12",
                                                         "--tree", "debian", "--json", cwd=uffd_workspace).json["patches"]}
    assert how == {1: "reverse-applies", 2: "not imported", 3: "all added lines present",
                   4: "all added lines present", 5: "all added lines present"}


@pytest.mark.integration
def test_own_stack_on_61_rebased_to_612(debian_trees, workspace: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from series import trees
    sha61 = trees.resolve_ref(debian_trees, "debian/6.1")
    wt = tmp_path / "wt61"
    with trees.worktree(debian_trees, wt, sha61):
        g = lambda *a: git(wt, *a)  # noqa: E731
        g("config", "user.name", "Stack Author")
        g("config", "user.email", "stack@example.org")
        uf = wt / "mm" / "userfaultfd.c"
        lines = uf.read_text().splitlines(keepends=True)
        lines.insert(1, "/* series test: a comment near the top of mm/userfaultfd.c */\n")
        uf.write_text("".join(lines))
        g("commit", "-qam", "mm/userfaultfd: add a comment")
        doc = wt / "Documentation" / "admin-guide" / "mm" / "userfaultfd.rst"
        doc.write_text(doc.read_text() + "\nA line added by the series test stack.\n")
        g("commit", "-qam", "docs: userfaultfd: add a line")
        out = tmp_path / "fp"
        g("format-patch", "-q", "-o", str(out), f"{sha61}..HEAD")
    _write_stack(workspace, "own", sorted(out.glob("*.patch")))
    r = run_series("apply", "own", "--onto", "debian/6.1", "--tree", "debian", "--json", cwd=workspace)
    assert r.rc == 0, r.err
    assert [p["status"] for p in r.json["patches"]] == ["applied", "applied"]
    r = run_series("rebase", "own", "debian/6.12", "--tree", "debian", "--json", cwd=workspace)
    assert r.rc == 0, r.err + r.out
    assert r.json["new_version"] == 2
    rev = run_series("show", "own", "v2", "--json", cwd=workspace).json["revisions"][0]
    assert rev["base"] == trees.resolve_ref(debian_trees, "debian/6.12")
    assert rev["present"] == [1, 2]
    assert any("onto debian/6.12" in c for c in rev["changelog"])
    wt612 = Path(r.json["worktree"])
    assert "series test: a comment" in (wt612 / "mm" / "userfaultfd.c").read_text()
