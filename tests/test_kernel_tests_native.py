"""Build the bundled UFFDIO_MOVE selftests (kernel-tests/) against the
kselftest harness of the Debian kernel trees and run every program on the host
kernel: every KTAP result must be ``ok`` (a SKIP needs a reason), and every
test of the former single-file suite must still exist in some program.

The harness (`tools/testing/selftests/kselftest*.h`) is taken from the Debian
linux-source tarballs (6.12 and 6.1, whichever are installed), once per
session.  The uapi headers are the toolchain's, which on this host predate
UFFDIO_MOVE, so the fallback definitions are built too."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from series.stages.ktap import Parsed, parse_ktap
from series.trees import debian_tarball

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "kernel-tests"
KSFT_SKIP = 4
HARNESS_VERSIONS = ("6.12", "6.1")

pytestmark = pytest.mark.native

# The 51 tests of kernel-tests/uffd-move-tests.c before it became one program
# per area: each must still be a test (`fixture[.variant].<name with _>`).
FORMER_TESTS = (
    "api-feature-move", "register-ioctls-move", "move-basic", "move-zero-copy-pfn", "move-field-success",
    "move-large", "partial-eexist", "partial-enoent", "enoent-src-hole", "allow-src-holes",
    "eexist-dst-populated", "einval-alignment", "einval-range-overflow", "einval-mode-bits", "overlap",
    "einval-src-shared-anon", "einval-src-memfd", "einval-src-file", "einval-dst-shared",
    "einval-dst-not-registered", "enoent-unmapped", "einval-range-crosses-vma", "einval-prot-mismatch",
    "einval-mlock-mismatch", "einval-hugetlb", "einval-cross-mm", "efault-bad-pointer", "dontwake",
    "wake-default", "wake-partial-range", "ebusy-fork-shared", "ebusy-pinned", "thp-move-pmd",
    "thp-move-pmd-split", "thp-move-unaligned-dst", "thp-dst-populated", "thp-allow-src-holes",
    "thp-ebusy-fork", "zeropage", "huge-zeropage", "swap", "reclaim-after-move", "anon-vma-different-root",
    "mremap-and-back", "race-faults", "race-same-dst", "rss-counters", "soft-dirty", "soft-dirty-clean-pte",
    "eagain-mmap-changing", "kernel-log-clean",
)


def _need_tools() -> None:
    for tool in ("make", "gcc", "tar"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: cannot build kernel-tests/")


def _progs() -> list[str]:
    out = subprocess.run(["make", "-C", str(SUITE), "-s", "print-progs"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return out.split()


@pytest.fixture(scope="session", params=HARNESS_VERSIONS)
def ksft_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<tree>/tools/testing/selftests with only the harness headers, from the
    Debian tarball of one version."""
    _need_tools()
    version = str(request.param)
    tarball = debian_tarball(version)
    if not tarball.is_file():
        pytest.skip(f"{tarball} is missing (apt-get install linux-source-{version})")
    out = tmp_path_factory.mktemp(f"ksft-{version}")
    subprocess.run(["tar", "-xJf", str(tarball), "-C", str(out), "--wildcards",
                    "*/tools/testing/selftests/kselftest*.h"], check=True, capture_output=True, timeout=900)
    found = sorted(out.glob("*/tools/testing/selftests/kselftest_harness.h"))
    assert len(found) == 1, f"{tarball}: {found}"
    return found[0].parent


@dataclass
class Run:
    prog: str
    rc: int
    out: str
    parsed: Parsed


