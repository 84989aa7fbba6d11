"""Import: formats, incomplete threads, ignored mails, refusals, idempotency."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailfactory import patch_mail, reply_mail, series_mails, write_maildir, write_mbox
from conftest import run_series


def imp(ws: Path, *args: str) -> "object":
    return run_series("-C", str(ws), "import", *args)


def show(ws: Path, stack: str) -> dict:
    r = run_series("-C", str(ws), "show", stack, "--json")
    assert r.rc == 0, r.err
    return r.json


def one_line_error(r) -> None:  # noqa: ANN001
    assert r.rc == 1, (r.rc, r.out, r.err)
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert "Traceback" not in r.err and r.err.startswith("series: error:")


def test_import_complete_series(workspace: Path, tmp_path: Path) -> None:
    box = write_mbox(tmp_path / "s.mbox", series_mails(3))
    r = imp(workspace, "demo", "--mbox", str(box), "--create", "--json")
    assert r.rc == 0, r.err
    rep = r.json["imports"][0]
    assert (rep["version"], rep["present"], rep["missing"], rep["status"]) == (1, [1, 2, 3], [], "created")
    rev = show(workspace, "demo")["revisions"][0]
    assert rev["complete"] and rev["expected"] == 3
    assert [p["subject"] for p in rev["patches"]] == [f"demo: add helper number {i}" for i in (1, 2, 3)]
    assert all(p["patch_id"] and len(p["patch_id"]) == 40 for p in rev["patches"])
    files = sorted((workspace / "patches/demo/v1").glob("*.patch"))
    assert [f.name[:4] for f in files] == ["0001", "0002", "0003"]
    assert (workspace / "patches/demo/v1/cover.txt").read_text().startswith("Subject: [PATCH 0/3] demo helpers")


def test_incomplete_thread_records_missing(workspace: Path, tmp_path: Path) -> None:
    box = write_mbox(tmp_path / "s.mbox", series_mails(5, version=4, missing=(2, 4)))
    r = imp(workspace, "demo", "--mbox", str(box), "--create", "--json")
    assert r.rc == 0, r.err
    rev = show(workspace, "demo")["revisions"][0]
    assert (rev["version"], rev["present"], rev["missing"], rev["complete"]) == (4, [1, 3, 5], [2, 4], False)
    assert [p["imported"] for p in rev["patches"]] == [True, False, True, False, True]


def test_replies_nonpatch_duplicates_are_ignored_and_counted(workspace: Path, tmp_path: Path) -> None:
    msgs = series_mails(2)
    note = patch_mail(9, 9)
    note.set_content("just a note without a diff\n")
    del note["Subject"]
    note["Subject"] = "[PATCH 1/2] a note"
    del note["Message-ID"]
    note["Message-ID"] = "<note@example.org>"
    msgs += [reply_mail(msgs[1]), reply_mail(msgs[2]), msgs[1], note]
    box = write_mbox(tmp_path / "s.mbox", msgs)
    r = imp(workspace, "demo", "--mbox", str(box), "--create", "--json")
    assert r.rc == 0, r.err
    ign = r.json["imports"][0]["ignored"]
    assert ign == {"replies": 2, "duplicates": 1, "not-a-patch": 1}
    assert r.json["imports"][0]["present"] == [1, 2]


@pytest.mark.parametrize("cte,charset", [("quoted-printable", "utf-8"), ("base64", "utf-8"), ("8bit", "iso-8859-1")])
def test_encodings(workspace: Path, tmp_path: Path, cte: str, charset: str) -> None:
    author = "Zoë Müller <zoe@example.org>"
    msgs = [patch_mail(i, 2, cte=cte, charset=charset, author=author, body_extra=" (naïve café)") for i in (1, 2)]
    box = write_mbox(tmp_path / "s.mbox", msgs)
    r = imp(workspace, "enc", "--mbox", str(box), "--create")
    assert r.rc == 0, r.err
    rev = show(workspace, "enc")["revisions"][0]
    assert rev["patches"][0]["author"] == author     # the in-body From wins
    text = Path(rev["patches"][0]["file"]).read_text(encoding="utf-8")
    assert "naïve café" in text and f"From: {author}" in text
    assert "=C3" not in text  # decoded, not left as quoted-printable


def test_gzip_and_maildir(workspace: Path, tmp_path: Path) -> None:
    gz = write_mbox(tmp_path / "s.mbox.gz", series_mails(2), gz=True)
    assert imp(workspace, "gz", "--mbox", str(gz), "--create").rc == 0
    md = write_maildir(tmp_path / "md", series_mails(2))
    assert imp(workspace, "md", "--mbox", str(md), "--create").rc == 0
    a = [p["patch_id"] for p in show(workspace, "gz")["revisions"][0]["patches"]]
    b = [p["patch_id"] for p in show(workspace, "md")["revisions"][0]["patches"]]
    assert a == b and all(a)


def test_mboxrd_from_escaping(workspace: Path, tmp_path: Path) -> None:
    msgs = series_mails(1, cover=False)
    body = msgs[0].get_content().replace("This adds helper 1", "From here on, this adds helper 1")
    msgs[0].set_content(body)
    box = tmp_path / "rd.mbox"
    raw = msgs[0].as_bytes().replace(b"\nFrom here", b"\n>From here")
    box.write_bytes(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n" + raw + b"\n")
    assert imp(workspace, "rd", "--mbox", str(box), "--create").rc == 0
    text = next((workspace / "patches/rd/v1").glob("0001-*.patch")).read_text()
    assert "\nFrom here on, this adds helper 1" in text


def test_mixed_revisions(workspace: Path, tmp_path: Path) -> None:
    box = write_mbox(tmp_path / "s.mbox", series_mails(2, version=1) + series_mails(3, version=2, missing=(3,)))
    r = imp(workspace, "mix", "--mbox", str(box), "--create", "--json")
    assert r.rc == 0, r.err
    assert [(x["version"], x["present"], x["missing"]) for x in r.json["imports"]] == [(1, [1, 2], []), (2, [1, 2], [3])]
    r = imp(workspace, "mix2", "--mbox", str(box), "--create", "--revision", "2", "--json")
    assert [x["version"] for x in r.json["imports"]] == [2]
    assert r.json["imports"][0]["ignored"]["other-revisions"] == 2


def test_select_keeps_numbering_as_posted(workspace: Path, tmp_path: Path) -> None:
    box = write_mbox(tmp_path / "big.mbox", series_mails(21, missing=(19,)))
    r = imp(workspace, "rfc", "--mbox", str(box), "--create", "--select", "16-20", "--revision", "3", "--json")
    assert r.rc == 0, r.err
    rev = show(workspace, "rfc")["revisions"][0]
    assert (rev["version"], rev["expected"], rev["present"], rev["missing"]) == (3, 5, [16, 17, 18, 20], [19])
    assert sorted(p.name[:4] for p in (workspace / "patches/rfc/v3").glob("*.patch")) == ["0016", "0017", "0018", "0020"]


def test_same_mails_twice_changes_nothing(workspace: Path, tmp_path: Path) -> None:
    box = write_mbox(tmp_path / "s.mbox", series_mails(2))
    assert imp(workspace, "demo", "--mbox", str(box), "--create").rc == 0
    d = workspace / "patches/demo"
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    r = imp(workspace, "demo", "--mbox", str(box), "--json")
    assert r.rc == 0 and r.json["imports"][0]["status"] == "unchanged"
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before


def test_partial_revision_grows(workspace: Path, tmp_path: Path) -> None:
    a = write_mbox(tmp_path / "a.mbox", series_mails(3, missing=(2,)))
    b = write_mbox(tmp_path / "b.mbox", series_mails(3, missing=(1, 3)))
    assert imp(workspace, "demo", "--mbox", str(a), "--create").rc == 0
    r = imp(workspace, "demo", "--mbox", str(b), "--json")
    assert r.rc == 0, r.err
    assert r.json["imports"][0]["status"] == "updated"
    assert show(workspace, "demo")["revisions"][0]["complete"]
    # posted.mbox keeps each mail once: the cover (in both boxes) and the three patches.
    posted = (workspace / "patches/demo/v1/posted.mbox").read_bytes()
    assert posted.count(b"From mboxrd@z") == 4
    assert posted.count(b"Message-ID: <v1-0-demo@example.org>") == 1


def test_a_different_cover_is_a_clash(workspace: Path, tmp_path: Path) -> None:
    a = write_mbox(tmp_path / "a.mbox", series_mails(2))
    b_msgs = series_mails(2)
    b_msgs[0].set_content("A different blurb under the same Message-ID.\n")
    b = write_mbox(tmp_path / "b.mbox", b_msgs)
    assert imp(workspace, "demo", "--mbox", str(a), "--create").rc == 0
    r = imp(workspace, "demo", "--mbox", str(b))
    one_line_error(r)
    assert "the cover" in r.err


def test_different_mails_refused_then_forced_and_kept(workspace: Path, tmp_path: Path) -> None:
    a = write_mbox(tmp_path / "a.mbox", series_mails(2))
    other = [patch_mail(i, 2, diff=None, body_extra=" differently") for i in (1, 2)]
    b = write_mbox(tmp_path / "b.mbox", other)
    assert imp(workspace, "demo", "--mbox", str(a), "--create").rc == 0
    old = (workspace / "patches/demo/v1/0001-demo-add-helper-number-1.patch").read_text()
    r = imp(workspace, "demo", "--mbox", str(b))
    one_line_error(r)
    assert "--force" in r.err
    assert (workspace / "patches/demo/v1/0001-demo-add-helper-number-1.patch").read_text() == old
    r = imp(workspace, "demo", "--mbox", str(b), "--force", "--json")
    assert r.rc == 0, r.err
    kept = Path(r.json["imports"][0]["kept_aside"])
    assert (kept / "0001-demo-add-helper-number-1.patch").read_text() == old
    assert "differently" in (workspace / "patches/demo/v1/0001-demo-add-helper-number-1.patch").read_text()


def test_refusals(workspace: Path, tmp_path: Path) -> None:
    only_replies = write_mbox(tmp_path / "r.mbox", [reply_mail(patch_mail(1, 1))])
    one_line_error(imp(workspace, "demo", "--mbox", str(only_replies), "--create"))
    v2 = write_mbox(tmp_path / "v2.mbox", series_mails(2, version=2))
    one_line_error(r := imp(workspace, "demo", "--mbox", str(v2), "--create", "--revision", "3"))
    assert "contradicts" in r.err
    one_line_error(r := imp(workspace, "nosuch", "--mbox", str(v2)))
    assert "--create" in r.err
    one_line_error(imp(workspace, "demo", "--mbox", str(tmp_path / "absent.mbox"), "--create"))
    one_line_error(imp(workspace, "Bad Name", "--mbox", str(v2), "--create"))
    one_line_error(imp(workspace, "demo", "--mbox", str(v2), "--create", "--select", "5-2"))
    junk = tmp_path / "junk.mbox.gz"
    junk.write_bytes(b"\x1f\x8bnot really gzip")
    one_line_error(imp(workspace, "demo", "--mbox", str(junk), "--create"))
    # Nothing half-written was left behind by any refusal.
    assert not any((workspace / "patches").rglob("*.tmp"))
    assert not (workspace / "patches/demo").exists()


def test_cli_basics(workspace: Path) -> None:
    r = run_series("--version")
    assert r.rc == 0 and r.out.startswith("series ")
    r = run_series("--help")
    assert r.rc == 0 and "import" in r.out and "exit codes" in r.out
    assert run_series("nosuchcommand").rc == 1
    one_line_error(run_series("-C", str(workspace), "show", "nosuch"))
    one_line_error(run_series("-C", str(workspace / "nowhere"), "list"))
    r = run_series("-C", str(workspace), "list", "--json")
    assert r.rc == 0 and json.loads(r.out) == {"stacks": []}
