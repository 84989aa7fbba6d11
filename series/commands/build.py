"""series build STACK [vN] --onto REF [--per-patch] [--config FRAGMENT] [--json]

Apply the revision in a worktree of ours, then build it out of tree in a build
directory kept warm per (tree, base, config): the base first (the cold build,
whose warnings are the baseline), then each patch (--per-patch) or the top.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..context import Context
from ..errors import UserError
from ..fsutil import exclusive_lock
from ..stacks.model import parse_version
from ..stacks.store import load_stack
from ..stages.apply import ApplyResult, apply_revision, new_log_dir
from ..stages.build import DEFAULT_FRAGMENT, BuildDir, SeriesBuild, build_dir_for, build_series
from ..stages.result import StageResult, write_results
from ..trees import load_tree

_FINE_RE = re.compile(r"^building [^:]+: [A-Z][A-Z0-9_]* ")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build a revision out of tree (tinyconfig + fragment), optionally after each patch")
    add_common(p)
    p.add_argument("--per-patch", action="store_true", help="build after each patch in turn (incrementally)")
    p.set_defaults(func=run)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("stack")
    p.add_argument("revision", nargs="?", help="vN (default: the latest)")
    p.add_argument("--onto", metavar="REF", help="base: a ref, a sha, or debian/X.Y (default: [ci] onto)")
    p.add_argument("--tree", metavar="NAME", help="kernel tree (default: [ci] tree, or the only one)")
    p.add_argument("--config", metavar="FRAGMENT", type=Path, help=f"kconfig fragment (default: {DEFAULT_FRAGMENT.name})")
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="make -jN (default: the number of CPUs)")
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")


@contextlib.contextmanager
def progress(ctx: Context) -> Iterator[Callable[[str], None]]:
    """A rich status line on stderr when interactive; plain step lines otherwise; nothing in --json."""
    if ctx.interactive:
        from rich.console import Console
        console = Console(stderr=True)
        with console.status("starting") as status:
            def say(msg: str) -> None:
                status.update(msg)
                if not _FINE_RE.match(msg) and not msg.startswith("Testing "):
                    console.print(f"[dim]{msg}[/dim]")
            yield say
    else:
        def say(msg: str) -> None:
            if not _FINE_RE.match(msg):
                ctx.info(msg)
        yield say


@dataclass
class Prepared:
    stack: str
    version: int
    run_dir: Path
    apply: ApplyResult
    build: SeriesBuild | None
    build_dir: BuildDir | None
    skipped: StageResult | None = None


def apply_and_build(args: argparse.Namespace, ctx: Context, cmd: str, *, per_patch: bool, build_base: bool,
                    say: Callable[[str], None], after_build: Callable[[Prepared], None] | None = None) -> Prepared:
    """Shared by `build` and `test`: load, apply, build (holding the build dir's lock
    for `after_build` too, so nothing rebuilds under a running test)."""
    ws = ctx.ws
    stack = load_stack(ws, args.stack)
    rev = stack.revision(parse_version(args.revision) if args.revision else None)
    tree = load_tree(ws, args.tree)
    onto = args.onto or ws.config.get("ci", {}).get("onto")
    if not onto:
        raise UserError("no base given: use --onto REF")
    fragment = (args.config or DEFAULT_FRAGMENT).expanduser().resolve()
    if not fragment.is_file():
        raise UserError(f"config fragment {fragment} not found")
    if args.jobs is not None and args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    run_dir = new_log_dir(ws, cmd, stack.name)
    with exclusive_lock(ws.locks / f"{stack.name}.lock", f"stack {stack.name}"):
        say(f"applying {stack.name} v{rev.version} onto {onto}")
        res = apply_revision(ws, stack.name, rev, tree, onto, log_dir=run_dir / "apply")
    prep = Prepared(stack=stack.name, version=rev.version, run_dir=run_dir, apply=res, build=None, build_dir=None)
    if res.status == "conflict":
        bad = [str(p.index) for p in res.patches if p.status == "conflict"]
        prep.skipped = StageResult.skip("build", f"apply failed: patch {', '.join(bad)} conflicts")
        return prep
    commits = [(p.index, p.commit) for p in res.patches if p.commit]
    bd = BuildDir(build_dir_for(ws.cache, tree.name, res.base_commit, fragment))
    prep.build_dir = bd
    with exclusive_lock(bd.lock, f"build directory {bd.root.name}"):
        prep.build = build_series(bd, tree.work_repo, res.base_commit, commits, fragment=fragment,
                                  per_patch=per_patch, jobs=args.jobs, progress=say, build_base=build_base)
        if after_build:
            after_build(prep)
    return prep


def build_json(prep: Prepared) -> dict[str, Any]:
    st = prep.build.stage if prep.build else prep.skipped
    assert st is not None
    return {"status": st.status, "summary": st.summary, "config": st.extra.get("config"),
            "not_set": st.extra.get("not_set", []), "build_dir": st.extra.get("build_dir"),
            "base": prep.apply.base_commit, "missing": prep.apply.missing,
            "patches": st.items, "log": str(prep.run_dir)}


def build_text(prep: Prepared) -> str:
    st = prep.build.stage if prep.build else prep.skipped
    assert st is not None
    lines = [f"build {prep.stack} v{prep.version}: {st.status.upper()} - {st.summary}"]
    for o in st.extra.get("not_set", []):
        lines.append(f"  config: {o['option']}={o['wanted']} did not stick (got {o['got']})")
    if prep.apply.missing:
        lines.append(f"  missing patches (not built): {', '.join(map(str, prep.apply.missing))}")
    for it in st.items:
        label = "base" if it["index"] == 0 else f"patch {it['index']}"
        lines.append(f"  {label:<9} {it['status']:<5} {it['duration_s']:7.1f}s  ({it.get('rebuilt', 0)} objects)")
        lines += [f"      new warning: {w}" for w in it["new_warnings"]]
        lines += [f"      error: {e}" for e in it["errors"]]
    lines.append(f"results: {prep.run_dir / 'results.json'}")
    return "\n".join(lines)


def run(args: argparse.Namespace, ctx: Context) -> int:
    with progress(ctx) as say:
        prep = apply_and_build(args, ctx, "build", per_patch=args.per_patch, build_base=True, say=say)
    st = prep.build.stage if prep.build else prep.skipped
    assert st is not None
    write_results(prep.run_dir / "results.json",
                  {"command": "build", "stack": prep.stack, "version": prep.version,
                   "base": prep.apply.base_commit, "apply": prep.apply.to_json()}, [st])
    ctx.emit(build_json(prep), build_text(prep))
    return 2 if st.status in ("fail", "error") or prep.skipped else 0
