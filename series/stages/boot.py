"""Boot a built kernel in qemu with the selftests in an initramfs, and judge it.

The guest init (series/data/init) prints SERIES-TEST-BEGIN/END markers
around each test; the text between them is parsed as KTAP/TAP or as
uffd-unit-tests output.  The whole console is scanned for kernel problems.
Durations come from when the console bytes reached the host.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import Cache
from ..pipeline.result import StageResult
from ..pipeline.status import Status
from ..suites import BuiltSuite
from .console import Problem, scan_console
from .initramfs import GuestTest, make_initramfs
from .ktap import TestCase, parse_ktap, parse_uffd_unit
from .qemu import GuestRun, choose_accel, kernel_cmdline, run_guest

DEFAULT_BOOT_TIMEOUT_S = 600.0
DEFAULT_TEST_TIMEOUT_S = 300
BASE_CMDLINE = "console=ttyS0 panic=-1 softlockup_panic=0 hung_task_panic=0"
KSFT_SKIP = 4
TIMEOUT_RCS = {124: "timed out", 137: "killed (timeout)", 143: "terminated (timeout)"}

_BEGIN_RE = re.compile(r"^SERIES-TEST-BEGIN (\S+)\s*$", re.MULTILINE)
_END_RE = re.compile(r"^SERIES-TEST-END (\S+) rc=(\d+)\s*$", re.MULTILINE)

Progress = Callable[[str], None]


def guest_tests(suites: list[BuiltSuite]) -> list[GuestTest]:
    """What to run in the guest: every program of every suite that was built.
    A suite's only program named like the suite reports as the suite; other
    programs as `suite/program`."""
    out = []
    for b in suites:
        if b.status != "built":
            continue
        for p in b.programs:
            name = b.name if len(b.programs) == 1 and p.name == b.name else f"{b.name}/{p.name}"
            out.append(GuestTest(name=name, binary=p.path, args=" ".join(p.args), parser=b.suite.parser,
                                 suite=b.name, expect=b.suite.expect))
    return out


@dataclass
class BootResult:
    stage: StageResult
    accel: str
    problems: list[Problem]
    tests: list[TestCase]
    log: Path

    def to_json(self) -> dict[str, Any]:
        return {"status": self.stage.status, "accel": self.accel,
                "kernel_problems": [p.to_dict() for p in self.problems],
                "tests": [t.to_dict() for t in self.tests], "log": str(self.log),
                "summary": self.stage.summary}


def boot_and_test(bzimage: Path, suites: list[BuiltSuite], *, work_dir: Path, cache: Cache,
                  boot_timeout_s: float = DEFAULT_BOOT_TIMEOUT_S, test_timeout_s: int = DEFAULT_TEST_TIMEOUT_S,
                  cmdline_extra: str = "", accel: str | None = None, progress: Progress | None = None,
                  on_test: OnTest | None = None) -> BootResult:
    """`on_test(test being run, results seen so far)` follows the guest's console."""
    say = progress or (lambda _m: None)
    start = time.monotonic()
    tests = guest_tests(suites)
    initrd = make_initramfs(work_dir / "initramfs.cpio", tests)
    why = "requested"
    if accel is None:
        say("probing the accelerator (KVM, else TCG)")
        accel, why = choose_accel(cache, bzimage, initrd, log_dir=work_dir)
    append = f"{BASE_CMDLINE} series.timeout={int(test_timeout_s)}"
    if cmdline_extra:
        append += " " + cmdline_extra
    say(f"booting under {accel} ({why})")
    log = work_dir / "console.log"
    run = run_guest(bzimage, initrd, append, accel=accel, timeout_s=boot_timeout_s, log=log,
                    on_line=_line_progress(say, on_test), done_marker="SERIES-DONE")
    cases, problems = analyse(run, tests, [b for b in suites if b.status != "built"])
    fails = [c for c in cases if c.status == "fail"]
    status: Status
    if problems or fails:
        status = Status.FAIL
        parts = []
        if problems:
            parts.append("kernel: " + ", ".join(sorted({p.kind for p in problems})))
        if fails:
            parts.append(f"{len(fails)} test(s) failed")
        summary = "; ".join(parts)
    elif cases and all(c.status == "skip" for c in cases):
        status, summary = Status.SKIP, "every test was skipped"
    else:
        status = Status.PASS
        summary = f"{sum(c.status == 'pass' for c in cases)} passed, {sum(c.status == 'skip' for c in cases)} skipped"
    stage = StageResult(name="test", status=status, duration_s=time.monotonic() - start, summary=summary,
                        items=[c.to_dict() for c in cases], log=str(log),
                        counts={s: sum(c.status == s for c in cases) for s in ("pass", "fail", "skip")},
                        extra={"accel": accel, "accel_reason": why,
                               "kernel_problems": [p.to_dict() for p in problems],
                               "cmdline": kernel_cmdline(append), "qemu": " ".join(run.command),
                               "boot_duration_s": round(run.duration_s, 3),
                               # killed: the guest did not stop by itself (a timeout, or no reset after its end)
                               "guest_killed": run.killed})
    return BootResult(stage=stage, accel=accel, problems=problems, tests=cases, log=log)


