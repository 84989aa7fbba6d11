"""series check STACK [vN] [--tree NAME] [--strict/--no-strict] [--json]"""

from __future__ import annotations

import argparse
import datetime as _dt
from typing import Any

from ..context import Context
from ..fsutil import atomic_write_json
from ..stacks.model import parse_version
from ..stacks.store import load_stack
from ..stages.check import run_check, stage_results


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="checkpatch.pl and series hygiene on a revision, with the delta against the previous one",
        description="Run the kernel tree's scripts/checkpatch.pl on every patch as posted (in parallel), check "
                    "series hygiene (Signed-off-by, Fixes:, [PATCH vN n/m] numbering, cover letter, recipients "
                    "against get_maintainer.pl, trailing whitespace, CRLF), and report which findings are new "
                    "or fixed since the previous revision.  Exit 2 when a patch has an ERROR or a hygiene "
                    "check fails.",
        epilog="The checkpatch command line is printed so any finding can be reproduced by hand.")
    p.add_argument("stack")
    p.add_argument("version", nargs="?", help="revision (vN or N; default: the latest)")
    p.add_argument("--tree", metavar="NAME", help="kernel tree whose scripts are used (default: [ci] tree)")
    p.add_argument("--strict", action=argparse.BooleanOptionalAction, default=None,
                   help="pass --strict to checkpatch (default: the stack's `strict` setting, else off)")
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="parallel checkpatch runs (default: the cores)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    ws = ctx.ws
    stack = load_stack(ws, args.stack)
    rev = stack.revision(parse_version(args.version) if args.version else None)
    if args.jobs is not None and args.jobs < 1:
        from ..errors import UserError
        raise UserError("--jobs must be at least 1")
    if not rev.imported:
        from ..errors import UserError
        raise UserError(f"{stack.name} v{rev.version} is not imported: series fetch {stack.name} "
                        f"--revision {rev.version}")
    report = run_check(ws, stack, rev, tree_name=args.tree, strict=args.strict, jobs=args.jobs, log=ctx.info)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    run_dir = ws.runs / f"{stamp}-check-{stack.name}-v{rev.version}"
    run_dir.mkdir(parents=True, exist_ok=True)
    results = run_dir / "results.json"
    report["results"] = str(results)
    atomic_write_json(results, {**report, "command_name": "check", "revision": rev.version,
                                "stages": [s.to_dict() for s in stage_results(report)]})
    ctx.emit(report, render(report))
    return {"fail": 2, "error": 3}.get(report["status"], 0)


_MARK = {"pass": "ok", "warn": "WARN", "fail": "FAIL", "skip": "skip", "error": "ERROR"}


def render(r: dict[str, Any]) -> str:
    out: list[str] = []
    tree = r["tree"]
    where = f"tree {tree['name']} at {tree['ref']}" if tree else "no tree"
    out.append(f"check {r['stack']} v{r['version']} ({where}): {r['status'].upper()}")
    if r["command"]:
        out.append(f"checkpatch: {r['command']}")
        out.append(f"  flags: {' '.join(r['flags'])}   (run from {r['tree']['scripts']}; checkpatch + "
                   f"get_maintainer.pl wall {r['checkpatch']['wall_s']:.2f}s, checkpatch cpu "
                   f"{r['checkpatch']['cpu_s']:.2f}s, {r['checkpatch']['jobs']} jobs)")
    else:
        out.append(f"checkpatch: skip: {r['checkpatch']['reason']}")
    for p in r["patches"]:
        c = p["checkpatch"]
        counts = (f"{c['errors']} errors, {c['warnings']} warnings, {c['checks']} checks"
                  if c["status"] != "skip" else "checkpatch skipped")
        out.append(f"[{_MARK.get(p['status'], p['status'])}] {p['index']}: {p['subject']}  ({counts})")
        if c.get("error"):
            out.append(f"    checkpatch error: {c['error']}")
        for f in c["findings"]:
            loc = f"{f['file']}:{f['line']}" if f["file"] else (f"patch line {f['line']}" if f["line"] else "")
            out.append(f"    {f['level']}:{f['type']}: {f['message']}" + (f"  ({loc})" if loc else ""))
        for h in p["hygiene"]:
            if h["status"] != "pass":
                out.append(f"    {h['check']}: {h['status']}: {h['message']}")
    for h in r["hygiene"]:
        out.append(f"series {h['check']}: {h['status']}: {h['message']}")
    if r["missing"]:
        out.append(f"missing: patch{'es' if len(r['missing']) > 1 else ''} "
                   f"{', '.join(str(i) for i in r['missing'])} of {len(r['expected'])} not imported "
                   "(not checked)")
    d = r["delta"]
    if d.get("against"):
        if d.get("note"):
            out.append(f"delta vs {d['against']}: {d['note']}")
        else:
            unc = d.get("uncompared") or []
            note = (f" (patch{'es' if len(unc) > 1 else ''} {', '.join(map(str, unc))} not compared: "
                    f"the v{d['against'][1:]} counterpart is missing)") if unc else ""
            out.append(f"delta vs {d['against']}: {len(d['new'])} new, {len(d['fixed'])} fixed{note}")
            for tag, key in (("new", "new"), ("fixed", "fixed")):
                for f in d[key]:
                    out.append(f"  {tag}: patch {f['patch'] if f['patch'] is not None else '-'}"
                               f" (was {f['old_patch'] if f['old_patch'] is not None else '-'}): "
                               f"{f['level']}:{f['type']}: {f['message']}")
    else:
        out.append("delta: no previous revision")
    out.append(f"results: {r['results']}")
    return "\n".join(out)


