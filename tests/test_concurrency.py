"""Concurrency (issue 11): N imports, fetches and runs (`ci`, `apply`) started at
once on one workspace and one cache.  Each one either succeeds or is refused as
busy (exit 1, one line naming the lock); nothing is lost: every revision an
import reported is in the manifest and on disk, every run that passed left a
valid results.json and a refused one left no run directory; and running the
refused ones again, one by one, brings every change in.  bench/concurrency runs
this file 20 times in a row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from mailfactory import series_mails, write_mbox
from safety import MEMORY_CAP, SmallStack, cache_problems, held_locks, small_stack, store_state

pytestmark = pytest.mark.slow


def _capped() -> None:
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def _all_at_once(st: SmallStack, jobs: list[list[str]]) -> list[tuple[int, str, str]]:
    """Start every job before waiting for any; (exit code, stdout, stderr) each."""
    procs = [subprocess.Popen([sys.executable, "-m", "series", "-C", str(st.ws), *args], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_capped,
                              env={**os.environ, **st.env()}) for args in jobs]
    out = []
    for p in procs:
        o, e = p.communicate(timeout=600)
        out.append((p.returncode, o, e))
    return out


def _ok_or_busy(rc: int, err: str, args: list[str]) -> bool:
    """True when it succeeded; False when it was refused as busy; anything else fails."""
    if rc == 0:
        return True
    lines = err.strip().splitlines()
    assert rc == 1 and lines and " is busy: another series run" in lines[-1], (args, rc, err)
    assert lines[-1].startswith("series: error: ") and "Traceback" not in err, err
    return False


def _runs(st: SmallStack) -> list[Path]:
    return sorted((st.cache / "runs").iterdir()) if (st.cache / "runs").is_dir() else []


def test_parallel_imports_fetches_and_runs(tmp_path: Path) -> None:
    st = small_stack(tmp_path / "s", versions=(1, 2, 3, 4, 5), n=4, import_versions=(1,))
    other = write_mbox(tmp_path / "other.mbox", series_mails(2, version=1))
    mirror = tmp_path / "mirror" / "demo"
    mirror.mkdir(parents=True)
    (mirror / "v1.mbox").write_bytes(st.mboxes[1].read_bytes())
    run = ["--tree", st.tree, "--onto", "main"]
    jobs = [["import", "demo", "--mbox", str(st.mboxes[v])] for v in (2, 3, 4, 5)] + [
        ["import", "other", "--mbox", str(other), "--create"],
        ["fetch", "demo", "--mirror", str(mirror.parent)],
        ["ci", "demo", "v1", "--stages", "apply", "--json", *run],
        ["ci", "demo", "v1", "--stages", "apply", "--json", *run],
        ["apply", "demo", "v1", "--json", *run],
    ]
    results = _all_at_once(st, jobs)
    won = [_ok_or_busy(rc, err, args) for (rc, _, err), args in zip(results, jobs)]
    assert any(won[:4]) or any(won[5:]), "every job on demo was refused: someone must hold the lock"
    assert won[4], "an import into another stack is never busy because of demo"
    # Nothing a winner reported is lost.
    state = store_state(st.ws, "demo")
    for v, ok in zip((2, 3, 4, 5), won[:4]):
        if ok:
            assert len(state.get(v, {})) == 4, f"v{v} was imported, then lost"
    manifest = (st.ws / "patches" / "demo" / "stack.toml").read_text()
    for v, ok in zip((2, 3, 4, 5), won[:4]):
        assert (f"version = {v}\n" in manifest) == ok, f"the manifest and the imports disagree on v{v}"
    runs = _runs(st)
    passed_runs = [json.loads(o) for (rc, o, _), args in zip(results, jobs) if rc == 0 and args[0] in ("ci", "apply")]
    assert len(runs) == len(passed_runs), "a refused run left a run directory (or a run left none)"
    for d in runs:
        res = json.loads((d / "results.json").read_text())
        assert res["status"] in ("pass", "warn") and res["finished"], (d, res["status"], res["error"])
    assert held_locks(st.cache) == []
    # The refused ones, again, one by one: everything comes in.
    for (ok, args) in zip(won, jobs):
        if not ok:
            r = subprocess.run([sys.executable, "-m", "series", "-C", str(st.ws), *args], cwd=REPO, text=True,
                               capture_output=True, env={**os.environ, **st.env()}, timeout=600)
            assert r.returncode == 0, (args, r.stderr)
    state = store_state(st.ws, "demo")
    assert {v: len(f) for v, f in state.items()} == {1: 4, 2: 4, 3: 4, 4: 4, 5: 4}
    assert len(store_state(st.ws, "other")[1]) == 2
    assert cache_problems(st.cache, st.ws) == []


def test_racing_different_mails_for_one_revision_never_replace_silently(tmp_path: Path) -> None:
    """Two imports of v2 from different mails at once: one wins, the other is
    refused (busy, or as a different mail once the first is in); the store holds
    the winner's patches exactly, and no copy was kept aside (no --force)."""
    st = small_stack(tmp_path / "s", versions=(1, 2), n=3, import_versions=(1,))
    b = write_mbox(tmp_path / "b.mbox", series_mails(3, version=2, body_extra=" (another text)"))
    jobs = [["import", "demo", "--mbox", str(st.mboxes[2])], ["import", "demo", "--mbox", str(b)]] * 2
    results = _all_at_once(st, jobs)
    winners = []
    for (rc, out, err), args in zip(results, jobs):
        if rc == 0:
            winners.append(args[-1])
            continue
        lines = err.strip().splitlines()
        assert rc == 1 and len(lines) == 1 and ("is busy" in lines[0] or "different mails" in lines[0]), err
    assert len(set(winners)) <= 1, f"both mailboxes were imported into v2: {winners}"
    assert not list((st.ws / "patches" / "demo").glob("v2.replaced-*"))
    if winners:
        texts = sorted(p.read_text() for p in (st.ws / "patches" / "demo" / "v2").glob("*.patch"))
        assert all(("another text" in t) == (winners[0] == str(b)) for t in texts)
    assert cache_problems(st.cache, st.ws) == []


def test_parallel_creates_of_one_new_stack_lose_no_revision(tmp_path: Path) -> None:
    """The race of the issue: imports of different revisions into one stack, at once
    (here into a stack none of them has made yet)."""
    st = small_stack(tmp_path / "s", versions=(1, 2, 3, 4), n=2, import_versions=())
    jobs = [["import", "fresh", "--mbox", str(st.mboxes[v]), "--create"] for v in (1, 2, 3, 4)]
    results = _all_at_once(st, jobs)
    won = [_ok_or_busy(rc, err, args) for (rc, _, err), args in zip(results, jobs)]
    assert any(won)
    listed = {v for v, ok in zip((1, 2, 3, 4), won) if ok}
    assert set(store_state(st.ws, "fresh")) == listed
    for ok, args in zip(won, jobs):
        if not ok:
            r = subprocess.run([sys.executable, "-m", "series", "-C", str(st.ws), *args], cwd=REPO, text=True,
                               capture_output=True, env={**os.environ, **st.env()}, timeout=600)
            assert r.returncode == 0, (args, r.stderr)
    assert set(store_state(st.ws, "fresh")) == {1, 2, 3, 4}
    assert cache_problems(st.cache, st.ws) == []
