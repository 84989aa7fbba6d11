"""series test STACK [vN] --onto REF [--json]

The apply, build and test stages: apply, build the top of the revision (warm
build dir), build the stack's test suites (series/suites/*.toml, chosen in
series.toml) against the tree under test, boot the kernel in qemu with them in
an initramfs, and report the test results and any kernel problems seen on the
console.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..context import Context
from .build import add_common, build_json, options

DEFAULT_BOOT_TIMEOUT_S = 600.0
DEFAULT_TEST_TIMEOUT_S = 300


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("test", help="build, then boot the kernel in qemu and run the stack's test suites")
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
    from ..errors import UserError
    from ..pipeline import prepare
    from ..pipeline.progress import progress
    from ..pipeline.stages import execute
    if args.boot_timeout <= 0 or args.test_timeout <= 0:
        raise UserError("timeouts must be positive")
    opts = options(args, "test")
    opts.per_patch, opts.build_base = False, False
    opts.boot_timeout_s, opts.test_timeout_s, opts.cmdline = args.boot_timeout, args.test_timeout, args.cmdline
    opts.accel = None if args.accel == "auto" else args.accel
    with progress(ctx) as say:
        with prepare(ctx.ws, "test", args.stack, args.revision, opts, stages=["test"], say=say) as r:
            execute(r, ["test"], keep_going=False)
    build_st, test_st = r.result("build"), r.result("test")
    assert build_st is not None and test_st is not None
    boot = r.state.extra.get("boot")
    status = r.status
    data: dict[str, Any] = {
        "status": str(status),
        "accel": boot.accel if boot else None,
        "kernel_problems": [p.to_dict() for p in boot.problems] if boot else [],
        "tests": [t.to_dict() for t in boot.tests] if boot else [],
        "summary": test_st.summary,
        "build": build_json(r),
        "selftests": test_st.extra.get("selftests", []),
        "log": str(boot.log) if boot else None,
        "results": str(r.path("results.json")),
    }
    ctx.emit(data, _text(r.stack.name, r.rev.version, data))
    return 2 if status in ("fail", "error") or test_st.status == "skip" and build_st.status.failed else 0


def _text(stack: str, version: int, d: dict[str, Any]) -> str:
    lines = [f"test {stack} v{version}: {d['status'].upper()} - {d['summary']}"
             + (f" (qemu {d['accel']})" if d["accel"] else "")]
    for b in d["selftests"]:
        if b["status"] != "built":
            lines.append(f"  suite {b['name']}: {b['status']} ({b['reason']})")
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