@pytest.fixture(scope="session")
def built(ksft_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the programs were built into."""
    out = tmp_path_factory.mktemp("kernel-tests-build")
    proc = subprocess.run(["make", "-C", str(SUITE), f"KSFT_DIR={ksft_dir}", f"O={out}"],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 and "cannot find -lc" in proc.stderr:
        pytest.skip("static libc (libc6-dev / glibc-static) is missing: cannot link -static")
    assert proc.returncode == 0, f"build failed:\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.fixture(scope="session")
def runs(built: Path) -> list[Run]:
    out = built
    results = []
    for prog in _progs():
        binary = out / prog
        assert binary.is_file(), f"{prog} was not built"
        # stderr (the harness's diagnostics) interleaved with stdout, as on a console
        p = subprocess.run([str(binary)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=1800)
        results.append(Run(prog, p.returncode, p.stdout, parse_ktap(p.stdout, prefix=prog)))
    skip_all = [r for r in results if r.parsed.skip_all]
    if skip_all and len(skip_all) == len(results):
        pytest.skip(f"UFFDIO_MOVE selftests skipped on this host: {skip_all[0].parsed.skip_all}")
    return results


def test_print_progs_names_every_program() -> None:
    progs = _progs()
    assert progs and len(set(progs)) == len(progs)
    assert all(p.startswith("uffd-move-") for p in progs), progs
    assert sorted(p.name for p in SUITE.glob("uffd-move-*.c") if p.stem != "uffd-move-common") == \
        sorted(f"{p}.c" for p in progs)


def test_build_without_ksft_dir_is_a_one_line_error(tmp_path: Path) -> None:
    _need_tools()
    proc = subprocess.run(["make", "-C", str(SUITE), f"O={tmp_path}"], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if "***" in ln]
    assert len(errors) == 1 and "KSFT_DIR is not set" in errors[0], proc.stderr
    assert not list(tmp_path.iterdir()), "nothing may be built without the harness"


def test_all_tests_pass(runs: list[Run]) -> None:
    for r in runs:
        assert r.out.startswith("TAP version 13\n"), f"{r.prog}: {r.out[:200]}"
        cases = r.parsed.cases
        assert cases, f"{r.prog} reported no test:\n{r.out}"
        failed = [f"{c.name}: {c.reason}" for c in cases if c.status == "fail"]
        assert not failed, f"failing UFFDIO_MOVE tests: {failed}\n{r.out}"
        for c in cases:
            if c.status == "skip":
                assert c.reason.strip(), f"{c.name} skipped without a reason"
        assert r.rc == 0, f"{r.prog}: exit code {r.rc}\n{r.out}"


def test_plan_matches_results(runs: list[Run]) -> None:
    for r in runs:
        names = [c.name for c in r.parsed.cases]
        assert r.parsed.planned == len(names), f"{r.prog}: plan 1..{r.parsed.planned} but {len(names)} results"
        assert r.parsed.complete
        assert len(set(names)) == len(names), f"{r.prog}: duplicate test names"
        # every result is named after its test, also on harnesses that print `ok N # SKIP why`
        assert all(not n.split("/", 1)[1].startswith("test ") for n in names), names


def test_every_former_test_still_exists(runs: list[Run]) -> None:
    names = [c.name.split("/", 1)[1] for r in runs for c in r.parsed.cases]
    assert len(names) >= len(FORMER_TESTS)
    last = {n.rsplit(".", 1)[-1] for n in names}
    missing = [t for t in FORMER_TESTS if t.replace("-", "_") not in last]
    assert not missing, f"tests of the former suite that no program runs: {missing}"
    passed = sum(c.status == "pass" for r in runs for c in r.parsed.cases)
    assert passed >= 1


DUELS = ("race_same_dst", "race_same_src", "race_src_changes", "race_same_thp")


def _races(binary: Path, *wrap: str) -> Parsed:
    p = subprocess.run([*wrap, str(binary)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=1800)
    return parse_ktap(p.stdout, prefix="uffd-move-races")


def test_the_duels_skip_on_one_cpu(built: Path, tmp_path: Path) -> None:
    """With one CPU online the two moves of a duel never overlap in the kernel:
    each duel must say so as a SKIP, not pass having tested nothing.  One CPU is
    what glibc reads from /sys/devices/system/cpu/online, replaced in a bwrap."""
    if shutil.which("bwrap") is None:
        pytest.skip("needs bubblewrap to show the program one CPU")
    online = tmp_path / "online"
    online.write_text("0\n")
    parsed = _races(built / "uffd-move-races", "bwrap", "--dev-bind", "/", "/",
                    "--ro-bind", str(online), "/sys/devices/system/cpu/online")
    if parsed.skip_all:
        pytest.skip(f"uffd-move-races skipped on this host: {parsed.skip_all}")
    by = {c.name.rsplit(".", 1)[-1]: c for c in parsed.cases}
    for duel in DUELS:
        assert by[duel].status == "skip" and "1 CPU online" in by[duel].reason, by[duel]
    assert by["race_faults"].status == "pass", by["race_faults"]     # not a duel: it runs on one CPU too


def test_the_duels_run_on_two_cpus(runs: list[Run]) -> None:
    if len(os.sched_getaffinity(0)) < 2 or (os.cpu_count() or 1) < 2:
        pytest.skip("this host has one CPU")
    races = next(r for r in runs if r.prog == "uffd-move-races")
    by = {c.name.rsplit(".", 1)[-1]: c for c in races.parsed.cases}
    assert all(by[d].status == "pass" for d in DUELS), [by[d] for d in DUELS]
