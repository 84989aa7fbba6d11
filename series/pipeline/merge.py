"""`series ci --merge DIR...`: the results.json of shards (the jobs of a pipeline
written by `series ci --emit`) combined into one run.

A shard is a `series ci` of the same revision onto the same base with a subset
of the stages (and, for the build, a subset of the patches).  For each stage:
- the build: the shards' items by index (the base and each patch), the verdict
  recomputed as the build stage computes it;
- the test: the shards' test cases together (one shard per suite), the verdict
  recomputed as the boot computes it;
- any other stage: the result of the shard that selected it (a stage a shard
  only ran because a selected one needs it, like apply, must agree).
The merged run is written by pipeline.run.Run (one writer of results.json), so
junit.xml, patchwork-checks.json and the page are derived as for any run.  Each
shard's files are copied into the merged run directory and the paths in its
results are rewritten there, so the logs stay with the run.
"""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from .result import StageResult
from .stages import STAGE_NAMES
from .status import Status, worst

if TYPE_CHECKING:
    from ..workspace import Workspace
    from .run import Run, Say

IDENTITY = ("stack", "revision", "onto", "tree")
DERIVED = {"results.json", "junit.xml", "patchwork-checks.json", "summary.md", "index.html"}


def load_shard(d: Path) -> dict[str, Any]:
    f = d / "results.json"
    try:
        data = json.loads(f.read_text())
    except FileNotFoundError:
        raise UserError(f"{d}: no results.json (not a run directory)") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{f}: unreadable: {e}") from None
    if not isinstance(data, dict) or data.get("schema") != 1 or not isinstance(data.get("stages"), list):
        raise UserError(f"{f}: not a results.json of schema 1")
    return data


def _rewrite(v: Any, old: str, new: str) -> Any:
    if isinstance(v, str):
        return new + v[len(old):] if v == old or v.startswith(old + "/") else v
    if isinstance(v, list):
        return [_rewrite(x, old, new) for x in v]
    if isinstance(v, dict):
        return {k: _rewrite(x, old, new) for k, x in v.items()}
    return v


def _agree(shards: list[dict[str, Any]], dirs: list[Path]) -> None:
    for key in IDENTITY:
        # a shard without a tree (hygiene alone) agrees with any
        seen = {json.dumps(s.get(key)) for s in shards if not (key == "tree" and s.get(key) is None)}
        if len(seen) > 1:
            raise UserError(f"the shards are not of one run: {key} differs ("
                            + ", ".join(f"{d}: {s.get(key)}" for d, s in zip(dirs, shards)) + ")")
    bases = {s["base_commit"] for s in shards if s.get("base_commit")}
    if len(bases) > 1:
        raise UserError(f"the shards applied onto different base commits: {', '.join(sorted(bases))}")


def _merge_build(results: list[StageResult]) -> StageResult:
    from ..stages.build import build_verdict
    by_index: dict[int, dict[str, Any]] = {}
    for r in results:
        for it in r.items:
            i = int(it["index"])
            # a step built in a shard beats the same step reported `cached` in another
            if i not in by_index or (by_index[i].get("cached") and not it.get("cached")):
                by_index[i] = it
    st = build_verdict(list(by_index.values()))
    st.duration_s = max(r.duration_s for r in results)
    st.log = results[0].log
    st.extra = {**results[0].extra, "shards": len(results)}
    return st


def _suites_of(r: StageResult) -> list[str]:
    return [str(b.get("name")) for b in r.extra.get("selftests") or [] if isinstance(b, dict)]


