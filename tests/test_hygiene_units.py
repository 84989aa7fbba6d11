"""Series hygiene, message by message: what each check says (the text a user
reads in the report) for a passing and each failing case, the numbering rules at
their edges, whitespace counts, get_maintainer.pl parsing and running, and the
posted recipients read back from an mbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from series.patch import Patch
from series.stages.check import hygiene as hy


def mail(message: str, *, sender: str = "Ann Author <ann@example.org>", in_body: str | None = None,
         diff: str = "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n a\n+b\n") -> Patch:
    body = (f"From: {in_body}\n\n" if in_body else "") + message + "\n---\n" + diff
    return Patch.from_bytes(f"From: {sender}\nSubject: [PATCH] x\nMessage-Id: <1@x>\n\n{body}-- \n2.42.0\n".encode())


def items(xs: list[hy.Item]) -> list[tuple[str, str, str]]:
    return [(i.check, i.status, i.message) for i in xs]


def test_item_json() -> None:
    assert hy.Item("c", "warn", "m").to_json() == {"check": "c", "status": "warn", "message": "m"}


@pytest.mark.parametrize("message, kw, want", [
    ("Body.\n\nSigned-off-by: Ann Author <ann@example.org>", {},
     [("pass", "author (From) Ann Author <ann@example.org> signed off")]),
    ("Body.\n\nsigned-off-by:  ann author   <ANN@example.org>  ", {},
     [("pass", "author (From) Ann Author <ann@example.org> signed off")]),
    ("Body.", {}, [("fail", "no Signed-off-by: line (author Ann Author <ann@example.org>)")]),
    ("Body.\n\nSigned-off-by: Anne Other <ann@example.org>", {},
     [("fail", "author (From) Ann Author <ann@example.org> signs off with another name: Anne Other <ann@example.org>")]),
    ("Body.\n\nSigned-off-by: Ann Author <ann@elsewhere.org>", {},
     [("fail", "author (From) Ann Author <ann@example.org> signs off with another address: "
               "Ann Author <ann@elsewhere.org>")]),
    ("Body.\n\nSigned-off-by: Bob <bob@example.org>", {},
     [("fail", "no Signed-off-by: from the author (From) Ann Author <ann@example.org>")]),
    ("Body.\n\nSigned-off-by: Ann Author <ann@example.org>\nSigned-off-by: Sam Sender <SAM@example.org>",
     {"sender": "Sam Sender <sam@example.org>", "in_body": "Ann Author <ann@example.org>"},
     [("pass", "author (in-body From) Ann Author <ann@example.org> signed off"),
      ("pass", "sender Sam Sender <sam@example.org> signed off (chain)")]),
    ("Body.\n\nSigned-off-by: Ann Author <ann@example.org>",
     {"sender": "Sam Sender <sam@example.org>", "in_body": "Ann Author <ann@example.org>"},
     [("pass", "author (in-body From) Ann Author <ann@example.org> signed off"),
      ("warn", "sender Sam Sender <sam@example.org> is not the author and has no Signed-off-by: (broken chain)")]),
    # an in-body From naming the sender himself: no chain to check
    ("Body.\n\nSigned-off-by: Ann Author <ann@example.org>",
     {"sender": "Ann Author <ANN@example.org>", "in_body": "Ann Author <ann@example.org>"},
     [("pass", "author (From) Ann Author <ann@example.org> signed off")]),
])
def test_signoff_messages(message: str, kw: dict, want: list[tuple[str, str]]) -> None:
    got = hy.check_signoff(mail(message, **kw))
    assert [(i.status, i.message) for i in got] == want
    assert all(i.check == "signed-off-by" for i in got)


def test_signoffs_parsing() -> None:
    assert hy.signoffs("a\nSigned-off-by: \"Doe, J\" <j@x>\nSIGNED-OFF-BY:k@y\n  Signed-off-by: no <n@x>") == [
        ("Doe, J", "j@x"), ("", "k@y")]


def _lookup(sha: str) -> str | None:
    return {"0123456789ab": "mm: the subject"}.get(sha[:12])


@pytest.mark.parametrize("line, want", [
    ('Fixes: 0123456789ab ("mm: the subject")', ("pass", 'Fixes: 0123456789ab ("mm: the subject") found in the tree')),
    ('Fixes: 0123456789abcdef ("mm: the subject")', ("pass", 'Fixes: 0123456789ab ("mm: the subject") found in the tree')),
    ('Fixes:   0123456789ab   ("mm: the subject")  ', ("pass", 'Fixes: 0123456789ab ("mm: the subject") found in the tree')),
    ('Fixes: 0123456789ab ("mm: other")', ("fail", 'Fixes: 0123456789ab quotes "mm: other" but the commit is "mm: the subject"')),
    ('Fixes: fedcba987654 ("mm: x")', ("fail", "Fixes: fedcba987654 is not a commit of the tree")),
    ('Fixes: 0123456789a ("mm: x")', ("fail", "Fixes: sha 0123456789a has 11 digits (12 or more wanted)")),
    ('Fixes: 0123456789ab mm: x', ("fail", 'malformed tag (want Fixes: <12+ hex> ("subject")): Fixes: 0123456789ab mm: x')),
    ('fixes: 0123456789ab ("mm: the subject")', ("fail", 'malformed tag (want Fixes: <12+ hex> ("subject")): '
                                                 'fixes: 0123456789ab ("mm: the subject")')),
])
def test_fixes_messages(line: str, want: tuple[str, str]) -> None:
    got = hy.check_fixes(mail(f"Body.\n\n{line}\nSigned-off-by: A <a@b.c>"), hy.CommitLookup(_lookup))
    assert [(i.check, i.status, i.message) for i in got] == [("fixes", *want)]


def test_fixes_several_and_none_and_without_history() -> None:
    pm = mail('Body.\n\nFixes: 0123456789ab ("mm: the subject")\nFixes: fedcba987654 ("x")\nSigned-off-by: A <a@b.c>')
    assert [i.status for i in hy.check_fixes(pm, hy.CommitLookup(_lookup))] == ["pass", "fail"]
    assert items(hy.check_fixes(mail("Body.\n\nSigned-off-by: A <a@b.c>"), hy.CommitLookup(_lookup))) == [
        ("fixes", "pass", "no Fixes: tags")]
    got = hy.check_fixes(pm, hy.CommitLookup(None, "no history here"))
    assert items(got) == [("fixes", "skip", "Fixes: 0123456789ab well formed; existence not checked: no history here"),
                          ("fixes", "skip", "Fixes: fedcba987654 well formed; existence not checked: no history here")]


def test_whitespace_messages() -> None:
    diff = "diff --git a/f b/f\n--- a/f\n+++ b/f \n@@ -1 +1,14 @@\n a \n" + "".join(f"+l{k} \n" for k in range(12)) + "+ok\n"
    raw = (f"From: A <a@b.c>\nSubject: x\n\nBody with trailing \n+not in the diff \n---\n{diff}").encode()
    got = hy.check_whitespace(raw)
    assert got[0] == hy.Item("crlf", "pass", "no CRLF line endings")
    lines = [n for n, ln in enumerate(raw.split(b"\n"), 1) if ln.startswith(b"+l")]
    shown = ", ".join(map(str, lines[:10])) + " ..."
    assert got[1] == hy.Item("trailing-whitespace", "fail", f"12 added lines end with whitespace (patch lines {shown})")
    got = hy.check_whitespace(raw.replace(b"\n", b"\r\n"))
    newlines = raw.count(b"\n")
    assert got[0] == hy.Item("crlf", "fail", f"{newlines} lines end with CRLF")
    assert got[1].message.startswith("12 added lines end with whitespace (patch lines ")
    one = b"x\ndiff --git a/f b/f\n+a\t\n+b\n"
    assert hy.check_whitespace(one)[1] == hy.Item("trailing-whitespace", "fail",
                                                  "1 added lines end with whitespace (patch lines 3)")
    ten = b"diff --git a/f b/f\n" + b"".join(b"+x \n" for _ in range(10))
    assert hy.check_whitespace(ten)[1].message.endswith("(patch lines 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)")
    assert hy.check_whitespace(b"diff --git a/f b/f\n+a\n+++ b/g \n")[1] == hy.Item(
        "trailing-whitespace", "pass", "no trailing whitespace on added lines")


def test_parse_prefix() -> None:
    p = hy.parse_prefix("[RFC PATCH v3 2/5] mm: x")
    assert (p.tags, p.version, p.n, p.m) == (["RFC", "PATCH"], 3, 2, 5)
    p = hy.parse_prefix(" [PATCH net-next] [V2] [01/10] x")
    assert (p.tags, p.version, p.n, p.m) == (["PATCH", "net-next"], 2, 1, 10)
    assert hy.parse_prefix("mm: no prefix") is None
    assert hy.parse_prefix("mm: [late] bracket") is None
    p = hy.parse_prefix("[PATCH] x")
    assert (p.tags, p.version, p.n, p.m) == (["PATCH"], None, None, None)


def test_numbering_messages() -> None:
    per, rev = hy.check_numbering(2, {1: "[PATCH v2 1/2] a", 2: "[PATCH v2 2/2] b"}, [], 2)
    assert items(per[1]) == [("subject", "pass", "[PATCH v2 1/2]")]
    assert items(rev) == [("subject-prefixes", "pass", "consistent prefixes [PATCH]"),
                          ("numbering", "pass", "numbered 1..2 of 2 without gaps")]
    per, _ = hy.check_numbering(1, {1: "[PATCH 1/1] a"}, [], None)
    assert items(per[1]) == [("subject", "pass", "[PATCH 1/1]")]
    per, _ = hy.check_numbering(3, {1: "[PATCH 1/2] a", 2: "[PATCH v2 2/2] b", 3: "[PATCH v3 1/2] c", 4: "no"}, [], 2)
    assert items(per[1]) == [("subject", "fail", "subject lacks v3: [PATCH 1/2]")]
    assert items(per[2]) == [("subject", "fail", "subject says v2, the revision is v3")]
    assert items(per[3]) == [("subject", "fail", "numbered 1/2 but is patch 3 of the revision")]
    assert items(per[4]) == [("subject", "fail", "no [PATCH n/m] numbering in 'no'")]
    per, rev = hy.check_numbering(1, {1: "[PATCH] only"}, [], None)
    assert items(per[1]) == [("subject", "fail", "no [PATCH n/m] numbering in '[PATCH] only'")] and rev == []


def test_numbering_revision_items() -> None:
    _, rev = hy.check_numbering(1, {1: "[PATCH 1/3] a", 2: "[RFC 2/3] b", 3: "[PATCH 3/3] c"}, [], 3)
    assert rev[0] == hy.Item("subject-prefixes", "fail", "inconsistent prefixes: [PATCH], [RFC]")
    _, rev = hy.check_numbering(1, {1: "[PATCH 1/3] a", 2: "[PATCH 2/4] b"}, [], None)
    assert rev[-1] == hy.Item("numbering", "fail", "patches disagree on the total: [3, 4]")
    _, rev = hy.check_numbering(1, {1: "[PATCH 1/4] a", 2: "[PATCH 2/4] b", 3: "[PATCH 2/4] c"}, [], 4)
    assert rev[-1] == hy.Item("numbering", "fail", "numbers used twice: [2]; gaps in numbering (not known missing): [3, 4]")
    _, rev = hy.check_numbering(1, {1: "[PATCH 1/2] a", 2: "[PATCH 2/2] b"}, [], 3)
    assert rev[-1] == hy.Item("numbering", "fail", "numbered out of 2, the manifest says 3")
    _, rev = hy.check_numbering(1, {1: "[PATCH 1/2] a", 2: "[PATCH 3/2] b"}, [], 2)
    assert rev[-1] == hy.Item("numbering", "fail", "gaps in numbering (not known missing): [2]; numbers above the total 2")
    # known missing patches fill the gaps, also before the first imported one
    _, rev = hy.check_numbering(1, {3: "[PATCH 3/4] c", 4: "[PATCH 4/4] d"}, [1, 2], 4)
    assert rev[-1] == hy.Item("numbering", "pass", "numbered 1..4 of 4 without gaps (missing from the import: [1, 2])")
    # a revision of patches 16-20 of 21 starts at 16
    subj = {i: f"[PATCH {i}/21] p" for i in range(16, 22)}
    _, rev = hy.check_numbering(1, subj, [], 21)
    assert rev[-1] == hy.Item("numbering", "pass", "numbered 16..21 of 21 without gaps")
    _, rev = hy.check_numbering(1, {1: "[PATCH 1/2] a", 2: "[PATCH 2/2] b"}, [], 0)
    assert rev[-1].status == "pass"                      # no posted total known: nothing to compare


def test_cover_messages() -> None:
    assert hy.check_cover(1, None) == hy.Item("cover-letter", "pass", "single patch: no cover letter needed")
    assert hy.check_cover(0, None).status == "pass"
    assert hy.check_cover(2, "why", "[PATCH 0/2] t") == hy.Item("cover-letter", "pass", "cover letter present: [PATCH 0/2] t")
    assert hy.check_cover(2, "why") == hy.Item("cover-letter", "pass", "cover letter present")
    assert hy.check_cover(2, "  \n") == hy.Item("cover-letter", "fail", "2 patches but no cover letter")
    assert hy.check_cover(3, None) == hy.Item("cover-letter", "fail", "3 patches but no cover letter")


GM = """\
Andrew Morton <akpm@linux-foundation.org> (maintainer:MEMORY MANAGEMENT)
"Doe, Jane" <jane@example.org> (reviewer:FILESYSTEMS (VFS and infrastructure))
linux-mm@kvack.org (open list:MEMORY MANAGEMENT)
no address here (maintainer:X)

