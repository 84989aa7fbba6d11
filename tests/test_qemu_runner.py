"""The guest runner's account of how a guest ended (series/stages/qemu.py),
against a fake qemu-system-x86_64 on PATH: a guest that exits by itself is not
`killed`, one that closes its console and stays is, and one that never ends is
a timeout.  The real guest's part (microvm's `reboot=t`) is checked end to end
in test_build_boot.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from series.stages import qemu


def _fake(tmp_path: Path, mp: pytest.MonkeyPatch, body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / qemu.QEMU
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(0o755)
    mp.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    mp.setattr(qemu, "EXIT_WAIT_S", 0.5)


def _run(tmp_path: Path, timeout_s: float = 20.0) -> qemu.GuestRun:
    return qemu.run_guest(tmp_path / "bzImage", tmp_path / "initrd", "console=ttyS0", accel="tcg",
                          timeout_s=timeout_s, log=tmp_path / "console.log", done_marker="SERIES-DONE", grace_s=0.5)


def test_a_guest_that_exits_by_itself_is_not_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the console closes a moment before the process is gone: that race is not a kill
    _fake(tmp_path, monkeypatch, 'echo "the kernel command line: $*"\necho SERIES-DONE\nexec >&- 2>&-\nsleep 0.2\n')
    run = _run(tmp_path)
    assert "SERIES-DONE" in run.console
    assert "reboot=t console=ttyS0" in run.console      # the machine's part comes first
    assert (run.killed, run.timed_out, run.returncode) == (False, False, 0)


def test_a_guest_that_does_not_stop_after_its_end_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # what the microvm guest did without reboot=t: done, then spinning in its reset
    _fake(tmp_path, monkeypatch, "echo SERIES-DONE\nexec sleep 30\n")
    run = _run(tmp_path)
    assert run.killed and not run.timed_out


def test_a_guest_that_closes_its_console_and_stays_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(tmp_path, monkeypatch, "echo SERIES-DONE\nexec >&- 2>&-\nexec sleep 30\n")
    run = _run(tmp_path)
    assert run.killed and not run.timed_out


def test_a_guest_that_never_ends_is_a_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(tmp_path, monkeypatch, "echo booting\nexec sleep 30\n")
    run = _run(tmp_path, timeout_s=1.0)
    assert run.killed and run.timed_out
