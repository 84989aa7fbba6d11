"""The suite's own rules, from tests/conftest.py, run on small test files of ours
in an inner pytest: under CI=true a skip off the allowlist fails the run (a
test's and a module's), and a test outside the integration tier cannot open
or run anything under ../shared or a Debian kernel tarball."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ALLOWED_SKIPS, REPO


def _inner(tmp_path: Path, text: str, *, ci: bool) -> subprocess.CompletedProcess[str]:
    d = tmp_path / "inner"
    d.mkdir(exist_ok=True)
    shutil.copy(REPO / "tests" / "conftest.py", d / "conftest.py")
    (d / "test_inner.py").write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:randomly", "-p", "no:cacheprovider",
                           "-W", "ignore::pytest.PytestUnknownMarkWarning", str(d)],
                          cwd=d, env=env, capture_output=True, text=True, timeout=300)


SKIPS = """
import pytest

def test_runs():
    pass

def test_skips_for_a_missing_tool():
    pytest.skip("frobnicator is not installed")
"""


def test_a_skip_passes_outside_ci_and_fails_under_ci(tmp_path: Path) -> None:
    r = _inner(tmp_path, SKIPS, ci=False)
    assert r.returncode == 0, r.stdout
    assert "1 passed, 1 skipped" in r.stdout
    r = _inner(tmp_path, SKIPS, ci=True)
    assert r.returncode == 1, r.stdout
    assert "1 failed, 1 passed" in r.stdout
    assert "not on the allowlist" in r.stdout and "frobnicator is not installed" in r.stdout


def test_an_allowed_skip_passes_under_ci(tmp_path: Path) -> None:
    assert "^UFFDIO_MOVE selftests skipped on this host" in ALLOWED_SKIPS
    assert all(len(why) > 20 for why in ALLOWED_SKIPS.values())   # every entry says why
    text = SKIPS.replace("frobnicator is not installed", "UFFDIO_MOVE selftests skipped on this host: no feature")
    r = _inner(tmp_path, text, ci=True)
    assert r.returncode == 0, r.stdout
    assert "1 passed, 1 skipped" in r.stdout


def test_a_skipif_marker_and_a_module_skip_fail_under_ci(tmp_path: Path) -> None:
    r = _inner(tmp_path, "import pytest\n\n@pytest.mark.skipif(True, reason='no qemu here')\n"
                         "def test_x():\n    pass\n", ci=True)
    assert r.returncode == 1 and "1 error" in r.stdout and "no qemu here" in r.stdout, r.stdout
    r = _inner(tmp_path, "import pytest\npytest.skip('no lore mirror', allow_module_level=True)\n\n"
                         "def test_x():\n    pass\n", ci=True)
    assert r.returncode == 2, r.stdout          # a collection error interrupts the session
    assert "not on the allowlist" in r.stdout and "no lore mirror" in r.stdout


GUARD = """
import subprocess
import pytest

TARBALL = "/usr/src/linux-source-6.12.tar.xz"

def _touch(path):
    try:
        open(path, "rb").close()
    except (FileNotFoundError, IsADirectoryError):
        pass

def test_unmarked_opens_tarball():
    _touch(TARBALL)

def test_unmarked_runs_on_tarball():
    subprocess.run(["true", TARBALL], check=True)

@pytest.mark.integration
def test_marked_opens_tarball():
    _touch(TARBALL)

@pytest.mark.integration
def test_marked_runs_on_tarball():
    subprocess.run(["true", TARBALL], check=True)

@pytest.mark.e2e
def test_e2e_may_too():
    _touch(TARBALL)
"""


def test_unmarked_tests_cannot_use_machine_only_data(tmp_path: Path) -> None:
    r = _inner(tmp_path, GUARD, ci=False)
    assert r.returncode == 1, r.stdout
    assert "2 failed, 3 passed" in r.stdout, r.stdout
    failed = sorted(line.split("::")[1].split()[0] for line in r.stdout.splitlines() if line.startswith("FAILED"))
    assert failed == ["test_unmarked_opens_tarball", "test_unmarked_runs_on_tarball"]
    assert r.stdout.count("must be marked integration") >= 2


@pytest.mark.parametrize("path", ["/usr/src/linux-source-6.1.tar.xz", str(REPO.parent / "shared" / "lore")])
def test_this_suite_guards_the_real_paths(path: str) -> None:
    """In this very process (a unit test: the guard is on) the real paths are refused."""
    with pytest.raises(PermissionError, match="must be marked integration"):
        open(path, "rb")


def test_ci_run_sets_ci() -> None:
    text = (REPO / ".ci" / "run").read_text()
    assert "export CI=true" in text.splitlines()


def test_an_xfail_is_not_a_skip(tmp_path: Path) -> None:
    r = _inner(tmp_path, "import pytest\n\n@pytest.mark.xfail(reason='known bug, issue 99', strict=True)\n"
                         "def test_x():\n    assert False\n", ci=True)
    assert r.returncode == 0 and "1 xfailed" in r.stdout, r.stdout
