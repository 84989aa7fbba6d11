"""One pipeline: stages declared as data (stages.py), one Run per command
(run.py) owning the run directory and results.json, one status vocabulary
(status.py).  `prepare()` resolves what every command needs the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UserError
from .result import StageResult, Timer
from .run import Options, Run
from .status import Status, overall, status_of, worst

if TYPE_CHECKING:
    from pathlib import Path

    from ..stacks.model import Revision, Stack
    from ..trees import Tree
    from ..workspace import Workspace
    from .run import Say

__all__ = ["Options", "Run", "StageResult", "Status", "Timer", "overall", "prepare", "status_of", "worst"]


def resolve_tree(ws: "Workspace", name: str | None, onto: str | None, say: "Say") -> "Tree":
    """The named tree (else [ci] tree, else the only one).  A Debian tree named
    in series.toml is made on first use from /usr/src/linux-source-X.Y.tar.xz
    when the base is `debian/X.Y...`."""
    from ..trees import ensure_debian_tree, list_trees, load_tree
    if name is not None and not name.strip():
        raise UserError("--tree needs a name (it is empty)")
    wanted = name or ws.config.get("ci", {}).get("tree")
    known = {t.name for t in list_trees(ws)}
    if wanted and wanted not in known and onto and onto.startswith("debian/"):
        version = ".".join(onto.split("/", 1)[1].split(".")[:2])
        say(f"making kernel tree {wanted!r} from Debian's linux-source-{version} (once)")
        return ensure_debian_tree(ws, wanted, version)
    return load_tree(ws, wanted)


def prepare(ws: "Workspace", command: str, stack_name: str | None, revision: str | None, opts: Options, *,
            stages: list[str], out: "Path | None" = None, say: "Say | None" = None, locked: bool = False) -> Run:
    """Load the stack and revision, resolve the tree and the base when the
    selected stages need them, refuse bad input before any run directory
    exists, and return the Run.

    The Run holds the stack's lock from here to its end, taken before its
    directory exists: a second run (or an import, a fetch, a record) of the same
    stack is refused as busy in one line, instead of failing a stage (a failed
    check would be a false report), and no revision changes under a run that
    reads it (the stack is loaded again once the lock is held).  `locked`: the
    caller holds the lock already (`ci --all`, for all its revisions)."""
    import contextlib
    from ..fsutil import exclusive_lock
    from ..stacks.store import load_stack
    name = stack_name or ws.config.get("ci", {}).get("stack")
    if not name:
        raise UserError("no stack given (and no [ci] stack in series.toml)")
    load_stack(ws, name)        # an unknown stack is refused before a lock file is made for it
    held = contextlib.ExitStack()
    if not locked:
        held.enter_context(exclusive_lock(ws.cache.stack_lock(name), f"stack {name}"))
    try:
        run = _prepare(ws, command, name, revision, opts, stages=stages, out=out, say=say)
        # A run killed in its first stage leaves a readable results.json too
        # (finished: null), as one killed later does.
        run.write()
    except BaseException:
        held.close()
        raise
    run.locks.enter_context(held)
    return run


def _prepare(ws: "Workspace", command: str, stack_name: str | None, revision: str | None, opts: Options, *,
             stages: list[str], out: "Path | None" = None, say: "Say | None" = None) -> Run:
    from ..stacks.model import parse_version
    from ..stacks.store import load_stack
    from ..trees import resolve_ref
    from .stages import NEEDS_TREE, closure
    say = say or (lambda _m: None)
    name = stack_name or ws.config.get("ci", {}).get("stack")
    if not name:
        raise UserError("no stack given (and no [ci] stack in series.toml)")
    stack: Stack = load_stack(ws, name)
    rev: Revision = stack.revision(parse_version(revision) if revision else None)
    if not rev.imported_patches():
        raise UserError(f"{stack.name} v{rev.version} is not imported (it has no imported patch): "
                        f"series fetch {stack.name} --revision {rev.version} (or series import)")
    wanted = {s.name for s in closure(stages)}
    if opts.onto is not None and not opts.onto.strip():
        raise UserError("--onto needs a ref (it is empty)")
    # The [ci] stack is tested where [ci] says (the main job: onto debian/6.12), also a
    # revision whose recorded base is a commit (`series record` writes one); any other
    # stack on its recorded base, else [ci] onto.
    ci = ws.config.get("ci", {})
    ci_onto = ci.get("onto") if ci.get("stack") == stack.name else None
    onto = opts.onto or ci_onto or rev.base or ci.get("onto")
    tree: Tree | None = None
    if wanted & NEEDS_TREE:
        if not onto:
            raise UserError("no base given: use --onto REF (or set [ci] onto in series.toml)")
        tree = resolve_tree(ws, opts.tree, onto, say)
        resolve_ref(tree, onto)  # a bad base is the user's mistake: refuse before any run directory
    elif opts.tree is not None:
        from ..trees import load_tree
        load_tree(ws, opts.tree)  # an unknown tree is refused before any work, too
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    return Run(ws, command, stack, rev, opts, tree=tree, onto=onto, out=out, say=say)
