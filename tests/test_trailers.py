"""The trailers ledger (series trailers, show --trailers) on mails of our own and on
the real uffd-move v5/v6; lineage across a handover (diff across stacks, show
--lineage) on mails of our own; an import lands in the revision the manifest
knows by Message-ID."""

from __future__ import annotations

import email.utils
import gzip
import http.server
import re
import shutil
import threading
import urllib.parse
from email.message import EmailMessage
from pathlib import Path

import pytest
import tomli_w

from conftest import run_series
from mailfactory import LoreHandler, cover_mail, patch_mail, reply_mail, series_mails, write_mbox

RB = "Reviewed-by: Bob <bob@example.org>"


def _import(ws: Path, name: str, msgs: list[EmailMessage], tmp: Path, *extra: str) -> None:
    r = run_series("import", name, "--mbox", str(write_mbox(tmp / f"{name}.mbox", msgs)), "--create", *extra, cwd=ws)
    assert r.rc == 0, r.err


def _reply(to: EmailMessage, text: str, who: str = "Bob <bob@example.org>", n: int = 0) -> EmailMessage:
    m = reply_mail(to, text)
    del m["From"]
    m["From"] = who
    del m["Message-ID"]
    m["Message-ID"] = f"<reply{n}-{str(to['Message-ID']).strip('<>')}>"
    return m


def test_replies_to_patches_and_cover_quotes_and_nested(workspace: Path, tmp_path: Path) -> None:
    mails = series_mails(3)
    _import(workspace, "demo", mails, tmp_path)
    cover, p1, p2, p3 = mails
    quoting = _reply(p2, "On Mon, Ada wrote:\n> This adds helper 2 for the demo.\n>\n"
                         "> Signed-off-by: Ada Lovelace <ada@example.org>\n> Reviewed-by: Eve <eve@example.org>\n\n"
                         "Why a helper?\n", who="Carol <carol@example.org>", n=1)
    nested = _reply(quoting, "Because.\n\nAcked-by: Dan <dan@example.org>\n", who="Dan <dan@example.org>", n=2)
    del nested["References"]
    nested["References"] = f"{cover['Message-ID']} {p2['Message-ID']} {quoting['Message-ID']}"
    replies = [
        _reply(p1, f"Nice.\n\n{RB}\nSigned-off-by: Not A Trailer Here <x@example.org>\nCc: cc@example.org\n"),
        _reply(cover, "For all of it:\n\nTested-by: Tess <tess@example.org>\n"
                      "Suggested-by: Sue <sue@example.org>\n", who="Tess <tess@example.org>"),
        quoting, nested,
        _reply(p3, "Reported-by: Ray <ray@example.org>\nReviewed-by: Bob <bob@example.org>\n", n=3),
    ]
    stray = patch_mail(1, 1, subject="something else entirely", msgid="stray@example.org")
    stray_reply = _reply(stray, f"{RB}\n", n=4)
    box = write_mbox(tmp_path / "replies.mbox", replies + [stray_reply, p1])
    r = run_series("trailers", "demo", "v1", "--mbox", str(box), "--json", cwd=workspace)
    assert r.rc == 0, r.err
    got = sorted((t["patch"], t["kind"], t["who"]) for t in r.json["new"])
    assert got == [(0, "Suggested-by", "Sue <sue@example.org>"), (0, "Tested-by", "Tess <tess@example.org>"),
                   (1, "Reviewed-by", "Bob <bob@example.org>"),
                   (2, "Acked-by", "Dan <dan@example.org>"),           # a reply to a reply to patch 2
                   (3, "Reported-by", "Ray <ray@example.org>"), (3, "Reviewed-by", "Bob <bob@example.org>")]
    assert r.json["replies"] == 5 and r.json["unmatched_replies"] == 1
    j = run_series("show", "demo", "v1", "--trailers", "--json", cwd=workspace).json
    dan = next(t for t in j["trailers"] if t["kind"] == "Acked-by")
    assert dan["message_id"] == str(nested["Message-ID"]).strip("<>") and dan["revision"] == 1
    assert dan["sender"] == "Dan <dan@example.org>" and dan["patches"] == [2]
    tess = next(t for t in j["trailers"] if t["kind"] == "Tested-by")
    assert tess["patch"] == 0 and tess["patches"] == [1, 2, 3] and tess["for"] == "cover (every patch)"
    text = run_series("show", "demo", "v1", "--trailers", cwd=workspace).out
    assert "v1 cover (every patch): Tested-by: Tess <tess@example.org>  [reply <reply0-v1-0-demo@example.org>]" in text


