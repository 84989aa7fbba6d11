"""series changelog / cover / mail: on a small stack of our own (a tmp git repo as
the kernel tree), on the real uffd-move revisions, and on the demo stack when present."""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import socketserver
import subprocess
import threading
from pathlib import Path

import pytest
import tomli_w

from conftest import REPO, git, run_series

# -- a small stack of our own ---------------------------------------------------------
FILES = {"mm/alpha.c": "int alpha(void)\n{\n\treturn 1;\n}\n" * 3,
         "mm/beta.c": "int beta(void)\n{\n\treturn 2;\n}\n",
         "tools/gamma.sh": "#!/bin/sh\necho gamma\n"}


def _commit(repo: Path, path: str, text: str, subject: str, body: str) -> None:
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", f"{subject}\n\n{body}\n\nSigned-off-by: Test Author <author@example.org>")


def _format(repo: Path, rng: str, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    git(repo, "format-patch", "-q", "--zero-commit", "-o", str(dest), rng)
    return sorted(dest.glob("*.patch"))


def _patch_id(p: Path) -> str:
    out = subprocess.run(["git", "patch-id", "--stable"], input=p.read_bytes(), capture_output=True, check=True).stdout
    return out.decode().split()[0]


def _write_rev(stack_dir: Path, version: int, files: list[Path], base: str, date: str) -> None:
    d = stack_dir / f"v{version}"
    pats = []
    for i, f in enumerate(files, start=1):
        name = f"{i:04d}-" + f.name.split("-", 1)[1]
        shutil.move(str(f), d / name)
        subj = re.search(r"^Subject: \[PATCH[^\]]*\] (.*)$", (d / name).read_text(), re.M).group(1)
        pats.append({"index": i, "file": name, "subject": subj, "author": "Test Author <author@example.org>",
                     "message_id": f"mini-v{version}-{i}@example.org", "patch_id": _patch_id(d / name)})
    (d / "cover.txt").write_text(f"Subject: [PATCH v{version} 0/{len(files)}] mini: a small stack\n\n"
                                 "This series makes alpha and beta better.\n")
    rec = {"source": "test", "revision": {"version": version, "expected": len(files), "date": date,
                                          "title": "mini: a small stack", "base": base,
                                          "cover_message_id": f"mini-v{version}-0@example.org"},
           "patches": pats}
    (d / "import.toml").write_text(tomli_w.dumps(rec))


@pytest.fixture
def mini(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Workspace with stack `mini` (v1: 2 patches, v2: 3 patches, patch 2 changed),
    and a tmp repository registered as kernel tree `mini` (its own SERIES_CACHE)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SERIES_CACHE", str(cache))
    repo = tmp_path / "kernel"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "master")
    for path, text in FILES.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "tag", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "-b", "v1", "base")
    _commit(repo, "mm/alpha.c", FILES["mm/alpha.c"] + "int alpha2(void) { return 3; }\n", "mm/alpha: add alpha2", "Adds alpha2.")
    _commit(repo, "mm/beta.c", FILES["mm/beta.c"].replace("2;", "22;"), "mm/beta: return 22", "Beta returns 22.")
    git(repo, "checkout", "-q", "-b", "v2", "base")
    _commit(repo, "mm/alpha.c", FILES["mm/alpha.c"] + "int alpha2(void) { return 3; }\n", "mm/alpha: add alpha2", "Adds alpha2.")
    _commit(repo, "mm/beta.c", FILES["mm/beta.c"].replace("2;", "22;") + "/* beta is 22 */\n", "mm/beta: return 22",
            "Beta returns 22, documented.")
    _commit(repo, "tools/gamma.sh", FILES["tools/gamma.sh"] + "echo delta\n", "tools/gamma: say delta", "Delta too.")
    git(repo, "checkout", "-q", "master")
    sd = workspace / "patches" / "mini"
    (sd / "v1").mkdir(parents=True)
    (sd / "v2").mkdir(parents=True)
    _write_rev(sd, 1, _format(repo, "base..v1", tmp_path / "fp1"), base, "2024-01-01T10:00:00+00:00")
    _write_rev(sd, 2, _format(repo, "base..v2", tmp_path / "fp2"), base, "2024-02-01T10:00:00+00:00")
    manifest = {"name": "mini", "title": "mini: a small stack", "upstream": False,
                "revisions": [
                    {"version": 1, "prefixes": [], "expected": 2, "lore": "https://lore.kernel.org/r/mini-v1-0@example.org",
                     "changelog": ["first posting"]},
                    {"version": 2, "prefixes": [], "expected": 3, "changelog": ["beta documented (Reviewer)"],
                     "patches": [{"index": 3, "subject": "tools/gamma: say delta", "author": "Test Author <author@example.org>",
                                  "message_id": "", "changelog": ["asked for by Reviewer"]}]},
                ]}
    (sd / "stack.toml").write_text(tomli_w.dumps(manifest))
    from series.trees import add_path
    from series.workspace import Workspace
    add_path(Workspace(root=workspace, cache=cache), "mini", repo)
    return {"ws": workspace, "repo": repo, "base": base, "cache": cache, "stack_dir": sd}


