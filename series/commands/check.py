"""series check STACK [vN] [--tree NAME] [--strict/--no-strict] [--json]"""

from __future__ import annotations

import argparse
from typing import Any

from ..context import Context


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    from ..errors import UserError
    from ..pipeline import Options, prepare
    from ..pipeline.stages import execute
    if args.jobs is not None and args.jobs < 1:
        raise UserError("--jobs must be at least 1")
    argv = [args.stack] + ([args.version] if args.version else []) + (["--tree", args.tree] if args.tree else []) + \
        ([("--strict" if args.strict else "--no-strict")] if args.strict is not None else [])
    opts = Options(tree=args.tree, strict=args.strict, jobs=args.jobs, argv=argv)
    with prepare(ctx.ws, "check", args.stack, args.version, opts, stages=["checkpatch", "hygiene"],
                 say=ctx.info) as r:
        execute(r, ["checkpatch", "hygiene"], keep_going=False)
    report = r.state.check_report
    assert report is not None
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


