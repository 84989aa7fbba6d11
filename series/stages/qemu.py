"""Run a kernel in qemu-system-x86_64 with the serial console captured.

The console is read as it arrives (so the host knows when each byte came, for
per-test durations and live progress) and copied to a log file.  A whole-boot
time limit kills the guest.  `panic=-1` plus `-no-reboot` turns a panic into a
qemu exit.

Accelerator: KVM only when a probe guest really boots under it (on some hosts
/dev/kvm exists but guests hang), else TCG.  The verdict is cached per qemu
version and host kernel in $SERIES_CACHE/qemu-accel.json; SERIES_ACCEL=kvm|tcg
overrides it.
"""

from __future__ import annotations

import codecs
import json
import os
import platform
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..cache import Cache
from ..errors import InfraError
from ..fsutil import atomic_write_json

QEMU = "qemu-system-x86_64"
PROBE_TIMEOUT_S = 12.0
PROBE_MARKER = "SERIES-PROBE-OK"
EXIT_WAIT_S = 5.0   # how long a guest whose console closed gets to exit before it is killed


@dataclass
class GuestRun:
    accel: str
    console: str                      # decoded console text
    arrivals: list[tuple[int, float]] = field(default_factory=list)  # (char offset, seconds since start)
    returncode: int | None = None
    timed_out: bool = False
    killed: bool = False              # still running at the end (timeout, or the grace after the done marker)
    duration_s: float = 0.0
    command: list[str] = field(default_factory=list)

    def time_at(self, offset: int) -> float | None:
        """Seconds since start at which the character at `offset` arrived."""
        if not self.arrivals:
            return None
        lo, hi = 0, len(self.arrivals) - 1
        if offset < self.arrivals[0][0]:
            return self.arrivals[0][1]
        while lo < hi:                       # last chunk whose start <= offset
            mid = (lo + hi + 1) // 2
            if self.arrivals[mid][0] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return self.arrivals[lo][1]


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if not path:
        raise InfraError(f"{QEMU} not found: install qemu-system-x86")
    return path


