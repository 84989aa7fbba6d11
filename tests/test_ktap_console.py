"""Fast unit tests: KTAP/TAP and uffd-unit-tests parsers, the console scanner,
the build diagnostics parser, the cpio writer and the boot analysis."""

from __future__ import annotations

from pathlib import Path

from series.stages.boot import analyse
from series.stages.build import options_not_set, parse_diags, first_errors
from series.suites import BuiltSuite, Suite
from series.stages.console import scan_console
from series.stages.initramfs import Cpio, GuestTest
from series.stages.ktap import parse_ktap, parse_uffd_unit
from series.stages.qemu import GuestRun

KTAP = """KTAP version 1
1..4
# starting
ok 1 move_basic
not ok 2 move_eexist
# expected -EEXIST, got 0
ok 3 move_thp # SKIP THP disabled
    KTAP version 1
    1..2
    ok 1 sub_a
    not ok 2 sub_b
not ok 4 nested
"""


def test_ktap_statuses_reasons_and_subtests() -> None:
    p = parse_ktap(KTAP, prefix="uffd-move-tests")
    by = {c.name: c for c in p.cases}
    assert by["uffd-move-tests/move_basic"].status == "pass"
    assert by["uffd-move-tests/move_eexist"].status == "fail"
    assert by["uffd-move-tests/move_eexist"].reason == "expected -EEXIST, got 0"
    assert by["uffd-move-tests/move_thp"].status == "skip"
    assert by["uffd-move-tests/move_thp"].reason == "THP disabled"
    assert by["uffd-move-tests/nested/sub_a"].status == "pass"
    assert by["uffd-move-tests/nested/sub_b"].status == "fail"
    assert by["uffd-move-tests/nested"].status == "fail"
    assert p.planned == 4 and p.complete


def test_ktap_incomplete_and_bail_out() -> None:
    p = parse_ktap("TAP version 13\n1..3\nok 1 - a\nBail out! no uffd\n")
    assert [c.name for c in p.cases] == ["a"]
    assert p.bail_out == "no uffd"
    assert not p.complete
    assert not parse_ktap("1..3\nok 1 a\n").complete


# kselftest_harness.h output (fixture "demo", variant "plain"), as printed by
# a program of ours built against 6.12's harness; 6.1's differs only in the
# skip line, which has no test name: `ok 3 # SKIP no swap here`.
HARNESS = """TAP version 13
1..5
# Starting 5 tests from 2 test cases.
#  RUN           demo.plain.passes ...
#            OK  demo.plain.passes
ok 1 demo.plain.passes
#  RUN           demo.plain.fails ...
# uffd-move-demo.c:10:fails:Expected 0 (0) != (r).ret == 0 (0)
# uffd-move-demo.c:10:fails:UFFDIO_MOVE: ret=-1 errno=2 move=-2; expected ret=0 move=4096
# fails: Test terminated by assertion
#          FAIL  demo.plain.fails
not ok 2 demo.plain.fails
#  RUN           demo.plain.skips ...
#      SKIP      no swap here
#            OK  demo.plain.skips
ok 3 demo.plain.skips # SKIP no swap here
#  RUN           demo.plain.hangs ...
# hangs: Test terminated by timeout
#          FAIL  demo.plain.hangs
not ok 4 demo.plain.hangs
#  RUN           kmsg.kernel_log_clean ...
#            OK  kmsg.kernel_log_clean
ok 5 kmsg.kernel_log_clean
# FAILED: 3 / 5 tests passed.
# Totals: pass:2 fail:2 xfail:0 xpass:0 skip:1 error:0
"""


def test_ktap_kselftest_harness_output() -> None:
    harness_61 = HARNESS.replace("ok 3 demo.plain.skips # SKIP", "ok 3 # SKIP")
    assert harness_61 != HARNESS
    for text in (HARNESS, harness_61):
        p = parse_ktap(text, prefix="uffd-move-demo")
        assert [(c.name, c.status) for c in p.cases] == [
            ("uffd-move-demo/demo.plain.passes", "pass"), ("uffd-move-demo/demo.plain.fails", "fail"),
            ("uffd-move-demo/demo.plain.skips", "skip"), ("uffd-move-demo/demo.plain.hangs", "fail"),
            ("uffd-move-demo/kmsg.kernel_log_clean", "pass")]
        by = {c.name.split("/")[1]: c for c in p.cases}
        # the reason is the assertion's message, not the harness's bookkeeping around it
        assert by["demo.plain.fails"].reason == "uffd-move-demo.c:10:fails:UFFDIO_MOVE: ret=-1 errno=2 move=-2; expected ret=0 move=4096"
        assert by["demo.plain.hangs"].reason == "hangs: Test terminated by timeout"
        assert by["demo.plain.skips"].reason == "no swap here"
        assert p.planned == 5 and p.complete and p.skip_all is None


