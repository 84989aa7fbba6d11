"""The mail validator's checks in process, on a set of mails written here by hand
(a cover and two patches, as `series mail` lays them out): the good set passes
every check, and each fault is named by the check that should find it."""

from __future__ import annotations

import copy

import pytest

from series.mail.format import MailSet, OutMail
from series.mail.validate import Applied, Validation, b4_problems, mbox_problems, thread_problems

BASE = "1234567890abcdef1234567890abcdef12345678"
CHANGE_ID = "20240101-demo-0123456789ab"


def _mail(n: int, total: int, subject: str, body: str, *, version: int = 2) -> OutMail:
    mid = f"demo-v{version}-{n}@example.org"
    h = [("From", "Test Author <author@example.org>"), ("Date", "Mon, 1 Jan 2024 00:00:0%d +0000" % n),
         ("Subject", f"[PATCH v{version} {n}/{total}] {subject}"), ("Message-ID", f"<{mid}>")]
    if n:
        h += [("In-Reply-To", "<demo-v2-0@example.org>"), ("References", "<demo-v2-0@example.org>")]
    h += [("To", "Maint Ainer <maint@example.org>")]
    return OutMail(n, f"{n:04d}-{subject.replace(' ', '-').replace(':', '')}.patch", subject, mid, h, body)


def _patch_body(i: int) -> str:
    return (f"Change number {i}.\n\nSigned-off-by: Test Author <author@example.org>\n---\n"
            f" f{i}.c | 1 +\n 1 file changed, 1 insertion(+)\n\n"
            f"diff --git a/f{i}.c b/f{i}.c\nindex 1111111..2222222 100644\n--- a/f{i}.c\n+++ b/f{i}.c\n"
            f"@@ -1 +1,2 @@\n int a;\n+int b{i};\n-- \nseries\n")


def good() -> MailSet:
    cover = _mail(0, 2, "demo: a small set", f"Why.\n\n---\nbase-commit: {BASE}\nchange-id: {CHANGE_ID}\n\nBest regards,\n-- \nTest Author\n")
    mails = [cover, _mail(1, 2, "demo: one", _patch_body(1)), _mail(2, 2, "demo: two", _patch_body(2))]
    return MailSet(stack="demo", version=2, total=2, mails=mails, to=["Maint Ainer <maint@example.org>"], cc=[],
                   recipients_from="--to/--cc", base_commit=BASE, change_id=CHANGE_ID)


def _set(m: OutMail, name: str, value: str | None) -> None:
    """Replace a header's value; None removes it."""
    if value is None:
        m.headers = [(n, v) for n, v in m.headers if n.lower() != name.lower()]
    else:
        m.headers = [(n, value if n.lower() == name.lower() else v) for n, v in m.headers]


def test_a_good_set_passes_every_check() -> None:
    ms = good()
    assert thread_problems(ms) == []
    assert mbox_problems(ms) == []
    assert b4_problems(ms) == []


def _broken(change) -> MailSet:  # noqa: ANN001
    ms = copy.deepcopy(good())
    change(ms)
    return ms


@pytest.mark.parametrize("what, change, want", [
    ("no Message-ID", lambda ms: _set(ms.mails[1], "Message-ID", None),
     ["0001-demo-one.patch: Message-ID None is not one <id@domain>"]),
    ("a Message-ID without a domain", lambda ms: _set(ms.mails[1], "Message-ID", "<nodomain>"),
     ["0001-demo-one.patch: Message-ID '<nodomain>' is not one <id@domain>"]),
    ("two ids in one header", lambda ms: _set(ms.mails[1], "Message-ID", "<a@x> <b@x>"),
     ["0001-demo-one.patch: Message-ID '<a@x> <b@x>' is not one <id@domain>"]),
    ("a Message-ID used twice", lambda ms: _set(ms.mails[2], "Message-ID", "<demo-v2-1@example.org>"),
     ["0002-demo-two.patch: Message-ID <demo-v2-1@example.org> is also 0001-demo-one.patch's"]),
    ("the cover replies", lambda ms: ms.mails[0].headers.append(("In-Reply-To", "<old@example.org>")),
     ["0000-demo-a-small-set.patch: the cover replies to <old@example.org>"]),
    ("the cover refers", lambda ms: ms.mails[0].headers.append(("References", "<old@example.org>")),
     ["0000-demo-a-small-set.patch: the cover replies to <old@example.org>"]),
    ("In-Reply-To elsewhere", lambda ms: _set(ms.mails[2], "In-Reply-To", "<x@example.org>"),
     ["0002-demo-two.patch: In-Reply-To '<x@example.org>' is not the cover's <demo-v2-0@example.org>"]),
    ("no In-Reply-To", lambda ms: _set(ms.mails[2], "In-Reply-To", None),
     ["0002-demo-two.patch: In-Reply-To None is not the cover's <demo-v2-0@example.org>"]),
    ("References elsewhere", lambda ms: _set(ms.mails[1], "References", "<x@example.org>"),
     ["0001-demo-one.patch: References '<x@example.org>' do not name the cover <demo-v2-0@example.org>"]),
])
def test_thread_problems(what: str, change, want: list[str]) -> None:  # noqa: ANN001
    assert thread_problems(_broken(change)) == want, what