def qemu_version() -> str:
    out = subprocess.run([qemu_binary(), "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0].strip() if out else "unknown"


# microvm without ACPI: its firmware (qboot) writes an MP table that lists every
# CPU, so a kernel built without ACPI (series/configs: some 250 objects fewer)
# still gets `-smp N` CPUs.  On the pc machine SeaBIOS's MP table lists only the
# boot CPU, which is why such a kernel booted with one.  A kernel with ACPI
# finds no tables here and reads the same MP table.  Nothing else is needed:
# the console is microvm's ISA serial port, the root an initramfs.
MACHINE = "microvm,acpi=off"
# microvm has no keyboard controller and no ACPI to reset through: a reboot
# (init's `reboot -f`, or panic=-1 after a panic) would try those for ever.  A
# triple fault resets at once, and -no-reboot turns that into qemu's exit.
# First on the command line, so that a user's own reboot= wins.
MACHINE_CMDLINE = "reboot=t"


def kernel_cmdline(append: str) -> str:
    """What the guest kernel is given: the machine's part, then `append`."""
    return f"{MACHINE_CMDLINE} {append}"


def command(bzimage: Path, initramfs: Path, append: str, *, accel: str, memory: str = "1G", smp: int = 2) -> list[str]:
    cmd = [qemu_binary(), "-M", MACHINE, "-nodefaults", "-display", "none", "-no-reboot",
           "-m", memory, "-smp", str(smp),
           "-kernel", str(bzimage), "-initrd", str(initramfs), "-append", kernel_cmdline(append),
           "-serial", "stdio", "-monitor", "none"]
    if accel == "kvm":
        cmd += ["-accel", "kvm", "-cpu", "host"]
    else:
        cmd += ["-accel", "tcg", "-cpu", "max"]
    return cmd


def run_guest(bzimage: Path, initramfs: Path, append: str, *, accel: str, timeout_s: float, log: Path,
              on_line: Callable[[str], None] | None = None, memory: str = "1G", smp: int = 2,
              done_marker: str | None = None, grace_s: float = 10.0) -> GuestRun:
    """Boot, capture the console into `log` and memory, kill at `timeout_s`.
    Once `done_marker` has been seen the guest gets `grace_s` more to stop by
    itself, then it is killed (that is not a timeout)."""
    cmd = command(bzimage, initramfs, append, accel=accel, memory=memory, smp=smp)
    log.parent.mkdir(parents=True, exist_ok=True)
    run = GuestRun(accel=accel, console="", command=cmd)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text_parts: list[str] = []
    n_chars = 0
    partial = ""
    start = time.monotonic()
    with open(log, "wb") as logf:
        try:
            from ..proc import die_with_parent
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=die_with_parent)
        except OSError as e:
            raise InfraError(f"cannot start {cmd[0]}: {e}") from None
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            done_at: float | None = None
            ended = False
            while True:
                now = time.monotonic()
                if done_at is not None and now - done_at > grace_s:
                    break
                remaining = timeout_s - (now - start)
                if remaining <= 0:
                    run.timed_out = done_at is None
                    break
                events = sel.select(timeout=min(remaining, 1.0))
                if not events:
                    if proc.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    ended = True   # qemu closed the console: it is exiting
                    break
                logf.write(chunk)
                logf.flush()
                piece = decoder.decode(chunk).replace("\r\n", "\n").replace("\r", "")
                if piece:
                    run.arrivals.append((n_chars, time.monotonic() - start))
                    text_parts.append(piece)
                    n_chars += len(piece)
                    if done_marker and done_at is None and done_marker in "".join(text_parts[-2:]):
                        done_at = time.monotonic()
                    if on_line:
                        partial += piece
                        *done, partial = partial.split("\n")
                        for ln in done:
                            on_line(ln)
        finally:
            sel.close()
            if ended:
                try:
                    proc.wait(timeout=EXIT_WAIT_S)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None:
                run.killed = True
                _kill(proc)
            run.returncode = proc.wait()
            text_parts.append(decoder.decode(b"", final=True))
    run.console = "".join(text_parts)
    run.duration_s = time.monotonic() - start
    return run


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -- accelerator --------------------------------------------------------------
def _cache_key() -> str:
    return f"{qemu_version()} | {MACHINE} | host {platform.release()}"


def choose_accel(cache: Cache | Path, bzimage: Path, initramfs: Path, *, log_dir: Path) -> tuple[str, str]:
    """("kvm"|"tcg", why).  Probes KVM with the real kernel and initramfs
    (`series.probe=1`: init prints a marker and powers off) under a short limit.
    `cache`: the Cache (its `qemu_accel` file), or the verdict file itself."""
    forced = os.environ.get("SERIES_ACCEL", "").strip().lower()
    if forced in ("kvm", "tcg"):
        return forced, f"SERIES_ACCEL={forced}"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    cache_file = cache.qemu_accel if isinstance(cache, Cache) else cache
    key = _cache_key()
    try:
        cached = json.loads(cache_file.read_text())
        if cached.get("key") == key and cached.get("accel") in ("kvm", "tcg"):
            return str(cached["accel"]), f"cached probe verdict ({cached.get('why', '')})"
    except (OSError, ValueError):
        pass
    run = run_guest(bzimage, initramfs, "console=ttyS0 panic=-1 series.probe=1", accel="kvm",
                    timeout_s=PROBE_TIMEOUT_S, log=log_dir / "kvm-probe.log",
                    done_marker=PROBE_MARKER, grace_s=3.0)
    if PROBE_MARKER in run.console:
        accel, why = "kvm", f"KVM probe guest booted in {run.duration_s:.1f}s"
    elif run.timed_out:
        accel, why = "tcg", f"KVM probe guest did not boot within {PROBE_TIMEOUT_S:.0f}s"
    else:
        accel, why = "tcg", f"KVM probe guest exited (rc={run.returncode}) without booting"
    atomic_write_json(cache_file, {"key": key, "accel": accel, "why": why})
    return accel, why