def test_replies_matched_by_subject_when_no_id_is_known(workspace: Path, tmp_path: Path) -> None:
    """A reply whose In-Reply-To names a mail we do not have still answers "[PATCH v2 2/3]"."""
    _import(workspace, "demo", series_mails(3, version=2), tmp_path)
    other = patch_mail(2, 3, version=2, msgid="not-in-the-store@example.org")
    r = run_series("trailers", "demo", "v2", "--mbox", str(write_mbox(tmp_path / "r.mbox", [_reply(other, f"{RB}\n")])),
                   "--json", cwd=workspace)
    assert r.rc == 0, r.err
    assert [(t["patch"], t["kind"]) for t in r.json["new"]] == [(2, "Reviewed-by")]


def test_trailers_refusals(workspace: Path, tmp_path: Path) -> None:
    _import(workspace, "demo", series_mails(2), tmp_path)
    r = run_series("trailers", "demo", "v9", "--mbox", str(tmp_path / "demo.mbox"), cwd=workspace)
    assert r.rc == 1 and "no revision v9" in r.err
    r = run_series("trailers", "demo", "v1", "--mbox", str(tmp_path / "absent.mbox"), cwd=workspace)
    assert r.rc == 1 and "no such mailbox" in r.err and len(r.err.strip().splitlines()) == 1




def test_trailers_from_lore_through_b4(workspace: Path, tmp_path: Path) -> None:
    mails = series_mails(2, in_reply_to="v1-0-demo@example.org")        # threaded, as lore has them
    _import(workspace, "demo", mails, tmp_path)
    thread = write_mbox(tmp_path / "thread.mbox", mails + [_reply(mails[2], f"{RB}\n")])
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LoreHandler)
    srv.boxes = {"v1-0-demo@example.org": thread}  # type: ignore[attr-defined]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        r = run_series("trailers", "demo", "v1", "--lore", "--json", cwd=workspace, env={"SERIES_LORE_URL": url})
    finally:
        srv.shutdown()
    assert r.rc == 0, r.err
    assert [(t["patch"], t["who"]) for t in r.json["new"]] == [(2, "Bob <bob@example.org>")]


# -- an import lands in the revision the manifest knows ---------------------------------------
def _manifest(ws: Path, name: str, revisions: list[dict]) -> None:
    d = ws / "patches" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "stack.toml").write_text(tomli_w.dumps({"name": name, "title": "t", "upstream": True,
                                                 "revisions": revisions}))


def test_import_lands_in_the_revision_known_by_cover_message_id(workspace: Path, tmp_path: Path) -> None:
    """Like the 2015 RFC: posted as [PATCH nn/21] (no version), listed in the manifest as v3."""
    _manifest(workspace, "old", [{"version": 3, "prefixes": ["RFC"], "cover_message_id": "rfc-0@example.org",
                                  "expected": 2, "first_index": 4, "posted_total": 5,
                                  "patches": [{"index": 4, "subject": "demo: add helper number 4",
                                               "message_id": "rfc-4@example.org"},
                                              {"index": 5, "subject": "demo: add helper number 5",
                                               "message_id": "rfc-5@example.org"}]}])
    msgs = [cover_mail(5, msgid="rfc-0@example.org")] + [patch_mail(i, 5, msgid=f"rfc-{i}@example.org")
                                                           for i in range(1, 6)]
    box = write_mbox(tmp_path / "rfc.mbox", msgs)
    r = run_series("import", "old", "--mbox", str(box), "--select", "4-5", "--json", cwd=workspace)
    assert r.rc == 0, r.err
    assert [(i["version"], i["present"]) for i in r.json["imports"]] == [(3, [4, 5])]
    show = run_series("show", "old", "--json", cwd=workspace).json
    assert [rv["version"] for rv in show["revisions"]] == [3]            # no v1 with the same cover
    # a --revision that contradicts the known Message-ID: refused, one line
    r = run_series("import", "old", "--mbox", str(box), "--select", "4-5", "--revision", "1", cwd=workspace)
    assert r.rc == 1 and r.err.strip() == ("series: error: --revision 1 contradicts the manifest: "
                                           "the cover <rfc-0@example.org> is old v3")
    # the same with --revision 3: fine (unchanged)
    r = run_series("import", "old", "--mbox", str(box), "--select", "4-5", "--revision", "3", "--json", cwd=workspace)
    assert r.rc == 0 and r.json["imports"][0]["status"] == "unchanged", r.err


def test_import_without_cover_matches_a_patch_message_id(workspace: Path, tmp_path: Path) -> None:
    _manifest(workspace, "old", [{"version": 2, "expected": 2, "patches": [
        {"index": 1, "subject": "demo: add helper number 1", "message_id": "p-1@example.org"},
        {"index": 2, "subject": "demo: add helper number 2", "message_id": "p-2@example.org"}]}])
    msgs = [patch_mail(i, 2, msgid=f"p-{i}@example.org") for i in (1, 2)]     # subjects say v1 (no version)
    r = run_series("import", "old", "--mbox", str(write_mbox(tmp_path / "p.mbox", msgs)), "--json", cwd=workspace)
    assert r.rc == 0, r.err
    assert r.json["imports"][0]["version"] == 2