def _mail(m: dict, out: Path, *extra: str):
    return run_series("-C", str(m["ws"]), "mail", "mini", "v2", "-o", str(out), "--tree", "mini",
                      "--to", "Maint Ainer <maint@example.org>", "--cc", "list@vger.example.org", *extra)


def _parse(p: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(p.read_bytes(), policy=email.policy.default)


def test_changelog_mini(mini: dict) -> None:
    r = run_series("-C", str(mini["ws"]), "changelog", "mini", "v2")
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "Changes in v2:"
    assert "- beta documented (Reviewer)" in lines
    assert any(l.startswith('- [computed] patch 2 "mm/beta: return 22": changed since v1 patch 2') for l in lines)
    assert '- [computed] patch 3 "tools/gamma: say delta": new in v2' in lines
    assert not any("patch 1" in l for l in lines if l.startswith("- ["))   # unchanged: no line
    j = run_series("-C", str(mini["ws"]), "changelog", "mini", "v2", "--json").json
    assert j["previous"] == 1
    kinds = {(l["kind"], l["source"], l["patch"]) for l in j["lines"]}
    assert ("changed", "computed", 2) in kinds and ("added", "computed", 3) in kinds and ("note", "manifest", None) in kinds
    assert j["per_patch"]["3"] == ["v2: new in v2", "asked for by Reviewer"]


def test_mail_fields(mini: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _mail(mini, out, "--json")
    assert r.rc == 0, r.err
    j = r.json
    names = sorted(p.name for p in out.iterdir())
    assert names == ["0000-cover-letter.patch", "0001-mm-alpha-add-alpha2.patch", "0002-mm-beta-return-22.patch",
                     "0003-tools-gamma-say-delta.patch", "series.json", "series.mbox"]
    msgs = [_parse(out / n) for n in names[:4]]
    subjects = [m["Subject"] for m in msgs]
    assert subjects == ["[PATCH v2 0/3] mini: a small stack", "[PATCH v2 1/3] mm/alpha: add alpha2",
                        "[PATCH v2 2/3] mm/beta: return 22", "[PATCH v2 3/3] tools/gamma: say delta"]
    mids = [m["Message-ID"] for m in msgs]
    assert len(set(mids)) == 4
    for n, mid in enumerate(mids):
        assert re.fullmatch(rf"<series-mini-v2-{n}-[0-9a-f]{{8}}@example\.org>", mid), mid
    for m in msgs[1:]:
        assert m["In-Reply-To"] == mids[0] and m["References"] == mids[0]
    assert msgs[0]["In-Reply-To"] is None
    for m in msgs:
        assert m["To"] == "Maint Ainer <maint@example.org>" and m["Cc"] == "list@vger.example.org"
        assert m["From"] == "Test Author <author@example.org>"
    cover = msgs[0].get_content()
    assert "This series makes alpha and beta better." in cover
    assert f"\nbase-commit: {mini['base']}\n" in cover
    cid = re.search(r"^change-id: (\S+)$", cover, re.M).group(1)
    assert cid == j["change_id"] and cid.startswith("20240101-mini-")
    assert "- Link to v1: https://lore.kernel.org/r/mini-v1-0@example.org" in cover
    assert "v1 (2024-01-01): https://lore.kernel.org/r/mini-v1-0@example.org" in cover
    assert "Test Author (3):" in cover and " 3 files changed" in cover
    p2 = msgs[2].get_content()
    head, _, rest = p2.partition("\n---\n")
    assert "Signed-off-by: Test Author <author@example.org>" in head
    assert rest.startswith("v2: changed since v1 (")
    p3 = msgs[3].get_content().partition("\n---\n")[2]
    assert p3.startswith("v2: new in v2\nasked for by Reviewer\n")
    p1 = msgs[1].get_content().partition("\n---\n")[2]
    assert p1.startswith("v2: no change since v1\n")
    # stable: the same revision gives the same Message-IDs; the mbox holds the same four messages
    out2 = tmp_path / "out2"
    assert _mail(mini, out2).rc == 0
    assert [_parse(out2 / n)["Message-ID"] for n in names[:4]] == mids
    assert (out2 / "series.mbox").read_bytes() == (out / "series.mbox").read_bytes()


def test_mail_changed_revision_gets_new_ids(mini: dict, tmp_path: Path) -> None:
    assert _mail(mini, tmp_path / "a").rc == 0
    before = _parse(tmp_path / "a" / "0001-mm-alpha-add-alpha2.patch")["Message-ID"]
    # change patch 3 of v2: a different revision content
    f = mini["stack_dir"] / "v2" / "0003-tools-gamma-say-delta.patch"
    f.write_text(f.read_text().replace("+echo delta", "+echo epsilon"))
    rec = (mini["stack_dir"] / "v2" / "import.toml")
    rec.write_text(re.sub(r'(file = "0003[^"]*"\n(?:.*\n)*?patch_id = )"[0-9a-f]+"', r'\1"' + _patch_id(f) + '"',
                          rec.read_text()))
    assert _mail(mini, tmp_path / "b").rc == 0
    after = _parse(tmp_path / "b" / "0001-mm-alpha-add-alpha2.patch")["Message-ID"]
    assert before != after


def test_b4_and_git_am_round_trip(mini: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _mail(mini, out).rc == 0
    # b4 parses the mbox back as one complete series, in order
    import b4
    from series.stacks.mailbox import load_mails
    mails, bad = load_mails(out / "series.mbox")
    assert bad == 0 and len(mails) == 4
    lmbx = b4.LoreMailbox()
    for m in mails:
        lmbx.add_message(m.msg)
    lser = lmbx.get_series(2, codereview_trailers=False)
    assert lser is not None and lser.complete and lser.has_cover and lser.expected == 3
    assert [p.subject for p in lser.patches[1:]] == ["mm/alpha: add alpha2", "mm/beta: return 22", "tools/gamma: say delta"]
    assert lser.base_commit == mini["base"]
    # git am of the mails onto the base gives the tree of the stack (the v2 branch): empty diff
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(mini["repo"]), str(clone))
    git(clone, "checkout", "-q", "--detach", "base")
    git(clone, "am", "-q", *[str(out / n) for n in sorted(p.name for p in out.glob("000[1-9]-*.patch"))])
    assert git(clone, "diff", "HEAD", "origin/v2") == ""
    assert git(clone, "log", "--format=%an <%ae>|%s", "base..HEAD").splitlines() == [
        "Test Author <author@example.org>|tools/gamma: say delta", "Test Author <author@example.org>|mm/beta: return 22",
        "Test Author <author@example.org>|mm/alpha: add alpha2"]


def test_validation_reports_what_it_checked(mini: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _mail(mini, out, "--json")
    assert r.rc == 0, r.err
    v = r.json["validation"]
    assert {k: v[k] for k in ("headers", "thread", "mbox", "b4", "git_am")} == dict.fromkeys(
        ("headers", "thread", "mbox", "b4", "git_am"), "pass")
    assert v["problems"] == [] and v["messages"] == 4 and v["patches_compared"] == 3
    assert v["tree"] == git(mini["repo"], "rev-parse", "v2^{tree}").strip()      # the stack's tree, by git
    assert v["base_commit"] == mini["base"]
    res = json.loads(Path(r.json["results"]).read_text())
    mail = next(s for s in res["stages"] if s["name"] == "mail")
    assert mail["status"] == "pass" and mail["extra"]["validation"] == v


# -- the validator refuses broken mails: exit 2, the reason, nothing written ----------------
def _set_header(m, name: str, value: str) -> None:  # noqa: ANN001
    m.headers = [(n, value if n.lower() == name.lower() else v) for n, v in m.headers]


def _swap_patches(ms) -> None:  # noqa: ANN001
    """Mail 1/3 carries patch 2 and 2/3 patch 1: numbered in the wrong order."""
    a, b = ms.mails[1], ms.mails[2]
    sa, sb = a.header("Subject"), b.header("Subject")
    _set_header(a, "Subject", sb.replace("2/3", "1/3"))
    _set_header(b, "Subject", sa.replace("1/3", "2/3"))
    a.body, b.body = b.body, a.body


def _cover_subject(old: str, new: str):  # noqa: ANN202
    def f(ms) -> None:  # noqa: ANN001
        _set_header(ms.mails[0], "Subject", ms.mails[0].header("Subject").replace(old, new))
    return f


def _body(n: int, old: str, new: str):  # noqa: ANN202
    def f(ms) -> None:  # noqa: ANN001
        assert old in ms.mails[n].body
        ms.mails[n].body = ms.mails[n].body.replace(old, new, 1)
    return f


def _short_mbox(ms) -> None:  # noqa: ANN001
    full = type(ms).mbox_bytes(ms)
    ms.mbox_bytes = lambda: full[:full.rindex(b"\nFrom 0000000000000000000000000000000000000000 ") + 1]


FAULTS = {
    "a dropped mail": (lambda ms: ms.mails.pop(2), [
        "message 3 of the mbox is v2 3/3", "expected v2 2/3", "b4 sees an incomplete series",
        "the mails carry 2 patches, the stack 3", "after mail 2/3 the tree is not the stack's after its patch 2",
        "git am of the mails gives tree", "(they differ in mm/beta.c)"]),
    "the cover's Message-ID changed": (lambda ms: _set_header(ms.mails[0], "Message-ID", "<elsewhere@example.org>"), [
        "0001-mm-alpha-add-alpha2.patch: In-Reply-To", "is not the cover's <elsewhere@example.org>",
        "References", "b4 has elsewhere@example.org at 0/3"]),
    "a patch's In-Reply-To changed": (lambda ms: _set_header(ms.mails[2], "In-Reply-To", "<nowhere@example.org>"), [
        "0002-mm-beta-return-22.patch: In-Reply-To '<nowhere@example.org>' is not the cover's"]),
    "a Message-ID used twice": (lambda ms: _set_header(ms.mails[2], "Message-ID", ms.mails[1].header("Message-ID")), [
        "0002-mm-beta-return-22.patch: Message-ID", "is also 0001-mm-alpha-add-alpha2.patch's"]),
    "a diff altered": (_body(2, "+/* beta is 22 */", "+/* beta is 23 */"), [
        "after mail 2/3 the tree is not the stack's after its patch 2", "git am of the mails gives tree",
        "(they differ in mm/beta.c)"]),
    "a diff that does not apply": (_body(2, " int beta(void)", " int gamma(void)"), [
        "git am of mail 2/3 failed"]),
    "the mails in another order": (lambda ms: ms.mails.insert(1, ms.mails.pop(2)), [
        "message 2 of the mbox is v2 2/3", "message 3 of the mbox is v2 1/3",
        "after mail 1/3 the tree is not the stack's after its patch 1"]),
    "patches numbered in the wrong order": (_swap_patches, [     # after both, the trees agree again
        "after mail 1/3 the tree is not the stack's after its patch 1"]),
    "a cover counting 4 patches": (_cover_subject("0/3", "0/4"), [
        "message 1 of the mbox is v2 0/4", "expected v2 0/3"]),
    "the cover of another revision": (_cover_subject("v2 0/3", "v3 0/3"), [
        "message 1 of the mbox is v3 0/3", "b4 reads change-id None"]),
    "a cover naming another base": (_body(0, "base-commit: ", "base-commit: 0000000000"), [
        "b4 reads base-commit 0000000000", "expected "]),
    "a cover with another change-id": (_body(0, "change-id: ", "change-id: x"), ["b4 reads change-id x"]),
    "an mbox missing a message": (_short_mbox, [
        "series.mbox holds 3 messages, there are 4 mail files", "b4 sees an incomplete series"]),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_validator_refuses(mini: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    """A fault put into the generated mails (in process, after they are built and
    before they are validated) is found: exit 2, one line naming it, nothing written."""
    import series.mail.pipeline as mp
    breaks, reasons = FAULTS[fault]
    build = mp.build_mails

    def broken(*a, **k):  # noqa: ANN002, ANN003, ANN202
        ms = build(*a, **k)
        breaks(ms)
        return ms
    monkeypatch.setattr(mp, "build_mails", broken)
    out = tmp_path / "out"
    r = _mail(mini, out, "--json")
    assert r.rc == 2, (r.rc, r.err)
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert "mini v2: the generated mails do not validate: " in r.err
    for reason in reasons:
        assert reason in r.err, (reason, r.err)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_in_body_from_when_sender_differs(mini: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _mail(mini, out, "--from", "Someone Else <else@example.net>")
    assert r.rc == 0, r.err
    m = _parse(out / "0001-mm-alpha-add-alpha2.patch")
    assert m["From"] == "Someone Else <else@example.net>"
    assert m.get_content().startswith("From: Test Author <author@example.org>\n\n")
    assert "@example.net>" in m["Message-ID"]


def test_header_injection_refused(mini: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for bad in (["--to", "a@example.org\nBcc: victim@example.org"], ["--cc", "a@example.org\rX-Evil: 1"],
                ["--from", "Eve <eve@example.org>\nBcc: x@example.org"]):
        r = run_series("-C", str(mini["ws"]), "mail", "mini", "v2", "-o", str(out), "--tree", "mini", *bad)
        assert r.rc == 1 and "header injection" in r.err and "Traceback" not in r.err
        assert not out.exists()


def test_subject_injection_refused(mini: dict) -> None:
    from series.errors import UserError
    from series.mail.format import fold
    with pytest.raises(UserError):
        fold("Subject", "[PATCH] x\nBcc: y@example.org")


def test_output_dir_must_be_empty(mini: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("mine")
    r = _mail(mini, out)
    assert r.rc == 1 and "not empty" in r.err
    assert (out / "keep").read_text() == "mine"
    # --force replaces an earlier output of ours, never a directory holding the user's files
    r = _mail(mini, out, "--force")
    assert r.rc == 1 and "not replacing it" in r.err
    assert (out / "keep").read_text() == "mine"
    ours = tmp_path / "ours"
    r = _mail(mini, ours)
    assert r.rc == 0, r.err
    (ours / "0001-stale.patch").write_text("from an older run\n")
    r = _mail(mini, ours, "--force")
    assert r.rc == 0, r.err
    assert not (ours / "0001-stale.patch").exists() and (ours / "series.mbox").is_file()


def test_incomplete_revision_refused(mini: dict, tmp_path: Path) -> None:
    (mini["stack_dir"] / "v2" / "0002-mm-beta-return-22.patch").unlink()
    r = _mail(mini, tmp_path / "out")
    assert r.rc == 1
    assert "mini v2 cannot be mailed: patch 2 is missing (not imported)" in r.err
    assert not (tmp_path / "out").exists()


def test_conflicting_revision_refused(mini: dict, tmp_path: Path) -> None:
    f = mini["stack_dir"] / "v2" / "0002-mm-beta-return-22.patch"
    f.write_text(f.read_text().replace("-\treturn 2;", "-\treturn 7;"))
    r = _mail(mini, tmp_path / "out")
    assert r.rc == 1, r.err
    assert 'mini v2 cannot be mailed: patch 2 "mm/beta: return 22" does not apply to its base' in r.err
    assert not (tmp_path / "out").exists()


def test_workspace_template_override(mini: dict) -> None:
    (mini["ws"] / "templates").mkdir()
    (mini["ws"] / "templates" / "cover.j2").write_text(
        "{{ cover }}\nchange-id={{ change_id }} base={{ base_commit }}\n{% for h in history %}H v{{ h.version }} {{ h.link }}\n{% endfor %}"
        "{{ shortlog }}\n{{ signature }}\n")
    r = run_series("-C", str(mini["ws"]), "cover", "mini", "v2")
    assert r.rc == 0, r.err
    assert "H v1 https://lore.kernel.org/r/mini-v1-0@example.org" in r.out
    assert "This series makes alpha and beta better." in r.out and "Test Author (3):" in r.out
    assert "Best regards" not in r.out            # not the default template
    (mini["ws"] / "templates" / "cover.j2").write_text("{{ nosuchvar }}\n")
    r = run_series("-C", str(mini["ws"]), "cover", "mini", "v2")
    assert r.rc == 1 and "nosuchvar" in r.err


def test_parse_get_maintainer() -> None:
    from series.mail.format import parse_get_maintainer
    out = ("Andrew Morton <akpm@linux-foundation.org> (maintainer:MEMORY MANAGEMENT)\n"
           "Shuah Khan <shuah@kernel.org> (maintainer:KERNEL SELFTEST FRAMEWORK)\n"
           "Peter Xu <peterx@redhat.com> (reviewer:USERFAULTFD)\n"
           "Alexander Viro <viro@zeniv.linux.org.uk> (maintainer:FILESYSTEMS (VFS and infrastructure))\n"
           "linux-fsdevel@vger.kernel.org (open list:FILESYSTEMS (VFS and infrastructure))\n"
           "linux-mm@kvack.org (open list:MEMORY MANAGEMENT)\n"
           "linux-kernel@vger.kernel.org (open list)\n")
    to, cc = parse_get_maintainer(out)
    assert to == ["Andrew Morton <akpm@linux-foundation.org>", "Shuah Khan <shuah@kernel.org>",
                  "Alexander Viro <viro@zeniv.linux.org.uk>"]
    assert cc == ["Peter Xu <peterx@redhat.com>", "linux-fsdevel@vger.kernel.org", "linux-mm@kvack.org",
                  "linux-kernel@vger.kernel.org"]


# -- sending, to a local SMTP sink -------------------------------------------------------
class _Sink(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.messages: list[tuple[str, list[str], bytes]] = []


class _SMTPHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        srv: _Sink = self.server  # type: ignore[assignment]
        w = self.wfile.write
        w(b"220 sink ESMTP\r\n")
        mail_from, rcpts = "", []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            up = cmd.upper()
            if up.startswith("EHLO"):
                w(b"250-sink\r\n250-8BITMIME\r\n250 OK\r\n")
            elif up.startswith("HELO"):
                w(b"250 sink\r\n")
            elif up.startswith("MAIL FROM:"):
                mail_from, rcpts = cmd[10:].strip(), []
                w(b"250 OK\r\n")
            elif up.startswith("RCPT TO:"):
                rcpts.append(cmd[8:].strip().strip("<>"))
                w(b"250 OK\r\n")
            elif up == "DATA":
                w(b"354 go\r\n")
                data = []
                while True:
                    l = self.rfile.readline()
                    if l in (b".\r\n", b".\n") or not l:
                        break
                    data.append(l[1:] if l.startswith(b"..") else l)
                srv.messages.append((mail_from, rcpts, b"".join(data)))
                w(b"250 queued\r\n")
            elif up in ("RSET", "NOOP"):
                w(b"250 OK\r\n")
            elif up == "QUIT":
                w(b"221 bye\r\n")
                return
            else:
                w(b"502 unsupported\r\n")


def test_send_to_local_sink(mini: dict, tmp_path: Path) -> None:
    from series.mail.send import have_send_email
    if not have_send_email():
        pytest.skip("git send-email is not installed (Debian package git-email)")
    sink = _Sink()
    t = threading.Thread(target=sink.serve_forever, daemon=True)
    t.start()
    try:
        port = sink.server_address[1]
        out = tmp_path / "out"
        r = _mail(mini, out, "--send", "--smtp", f"127.0.0.1:{port}", "--json")
        assert r.rc == 0, r.err
        assert r.json["sent"] == {"server": f"127.0.0.1:{port}", "count": 4}
    finally:
        sink.shutdown()
        sink.server_close()
    assert len(sink.messages) == 4
    sent = [email.message_from_bytes(d, policy=email.policy.default) for _, _, d in sink.messages]
    mids = [_parse(out / n)["Message-ID"] for n in sorted(p.name for p in out.glob("*.patch"))]
    assert [m["Message-ID"] for m in sent] == mids
    assert all(m["In-Reply-To"] == mids[0] for m in sent[1:])
    assert [m["Subject"] for m in sent][0] == "[PATCH v2 0/3] mini: a small stack"
    for _, rcpts, _ in sink.messages:
        assert sorted(rcpts) == ["list@vger.example.org", "maint@example.org"]


def test_send_needs_a_server(mini: dict, tmp_path: Path) -> None:
    r = _mail(mini, tmp_path / "out", "--send")
    assert r.rc == 1 and "--smtp" in r.err and not (tmp_path / "out").exists()


# -- the real uffd-move revisions --------------------------------------------------------
@pytest.fixture
def uffd_ws(repo_workspace: Path, lore_dir: Path) -> Path:
    r = run_series("-C", str(repo_workspace), "fetch", "uffd-move", "--mirror", str(lore_dir))
    assert r.rc == 0, r.err
    return repo_workspace


@pytest.mark.integration
def test_uffd_move_changelog_v5_to_v6(uffd_ws: Path) -> None:
    r = run_series("-C", str(uffd_ws), "changelog", "uffd-move", "v6")
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "Changes in v6:"
    assert "- Large folios split in move_pages_pte() (David Hildenbrand)." in lines
    assert '- [computed] patch 2 "userfaultfd: UFFDIO_MOVE uABI": not imported in v5 and v6, cannot compare' in lines
    changed = [l for l in lines if l.startswith('- [computed] patch 5 "selftests/mm: add UFFDIO_MOVE ioctl test": changed since v5 patch 5')]
    assert len(changed) == 1
    # patches 1, 3 and 4 have the same patch-id in v5 and v6: no computed line for them
    assert not [l for l in lines if re.match(r"- \[computed\] patch [134] ", l)]
    j = run_series("-C", str(uffd_ws), "changelog", "uffd-move", "v6", "--json").json
    st = {(p["old"], p["new"]): p["status"] for p in j["pairs"]}
    assert st == {(1, 1): "same", (2, 2): "missing", (3, 3): "same", (4, 4): "same", (5, 5): "changed"}


@pytest.mark.integration
def test_uffd_move_cover_history(uffd_ws: Path) -> None:
    r = run_series("-C", str(uffd_ws), "cover", "uffd-move", "v6", "--json")
    assert r.rc == 0, r.err
    j = r.json
    assert [h["version"] for h in j["history"]] == [1, 2, 3, 4, 5]
    text = j["text"]
    hist = text[text.index("\nHistory:\n"):]
    for v, mid in [(1, "20230914152620.2743033-1"), (2, "20230923013148.1390521-1"), (3, "20231009064230.2952396-1"),
                   (4, "20231028003819.652322-1"), (5, "20231121171643.3719880-1")]:
        assert re.search(rf"^v{v} \(\d{{4}}-\d\d-\d\d\): https://lore\.kernel\.org/all/{mid}-surenb@google\.com/$", hist, re.M)
    assert "  - Renamed UFFDIO_REMAP to UFFDIO_MOVE (David Hildenbrand); new UFFD_FEATURE_MOVE." in hist
    assert "- Link to v5: https://lore.kernel.org/all/20231121171643.3719880-1-surenb@google.com/" in text
    assert "Andrea Arcangeli (1):" in text and "Suren Baghdasaryan (3):" in text
    assert j["change_id"].startswith("20230914-uffd-move-")


@pytest.mark.integration
def test_uffd_move_v6_cannot_be_mailed(uffd_ws: Path, tmp_path: Path) -> None:
    r = run_series("-C", str(uffd_ws), "mail", "uffd-move", "v6", "-o", str(tmp_path / "out"))
    assert r.rc == 1
    assert "uffd-move v6 cannot be mailed: patch 2 is missing (not imported)" in r.err
    assert not (tmp_path / "out").exists()


# -- the demo stack (our own patches, base debian/6.12) ----------------------------------------
@pytest.mark.integration
def test_demo_stack_v2(repo_workspace: Path, debian_trees, tmp_path: Path) -> None:  # noqa: ANN001
    """The demo stack in this repository, mailed against the Debian 6.12 tree the
    session imported (tree `debian`): validated, threaded, recipients from the
    tree's get_maintainer.pl."""
    assert (REPO / "patches" / "uffd-move-selftests" / "v2").is_dir()
    out = tmp_path / "out"
    r = run_series("-C", str(repo_workspace), "mail", "uffd-move-selftests", "v2", "-o", str(out),
                   "--tree", "debian", "--json")
    assert r.rc == 0, r.err
    j = r.json
    v = j["validation"]
    assert {k: v[k] for k in ("headers", "thread", "mbox", "b4", "git_am")} == dict.fromkeys(
        ("headers", "thread", "mbox", "b4", "git_am"), "pass") and v["problems"] == []
    msgs = [_parse(p) for p in sorted(out.glob("*.patch"))]
    n = len(msgs) - 1
    assert v["patches_compared"] == n and v["messages"] == n + 1
    assert msgs[0]["Subject"].startswith(f"[PATCH v2 0/{n}]")
    assert all(m["In-Reply-To"] == msgs[0]["Message-ID"] for m in msgs[1:])
    assert re.search(r"^base-commit: [0-9a-f]{40}$", msgs[0].get_content(), re.M)
    assert j["recipients_from"] == "get_maintainer.pl"
    assert "linux-kselftest@vger.kernel.org" in " ".join(j["cc"])