def test_ktap_harness_noise_is_no_reason() -> None:
    # nothing but bookkeeping before the failure: no made-up reason
    p = parse_ktap("1..1\n#  RUN           f.t ...\n# t: Test failed at step #3\n#          FAIL  f.t\nnot ok 1 f.t\n")
    assert p.cases[0].status == "fail" and p.cases[0].reason == ""
    # a nameless result without a RUN line keeps the generic name
    assert parse_ktap("1..1\nok 1 # SKIP why\n").cases[0].name == "test 1"


UFFD = ("Testing move on anon... done\n"
        "Testing move-pmd on anon... [    1.2] some kernel line\n"
        "done\n"
        "Testing move-pmd-split on anon... skipped [reason: feature missing]\n"
        "Testing zeropage on shmem... failed [reason: stats check error]\n"
        "Userfaults unit tests: pass=2, skip=1, fail=1 (total=4)\n")


def test_uffd_unit_output() -> None:
    p = parse_uffd_unit(UFFD)
    got = {c.name: (c.status, c.reason) for c in p.cases}
    assert got == {
        "uffd-unit-tests/move/anon": ("pass", ""),
        "uffd-unit-tests/move-pmd/anon": ("pass", ""),
        "uffd-unit-tests/move-pmd-split/anon": ("skip", "feature missing"),
        "uffd-unit-tests/zeropage/shmem": ("fail", "stats check error"),
    }
    assert p.summary == {"pass": 2, "skip": 1, "fail": 1, "total": 4}


def test_uffd_unit_case_without_outcome_fails() -> None:
    p = parse_uffd_unit("Testing move on anon... done\nTesting move-pmd on anon... Segmentation fault\n")
    assert p.cases[1].status == "fail"
    assert "Segmentation fault" in p.cases[1].reason


PANIC_LOG = """[    0.1] Linux version 6.12.117
[    0.7] Run /init as init process
SERIES-INIT-START 6.12.117
SERIES-TEST-BEGIN uffd-unit-tests
Testing move on anon... [    1.0] Kernel panic - not syncing: series test panic
[    1.0] CPU: 1 UID: 0 PID: 70 Comm: uffd-unit-tests Not tainted 6.12.117 #1
[    1.0] Call Trace:
[    1.0]  <TASK>
[    1.0]  userfaultfd_ioctl+0x1/0x2
[    1.0] ---[ end Kernel panic - not syncing: series test panic ]---
"""


def test_console_panic_with_excerpt() -> None:
    probs = scan_console(PANIC_LOG)
    assert [p.kind for p in probs] == ["panic"]
    ex = probs[0].excerpt
    assert "series test panic" in ex and "userfaultfd_ioctl" in ex and ex.rstrip().endswith("]---")


def test_console_kinds() -> None:
    log = "\n".join([
        "SERIES-INIT-START",
        "[    2.0] ------------[ cut here ]------------",
        "[    2.0] WARNING: CPU: 0 PID: 1 at mm/userfaultfd.c:123 move_pages+0x1/0x2",
        "[    2.0] ---[ end trace 0000000000000000 ]---",
        "[    3.0] BUG: kernel NULL pointer dereference, address: 0000000000000008",
        "[    3.0] Oops: Oops: 0002 [#1] SMP",
        "[    3.0] kernel BUG at mm/huge_memory.c:42!",
        "[   30.0] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [uffd:70]",
        "[  130.0] INFO: task uffd:71 blocked for more than 120 seconds.",
        "[  140.0] rcu: INFO: rcu_preempt self-detected stall on CPU",
    ])
    kinds = [p.kind for p in scan_console(log)]
    # a report's own follow-up lines of the same kind (kernel BUG after BUG:, an RCU
    # stall after the soft lockup) belong to its excerpt, not to a new problem
    assert kinds == ["warning", "bug", "oops", "lockup", "hung"]
    # the same kind far apart: two problems
    far = "SERIES-INIT-START\n[ 1.0] BUG: one\n" + "[ 1.0] x\n" * 40 + "[ 2.0] BUG: two\n"
    assert [p.excerpt.splitlines()[0] for p in scan_console(far)] == ["[ 1.0] BUG: one", "[ 2.0] BUG: two"]