# -- lineage across a handover -----------------------------------------------------------------
ALICE = "Alice Author <alice@example.org>"
BOB = "Bob Newowner <bob@example.org>"


def _new_file(path: str, lines: list[str]) -> str:
    body = "".join(f"+{ln}\n" for ln in lines)
    return (f"diff --git a/{path} b/{path}\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n"
            f"+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}")


def _code(word: str, n: int, seed: str) -> list[str]:
    """n lines of C of our own; every third one names the feature (`word`)."""
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(f"static int {word}_{seed}_step{i}(struct mm_struct *mm, unsigned long addr)")
        elif i % 3 == 1:
            out.append(f"\treturn check_{seed}_{i}(mm, addr, PAGE_SIZE * {i + 1});")
        else:
            out.append(f"\t/* {seed} {i}: keep the page table lock across the walk, {i * 7} */")
    return out


def _mail(i: int, n: int, subject: str, author: str, sender: str, diff: str, msgid: str) -> EmailMessage:
    m = EmailMessage()
    m["Subject"] = f"[PATCH {i}/{n}] {subject}"
    m["From"] = sender
    m["Date"] = email.utils.format_datetime(email.utils.parsedate_to_datetime(f"Mon, 01 Jan 2024 10:{i:02d}:00 +0000"))
    m["Message-ID"] = f"<{msgid}>"
    inbody = f"From: {author}\n\n" if author != sender else ""
    sobs = "".join(f"Signed-off-by: {w}\n" for w in dict.fromkeys([author, sender]))
    m.set_content(f"{inbody}{subject}, in our own words.\n\n{sobs}---\n\n{diff}-- \n2.43.0\n")
    return m


def _handover_mails() -> tuple[list[EmailMessage], list[EmailMessage]]:
    prep = _code("remap", 12, "rmap")
    header = [ln.replace("remap", "REMAP") for ln in _code("remap", 9, "uapi")]
    impl = _code("remap", 21, "impl")
    test = _code("remap", 15, "test")
    old = [cover_mail(3, msgid="old-0@example.org", title="userfaultfd: remap")]
    old += [_mail(1, 3, "mm: remap: rmap preparation", ALICE, ALICE, _new_file("mm/rmap-prep.c", prep), "old-1@x"),
            _mail(2, 3, "userfaultfd: UFFDIO_REMAP uABI", ALICE, ALICE,
                  _new_file("include/uapi/uffd-remap.h", header) + _new_file("mm/uffd-remap.c", impl), "old-2@x"),
            _mail(3, 3, "selftests: add a UFFDIO_REMAP test", ALICE, ALICE, _new_file("tools/remap-test.c", test),
                  "old-3@x")]

    def ren(lines: list[str]) -> list[str]:
        return [ln.replace("remap", "move").replace("REMAP", "MOVE") for ln in lines]
    new_test = ren(test)[:10] + [f"\t/* bob: check the move of page {k} */" for k in range(4)]
    new = [cover_mail(4, msgid="new-0@example.org", title="userfaultfd: move")]
    new += [_mail(1, 4, "mm: move: rmap preparation", ALICE, BOB, _new_file("mm/rmap-prep.c", ren(prep)), "new-1@x"),
            _mail(2, 4, "userfaultfd: UFFDIO_MOVE uABI", ALICE, BOB,
                  _new_file("include/uapi/uffd-move.h", ren(header)), "new-2@x"),
            _mail(3, 4, "userfaultfd: UFFDIO_MOVE implementation", ALICE, BOB,
                  _new_file("mm/uffd-move.c", ren(impl)), "new-3@x"),
            _mail(4, 4, "selftests: add a UFFDIO_MOVE test", BOB, BOB, _new_file("tools/move-test.c", new_test),
                  "new-4@x")]
    return old, new


@pytest.fixture
def handover(workspace: Path, tmp_path: Path) -> Path:
    old, new = _handover_mails()
    _import(workspace, "remapper", old, tmp_path)
    _import(workspace, "mover", new, tmp_path)
    manifest = workspace / "patches" / "mover" / "stack.toml"
    manifest.write_text(manifest.read_text().replace('name = "mover"\n', 'name = "mover"\nderived_from = "remapper"\n'))
    return workspace


