"""series mail STACK vN -o DIR [--to ADDR]... [--cc ADDR]... [--send --smtp HOST:PORT]"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..context import Context

if TYPE_CHECKING:
    from ..workspace import Workspace


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("mail", help="write lore-ready mails for a revision (one file per message + an mbox), "
                                    "validated; send them only with --send",
                       description="Generate the mails of revision vN: cover 0/m and patches n/m, threaded to the "
                                   "cover, To/Cc from get_maintainer.pl (or --to/--cc), per-patch changelogs below "
                                   "---, base-commit/change-id in the cover. Before anything is written: b4 parses "
                                   "them back as one complete series, and git am of them onto the base gives the "
                                   "same tree as the stack.")
    p.add_argument("stack")
    p.add_argument("revision", help="vN")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="directory to write (must be absent or empty, unless --force)")
    p.add_argument("--to", action="append", metavar="ADDR", help="To: (repeatable; replaces get_maintainer's maintainers)")
    p.add_argument("--cc", action="append", metavar="ADDR", help="Cc: (repeatable; replaces get_maintainer's lists/reviewers)")
    p.add_argument("--from", dest="sender", metavar="ADDR", help="From: (default: [mail] from, the manifest's sender, or $GIT_AUTHOR_NAME/EMAIL)")
    p.add_argument("--tree", help="kernel tree (default: [ci] tree or the only one)")
    p.add_argument("--base", help="base ref (default: the revision's base, or [ci] onto for the CI stack)")
    p.add_argument("--template", type=Path, help="cover template (jinja2)")
    p.add_argument("--no-get-maintainer", action="store_true", help="do not run get_maintainer.pl")
    p.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    p.add_argument("--send", action="store_true", help="after writing, send with git send-email (dry run first)")
    p.add_argument("--smtp", metavar="HOST:PORT", help="SMTP server for --send (default: [mail] smtp)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _base_ref(ws: "Workspace", stack: str, rev_base: str | None, arg: str | None) -> str:
    from ..errors import UserError
    if arg is not None and not arg.strip():
        raise UserError("--base needs a ref (it is empty)")
    if arg:
        return arg
    if rev_base:
        return rev_base
    ci = ws.config.get("ci", {})
    if ci.get("stack") == stack and ci.get("onto"):
        return str(ci["onto"])
    raise UserError(f"{stack}: the revision records no base; pass --base REF")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from ..errors import UserError
    from ..mail import send as mailsend
    from ..mail.format import encode_addr, split_addresses
    from ..mail.output import check_output
    from ..pipeline import Options, prepare
    from ..pipeline.run import MailRequest
    from ..pipeline.stages import execute
    ws = ctx.ws
    # Every refusal that needs no work comes first (one line, nothing written).
    to = split_addresses(args.to) if args.to is not None else None
    cc = split_addresses(args.cc) if args.cc is not None else None
    if args.sender:
        encode_addr(args.sender)
    check_output(args.output, args.force)
    if args.template is not None and not args.template.is_file():
        raise UserError(f"no such template: {args.template}")
    from ..stacks.model import parse_version
    from ..stacks.store import load_stack
    st = load_stack(ws, args.stack)
    rev = st.revision(parse_version(args.revision))
    from ..mail.format import refuse_incomplete
    refuse_incomplete(st, rev)
    smtp = mailsend.smtp_server(ws, args.smtp) if args.send else None
    opts = Options(onto=_base_ref(ws, st.name, rev.base, args.base), tree=args.tree,
                   mail=MailRequest(to=to, cc=cc, sender=args.sender, template=args.template,
                                    use_get_maintainer=not args.no_get_maintainer, output=args.output,
                                    force=args.force),
                   argv=[args.stack, args.revision, "-o", str(args.output)])
    with prepare(ws, "mail", args.stack, args.revision, opts, stages=["mail"], say=ctx.info) as r:
        execute(r, ["mail"], keep_going=False)
    ms, files = r.state.extra["mailset"], r.state.extra["mail_files"]
    base = r.base_commit or ""
    data = ms.to_json()
    data.update({"output": str(args.output.resolve()), "mbox": str(args.output.resolve() / "series.mbox"),
                 "validation": r.state.extra["mail_validation"], "sent": None,
                 "results": str(r.path("results.json"))})
    lines = [f"{st.name} v{rev.version}: {len(ms.mails)} mails in {args.output} (+ series.mbox), "
             f"base-commit {base[:12]}, change-id {ms.change_id}"]
    lines += [f"  {m.filename}  {m.subject}" for m in ms.mails]
    lines.append(f"  To: {', '.join(ms.to) or '(none)'}")
    lines.append(f"  Cc: {', '.join(ms.cc) or '(none)'}  [recipients from {ms.recipients_from}]")
    lines += [f"  note: {n}" for n in ms.notes]
    v = r.state.extra["mail_validation"]
    lines.append(f"  validated: headers, threading, series.mbox, b4 parse (complete, in order), git am round trip "
                 f"({v['patches_compared']} patches, tree after each as the stack's; final tree {str(v['tree'])[:12]})")
    if args.send:
        assert smtp is not None
        sender = ms.mails[0].header("From") or ""
        ctx.info(f"sending through {smtp[0]}:{smtp[1]} (dry run first)")
        res = mailsend.send_files(files, smtp[0], smtp[1], sender, cwd=args.output.resolve())
        data["sent"] = {"server": res.server, "count": len(files)}
        lines.append(f"  sent {len(files)} mails through {res.server}")
    else:
        lines.append("  not sent (use --send --smtp HOST:PORT)")
    ctx.emit(data, "\n".join(lines))
    return 0