def _merge_test(results: list[StageResult], order: list[str]) -> StageResult:
    ran = [r for r in results if r.status != Status.SKIP or r.items]
    if not ran:
        return results[0]
    # in the order one run tests the suites (the stack's [test] suites), not the shards' names
    rank = {n: i for i, n in enumerate(order)}
    ran.sort(key=lambda r: min((rank.get(n, len(rank)) for n in _suites_of(r)), default=len(rank)))
    items = [it for r in ran for it in r.items]
    problems = [p for r in ran for p in r.extra.get("kernel_problems") or []]
    fails = [c for c in items if c.get("status") == "fail"]
    if problems or fails or any(r.status.failed for r in ran):
        parts = []
        if problems:
            parts.append("kernel: " + ", ".join(sorted({str(p.get("kind")) for p in problems})))
        if fails:
            parts.append(f"{len(fails)} test(s) failed")
        status = Status.FAIL if parts else worst(r.status for r in ran)
        summary = "; ".join(parts) or "; ".join(r.summary for r in ran if r.status.failed)
    elif items and all(c.get("status") == "skip" for c in items):
        status, summary = Status.SKIP, "every test was skipped"
    else:
        status = Status.PASS
        summary = (f"{sum(c.get('status') == 'pass' for c in items)} passed, "
                   f"{sum(c.get('status') == 'skip' for c in items)} skipped")
    extra = {**ran[0].extra, "kernel_problems": problems, "shards": len(ran)}
    built = [b for r in ran for b in r.extra.get("selftests") or []]   # every shard's suites, not the first's
    if built:
        extra["selftests"] = built
    if len(ran) > 1:
        extra["logs"] = [r.log for r in ran]
    return StageResult(name="test", status=status, duration_s=max(r.duration_s for r in ran), summary=summary,
                       items=items, log=ran[0].log,
                       counts={s: sum(c.get("status") == s for c in items) for s in ("pass", "fail", "skip")},
                       extra=extra)


def merge_stages(shards: list[dict[str, Any]], suite_order: list[str] | None = None
                 ) -> tuple[list[StageResult], list[str]]:
    """The merged stage results in pipeline order, and the union of the selections."""
    selected = [n for n in STAGE_NAMES if any(n in (s.get("selected") or []) for s in shards)]
    out: list[StageResult] = []
    for name in STAGE_NAMES:
        found = [(s, StageResult.from_dict(d)) for s in shards for d in s["stages"] if d.get("name") == name]
        if not found:
            continue
        results = [r for _s, r in found]
        if name == "build" and len(results) > 1:
            out.append(_merge_build(results))
        elif name == "test" and len(results) > 1:
            out.append(_merge_test(results, suite_order or []))
        else:
            chosen = [r for s, r in found if name in (s.get("selected") or [])] or results
            statuses = {r.status for r in results}
            if name == "apply" and len(statuses) > 1:
                raise UserError("the shards disagree on apply: " + ", ".join(sorted(map(str, statuses))))
            out.append(chosen[0])
    return out, selected


def merge_runs(ws: "Workspace", dirs: list[Path], out: Path, say: "Say | None" = None) -> "Run":
    from .run import Run
    if not dirs:
        raise UserError("--merge needs at least one run directory")
    dirs = [d.resolve() for d in dirs]
    out = out.resolve()
    if out in dirs:
        raise UserError(f"the merged run directory {out} is one of the shards")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    shards = [load_shard(d) for d in dirs]
    _agree(shards, dirs)
    out.mkdir(parents=True, exist_ok=True)
    moved: list[dict[str, Any]] = []
    for d, s in zip(dirs, shards):
        old = str(s.get("run_dir") or d)
        for f in sorted(d.rglob("*")):
            rel = f.relative_to(d)
            if rel.parts[0] in DERIVED or (f.is_dir() and not f.is_symlink()):
                continue
            dst = out / rel
            if dst.exists() or dst.is_symlink():
                if f.is_symlink() or dst.is_symlink() or not filecmp.cmp(f, dst, shallow=False):
                    # two shards' files of one name (each test shard's console.log): neither is lost
                    dst = out / "shards" / d.name / rel
                    s = _rewrite(_rewrite(s, f"{old}/{rel}", str(dst)), str(f), str(dst))
                else:
                    continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst, follow_symlinks=False)
        moved.append(_rewrite(_rewrite(s, old, str(out)), str(d), str(out)))
    from ..suites import suite_order
    stages, selected = merge_stages(moved, suite_order(ws.config, str(moved[0].get("stack") or "")))
    first = moved[0]
    stored = {**first, "selected": selected,
              "started": min(str(s.get("started") or "") for s in moved) or first.get("started"),
              "base_commit": next((s["base_commit"] for s in moved if s.get("base_commit")), None),
              "tree": next((s["tree"] for s in moved if s.get("tree")), None),
              "reproduce": "; ".join(dict.fromkeys(str(s.get("reproduce") or "") for s in moved))}
    run = Run.from_results(ws, stored, stages, out=out, say=say)
    run.write()
    return run
