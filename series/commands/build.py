"""series build STACK [vN] --onto REF [--per-patch] [--config FRAGMENT] [--json]

The apply and build stages: apply the revision in a worktree of ours, then
build it out of tree in a build directory kept warm per (tree, base, config):
the base first (the cold build, whose warnings are the baseline), then each
patch (--per-patch) or the top.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..context import Context

if TYPE_CHECKING:
    from ..pipeline import Options, Run


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("build", help="build a revision out of tree (tinyconfig + fragments), optionally after each patch")
    add_common(p)
    p.add_argument("--per-patch", action="store_true", help="build after each patch in turn (incrementally)")
    p.set_defaults(func=run)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("stack")
    p.add_argument("revision", nargs="?", help="vN (default: the latest)")
    p.add_argument("--onto", metavar="REF", help="base: a ref, a sha, or debian/X.Y (default: the revision's base, "
                                                 "else [ci] onto)")
    p.add_argument("--tree", metavar="NAME", help="kernel tree (default: [ci] tree, or the only one)")
    p.add_argument("--config", metavar="FRAGMENT", action="append",
                   help="extra kconfig fragment, by name (configs/NAME.config) or path; repeatable "
                        "(default: [test] config in series.toml). base and the suites' fragments are always merged")
    p.add_argument("--suites", metavar="LIST", help="comma-separated test suites (default: [test] suites in series.toml)")
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="make -jN (default: the number of CPUs)")
    p.add_argument("--rebuild", action="store_true",
                   help="build every commit, even one whose result is recorded (else reported `cached`)")
    p.add_argument("--cc", metavar="CMD", default="gcc",
                   help="the compiler, passed to make as CC= (e.g. 'distcc gcc' or 'icecc gcc' to spread compiles; "
                        "behind ccache when installed, through CCACHE_PREFIX)")
    add_no_sandbox(p)
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")


def add_no_sandbox(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                   help="run make and the suites' compile without the bwrap sandbox (which gives them no network "
                        "and lets them write only in the build directory, the worktree and ccache's store): "
                        "for a tree the sandbox cannot see, or to debug a build")


def options(args: argparse.Namespace, cmd: str) -> "Options":
    from ..errors import UserError
    from ..pipeline import Options
    if args.jobs is not None and args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    suites = [s.strip() for s in args.suites.split(",") if s.strip()] if args.suites is not None else None
    argv = [args.stack] + ([args.revision] if args.revision else []) + \
        (["--onto", args.onto] if args.onto else []) + (["--tree", args.tree] if args.tree else []) + \
        [a for c in (args.config or []) for a in ("--config", c)] + \
        (["--suites", args.suites] if args.suites is not None else []) + \
        (["--per-patch"] if getattr(args, "per_patch", False) else []) + (["--rebuild"] if args.rebuild else []) + \
        (["--cc", args.cc] if args.cc != "gcc" else []) + ([] if args.sandbox else ["--no-sandbox"])
    return Options(onto=args.onto, tree=args.tree, jobs=args.jobs, suites=suites, config=args.config, argv=argv,
                   rebuild=args.rebuild, cc=args.cc, sandbox=args.sandbox)


def build_json(r: "Run") -> dict[str, Any]:
    st = r.result("build")
    res = r.state.apply
    assert st is not None and res is not None
    return {"status": str(st.status), "summary": st.summary, "config": st.extra.get("config"),
            "fragments": st.extra.get("fragments", []),
            "not_set": st.extra.get("not_set", []), "build_dir": st.extra.get("build_dir"),
            "base": res.base_commit, "missing": res.missing,
            "patches": st.items, "log": str(r.dir)}


def build_text(r: "Run") -> str:
    st = r.result("build")
    res = r.state.apply
    assert st is not None and res is not None
    lines = [f"build {r.stack.name} v{r.rev.version}: {st.status.upper()} - {st.summary}"]
    for o in st.extra.get("not_set", []):
        lines.append(f"  config: {o['option']}={o['wanted']} did not stick (got {o['got']})")
    if res.missing:
        lines.append(f"  missing patches (not built): {', '.join(map(str, res.missing))}")
    before: str | None = None
    for it in st.items:
        label = "base" if it["index"] == 0 else f"patch {it['index']}"
        what = f"cached: {it.get('cached_from', 'an earlier build')}" if it.get("cached") else \
            f"{it.get('rebuilt', 0)} objects"
        if not it.get("cached") and it.get("built_from") and it["built_from"] != before:
            what += f" since {str(it['built_from'])[:12]}, the build directory's last build"
        before = it.get("commit")
        lines.append(f"  {label:<9} {it['status']:<5} {it['duration_s']:7.1f}s  ({what})")
        lines += [f"      new warning: {w}" for w in it["new_warnings"]]
        lines += [f"      error: {e}" for e in it["errors"]]
    lines.append(f"results: {r.path('results.json')}")
    return "\n".join(lines)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..pipeline import prepare
    from ..pipeline.progress import progress
    from ..pipeline.stages import execute
    opts = options(args, "build")
    opts.per_patch = args.per_patch
    with progress(ctx) as say:
        with prepare(ctx.ws, "build", args.stack, args.revision, opts, stages=["build"], say=say) as r:
            execute(r, ["build"], keep_going=False)
    st = r.result("build")
    assert st is not None
    ctx.emit(build_json(r), build_text(r))
    return 2 if st.status in ("fail", "error", "skip") else 0
