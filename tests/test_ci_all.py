"""`series ci --all` on a small repository of ours (apply only: no kernel here):
every revision oldest first, one run directory each plus a summary, and the
reasons a revision is `skip` (incomplete import, already upstream, not
imported).  And the progress display (bars on a terminal, plain lines else).
The kernel builds and boots of --all are in test_ci_all_e2e.py."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import tomli_w

from conftest import git, run_series, user_tree
from mailfactory import diff_for, patch_mail, series_mails, write_mbox


@pytest.fixture
def respins(workspace: Path, tmp_path: Path) -> tuple[Path, str]:
    """Stack `demo`: v1 complete (adds mm/demo1.c, mm/demo2.c), v2 lacks patch 2,
    v3 adds up/demo1.c and up/demo2.c which the base already has, v4 is listed
    in the manifest only."""
    user = user_tree(tmp_path / "linux")
    for i in (1, 2):
        (user / "up").mkdir(exist_ok=True)
        body = diff_for(i, 3, file=f"up/demo{i}.c").split("@@\n", 1)[1]
        (user / "up" / f"demo{i}.c").write_text("".join(ln[1:] + "\n" for ln in body.splitlines()))
    git(user, "add", ".")
    git(user, "commit", "-qm", "base")
    name = "demo-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    assert run_series("tree", "add", name, "--path", str(user), cwd=workspace).rc == 0
    mboxes = [
        series_mails(2, version=1),
        series_mails(2, version=2, missing=(2,)),
        [patch_mail(i, 2, version=3, diff=diff_for(i, 3, file=f"up/demo{i}.c")) for i in (1, 2)],
    ]
    for v, mails in enumerate(mboxes, 1):
        mb = write_mbox(tmp_path / f"v{v}.mbox", mails)
        r = run_series("-C", str(workspace), "import", "demo", "--mbox", str(mb), *(["--create"] if v == 1 else []))
        assert r.rc == 0, r.err
    manifest = workspace / "patches" / "demo" / "stack.toml"
    import tomllib
    data = tomllib.loads(manifest.read_text())
    data.setdefault("revisions", []).append(
        {"version": 4, "expected": 2, "patches": [{"index": 1, "subject": "demo: one", "author": "A <a@x>",
                                                   "message_id": "v4-1@x"},
                                                  {"index": 2, "subject": "demo: two", "author": "A <a@x>",
                                                   "message_id": "v4-2@x"}]})
    manifest.write_text(tomli_w.dumps(data))
    return workspace, name


def test_all_revisions_oldest_first_with_reasons(respins: tuple[Path, str], tmp_path: Path) -> None:
    ws, tree = respins
    out = tmp_path / "all"
    r = run_series("-C", str(ws), "ci", "demo", "--all", "--stages", "apply", "--tree", tree, "--onto", "main",
                   "-o", str(out), "--json")
    assert r.rc == 0, r.err
    s = r.json
    assert [e["revision"] for e in s["revisions"]] == [1, 2, 3, 4]
    by = {e["revision"]: e for e in s["revisions"]}
    assert by[1]["status"] == "pass" and by[1]["stages"] == {"apply": "pass"}
    assert by[2]["status"] == "skip" and by[2]["reason"].startswith("incomplete import: patch 2 of 2 missing")
    assert by[3]["status"] == "skip" and by[3]["reason"].startswith("already upstream: patch 1, 2 are already in main")
    assert by[4]["status"] == "skip" and by[4]["reason"].startswith("not imported")
    assert s["status"] == "pass"
    # one run directory per revision, each a complete run, plus the summary
    assert json.loads((out / "summary.json").read_text()) == s
    for v in (1, 2, 3, 4):
        res = json.loads((out / f"v{v}" / "results.json").read_text())
        assert res["revision"] == v and res["finished"] and res["status"] == by[v]["status"]
        assert (out / f"v{v}" / "index.html").is_file() and (out / f"v{v}" / "junit.xml").is_file()
    # the already-upstream revision keeps its per-patch apply report
    res3 = json.loads((out / "v3" / "results.json").read_text())
    assert [i["apply"] for i in res3["stages"][0]["items"]] == ["already-present", "already-present"]
    # the text form names every revision
    r = run_series("-C", str(ws), "ci", "demo", "--all", "--stages", "apply", "--tree", tree, "--onto", "main")
    assert r.rc == 0, r.err
    assert "v2   skip" in r.out and "incomplete import" in r.out and "already upstream" in r.out


def test_all_with_a_later_stage_skips_it_with_the_reason(respins: tuple[Path, str], tmp_path: Path) -> None:
    """A skipped revision has every selected stage skipped with the same reason."""
    ws, tree = respins
    r = run_series("-C", str(ws), "ci", "demo", "--all", "--stages", "apply,mail", "--tree", tree, "--onto", "main",
                   "-o", str(tmp_path / "o"), "--json")
    by = {e["revision"]: e for e in r.json["revisions"]}
    assert by[2]["stages"] == {"apply": "skip", "mail": "skip"}
    res = json.loads((tmp_path / "o" / "v2" / "results.json").read_text())
    assert {s["summary"] for s in res["stages"]} == {by[2]["reason"]}


def test_all_refusals(respins: tuple[Path, str]) -> None:
    ws, tree = respins
    r = run_series("-C", str(ws), "ci", "demo", "v1", "--all")
    assert r.rc == 1 and "--all" in r.err
    r = run_series("-C", str(ws), "ci", "demo", "--all", "--stages", "nope")
    assert r.rc == 1 and "unknown stage" in r.err


# -- progress ---------------------------------------------------------------------------
def test_plain_progress_drops_per_object_lines() -> None:
    from series.pipeline.progress import Progress, of
    lines: list[str] = []
    p = Progress(lines.append)
    p("build: base, then each patch")
    p("building base: CC mm/userfaultfd.o")
    p("Testing move on anon")
    p.step("build base", 3, 840, "CC mm/x.o")       # nothing: counts are for terminals
    assert lines == ["build: base, then each patch"]
    assert of(p) is p and isinstance(of(lines.append), Progress)


def test_rich_progress_shows_counts_and_eta() -> None:
    from rich.console import Console

    from series.pipeline.progress import RichProgress
    buf = io.StringIO()
    rp = RichProgress(Console(file=buf, force_terminal=True, width=140, color_system=None))
    rp.start()
    rp.say("build: base, then each patch")
    rp.say("building base: CC mm/userfaultfd.o")
    rp.step("build base", 420, 840, "CC mm/userfaultfd.o")
    rp.step("test", 7, None, "uffd-unit-tests: move on anon")
    rp.bars.refresh()
    assert set(rp.tasks) == {"build base", "test"}
    rp.step("build patch 1", 1, 79, "CC mm/userfaultfd.o")     # one bar per stage: the base's goes
    assert set(rp.tasks) == {"build patch 1", "test"}
    rp.stop()
    text = buf.getvalue()
    assert "build: base, then each patch" in text
    assert "building base: CC" not in text
    assert "420/840" in text and "build base" in text and "eta" in text
    assert "uffd-unit-tests: move on anon" in text


def test_progress_is_plain_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from series.context import Context
    from series.pipeline.progress import RichProgress, progress
    ctx = Context(workspace_arg=None)
    with progress(ctx) as p:
        assert not isinstance(p, RichProgress)
        p("a plain line")
        p.step("build base", 1, 2)
    assert capsys.readouterr().err == "a plain line\n"
    ctx = Context(workspace_arg=None, quiet=True)
    with progress(ctx) as p:
        p("nothing")
    assert capsys.readouterr().err == ""


# -- a busy stack (issue 11: the losers are refused as busy, nothing lost) --------------
_HOLD = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
print("held", flush=True)
sys.stdin.read()
"""