def test_thread_with_a_bad_cover_id() -> None:
    ms = _broken(lambda ms: _set(ms.mails[0], "Message-ID", "<a@x> <b@x>"))
    assert thread_problems(ms) == [
        "0000-demo-a-small-set.patch: Message-ID '<a@x> <b@x>' is not one <id@domain>",
        "0001-demo-one.patch: In-Reply-To '<demo-v2-0@example.org>' is not the cover's <None>",
        "0001-demo-one.patch: References '<demo-v2-0@example.org>' do not name the cover <None>",
        "0002-demo-two.patch: In-Reply-To '<demo-v2-0@example.org>' is not the cover's <None>",
        "0002-demo-two.patch: References '<demo-v2-0@example.org>' do not name the cover <None>"]
    assert thread_problems(_broken(lambda ms: ms.mails.clear())) == ["no mail"]


def test_a_patch_first() -> None:
    probs = thread_problems(_broken(lambda ms: ms.mails.insert(0, ms.mails.pop(1))))
    assert probs[0] == "the first mail is 0001-demo-one.patch, not the cover letter"
    assert "0001-demo-one.patch: the cover replies to <demo-v2-0@example.org>" in probs


def test_references_may_name_more_than_the_cover() -> None:
    ms = _broken(lambda ms: _set(ms.mails[1], "References", "<earlier@example.org> <demo-v2-0@example.org>"))
    assert thread_problems(ms) == []


def test_mbox_problems() -> None:
    ms = good()
    full = MailSet.mbox_bytes(ms)
    ms.mbox_bytes = lambda: full[:full.rindex(b"\nFrom 0000") + 1]  # type: ignore[method-assign]
    assert mbox_problems(ms) == ["series.mbox holds 2 messages, there are 3 mail files"]
    ms = good()
    ms.mbox_bytes = lambda: full.replace(b"int b2;", b"int c2;")  # type: ignore[method-assign]
    assert mbox_problems(ms) == ["message 3 of series.mbox is not 0002-demo-two.patch"]
    ms = good()
    ms.mails[2].body = ms.mails[2].body.replace("Change number 2.", "From here on, number 2.")
    assert mbox_problems(ms) == []                 # a body line starting `From ` survives the mbox


def test_b4_problems() -> None:
    ms = _broken(lambda ms: ms.mails.pop(1))
    probs = b4_problems(ms)
    assert "message 2 of the mbox is v2 2/2 ('[PATCH v2 2/2] demo: two'), expected v2 1/2" in probs
    assert "b4 sees an incomplete series" in probs
    ms = _broken(lambda ms: ms.mails.insert(1, ms.mails.pop(2)))
    assert b4_problems(ms) == [
        "message 2 of the mbox is v2 2/2 ('[PATCH v2 2/2] demo: two'), expected v2 1/2",
        "message 3 of the mbox is v2 1/2 ('[PATCH v2 1/2] demo: one'), expected v2 2/2"]
    ms = _broken(lambda ms: _set(ms.mails[0], "Subject", "[PATCH v2 0/3] demo: a small set"))
    probs = b4_problems(ms)
    assert "message 1 of the mbox is v2 0/3 ('[PATCH v2 0/3] demo: a small set'), expected v2 0/2" in probs
    ms = _broken(lambda ms: _set(ms.mails[1], "Subject", "[PATCH v3 1/2] demo: one"))
    assert "message 2 of the mbox is v3 1/2 ('[PATCH v3 1/2] demo: one'), expected v2 1/2" in b4_problems(ms)
    ms = _broken(lambda ms: setattr(ms.mails[1], "message_id", "other@example.org"))
    assert b4_problems(ms) == ["b4 has demo-v2-1@example.org at 1/2, expected other@example.org"]
    ms = _broken(lambda ms: setattr(ms.mails[0], "body", ms.mails[0].body.replace(BASE, "f" * 40)))
    assert b4_problems(ms) == [f"b4 reads base-commit {'f' * 40}, expected {BASE}"]
    ms = _broken(lambda ms: setattr(ms, "base_commit", None))
    assert b4_problems(ms) == []                     # no base known: nothing to compare
    ms = _broken(lambda ms: setattr(ms.mails[0], "body", ms.mails[0].body.replace(CHANGE_ID, "other")))
    assert b4_problems(ms) == [f"b4 reads change-id other, expected {CHANGE_ID}"]
    ms = _broken(lambda ms: ms.mails.pop(0))
    assert "b4 sees no cover letter" in b4_problems(ms)
    ms = _broken(lambda ms: setattr(ms, "version", 5))
    assert b4_problems(ms)[-1] == "b4 finds no v5 series in the mbox"


