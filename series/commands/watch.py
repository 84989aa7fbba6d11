"""series watch [--mirror DIR | --lore] [--once] [--interval S] [--post-checks URL --token-file F]

Find revisions of the workspace's stacks that are posted but not yet imported
(series/watch.py says how), import each, run `series ci` on it and write its
patchwork checks; with --post-checks, post them to a patchwork instance.
`--once` scans once and exits (for cron); else it scans every --interval
seconds until interrupted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..context import Context
from ..errors import InfraError, SeriesError, UserError

if TYPE_CHECKING:
    from ..pipeline import Options
    from ..pipeline.progress import Progress
    from ..watch import Posting
    from ..workspace import Workspace


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("watch", help="import and verify every new posted revision of the workspace's stacks "
                                     "(from a mirror directory or lore), and report patchwork checks")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--mirror", type=Path, metavar="DIR",
                     help="a mirror: DIR/<stack>/*.mbox, and mailboxes in DIR matched by change-id or subjects")
    src.add_argument("--lore", action="store_true", help="search lore (the workspace's lore URL) through b4's liblore")
    p.add_argument("--stack", action="append", metavar="NAME", help="watch only this stack (repeatable)")
    p.add_argument("--once", action="store_true", help="scan once and exit (for cron)")
    p.add_argument("--interval", type=float, default=600.0, metavar="S", help="seconds between scans (default 600)")
    p.add_argument("--post-checks", metavar="URL", help="post the checks to this patchwork instance's API")
    p.add_argument("--token-file", type=Path, metavar="F", help="a file holding the patchwork API token")
    p.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="run directories as DIR/<stack>/v<N>/ (default: $SERIES_CACHE/runs/...)")
    p.add_argument("--stages", metavar="LIST", help="series ci's stages (default: all)")
    p.add_argument("--suites", metavar="LIST", help="series ci's test suites")
    p.add_argument("--onto", metavar="REF", help="series ci's base")
    p.add_argument("--tree", metavar="NAME", help="series ci's kernel tree")
    p.add_argument("--cc", metavar="CMD", help="the compiler, e.g. 'distcc gcc' (make's CC=)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..pipeline import Options
    from ..pipeline.stages import STAGE_NAMES, closure
    if args.interval <= 0:
        raise UserError("--interval must be positive")
    if bool(args.post_checks) != bool(args.token_file):
        raise UserError("--post-checks URL and --token-file F go together")
    token = ""
    if args.token_file:
        try:
            token = args.token_file.read_text().strip()
        except OSError as e:
            raise UserError(f"--token-file {args.token_file}: {e.strerror}") from None
        if not token:
            raise UserError(f"--token-file {args.token_file} is empty")
    if args.mirror is not None and not args.mirror.is_dir():
        raise UserError(f"mirror {args.mirror} is not a directory")
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else list(STAGE_NAMES)
    closure(stages)
    suites = [s.strip() for s in args.suites.split(",") if s.strip()] if args.suites else None
    opts = Options(onto=args.onto, tree=args.tree, suites=suites, **({"cc": args.cc} if args.cc else {}))
    rc = 0
    while True:
        report = scan_once(args, ctx, stages, opts, token)
        ctx.emit(report, _text(report))
        rc = 2 if any(r.get("status") in ("fail", "error") for r in report["runs"]) else 0
        if report["errors"]:
            rc = 3 if any(e.get("infra") for e in report["errors"]) else max(rc, 1)
        if args.once:
            return rc
        time.sleep(args.interval)


def scan_once(args: argparse.Namespace, ctx: Context, stages: list[str], opts: "Options", token: str) -> dict[str, Any]:
    from ..pipeline.progress import progress
    from ..watch import lore_scratch, scan_lore, scan_mirror
    ws = ctx.ws
    runs: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    with progress(ctx) as say:
        if args.lore:
            with lore_scratch() as tmp:
                scan = scan_lore(ws, Path(tmp), args.stack)
                for p in scan.new:
                    _one(ws, p, args, stages, opts, token, say, runs, errors)
        else:
            scan = scan_mirror(ws, args.mirror, args.stack)
            for p in scan.new:
                _one(ws, p, args, stages, opts, token, say, runs, errors)
    return {"schema": 1, "command": "watch", "source": "lore" if args.lore else str(args.mirror),
            "found": [p.to_json() for p in scan.new], "ignored": scan.ignored, "runs": runs, "errors": errors}


def _one(ws: "Workspace", p: "Posting", args: argparse.Namespace, stages: list[str], opts: "Options", token: str,
         say: "Progress", runs: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
    import dataclasses
    import json

    from ..pipeline import prepare
    from ..pipeline.stages import execute
    from ..stacks.importer import import_mailbox
    say(f"new: {p.stack} v{p.version} in {p.source} ({p.why})")
    try:
        # only this posting of the mailbox (a search result or a loose mailbox may hold others)
        reps = import_mailbox(ws, p.stack, p.source, revision=p.posted if p.existing in (None, p.posted) else None)
    except SeriesError as e:
        errors.append({"stack": p.stack, "source": str(p.source), "error": f"import: {e}",
                       "infra": isinstance(e, InfraError)})
        return
    for rep in reps:
        say(rep.line())
        entry: dict[str, Any] = {"stack": p.stack, "revision": rep.version, "import": rep.line(), "status": None,
                                 "run_dir": None, "checks": 0, "posted": None}
        runs.append(entry)
        out = (args.output / p.stack / f"v{rep.version}") if args.output else None
        ropts = dataclasses.replace(opts, argv=[p.stack, f"v{rep.version}"] + (["--onto", opts.onto] if opts.onto else [])
                                    + (["--tree", opts.tree] if opts.tree else []) + ["--stages", ",".join(stages)])
        try:
            with prepare(ws, "ci", p.stack, str(rep.version), ropts, stages=stages, out=out, say=say) as run_:
                say(f"run directory: {run_.dir}")
                execute(run_, stages, keep_going=True)
            r = run_.finish()
        except SeriesError as e:
            entry["status"] = "error"
            errors.append({"stack": p.stack, "revision": rep.version, "error": f"ci: {e}",
                           "infra": isinstance(e, InfraError)})
            continue
        entry["status"], entry["run_dir"] = r["status"], r["run_dir"]
        checks = json.loads((Path(r["run_dir"]) / "patchwork-checks.json").read_text())
        entry["checks"] = len(checks)
        if args.post_checks:
            from ..report.patchwork import post_checks
            try:
                outcome = post_checks(checks, args.post_checks, token)
            except InfraError as e:
                errors.append({"stack": p.stack, "revision": rep.version, "error": f"post checks: {e}", "infra": True})
                continue
            entry["posted"] = sum(1 for o in outcome if o["posted"])
            entry["not_posted"] = [f"{o['context']} <{o['message_id']}>: {o['error']}" for o in outcome if not o["posted"]]


def _text(rep: dict[str, Any]) -> str:
    if not rep["found"] and not rep["errors"]:
        lines = [f"series watch {rep['source']}: nothing new"]
    else:
        lines = [f"series watch {rep['source']}: {len(rep['found'])} new posting(s)"]
    for f in rep["found"]:
        lines.append(f"  found {f['stack']} v{f['version']} ({f['patches']} patches) in {f['source']}: {f['matched_by']}")
    for r in rep["runs"]:
        posted = f", {r['posted']} of {r['checks']} checks posted" if r["posted"] is not None else \
            f", {r['checks']} checks written"
        lines.append(f"  {r['stack']} v{r['revision']}: ci {str(r['status']).upper()}{posted}")
        lines.append(f"    imported: {r['import']}")
        if r["run_dir"]:
            lines.append(f"    {r['run_dir']}/patchwork-checks.json")
        lines += [f"    not posted: {n}" for n in r.get("not_posted", [])]
    for i in rep["ignored"]:
        lines.append(f"  ignored {i['source']}: {i['reason']}")
    for e in rep["errors"]:
        lines.append(f"  error: {e['stack']}: {e['error']}")
    return "\n".join(lines)
