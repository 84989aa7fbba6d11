"""End to end: per-patch builds and qemu boots of a real Debian 6.12 tree.

One warm build directory is shared by every test here (one cold build per
session): the stacks all apply onto debian/6.12 with the default fragment.
Stacks of our own are made from the tree's own files (no upstream mail bodies).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import make_mbox, run_series

pytestmark = [pytest.mark.e2e]

TREE = "debian"
ONTO = "debian/6.12"

PANIC_SETUP = """static bool series_test_panic;
static int __init series_test_panic_setup(char *s)
{
	series_test_panic = true;
	return 1;
}
__setup("series_test_panic", series_test_panic_setup);

"""
MOVE_FN = "static int userfaultfd_move(struct userfaultfd_ctx *ctx,\n\t\t\t    unsigned long arg)\n{\n\t__s64 ret;\n"
PANIC_CALL = "\tif (series_test_panic)\n\t\tpanic(\"series test panic: UFFDIO_MOVE with series_test_panic set\");\n"


def _comment(n: int) -> callable:
    return lambda s: s.replace("\n", f"\n/* series test: patch {n} */\n", 1)


def _panic_patch(s: str) -> str:
    assert MOVE_FN in s, "fs/userfaultfd.c: userfaultfd_move() not found"
    return s.replace(MOVE_FN, PANIC_SETUP + MOVE_FN + PANIC_CALL, 1)


def _warning_patch(s: str) -> str:
    anchor = "ssize_t move_pages(struct userfaultfd_ctx *ctx, unsigned long dst_start,"
    assert anchor in s
    return s.replace(anchor, "static int series_unused_fn(void)\n{\n\tint series_unused_var;\n\treturn 0;\n}\n\n" + anchor, 1)


def _broken_patch(s: str) -> str:
    return s.replace("\n", "\nthis is not C;\n", 1)


GOOD = [  # (subject, path, edit): 5 patches, the 3rd adds a panic behind a command-line switch
    ("mm: userfaultfd: a comment", "mm/userfaultfd.c", _comment(1)),
    ("fs: userfaultfd: a comment", "fs/userfaultfd.c", _comment(2)),
    ("userfaultfd: panic on UFFDIO_MOVE when series_test_panic is set", "fs/userfaultfd.c", _panic_patch),
    ("mm: huge_memory: a comment", "mm/huge_memory.c", _comment(4)),
    ("mm: userfaultfd: another comment", "mm/userfaultfd.c", _comment(5)),
]
BROKEN = [
    ("mm: userfaultfd: add an unused function", "mm/userfaultfd.c", _warning_patch),
    ("mm: userfaultfd: break the build", "mm/userfaultfd.c", _broken_patch),
]


@pytest.fixture(scope="session")
def kernel_ws(tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> Path:
    if not Path("/usr/src/linux-source-6.12.tar.xz").is_file() or not shutil.which("qemu-system-x86_64"):
        pytest.skip("needs linux-source-6.12 and qemu-system-x86")
    ws = tmp_path_factory.mktemp("kernel-ws")
    (ws / "patches").mkdir()
    (ws / "series.toml").write_text('[workspace]\nname = "e2e"\n[test]\nsuites = ["uffd-unit-tests", "uffd-move-tests"]\n')
    env = {"SERIES_CACHE": str(session_cache)}
    r = run_series("-C", str(ws), "tree", "add", TREE, "--debian", "6.12", env=env)
    assert r.rc == 0 or "exists" in r.err, r.err
    repo = session_cache / "trees" / f"{TREE}.git"
    base = subprocess.run(["git", "-C", str(repo), "tag", "--list", "debian/6.12.*"], check=True,
                          capture_output=True, text=True).stdout.split()[-1]
    for name, patches in (("e2e-good", GOOD), ("e2e-broken", BROKEN)):
        mbox = ws / f"{name}.mbox"
        mbox.write_text(make_mbox(repo, base, patches, name))
        r = run_series("-C", str(ws), "import", name, "--mbox", str(mbox), "--create", env=env)
        assert r.rc == 0, r.err
    return ws


def series_in(ws: Path, *args: str) -> "object":
    return run_series("-C", str(ws), *args)


@pytest.fixture(scope="session")
def good_build(kernel_ws: Path, session_cache: Path) -> dict:
    """The cold build (base) + 5 incremental per-patch builds: once per session."""
    r = run_series("-C", str(kernel_ws), "build", "e2e-good", "--onto", ONTO, "--tree", TREE, "--per-patch", "--json",
                   env={"SERIES_CACHE": str(session_cache)})
    assert r.rc == 0, r.err + r.out
    return r.json


def test_per_patch_build_passes(good_build: dict) -> None:
    d = good_build
    assert d["status"] == "pass", d
    assert [p["index"] for p in d["patches"]] == [0, 1, 2, 3, 4, 5]
    assert all(p["status"] == "pass" and p["errors"] == [] and p["new_warnings"] == [] for p in d["patches"])
    assert d["not_set"] == []
    assert [Path(f).name for f in d["fragments"]] == ["base.config", "uffd.config"]   # base + the suites' fragment
    # Each count is relative to what obj/ was last built from (`built_from`).  The build directory is
    # shared with other tests: a cached base leaves obj/ where an earlier test left it, so patch 1 may
    # count from there.  Patches 2-5 always build on the patch before: each of them rebuilds little.
    steps = d["patches"]
    assert all(b["built_from"] == a["commit"] for a, b in zip(steps[1:], steps[2:])), steps
    assert all(b["rebuilt"] < 20 for a, b in zip(steps, steps[1:]) if b["built_from"] == a["commit"]), steps


def test_build_failure_reported_at_its_patch(kernel_ws: Path, good_build: dict) -> None:
    r = series_in(kernel_ws, "build", "e2e-broken", "--onto", ONTO, "--tree", TREE, "--per-patch", "--json")
    assert r.rc == 2, r.err
    d = r.json
    assert d["status"] == "fail"
    by = {p["index"]: p for p in d["patches"]}
    assert by[0]["status"] == "pass"
    assert by[1]["status"] == "pass"
    assert any("series_unused" in w and "mm/userfaultfd.c" in w for w in by[1]["new_warnings"]), by[1]
    assert by[2]["status"] == "fail"
    assert by[2]["errors"] and any("mm/userfaultfd.c" in e and "error" in e for e in by[2]["errors"]), by[2]


def test_boot_runs_upstream_move_tests(kernel_ws: Path, good_build: dict) -> None:
    # only the upstream tests: the bundled kernel-tests are judged by their own tests
    r = series_in(kernel_ws, "test", "e2e-good", "--onto", ONTO, "--tree", TREE, "--json",
                  "--suites", "uffd-unit-tests")
    d = r.json
    assert r.rc == 0, d
    assert d["status"] == "pass"
    assert d["accel"] in ("kvm", "tcg")
    assert d["kernel_problems"] == []
    # the guest stopped by itself after its last test (init's reboot -f ends qemu), not killed after a grace
    extra = next(s for s in json.loads(Path(d["results"]).read_text())["stages"] if s["name"] == "test")["extra"]
    assert extra["guest_killed"] is False, extra["qemu"]
    tests = {t["name"]: t for t in d["tests"]}
    for name in ("move", "move-pmd", "move-pmd-split"):
        t = tests[f"uffd-unit-tests/{name}/anon"]
        assert t["status"] == "pass", t
        assert t["duration_s"] is not None


def test_panic_is_reported(kernel_ws: Path, good_build: dict) -> None:
    r = series_in(kernel_ws, "test", "e2e-good", "--onto", ONTO, "--tree", TREE, "--json",
                  "--cmdline", "series_test_panic", "--boot-timeout", "120")
    assert r.rc == 2, r.err
    d = r.json
    kinds = {p["kind"]: p for p in d["kernel_problems"]}
    assert "panic" in kinds, d["kernel_problems"]
    assert "series test panic" in kinds["panic"]["excerpt"]
    assert "timeout" not in kinds
    assert any(t["status"] == "fail" for t in d["tests"])


def test_hang_is_cut_at_its_limit(kernel_ws: Path, good_build: dict) -> None:
    r = series_in(kernel_ws, "test", "e2e-good", "--onto", ONTO, "--tree", TREE, "--json",
                  "--cmdline", "series.hang=1", "--boot-timeout", "25")
    assert r.rc == 2, r.err
    d = r.json
    kinds = [p["kind"] for p in d["kernel_problems"]]
    assert "timeout" in kinds, d
    assert "panic" not in kinds


# -- Linux 6.1: a kernel without UFFDIO_MOVE --------------------------------------
ONTO_61 = "debian/6.1"


@pytest.fixture(scope="module")
def boot_61(debian_trees, tmp_path_factory: pytest.TempPathFactory, session_cache: Path) -> dict:  # noqa: ANN001
    """`series test` of a one-patch stack (a comment in mm/userfaultfd.c, made from
    6.1's own file) onto debian/6.1: one cold 6.1 build, one boot."""
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("needs qemu-system-x86")
    ws = tmp_path_factory.mktemp("kernel-ws-61")
    (ws / "patches").mkdir()
    (ws / "series.toml").write_text('[workspace]\nname = "e2e-61"\n[test]\nsuites = ["uffd-unit-tests", "uffd-move-tests"]\n')
    repo = session_cache / "trees" / f"{TREE}.git"
    base = subprocess.run(["git", "-C", str(repo), "tag", "--list", "debian/6.1.*"], check=True,
                          capture_output=True, text=True).stdout.split()[-1]
    mbox = ws / "e2e-61.mbox"
    mbox.write_text(make_mbox(repo, base, [("mm: userfaultfd: a comment", "mm/userfaultfd.c", _comment(1))], "e2e-61"))
    env = {"SERIES_CACHE": str(session_cache)}
    r = run_series("-C", str(ws), "import", "e2e-61", "--mbox", str(mbox), "--create", env=env)
    assert r.rc == 0, r.err
    r = run_series("-C", str(ws), "test", "e2e-61", "--onto", ONTO_61, "--tree", TREE, "--json", env=env)
    assert r.out, r.err
    return {"rc": r.rc, "err": r.err, **r.json}


def test_61_builds_and_skips_move_tests_with_reasons(boot_61: dict) -> None:
    d = boot_61
    b = d["build"]
    assert b["status"] == "pass", b
    assert [p["status"] for p in b["patches"]] == ["pass"], b["patches"]
    assert b["not_set"] == [], "the fragment should configure 6.1 as well: " + repr(b["not_set"])
    # 6.1 has no tools/testing/selftests/mm/uffd-unit-tests.c (selftests/vm, no move tests)
    sel = {s["name"]: s for s in d["selftests"]}
    assert sel["uffd-unit-tests"]["status"] == "skip" and "uffd-unit-tests" in sel["uffd-unit-tests"]["reason"], sel
    assert sel["uffd-move-tests"]["status"] == "built", sel
    tests = {t["name"]: t for t in d["tests"]}
    assert tests["uffd-unit-tests"]["status"] == "skip" and tests["uffd-unit-tests"]["reason"], tests
    # the bundled suite ran in the guest and said why it skipped (no UFFD_FEATURE_MOVE before 6.8)
    kt = [t for n, t in tests.items() if n.startswith("uffd-move-tests")]
    assert kt and all(t["status"] == "skip" for t in kt), kt
    assert any("UFFD_FEATURE_MOVE" in t["reason"] for t in kt), kt
    assert not [t for t in d["tests"] if t["status"] == "fail"], d["tests"]
    assert d["kernel_problems"] == [], d["kernel_problems"]
    assert d["status"] not in ("fail", "error") and d["rc"] == 0, (d["status"], d["summary"], d["err"][-2000:])
    results = json.loads(Path(d["results"]).read_text())
    st = {s["name"]: s["status"] for s in results["stages"]}
    assert st["build"] == "pass" and st["test"] not in ("fail", "error"), st
