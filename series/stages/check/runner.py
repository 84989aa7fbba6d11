"""`series check`: checkpatch + series hygiene + the delta against the previous
revision, for one revision of a stack.  Returns the JSON contract of the issue:

{"stack", "version", "tree", "flags", "status", "patches": [...], "missing",
 "delta": {"new", "fixed"}} plus "command", "hygiene" (revision-level items),
"checkpatch" (skip reason), "previous" and "duration_s".
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import SeriesError, UserError
from ...fsutil import atomic_write_json
from ...patch import Patch
from ...stacks.lineage import pair_revisions
from ...stacks.model import PatchInfo, Revision, Stack
from ...workspace import Workspace
from ...pipeline.result import StageResult
from ...pipeline.status import worst
from . import checkpatch as cp
from . import hygiene as hy

SCRIPT_PATHS = ["scripts", "MAINTAINERS"]


@dataclass
class Tools:
    """Where checkpatch.pl and get_maintainer.pl come from (or why they don't)."""
    tree_name: str | None = None
    ref: str | None = None            # what was asked for / chosen (a tag, a base)
    sha: str | None = None
    scripts_root: Path | None = None
    reason: str = ""                  # when scripts_root is None
    commits: hy.CommitLookup | None = None

    def to_json(self) -> dict[str, Any] | None:
        if self.tree_name is None:
            return None
        return {"name": self.tree_name, "ref": self.ref, "sha": self.sha,
                "scripts": str(self.scripts_root) if self.scripts_root else None}


def _history_lookup(tree: Any) -> hy.CommitLookup:
    if tree.kind == "debian":
        return hy.CommitLookup(None, f"kernel tree {tree.name} is a Debian tarball import without history")
    g = tree.git
    if len(g.run_proc("rev-list", "--max-count=2", "HEAD").stdout.split()) < 2:
        return hy.CommitLookup(None, f"kernel tree {tree.name} has no history")

    def lookup(sha: str) -> str | None:
        if g.run_proc("cat-file", "-e", f"{sha}^{{commit}}").returncode != 0:
            return None
        return str(g.run("log", "-1", "--format=%s", sha))
    return hy.CommitLookup(lookup)


def resolve_tools(ws: Workspace, tree_name: str | None, rev: Revision) -> Tools:
    """The tree's scripts at the revision's base if the tree knows it, else at its newest tag.
    An explicit --tree that is unknown is a user error; no tree at all is a skip."""
    from ... import trees  # noqa: PLC0415 (kept lazy: trees is heavy and optional)
    try:
        tree = trees.load_tree(ws, tree_name)
    except UserError as e:
        if tree_name is not None:
            raise
        return Tools(reason=f"no kernel tree ({e}): series tree add NAME --debian 6.12")
    ref: str | None = None
    sha: str | None = None
    if rev.base:
        try:
            sha = trees.resolve_ref(tree, rev.base)
            ref = rev.base
        except (UserError, SeriesError):
            sha = None
    if sha is None:
        tags = tree.tags()
        ref = tags[-1] if tags else "HEAD"
        sha = trees.resolve_ref(tree, ref)
    root = trees.materialize(tree, sha, SCRIPT_PATHS, cache=ws.cache)
    tools = Tools(tree_name=tree.name, ref=ref, sha=sha, commits=_history_lookup(tree))
    if not (root / "scripts" / "checkpatch.pl").is_file():
        tools.reason = f"kernel tree {tree.name} at {ref} has no scripts/checkpatch.pl"
    else:
        tools.scripts_root = root
    return tools


def strict_default(stack: Stack) -> bool:
    """`strict = true` in the manifest (top level or [check]) makes --strict the default."""
    v = stack.extra.get("strict")
    if v is None and isinstance(stack.extra.get("check"), dict):
        v = stack.extra["check"].get("strict")
    return bool(v)


def _gm_cached(scripts_root: Path, patch: Path, cache_dir: Path) -> list[hy.Named]:
    h = hashlib.sha256()
    for f in (patch, scripts_root / "MAINTAINERS", scripts_root / "scripts" / "get_maintainer.pl"):
        h.update(hashlib.sha256(f.read_bytes()).hexdigest().encode() if f.is_file() else b"-")
    h.update(" ".join(hy.get_maintainer_command(Path("."), Path("."))).encode())
    path = cache_dir / f"gm-{h.hexdigest()}.json"
    if path.is_file():
        try:
            return [hy.Named(**d) for d in json.loads(path.read_text())]
        except (ValueError, TypeError):
            pass
    named = hy.run_get_maintainer(scripts_root, patch)
    atomic_write_json(path, [{"name": n.name, "email": n.email, "role": n.role} for n in named])
    return named


def _patch_items(p: PatchInfo, pm: Patch, tools: Tools, posted: dict[str, dict[str, Any]],
                 named: list[hy.Named] | None, gm_error: str | None) -> list[hy.Item]:
    items = hy.check_signoff(pm)
    items += hy.check_fixes(pm, tools.commits or hy.CommitLookup(None, tools.reason or "no kernel tree"))
    items += hy.check_whitespace(pm.raw)
    hdr = posted.get(p.message_id.strip("<>"))
    if tools.scripts_root is None:
        items.append(hy.Item("recipients", "skip", f"get_maintainer.pl not run: {tools.reason}"))
    elif gm_error:
        items.append(hy.Item("recipients", "skip", gm_error))
    elif hdr is None:
        items.append(hy.Item("recipients", "skip", "the posted mail is not in posted.mbox: To/Cc unknown"))
    else:
        items.append(hy.check_recipients(named or [], hdr["to"], hdr["cc"]))
    return items


def _delta(stack: Stack, rev: Revision, prev: Revision | None,
           cur: dict[int, cp.CheckpatchRun], old: dict[int, cp.CheckpatchRun]) -> dict[str, Any]:
    out: dict[str, Any] = {"against": f"v{prev.version}" if prev else None, "new": [], "fixed": [], "pairs": []}
    if prev is None:
        out["note"] = "no previous revision"
        return out
    if not prev.imported_patches():
        out["note"] = f"v{prev.version} is not imported"
        return out
    if not cur:
        out["note"] = "checkpatch did not run"
        return out
    out["uncompared"] = []
    for pair in pair_revisions(prev, rev):
        out["pairs"].append({"old": pair.old, "new": pair.new, "status": pair.status})
        if pair.status == "missing" and pair.new in cur:
            out["uncompared"].append(pair.new)
        new_f = cur[pair.new].findings if pair.new in cur else None
        old_f = old[pair.old].findings if pair.old in old else None
        if new_f is not None and pair.old is None:
            for f in new_f:
                out["new"].append({"patch": pair.new, "old_patch": None, **f.to_json()})
        if new_f is None or old_f is None:
            continue  # added (above), removed or missing on one side: nothing to compare
        ck = Counter(f.key() for f in new_f)
        ok = Counter(f.key() for f in old_f)
        for f in new_f:
            if ok[f.key()] > 0:
                ok[f.key()] -= 1
            else:
                out["new"].append({"patch": pair.new, "old_patch": pair.old, **f.to_json()})
        for f in old_f:
            if ck[f.key()] > 0:
                ck[f.key()] -= 1
            else:
                out["fixed"].append({"patch": pair.new, "old_patch": pair.old, **f.to_json()})
    return out


def run_check(ws: Workspace, stack: Stack, rev: Revision, *, tree_name: str | None = None,
              strict: bool | None = None, jobs: int | None = None,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    start = time.monotonic()
    log = log or (lambda _m: None)
    strict = strict_default(stack) if strict is None else strict
    flags = cp.flags_for(strict)
    tools = resolve_tools(ws, tree_name, rev)
    cache_dir = ws.cache.check
    patches = rev.imported_patches()
    prev = stack.previous(rev)
    prev_patches = prev.imported_patches() if prev is not None else []
    jobs = jobs or os.cpu_count() or 1

    cur_runs: dict[int, cp.CheckpatchRun] = {}
    old_runs: dict[int, cp.CheckpatchRun] = {}
    gm: dict[int, list[hy.Named]] = {}
    gm_err: dict[int, str] = {}
    cp_start = time.monotonic()
    if tools.scripts_root is not None:
        root = tools.scripts_root
        log(f"checking {len(patches)} patches of {stack.name} v{rev.version} ({jobs} jobs)")
        # Largest patches first, so the longest checkpatch run does not start last.
        files = {p.index: Path(p.file) for p in patches if p.file is not None}
        by_size = sorted((p for p in patches if p.index in files), key=lambda p: -files[p.index].stat().st_size)
        with ThreadPoolExecutor(max_workers=jobs) as ex:
            f_cur = {p.index: ex.submit(cp.run_one, root, files[p.index], flags, cache_dir=cache_dir)
                     for p in by_size}
            f_gm: dict[int, Future[list[hy.Named]]] = {
                p.index: ex.submit(_gm_cached, root, Path(p.file), cache_dir) for p in patches if p.file}
            f_old = {p.index: ex.submit(cp.run_one, root, Path(p.file), flags, cache_dir=cache_dir)
                     for p in prev_patches if p.file}
            cur_runs = {i: f.result() for i, f in f_cur.items()}
            old_runs = {i: f.result() for i, f in f_old.items()}
            for i, f in f_gm.items():
                try:
                    gm[i] = f.result()
                except (RuntimeError, OSError) as e:
                    gm_err[i] = f"get_maintainer.pl failed: {e}"
    cp_wall = time.monotonic() - cp_start

    posted = hy.posted_headers(stack.rev_dir(rev.version) / "posted.mbox")
    mails = {p.index: Patch.load(p.file) for p in patches if p.file}
    per_subject, rev_items = hy.check_numbering(rev.version, {i: m.posted_subject for i, m in mails.items()},
                                                rev.missing, rev.posted_total or None)
    rev_items.insert(0, hy.check_cover(rev.expected or len(patches), rev.cover_text, rev.cover_subject))

    out_patches: list[dict[str, Any]] = []
    for p in patches:
        pm = mails[p.index]
        items = per_subject.get(p.index, []) + _patch_items(p, pm, tools, posted, gm.get(p.index), gm_err.get(p.index))
        run = cur_runs.get(p.index)
        if run is None:
            cpj: dict[str, Any] = {"status": "skip", "reason": tools.reason, "errors": 0, "warnings": 0,
                                   "checks": 0, "findings": []}
            cp_status = "skip"
        else:
            cpj = {"status": run.status, **run.to_json(), "cached": run.cached,
                   "duration_s": round(run.duration_s, 3)}
            if run.error:
                cpj["error"] = run.error
            cp_status = run.status
        hy_status = worst([i.status for i in items]) if items else "pass"
        status = worst([s for s in (cp_status, hy_status) if s != "skip"] or ["pass"])
        out_patches.append({"index": p.index, "subject": p.subject, "status": status, "file": str(p.file),
                            "checkpatch": cpj, "hygiene": [i.to_json() for i in items]})

    delta = _delta(stack, rev, prev, cur_runs, old_runs)
    statuses = [p["status"] for p in out_patches] + [i.status for i in rev_items if i.status != "skip"]
    if rev.missing:
        statuses.append("warn")
    status = worst(statuses or ["pass"])
    return {
        "stack": stack.name, "version": rev.version, "tree": tools.to_json(), "flags": flags,
        "command": cp.command_line(tools.scripts_root, flags) if tools.scripts_root else None,
        "checkpatch": {"status": "ran" if tools.scripts_root else "skip", "reason": tools.reason or None,
                       "wall_s": round(cp_wall, 3),
                       "cpu_s": round(sum(r.duration_s for r in cur_runs.values()), 3), "jobs": jobs},
        "status": status, "patches": out_patches, "missing": rev.missing,
        "expected": rev.indexes,
        "hygiene": [i.to_json() for i in rev_items],
        "delta": delta, "duration_s": round(time.monotonic() - start, 3),
    }


def _hygiene_item(index: int | None, checks: list[dict[str, Any]]) -> dict[str, Any]:
    """One item per patch (index None: the series as a whole), with its worst status."""
    status = worst([c["status"] for c in checks if c["status"] != "skip"] or ["pass"])
    bad = [f"{c['check']}: {c['message']}" for c in checks if c["status"] in ("warn", "fail")]
    item: dict[str, Any] = {"index": index, "status": status, "summary": "; ".join(bad) or "ok", "hygiene": checks}
    if index is None:
        del item["index"]
        item["name"] = "series (cover, numbering)"
    return item


def stage_results(report: dict[str, Any]) -> list[StageResult]:
    """The report as two StageResults (checkpatch, hygiene) for results.json consumers."""
    pt = report["patches"]
    cps = [p["checkpatch"] for p in pt]
    if report["checkpatch"]["status"] == "skip":
        cstage = StageResult.skip("checkpatch", report["checkpatch"]["reason"] or "not run")
    else:
        counts = {k: sum(c[k] for c in cps) for k in ("errors", "warnings", "checks")}
        cstage = StageResult(name="checkpatch", status=worst([c["status"] for c in cps] or ["pass"]),
                             duration_s=report["checkpatch"]["wall_s"],
                             summary=f"{counts['errors']} errors, {counts['warnings']} warnings, "
                                     f"{counts['checks']} checks in {len(cps)} patches",
                             items=[{"index": p["index"], "subject": p["subject"], "status": p["checkpatch"]["status"],
                                     "summary": "{errors} errors, {warnings} warnings, {checks} checks".format(**p["checkpatch"]),
                                     "findings": p["checkpatch"]["findings"],
                                     **{k: p["checkpatch"][k] for k in ("errors", "warnings", "checks")}} for p in pt],
                             counts=counts, extra={"command": report["command"], "flags": report["flags"]})
    hitems = [i for p in pt for i in p["hygiene"]] + report["hygiene"]
    hstatus = worst([i["status"] for i in hitems if i["status"] != "skip"] or ["pass"])
    fails = sum(1 for i in hitems if i["status"] == "fail")
    warns = sum(1 for i in hitems if i["status"] == "warn")
    hstage = StageResult(name="hygiene", status=hstatus,
                         summary=f"{fails} failed, {warns} warned of {len(hitems)} checks",
                         items=[_hygiene_item(p["index"], p["hygiene"]) for p in pt] +
                               [_hygiene_item(None, report["hygiene"])],
                         counts={"fail": fails, "warn": warns, "total": len(hitems)})
    return [cstage, hstage]