def test_all_on_a_busy_stack_is_refused_before_any_revision(respins: tuple[Path, str], tmp_path: Path) -> None:
    """Another process holds demo's lock: `ci --all` is refused in one line that
    names the holder (pid and command), and writes no run directory nor summary
    (no revision is reported `skip` or `not run` for a lock it did not get)."""
    import os
    import subprocess
    import sys
    ws, tree = respins
    lock = Path(os.environ["SERIES_CACHE"]) / "locks" / "demo.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        out = tmp_path / "all"
        r = run_series("-C", str(ws), "ci", "demo", "--all", "--stages", "apply", "--tree", tree, "--onto", "main",
                       "-o", str(out), "--json")
        lines = r.err.strip().splitlines()
        assert r.rc == 1 and len(lines) == 1 and r.out == "", (r.rc, r.err, r.out)
        assert lines[0].startswith("series: error: stack demo is busy: another series run "
                                   f"(pid {holder.pid}: ") and "-c" in lines[0], lines[0]
        assert not out.exists(), "a refused --all wrote a run directory or a summary"
    finally:
        holder.communicate("", timeout=60)
    r = run_series("-C", str(ws), "ci", "demo", "--all", "--stages", "apply", "--tree", tree, "--onto", "main",
                   "-o", str(tmp_path / "again"), "--json")
    assert r.rc == 0 and [e["revision"] for e in r.json["revisions"]] == [1, 2, 3, 4], r.err


def test_all_holds_the_stack_from_its_first_revision_to_its_last(respins: tuple[Path, str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No other writer (an import, a fetch, a record) gets in between two
    revisions of one `ci --all`: the stack's lock is held whenever a revision
    starts and while it runs, so such a writer is the one refused as busy."""
    import fcntl
    import os
    import series.pipeline as pipeline
    ws, tree = respins
    lock = Path(os.environ["SERIES_CACHE"]) / "locks" / "demo.lock"
    seen: list[bool] = []
    real = pipeline.prepare

    def held() -> bool:
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # another open file: refused while the run holds it
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def prepare(*a: object, **kw: object) -> object:
        seen.append(held())
        return real(*a, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(pipeline, "prepare", prepare)
    r = run_series("-C", str(ws), "ci", "demo", "--all", "--stages", "apply", "--tree", tree, "--onto", "main",
                   "-o", str(tmp_path / "all"), "--json")
    assert r.rc == 0, r.err
    assert seen == [True, True, True], seen      # v1-v3 (v4 is not imported: no run to prepare)
    assert not held(), "the lock outlived the run"