def test_diff_pairs_across_stacks(handover: Path) -> None:
    r = run_series("diff", "remapper", "v1", "mover", "v1", "--json", cwd=handover)
    assert r.rc == 0, r.err
    j = r.json
    assert (j["from_stack"], j["to_stack"]) == ("remapper", "mover")
    by_new = {ln["new"]: ln for ln in j["lineage"] if ln["new"] is not None}
    assert {n: ln["old"] for n, ln in by_new.items()} == {1: 1, 2: 2, 3: 2, 4: 3}
    assert sorted(ln["status"] for n, ln in by_new.items() if n in (2, 3)) == ["changed", "split"]
    assert not by_new[1]["author_changed"] and by_new[4]["author_changed"]
    assert by_new[4]["old_author"] == ALICE and by_new[4]["new_author"] == BOB
    assert all(0 < ln["similarity"] <= 1 for ln in by_new.values())
    text = run_series("diff", "remapper", "v1", "mover", "v1", cwd=handover)
    assert text.rc == 0 and "mm: move: rmap preparation" in text.out


def test_show_lineage_prints_the_handover(handover: Path, tmp_path: Path) -> None:
    # a v2 of the new stack: patch 4 unchanged, the others too
    _, new = _handover_mails()
    v2 = [cover_mail(4, version=2, msgid="new2-0@example.org", title="userfaultfd: move")]
    for m in new[1:]:
        v2.append(_retitle(m, 2))
    _import(handover, "mover", v2, tmp_path)
    r = run_series("show", "mover", "--lineage", cwd=handover)
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "mover: derived from remapper"
    assert lines[1] == "remapper v1 -> mover v1 (handover):"
    one = next(ln for ln in lines if ln.startswith('  1 "mm: remap: rmap preparation" -> 1 '))
    assert re.search(r": changed, \d+% similar; author Alice Author$", one)          # the author kept
    four = next(ln for ln in lines if ln.startswith('  3 "selftests: add a UFFDIO_REMAP test" -> 4 '))
    assert four.endswith("author Alice Author -> Bob Newowner")                    # the new author
    from_two = [ln for ln in lines if ln.startswith('  2 "userfaultfd: UFFDIO_REMAP uABI" -> ')]
    assert len(from_two) == 2 and sum("split off" in ln for ln in from_two) == 1    # the split
    assert "mover v1 -> mover v2:" in lines
    j = run_series("show", "mover", "--lineage", "--json", cwd=handover).json
    assert [s["handover"] for s in j["steps"]] == [True, False]
    assert all(ln["status"] == "same" for ln in j["steps"][1]["links"])


def _retitle(m: EmailMessage, version: int) -> EmailMessage:
    n = EmailMessage()
    for k, v in m.items():
        if k.lower() == "subject":
            v = str(v).replace("[PATCH ", f"[PATCH v{version} ")
        elif k.lower() == "message-id":
            v = str(v).replace("@x>", f"-v{version}@x>")
        if k.lower() not in ("content-type", "content-transfer-encoding", "mime-version"):
            n[k] = v
    n.set_content(m.get_content())
    return n


def test_lineage_says_when_the_origin_is_not_imported(repo_workspace: Path) -> None:
    r = run_series("show", "uffd-move", "--lineage", "--json", cwd=repo_workspace)
    assert r.rc == 0, r.err
    first = r.json["steps"][0]
    assert first["handover"] and first["from"] == {"stack": "uffd-remap", "version": 3}
    assert "uffd-remap v3" in first["note"] and "not imported" in first["note"]


# -- the real uffd-move v5 and v6 -----------------------------------------------------------------
def test_posted_trailers_of_the_real_v5_v6(uffd_workspace: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(uffd_workspace, ws)
    for v in ("v5", "v6"):
        j = run_series("show", "uffd-move", v, "--trailers", "--json", cwd=ws).json
        got = sorted((t["patch"], t["kind"], t["who"], t["source"]) for t in j["trailers"])
        assert got == [(1, "Acked-by", "Peter Xu <peterx@redhat.com>", "posted"),
                       (3, "Reviewed-by", "Axel Rasmussen <axelrasmussen@google.com>", "posted"),
                       (3, "Reviewed-by", "Peter Xu <peterx@redhat.com>", "posted")], (v, got)
        assert all(t["message_id"].endswith("@google.com") for t in j["trailers"])
    r = run_series("trailers", "uffd-move", "v6", "--json", cwd=ws)
    assert r.rc == 0 and len(r.json["new"]) == 3 and r.json["posted"] == 3, r.err
    stored = (ws / "patches" / "uffd-move" / "trailers.toml").read_text()
    assert stored.count('source = "posted"') == 3 and "20231206103702.3873743-2-surenb@google.com" in stored
    assert run_series("trailers", "uffd-move", "v6", "--json", cwd=ws).json["new"] == []