plain@example.org
"""


def test_parse_get_maintainer() -> None:
    got = hy.parse_get_maintainer(GM)
    assert [(n.name, n.email, n.role, n.is_list) for n in got] == [
        ("Andrew Morton", "akpm@linux-foundation.org", "maintainer:MEMORY MANAGEMENT", False),
        ("Doe, Jane", "jane@example.org", "reviewer:FILESYSTEMS (VFS and infrastructure)", False),
        ("", "linux-mm@kvack.org", "open list:MEMORY MANAGEMENT", True),
        ("", "plain@example.org", "", False)]
    assert hy.Named("x", "l@x", "moderated list:FOO").is_list
    assert not hy.Named("x", "l@x", "maintainer:list handling").is_list


def test_recipients_messages() -> None:
    named = hy.parse_get_maintainer(GM)
    everyone = [("", n.email.upper()) for n in named]
    assert hy.check_recipients(named, everyone, []) == hy.Item(
        "recipients", "pass", "all 4 maintainers/reviewers/lists named by get_maintainer.pl were copied")
    assert hy.check_recipients(named, [], []) == hy.Item(
        "recipients", "skip", "the posted mail's To/Cc are unknown (no posted.mbox)")
    got = hy.check_recipients(named, [("", "akpm@linux-foundation.org")], [("", "other@example.org")])
    assert got == hy.Item("recipients", "warn", "not copied: people: Doe, Jane <jane@example.org> (reviewer), "
                                                "<plain@example.org> (); lists: linux-mm@kvack.org")
    got = hy.check_recipients(named[2:3], [("", "x@example.org")], [])
    assert got == hy.Item("recipients", "warn", "not copied: lists: linux-mm@kvack.org")
    got = hy.check_recipients(named[:1], [], [("", "x@example.org")])
    assert got.message == "not copied: people: Andrew Morton <akpm@linux-foundation.org> (maintainer)"


def test_run_get_maintainer(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    gm = scripts / "get_maintainer.pl"
    gm.write_text('if ($ARGV[0] eq "--no-tree" && $ARGV[1] eq "--no-git" && $ARGV[2] eq "--no-git-fallback") {\n'
                  '  print "A B <ab\\@example.org> (maintainer:THING)\\nl\\@example.org (open list)\\n"; exit 0 }\n'
                  'print STDERR "bad args\\n"; exit 2;\n')
    patch = tmp_path / "p.patch"
    patch.write_text("x")
    assert hy.get_maintainer_command(tmp_path, patch) == [
        "perl", str(gm), "--no-tree", "--no-git", "--no-git-fallback", str(patch)]
    got = hy.run_get_maintainer(tmp_path, patch)
    assert [(n.name, n.email, n.is_list) for n in got] == [("A B", "ab@example.org", False), ("", "l@example.org", True)]
    gm.write_text('print STDERR "first\\nlast words\\n"; exit 3;\n')
    with pytest.raises(RuntimeError, match=r"^get_maintainer.pl exited 3: last words$"):
        hy.run_get_maintainer(tmp_path, patch)


def test_posted_headers(tmp_path: Path) -> None:
    assert hy.posted_headers(tmp_path / "absent.mbox") == {}
    box = tmp_path / "posted.mbox"
    box.write_text("From x Mon Sep 17 00:00:00 2001\nFrom: A <a@x>\nSubject: [PATCH 1/1] s\nMessage-Id: <m1@x>\n"
                   "To: One <one@x>, two@x\nCc: Three <three@x>\nCc: four@x\n\nbody\n\n"
                   "From x Mon Sep 17 00:00:00 2001\nFrom: A <a@x>\nSubject: [PATCH 0/1] c\nMessage-Id: <m0@x>\n\nc\n")
    got = hy.posted_headers(box)
    assert got == {"m1@x": {"to": [("One", "one@x"), ("", "two@x")], "cc": [("Three", "three@x"), ("", "four@x")]},
                   "m0@x": {"to": [], "cc": []}}
