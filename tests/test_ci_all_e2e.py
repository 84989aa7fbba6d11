"""End to end: `series ci --all` over respins of a stack of our own on the real
Debian 6.12 tree (diffs made from the tree's files, no upstream mail), then a
second, warm `--all`, then `series report` over those runs.

v1 has three patches, each adding a comment line to a C file (which moves
its code lines: compiled, since each file's code uses macros that reach
__LINE__); v2 rewords patch 2's comment in place only; v3 lacks patch 2.  The
build directory is shared: v2 reuses patch 1's recorded result (`cached`)
and compiles only what patches 2 and 3 change for the compiler; v3 is `skip`
(incomplete import).
The second run builds nothing.  The comments carry a nonce so that every
session builds these trees anew.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import make_mbox, run_series

pytestmark = [pytest.mark.e2e]

ONTO = "debian/6.12"


def _comment(text: str) -> Callable[[str], str]:
    return lambda s: s.replace("\n", f"\n/* {text} */\n", 1)


@pytest.fixture(scope="module")
def respins(debian_trees, tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> Path:  # noqa: ANN001
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("needs qemu-system-x86")
    ws = tmp_path_factory.mktemp("ci-all-ws")
    (ws / "patches").mkdir()
    (ws / "series.toml").write_text('[workspace]\nname = "ci-all"\n[ci]\ntree = "debian"\nonto = "debian/6.12"\n'
                                    '[test]\nsuites = ["uffd-move-tests"]\n')
    repo = session_cache / "trees" / "debian.git"
    base = subprocess.run(["git", "-C", str(repo), "tag", "--list", "debian/6.12.*"], check=True,
                          capture_output=True, text=True).stdout.split()[-1]
    nonce = f"{time.time_ns():x}"
    p1 = ("mm: userfaultfd: a comment", "mm/userfaultfd.c", _comment(f"ci-all {nonce} patch 1"))
    p2 = ("fs: userfaultfd: a comment", "fs/userfaultfd.c", _comment(f"ci-all {nonce} patch 2"))
    p2b = ("fs: userfaultfd: a comment", "fs/userfaultfd.c", _comment(f"ci-all {nonce} patch 2, respun"))
    p3 = ("mm: huge_memory: a comment", "mm/huge_memory.c", _comment(f"ci-all {nonce} patch 3"))
    for v, patches, numbers in ((1, [p1, p2, p3], [1, 2, 3]), (2, [p1, p2b, p3], [1, 2, 3]), (3, [p1, p3], [1, 3])):
        mb = ws / f"v{v}.mbox"
        mb.write_text(make_mbox(repo, base, patches, "ci-all", version=v, numbers=numbers, total=3))
        r = run_series("-C", str(ws), "import", "ci-all", "--mbox", str(mb), *(["--create"] if v == 1 else []))
        assert r.rc == 0, r.err
    return ws


@pytest.fixture(scope="module")
def first(respins: Path) -> dict:
    out = respins / "first"
    r = run_series("-C", str(respins), "ci", "ci-all", "--all", "--stages", "apply,build,test", "-o", str(out),
                   "--json", timeout=3000, subprocess=True)
    assert r.out, r.err
    return {"rc": r.rc, "err": r.err, "summary": r.json, "out": out}


def _build(out: Path, v: int) -> dict:
    res = json.loads((out / f"v{v}" / "results.json").read_text())
    return next(s for s in res["stages"] if s["name"] == "build")


def test_every_revision_oldest_first(first: dict) -> None:
    s = first["summary"]
    assert [e["revision"] for e in s["revisions"]] == [1, 2, 3]
    by = {e["revision"]: e for e in s["revisions"]}
    assert by[1]["status"] == "pass" and by[2]["status"] == "pass", (s, first["err"][-3000:])
    assert by[3]["status"] == "skip" and "incomplete import: patch 2 of 3 missing" in by[3]["reason"]
    assert first["rc"] == 0


# what every relink compiles, whatever changed
_LINK_RE = re.compile(r"^(init/version-timestamp\.o|\.tmp_vmlinux|arch/x86/boot/)")


def compiled(log: str) -> set[str]:
    """The objects a build step compiled, the relink's own left out."""
    text = Path(log).read_text()
    return {m.group(2) for m in re.finditer(r"^  (CC|AS)\s+(\S+)\s*$", text, re.M) if not _LINK_RE.match(m.group(2))}


def test_a_respin_rebuilds_only_what_its_change_touches(first: dict) -> None:
    b1, b2 = _build(first["out"], 1), _build(first["out"], 2)
    i1 = {i["index"]: i for i in b1["items"]}
    i2 = {i["index"]: i for i in b2["items"]}
    # v1's patch 1 is new to this build directory: built.  Whether mm/userfaultfd.o is compiled depends on
    # what the shared directory held: an earlier test's patch that also added one comment line there is
    # the same text to the compiler (neutral.py), and its object stays
    assert not i1[1]["cached"] and i1[1]["log"], i1[1]
    assert i2[1]["cached"], i2[1]                                   # the same tree as v1's patch 1: not built
    # patch 2 respun: its comment reworded in place, which no compiler sees (neutral.py): fs/userfaultfd.c
    # keeps its mtime and fs/userfaultfd.o stays.  The worktree comes from v1's top, so mm/huge_memory.c
    # goes back to the base: one comment line fewer moves its code, which uses macros that reach
    # __LINE__ (WARN_ON): compiled (a ccache hit); nothing else
    assert not i2[2]["cached"] and compiled(i2[2]["log"]) == {"mm/huge_memory.o"}, i2[2]
    # patch 3 is v1's patch 3 on a different patch 2: only what it touches
    assert not i2[3]["cached"] and compiled(i2[3]["log"]) == {"mm/huge_memory.o"}, i2[3]
    for it in b2["items"]:                       # the logs are copied into the run directory
        if it["log"]:
            assert Path(it["log"]).is_file() and str(first["out"] / "v2") in it["log"]


def test_a_warm_second_run_builds_nothing_and_still_boots(first: dict, respins: Path) -> None:
    out = respins / "second"
    r = run_series("-C", str(respins), "ci", "ci-all", "--all", "--stages", "apply,build,test", "-o", str(out),
                   "--json", timeout=3000, subprocess=True)
    assert r.rc == 0, r.err[-3000:]
    for v in (1, 2):
        b = _build(out, v)
        assert b["cached"] and all(i["cached"] for i in b["items"]), b
        res = json.loads((out / f"v{v}" / "results.json").read_text())
        t = next(s for s in res["stages"] if s["name"] == "test")
        assert t["status"] == "pass" and t["items"], t["summary"]
    # the dashboard over these runs: every revision, cached cells marked
    dash = respins / "dash"
    r = run_series("-C", str(respins), "report", "-o", str(dash), "--runs", str(out), "--json")
    assert r.rc == 0, r.err
    html = (dash / "index.html").read_text()
    assert 'data-stack="ci-all"' in html and "⟲" in html
    assert 'id="change-ci-all-v1-v2"' in html
