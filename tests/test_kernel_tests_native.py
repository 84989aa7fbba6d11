"""Build the bundled UFFDIO_MOVE kselftest suite (kernel-tests/) and run it on
the host kernel: every KTAP result must be ``ok`` (a SKIP needs a reason)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "kernel-tests"
KSFT_SKIP = 4

pytestmark = pytest.mark.native

RESULT_RE = re.compile(r"^(ok|not ok) (\d+) (\S+)(?: # (SKIP|TODO)\b ?(.*))?$")
PLAN_RE = re.compile(r"^1\.\.(\d+)(?: # SKIP ?(.*))?$")


def _need_tools() -> None:
    for tool in ("make", "gcc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: cannot build kernel-tests/")


@pytest.fixture(scope="module")
def suite_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_tools()
    out = tmp_path_factory.mktemp("kernel-tests-build")
    # No KHDR_INCLUDES: the host's /usr/include uapi headers are used.
    proc = subprocess.run(["make", "-C", str(SUITE), f"O={out}"], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0 and "cannot find -lc" in proc.stderr:
        pytest.skip("static libc (libc6-dev / glibc-static) is missing: cannot link -static")
    assert proc.returncode == 0, f"build failed:\n{proc.stdout}\n{proc.stderr}"
    binary = out / "uffd-move-tests"
    assert binary.is_file()
    return binary


@pytest.fixture(scope="module")
def ktap(suite_bin: Path) -> tuple[int, str]:
    proc = subprocess.run([str(suite_bin)], capture_output=True, text=True, timeout=1800)
    out = proc.stdout
    if proc.returncode == KSFT_SKIP:
        m = re.search(r"^1\.\.0 # SKIP ?(.*)$", out, re.M)
        if m:
            pytest.skip(f"UFFDIO_MOVE suite skipped on this host: {m.group(1) or 'no reason given'}")
    return proc.returncode, out


def parse(out: str) -> tuple[int | None, list[tuple[str, str, str | None]]]:
    plan = None
    results = []
    for line in out.splitlines():
        if m := PLAN_RE.match(line):
            plan = int(m.group(1))
        elif m := RESULT_RE.match(line):
            status, _num, name, directive, reason = m.groups()
            results.append((name, status if directive != "SKIP" else "skip",
                            reason if directive == "SKIP" else None))
    return plan, results


def test_all_tests_pass(ktap: tuple[int, str]) -> None:
    rc, out = ktap
    assert out.startswith("TAP version 13\n"), out[:200]
    _plan, results = parse(out)
    assert results, out
    failed = [name for name, status, _ in results if status == "not ok"]
    assert not failed, f"failing UFFDIO_MOVE tests: {failed}\n{out}"
    for name, status, reason in results:
        if status == "skip":
            assert reason and reason.strip(), f"{name} skipped without a reason"
    all_skipped = all(status == "skip" for _, status, _ in results)
    assert rc == (KSFT_SKIP if all_skipped else 0), f"exit code {rc}\n{out}"


def test_plan_matches_results(ktap: tuple[int, str]) -> None:
    _rc, out = ktap
    plan, results = parse(out)
    assert plan == len(results), f"plan 1..{plan} but {len(results)} results"
    numbers = [int(m.group(2)) for line in out.splitlines() if (m := RESULT_RE.match(line))]
    assert numbers == list(range(1, len(results) + 1))


def test_list_matches_results(suite_bin: Path, ktap: tuple[int, str]) -> None:
    _rc, out = ktap
    listed = subprocess.run([str(suite_bin), "-l"], capture_output=True, text=True, timeout=60,
                            check=True).stdout.split()
    _plan, results = parse(out)
    assert listed == [name for name, _, _ in results]
    assert len(set(listed)) == len(listed), "duplicate test names"


def test_subset_selection(suite_bin: Path, ktap: tuple[int, str]) -> None:
    proc = subprocess.run([str(suite_bin), "-t", "api-feature-move", "-t", "move-basic"],
                          capture_output=True, text=True, timeout=120)
    plan, results = parse(proc.stdout)
    assert plan == 2
    assert [name for name, _, _ in results] == ["api-feature-move", "move-basic"]
    assert proc.returncode == 0, proc.stdout
    bad = subprocess.run([str(suite_bin), "-t", "no-such-test"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
