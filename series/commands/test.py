"""series test STACK [vN] --onto REF [--json]

Apply, build the top of the revision (warm build dir), build the selftests from
the tree under test, boot the kernel in qemu with them in an initramfs, and
report the test results and any kernel problems seen on the console.
"""

from __future__ import annotations

import argparse
import shutil
from typing import Any

from ..context import Context
from ..errors import UserError
from ..stages.boot import DEFAULT_BOOT_TIMEOUT_S, DEFAULT_TEST_TIMEOUT_S, BootResult, boot_and_test
from ..stages.build import SelftestBinary, bzimage_path, build_selftests
from ..stages.result import StageResult, worst, write_results
from .build import Prepared, add_common, apply_and_build, build_json, progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="build, then boot the kernel in qemu and run the userfaultfd MOVE selftests")
    add_common(p)
    p.add_argument("--boot-timeout", type=float, default=DEFAULT_BOOT_TIMEOUT_S, metavar="S",
                   help=f"whole-boot limit in seconds (default {DEFAULT_BOOT_TIMEOUT_S:.0f})")
    p.add_argument("--test-timeout", type=int, default=DEFAULT_TEST_TIMEOUT_S, metavar="S",
                   help=f"per-test limit in seconds (default {DEFAULT_TEST_TIMEOUT_S})")
    p.add_argument("--cmdline", default="", metavar="ARGS",
                   help="extra kernel command line, e.g. series.tests=uffd-unit-tests")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                   help="qemu accelerator (default: KVM when a probe guest boots under it, else TCG)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.boot_timeout <= 0 or args.test_timeout <= 0:
        raise UserError("timeouts must be positive")
    outcome: dict[str, Any] = {}

    with progress(ctx) as say:
        def after_build(prep: Prepared) -> None:
            b = prep.build
            assert b is not None and prep.build_dir is not None
            if b.bzimage is None or b.stage.status == "fail":
                outcome["test"] = StageResult.skip("test", f"build failed: {b.stage.summary}")
                return
            bz = prep.run_dir / "bzImage"
            shutil.copy2(b.bzimage, bz)
            say("building selftests (make headers, uffd-unit-tests, kernel-tests)")
            bins = build_selftests(prep.build_dir.src, prep.build_dir.obj, prep.run_dir / "selftests",
                                   log_dir=prep.run_dir / "selftests")
            outcome["bins"] = bins
            outcome["boot"] = boot_and_test(bz, bins, work_dir=prep.run_dir, cache=ctx.ws.cache,
                                            boot_timeout_s=args.boot_timeout, test_timeout_s=args.test_timeout,
                                            cmdline_extra=args.cmdline,
                                            accel=None if args.accel == "auto" else args.accel, progress=say)

        prep = apply_and_build(args, ctx, "test", per_patch=False, build_base=False, say=say, after_build=after_build)

    build_st = prep.build.stage if prep.build else prep.skipped
    assert build_st is not None
    boot: BootResult | None = outcome.get("boot")
    test_st: StageResult = boot.stage if boot else outcome.get("test") or StageResult.skip("test", build_st.summary)
    bins: list[SelftestBinary] = outcome.get("bins", [])
    write_results(prep.run_dir / "results.json",
                  {"command": "test", "stack": prep.stack, "version": prep.version, "base": prep.apply.base_commit,
                   "apply": prep.apply.to_json(),
                   "selftests": [{"name": b.name, "status": b.status, "reason": b.reason, "command": b.command}
                                 for b in bins]},
                  [build_st, test_st])
    status = worst([build_st.status, test_st.status]) if boot else ("fail" if build_st.status != "pass" and build_st.status != "warn" else test_st.status)
    data: dict[str, Any] = {
        "status": status,
        "accel": boot.accel if boot else None,
        "kernel_problems": [p.to_dict() for p in boot.problems] if boot else [],
        "tests": [t.to_dict() for t in boot.tests] if boot else [],
        "summary": test_st.summary,
        "build": build_json(prep),
        "selftests": [{"name": b.name, "status": b.status, "reason": b.reason} for b in bins],
        "log": str(boot.log) if boot else None,
        "results": str(prep.run_dir / "results.json"),
    }
    ctx.emit(data, _text(prep, data))
    return 2 if status in ("fail", "error") else 0


def _text(prep: Prepared, d: dict[str, Any]) -> str:
    lines = [f"test {prep.stack} v{prep.version}: {d['status'].upper()} - {d['summary']}"
             + (f" (qemu {d['accel']})" if d["accel"] else "")]
    for b in d["selftests"]:
        if b["status"] != "built":
            lines.append(f"  selftest {b['name']}: {b['status']} ({b['reason']})")
    for t in d["tests"]:
        dur = f"{t['duration_s']:6.2f}s" if t["duration_s"] is not None else "      -"
        lines.append(f"  {t['status']:<4} {dur}  {t['name']}" + (f"  ({t['reason']})" if t["reason"] else ""))
    for p in d["kernel_problems"]:
        lines.append(f"  KERNEL {p['kind'].upper()}:")
        lines += ["    " + ln for ln in p["excerpt"].splitlines()[:12]]
    if d["log"]:
        lines.append(f"console: {d['log']}")
    lines.append(f"results: {d['results']}")
    return "\n".join(lines)