def test_console_clean_and_no_init() -> None:
    assert scan_console("[ 0.1] Linux\nSERIES-INIT-START\nTesting BUG: in user output? no: not at line start\n") == []
    probs = scan_console("[ 0.1] Linux\n[ 0.5] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    assert [p.kind for p in probs] == ["panic", "no-init"]
    assert "Unable to mount root fs" in probs[1].excerpt


def _run(text: str, timed_out: bool = False) -> GuestRun:
    return GuestRun(accel="tcg", console=text, arrivals=[(0, 0.0), (len(text) // 2, 1.0)], timed_out=timed_out,
                    duration_s=5.0)


def test_analyse_markers_timeouts_and_missing_tests() -> None:
    uut = GuestTest("uffd-unit-tests", Path("/x/uffd-unit-tests"), "-f move", parser="uffd-unit",
                    expect=("move", "move-pmd", "move-pmd-split"))
    kt = GuestTest("uffd-move-tests", Path("/x/uffd-move-tests"))
    text = ("SERIES-INIT-START\nSERIES-TEST-BEGIN uffd-unit-tests\n" + UFFD.split("Testing zeropage")[0]
            + "Userfaults unit tests: pass=2, skip=1, fail=0 (total=3)\nSERIES-TEST-END uffd-unit-tests rc=0\n"
            "SERIES-TEST-BEGIN uffd-move-tests\nKTAP version 1\n1..1\nok 1 a\nSERIES-TEST-END uffd-move-tests rc=124\n"
            "SERIES-DONE\n")
    cases, probs = analyse(_run(text), [uut, kt], [BuiltSuite(Suite(name="other", file=Path("/x/other.toml")), "skip", reason="absent")])
    by = {c.name: c for c in cases}
    assert probs == []
    assert by["other"].status == "skip"
    assert by["uffd-unit-tests/move/anon"].status == "pass"
    assert by["uffd-unit-tests/move/anon"].duration_s is not None
    assert by["uffd-move-tests/a"].status == "pass"
    assert by["uffd-move-tests"].status == "fail" and "timed out" in by["uffd-move-tests"].reason

    hung = "SERIES-INIT-START\nSERIES-TEST-BEGIN uffd-unit-tests\nTesting move on anon... "
    cases, probs = analyse(_run(hung, timed_out=True), [uut, kt], [])
    by = {c.name: c for c in cases}
    assert [p.kind for p in probs] == ["timeout"]
    assert by["uffd-unit-tests/move/anon"].status == "fail"
    assert by["uffd-unit-tests/move-pmd"].status == "fail"
    assert by["uffd-move-tests"].status == "skip"


def test_analyse_skip_all_plan_keeps_the_programs_reason() -> None:
    # kselftest's `1..0 # SKIP why` + exit 4 (kernel-tests on a kernel without UFFDIO_MOVE)
    kt = GuestTest("uffd-move-tests", Path("/x/uffd-move-tests"))
    body = "TAP version 13\n1..0 # SKIP kernel lacks UFFD_FEATURE_MOVE (UFFDIO_MOVE needs Linux 6.8+)\n"
    text = f"SERIES-INIT-START\nSERIES-TEST-BEGIN uffd-move-tests\n{body}SERIES-TEST-END uffd-move-tests rc=4\nSERIES-DONE\n"
    cases, probs = analyse(_run(text), [kt], [])
    assert probs == [] and [(c.name, c.status) for c in cases] == [("uffd-move-tests", "skip")]
    assert cases[0].reason == "kernel lacks UFFD_FEATURE_MOVE (UFFDIO_MOVE needs Linux 6.8+)"
    # the same plan with a failing exit status is still a failure, not a skip
    cases, _ = analyse(_run(text.replace("rc=4", "rc=1")), [kt], [])
    assert cases[0].status == "fail" and "exit status 1" in cases[0].reason
    assert parse_ktap("1..0\n").skip_all is None


def test_build_diagnostics(tmp_path: Path) -> None:
    src, obj = tmp_path / "src", tmp_path / "obj"
    out = (f"  CC      mm/userfaultfd.o\n"
           f"{src}/mm/userfaultfd.c:10:5: warning: unused variable 'x' [-Wunused-variable]\n"
           f"../src/mm/userfaultfd.c:3:1: error: unknown type name 'this'\n"
           "make[3]: *** [scripts/Makefile.build:229: mm/userfaultfd.o] Error 1\n")
    d = parse_diags(out, src, obj)
    assert [(x.file, x.line, x.severity) for x in d] == [("mm/userfaultfd.c", 10, "warning"),
                                                        ("mm/userfaultfd.c", 3, "error")]
    assert d[0].key == "mm/userfaultfd.c: warning: unused variable 'x' [-Wunused-variable]"
    assert first_errors(out, d) == ["mm/userfaultfd.c:3: error: unknown type name 'this'"]
    assert first_errors("ld: vmlinux.o: undefined reference to `foo'\n", []) == ["ld: vmlinux.o: undefined reference to `foo'"]


def test_options_not_set(tmp_path: Path) -> None:
    frag = tmp_path / "f.config"
    frag.write_text("CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_D=-1\n")
    cfg = tmp_path / ".config"
    cfg.write_text("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_D=0\n")
    got = {o["option"]: o["got"] for o in options_not_set(frag, cfg)}
    assert got == {"CONFIG_B": "n", "CONFIG_D": "0"}


def test_cpio_newc_layout() -> None:
    c = Cpio()
    c.dir("bin")
    c.file("init", b"#!/bin/sh\n")
    c.chardev("dev/console", 5, 1)
    data = c.finish()
    assert data.startswith(b"070701") and len(data) % 512 == 0
    assert b"init\0" in data and b"TRAILER!!!\0" in data and b"#!/bin/sh\n" in data
    # the console node: mode 020600, rdev 5:1
    i = data.index(b"dev/console")
    hdr = data[data.rindex(b"070701", 0, i):i]
    assert hdr[14:22] == b"%08X" % 0o20600 and hdr[78:86] == b"00000005" and hdr[86:94] == b"00000001"