OnTest = Callable[[str, int], None]
# a result line: KTAP `ok N`/`not ok N`, uffd-unit-tests' `... done` / `skipped [` / `failed [`
_RESULT_LINE_RE = re.compile(r"^\s*(?:not )?ok \d+|\.\.\. (?:done|skipped \[|failed \[)|^\s*(?:done|skipped \[|failed \[)")


def _line_progress(say: Progress, on_test: OnTest | None = None) -> Callable[[str], None]:
    state = {"suite": "", "test": ""}
    seen = [0]

    def tell() -> None:
        if on_test:
            on_test(f"{state['suite']}: {state['test']}".rstrip(": "), seen[0])

    def f(line: str) -> None:
        if line.startswith("SERIES-TEST-BEGIN "):
            state["suite"], state["test"] = line.split()[1], ""
            say(f"running {line.split()[1]}")
            tell()
        elif line.startswith("Testing "):
            state["test"] = line.strip().split("...")[0].removeprefix("Testing ").strip()
            say(line.strip().rstrip(".").strip())
        elif line.startswith("SERIES-INIT-START"):
            say("guest init started")
        if _RESULT_LINE_RE.search(line):
            seen[0] += 1
            m = re.match(r"^\s*(?:not )?ok \d+\s*-?\s*([^#]*)", line)
            if m and m.group(1).strip():
                state["test"] = m.group(1).strip()
            tell()
    return f


def analyse(run: GuestRun, tests: list[GuestTest], not_built: list[BuiltSuite]) -> tuple[list[TestCase], list[Problem]]:
    """Test cases and kernel problems from a guest's console."""
    text = run.console
    problems = scan_console(text)
    if run.timed_out:
        tail = [ln for ln in text.splitlines() if ln.strip()][-20:]
        problems.append(Problem(kind="timeout", excerpt=f"guest killed after {run.duration_s:.0f}s\n" + "\n".join(tail)))
    died = run.timed_out or any(p.kind in ("panic", "no-init") for p in problems)
    cases: list[TestCase] = []
    for nb in not_built:
        cases.append(TestCase(name=nb.name, status="skip" if nb.status == "skip" else "fail",
                              reason=nb.reason or "not built"))
    begins = {m.group(1): m for m in _BEGIN_RE.finditer(text)}
    ends = {m.group(1): m for m in _END_RE.finditer(text)}
    for t in tests:
        b = begins.get(t.name)
        if b is None:
            why = "the guest stopped before it ran" if died or "SERIES-DONE" not in text else "not run (not selected)"
            cases.append(TestCase(name=t.name, status="skip", reason=why))
            continue
        e = ends.get(t.name)
        seg_start = b.end()
        seg_end = e.start() if e else len(text)
        seg = text[seg_start:seg_end]
        parsed = parse_uffd_unit(seg, prefix=t.name) if t.parser == "uffd-unit" else parse_ktap(seg, prefix=t.name)
        found = parsed.cases
        for c in found:
            c.start += seg_start
            c.end += seg_start
            t0, t1 = run.time_at(c.start), run.time_at(c.end)
            c.duration_s = (t1 - t0) if t0 is not None and t1 is not None else None
        if t.expect:
            depth = t.name.count("/") + 1
            seen = {c.name.split("/")[depth] for c in found if c.name.count("/") > depth}
            for want in t.expect:
                if want not in seen:
                    found.append(TestCase(name=f"{t.name}/{want}", status="fail" if e is None else "skip",
                                          reason="did not run: the test program or guest died" if e is None
                                          else f"not reported by this tree's {t.name}"))
        rc = int(e.group(2)) if e else None
        t_all = (run.time_at(b.start()), run.time_at(e.start()) if e else run.duration_s)
        whole = (t_all[1] - t_all[0]) if t_all[0] is not None and t_all[1] is not None else None
        if e is None:
            found.append(TestCase(name=t.name, status="fail", duration_s=whole,
                                  reason="did not finish: the guest " + ("timed out" if run.timed_out else "died")))
        elif rc in TIMEOUT_RCS:
            found.append(TestCase(name=t.name, status="fail", duration_s=whole,
                                  reason=f"{TIMEOUT_RCS[rc]} (rc={rc}) at the per-test limit"))
        elif not found:
            status = "pass" if rc == 0 else "skip" if rc == KSFT_SKIP else "fail"
            reason = "" if rc == 0 else f"exit status {rc}, no parsable results"
            if rc == KSFT_SKIP and parsed.skip_all:     # `1..0 # SKIP why`: the program said why
                reason = parsed.skip_all
            found.append(TestCase(name=t.name, status=status, duration_s=whole, reason=reason))
        elif rc != 0 and rc != KSFT_SKIP and not any(c.status == "fail" for c in found):
            found.append(TestCase(name=t.name, status="fail", duration_s=whole, reason=f"exit status {rc}"))
        cases.extend(found)
    return cases, problems