def test_validation_json() -> None:
    v = Validation(found={"thread": [], "mbox": ["m"], "b4": [], "git_am": ["a", "b"]}, facts={"tree": "t"})
    assert v.problems == ["m", "a", "b"]
    assert v.to_json() == {"headers": "pass", "thread": "pass", "mbox": "fail", "b4": "pass", "git_am": "fail",
                           "problems": ["m", "a", "b"], "tree": "t"}
    assert Applied(ok=True).steps == []


def test_check_headers() -> None:
    from series.errors import UserError
    from series.mail.validate import check_headers
    check_headers(good())
    ms = _broken(lambda ms: _set(ms.mails[1], "To", "a@example.org\nBcc: b@example.org"))
    with pytest.raises(UserError, match=r"^refusing a To value with a line break \(header injection\)"):
        check_headers(ms)
    ms = _broken(lambda ms: _set(ms.mails[2], "Subject", "[PATCH v2 2/2] " + "x" * 990))
    with pytest.raises(UserError, match=r"^0002-demo-two.patch: a Subject header line of 1014 characters is over "
                                        r"the 998 that RFC 5322 allows"):
        check_headers(ms)
    ms = _broken(lambda ms: _set(ms.mails[2], "Subject", "[PATCH v2 2/2] " + "x" * 974))   # 998 exactly: fine
    check_headers(ms)
    ms = good()
    ms.mails[1].as_bytes = lambda: b"From: a@x\rX: y\nSubject: s\n\nbody\r\n"  # type: ignore[method-assign]
    with pytest.raises(UserError, match=r"^0001-demo-one.patch: a header carries CR$"):
        check_headers(ms)


def test_every_bad_message_id_is_named() -> None:
    ms = _broken(lambda ms: (_set(ms.mails[1], "Message-ID", "<x>"), _set(ms.mails[2], "Message-ID", "<y>")))
    probs = thread_problems(ms)
    assert "0001-demo-one.patch: Message-ID '<x>' is not one <id@domain>" in probs
    assert "0002-demo-two.patch: Message-ID '<y>' is not one <id@domain>" in probs


def test_mbox_keeps_trailing_characters() -> None:
    ms = good()
    ms.mails[1].body = ms.mails[1].body + "ends with X"
    ms.mails[2].body = ms.mails[2].body + "ends with a space \n"
    assert mbox_problems(ms) == []


def test_b4_with_a_patch_numbered_past_the_total() -> None:
    ms = _broken(lambda ms: _set(ms.mails[2], "Subject", "[PATCH v2 3/2] demo: two"))
    probs = b4_problems(ms)
    assert "message 3 of the mbox is v2 3/3 ('[PATCH v2 3/2] demo: two'), expected v2 2/2" in probs
    assert "b4 misses 2/2" in probs


def test_check_headers_reads_only_the_header() -> None:
    from series.errors import UserError
    from series.mail.validate import check_headers
    ms = good()
    ms.mails[1].body = "x" * 1200 + "\n\nA long line in the body is not a header.\n\n" + ms.mails[1].body
    check_headers(ms)
    ms = good()
    ms.mails[1].body = "a CR\r in the body\n\n" + ms.mails[1].body
    check_headers(ms)
    ms = _broken(lambda ms: _set(ms.mails[2], "Subject", "[PATCH v2 2/2] a: " + "x" * 972))   # 999 characters
    with pytest.raises(UserError, match=r"^0002-demo-two.patch: a Subject header line of 999 characters"):
        check_headers(ms)
    name = "X-" + "N" * 45
    ms = _broken(lambda ms: ms.mails[1].headers.append((name, "v" * 990)))
    with pytest.raises(UserError, match=rf"^0001-demo-one.patch: a {name[:40]} header line of 1039 characters"):
        check_headers(ms)
    ms = _broken(lambda ms: ms.mails[1].headers.append(("X-Tést", "v" * 990)))
    with pytest.raises(UserError, match=r"^0001-demo-one.patch: a X-T\ufffd\ufffdst header line of 999 characters"):
        check_headers(ms)


def test_refuse_conflicts_messages() -> None:
    from series.errors import UserError
    from series.mail.validate import refuse_conflicts
    refuse_conflicts("demo", 2, Applied(ok=True))
    one = Applied(ok=False, failed=[(2, "demo: two", "error: patch failed: f2.c:1")])
    with pytest.raises(UserError) as e:
        refuse_conflicts("demo", 2, one)
    assert str(e.value) == ('demo v2 cannot be mailed: patch 2 "demo: two" does not apply to its base '
                            "(error: patch failed: f2.c:1)")
    two = Applied(ok=False, failed=[(1, "demo: one", "why 1"), (2, "demo: two", "why 2")])
    with pytest.raises(UserError) as e:
        refuse_conflicts("demo", 2, two)
    assert str(e.value) == 'demo v2 cannot be mailed: patches 1 "demo: one", 2 "demo: two" do not apply to its base (why 1)'
