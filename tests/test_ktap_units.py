"""The KTAP and uffd-unit-tests parsers, field by field: names, statuses,
reasons, the character offsets boot turns into durations, the plan among
nested plans, and the directive words."""

from __future__ import annotations

import pytest

from series.stages import ktap
from series.stages.ktap import looks_like_ktap, parse_ktap, parse_uffd_unit

Case = ktap.TestCase


def spans(text: str, cases: list[Case]) -> list[tuple[str, str, str, str]]:
    """(name, status, reason, the text the case spans)."""
    return [(c.name, c.status, c.reason, text[c.start:c.end]) for c in cases]


def test_offsets_cover_each_case_from_the_previous_result() -> None:
    text = "TAP version 13\n1..3\nok 1 a\n# about b\nnot ok 2 b\nok 3 c # SKIP why\n"
    p = parse_ktap(text)
    assert spans(text, p.cases) == [
        ("a", "pass", "", "TAP version 13\n1..3\nok 1 a"),
        ("b", "fail", "about b", "# about b\nnot ok 2 b"),
        ("c", "skip", "why", "ok 3 c # SKIP why")]


def test_the_outermost_plan_wins_wherever_it_is() -> None:
    # a nested plan printed first; the top-level one after the parent's result
    text = "KTAP version 1\n    1..2\n    ok 1 a\n    ok 2 b\nok 1 parent\n1..1\n"
    p = parse_ktap(text)
    assert p.planned == 1
    assert [(c.name, c.extra.get("parent")) for c in p.cases] == [("parent/a", "parent"), ("parent/b", "parent"),
                                                                   ("parent", None)]
    assert p.cases[2].start == p.cases[0].start == 0 and text[p.cases[2].start:p.cases[2].end].endswith("ok 1 parent")
    # the least indented result decides, not the last one
    text = "    1..1\n    ok 1 sub\nok 1 a\n1..3\n    ok 1 late\n"
    assert parse_ktap(text).planned == 3
    # everything indented alike: that indent is the top level
    assert parse_ktap("  1..2\n  ok 1 a\n  ok 2 b\n").planned == 2
    assert parse_ktap(" 1..5\nok 1 a\n1..1\n").planned == 1
    assert parse_ktap("ok 1 a\n").planned is None
    assert parse_ktap("1..4\n").planned == 4                  # a plan alone (no result yet)


def test_a_parent_keeps_grandchildren_named_once() -> None:
    text = "        ok 1 leaf\n    ok 1 mid\nok 1 top\n"
    p = parse_ktap(text, prefix="s")
    assert [(c.name, c.extra.get("parent")) for c in p.cases][1:] == [("s/top/mid", "top"), ("s/top", None)]
    assert p.cases[0].extra["parent"] == "mid" and p.cases[0].name.endswith("mid/leaf")


@pytest.mark.parametrize("line, status, reason", [
    ("ok 1 t # SKIP no swap", "skip", "no swap"),
    ("ok 1 t # skip lower case", "skip", "lower case"),
    ("ok 1 t # SKIP", "skip", "skip"),
    ("not ok 1 t # TODO not yet", "skip", "todo: not yet"),
    ("not ok 1 t # TODO", "skip", "todo"),
    ("not ok 1 t # XFAIL known", "skip", "xfail: known"),
    ("not ok 1 t # xfail", "skip", "xfail"),
    ("not ok 1 t # TIMEOUT 30s", "fail", "30s"),
    ("ok 1 t # XPASS", "pass", ""),
    ("ok 1 - t", "pass", ""),
    ("not ok 1 t", "fail", ""),
])
def test_directives(line: str, status: str, reason: str) -> None:
    c = parse_ktap(line + "\n").cases[0]
    assert (c.name, c.status, c.reason) == ("t", status, reason)


def test_names() -> None:
    assert [c.name for c in parse_ktap("ok 7\nok 8 # SKIP x\n").cases] == ["test 7", "test 8"]
    harness = "#  RUN  fix.var.one ...\nok 1 # SKIP nope\n#  RUN  fix.var.two ...\nok 2 # SKIP nope\n"
    assert [c.name for c in parse_ktap(harness).cases] == ["fix.var.one", "fix.var.two"]
    # a RUN line before an earlier result is not taken
    assert [c.name for c in parse_ktap("#  RUN  x ...\nok 1 a\nok 2 # SKIP y\n").cases] == ["a", "test 2"]


def test_failure_reasons() -> None:
    # the last diagnostic before the result; harness bookkeeping and SKIP/TODO lines passed over
    text = ("ok 1 a\n# first\n# the reason\n#  FAIL  fix.b\n# fix.b: Test failed at step #3\n# SKIP not this\n"
            "# todo neither\n#\nnot ok 2 b\n")
    assert parse_ktap(text).cases[1].reason == "the reason"
    # no diagnostic before it: the first one right after, up to the next non-comment line
    text = "ok 1 a\nnot ok 2 b\n#\n# after b\n# later\nok 3 c\n"
    assert parse_ktap(text).cases[1].reason == "after b"
    text = "ok 1 a\nnot ok 2 b\nplain output\n# too late\nok 3 c\n"
    assert parse_ktap(text).cases[1].reason == ""
    # after the last result, to the end of the text
    assert parse_ktap("not ok 1 b\n# at the end\n").cases[0].reason == "at the end"
    # only up to the next result
    text = "not ok 1 b\nok 2 c\n# belongs to nobody\n"
    assert parse_ktap(text).cases[0].reason == ""
    # a diagnostic of the result before does not leak into the next one
    text = "# before a\nnot ok 1 a\nnot ok 2 b\n# after b\n"
    assert [c.reason for c in parse_ktap(text).cases] == ["before a", "after b"]
    assert parse_ktap("#x\nnot ok 1 a\n").cases[0].reason == "x"
    assert parse_ktap("not ok 1 a\n#y\n").cases[0].reason == "y"


def test_skip_all_and_bail_out() -> None:
    assert parse_ktap("1..0 # SKIP no userfaultfd\n").skip_all == "no userfaultfd"
    assert parse_ktap("1..0 # SKIP\n").skip_all == "skipped"
    assert parse_ktap("1..0\n").skip_all is None
    assert parse_ktap("ok 1 a\nBail out!\n").bail_out == ""


def test_looks_like_ktap() -> None:
    assert looks_like_ktap("KTAP version 1\n") and looks_like_ktap("TAP version 13\n")
    assert looks_like_ktap("ok 1 a\n") and looks_like_ktap("not ok 3 - b\n")
    assert not looks_like_ktap("Testing move on anon... done\n")
    assert not looks_like_ktap("")


def test_to_dict() -> None:
    assert Case("a", "pass").to_dict() == {"name": "a", "status": "pass", "duration_s": None, "reason": ""}
    assert Case("b", "fail", reason="r", duration_s=1.23456).to_dict() == {
        "name": "b", "status": "fail", "duration_s": 1.235, "reason": "r"}


UFFD = ("Testing register-ioctls on anon... done\n"
        "Testing move on shmem... skipped [reason: feature missing]\n"
        "Testing move-pmd on anon... failed [reason: got 0\nexpected 1]\n"
        "Userfaults unit tests: pass=1, skip=1, fail=1 (total=3)\n")


def test_uffd_unit_cases_offsets_and_summary() -> None:
    p = parse_uffd_unit(UFFD)
    assert spans(UFFD, p.cases) == [
        ("uffd-unit-tests/register-ioctls/anon", "pass", "", "Testing register-ioctls on anon... done"),
        ("uffd-unit-tests/move/shmem", "skip", "feature missing",
         "Testing move on shmem... skipped [reason: feature missing]"),
        ("uffd-unit-tests/move-pmd/anon", "fail", "got 0\nexpected 1",
         "Testing move-pmd on anon... failed [reason: got 0\nexpected 1]")]
    assert p.summary == {"pass": 1, "skip": 1, "fail": 1, "total": 3} and p.planned == 3
    assert [c.name for c in parse_uffd_unit(UFFD, prefix="").cases] == [
        "register-ioctls/anon", "move/shmem", "move-pmd/anon"]
    assert [c.name for c in parse_uffd_unit(UFFD, prefix="u").cases][0] == "u/register-ioctls/anon"


def test_uffd_unit_without_a_result() -> None:
    text = "Testing a on anon... done\nTesting b on anon... \nsome output\nlast words\nTesting c on anon... done\n"
    p = parse_uffd_unit(text)
    assert spans(text, p.cases)[1] == ("uffd-unit-tests/b/anon", "fail",
                                      "no result printed (last output: last words)",
                                      "Testing b on anon... \nsome output\nlast words\n")
    assert p.cases[2].status == "pass"                       # the case after it is still read
    assert p.summary is None and p.planned is None
    # the last case ends at the summary, not at the end of the text
    text = "Testing a on anon... \nUserfaults unit tests: pass=0, skip=0, fail=1 (total=1)\ndone\n"
    p = parse_uffd_unit(text)
    assert p.cases[0].status == "fail" and p.cases[0].reason == "no result printed"
    assert text[p.cases[0].start:p.cases[0].end] == "Testing a on anon... \n"
    long = "x" * 300
    p = parse_uffd_unit(f"Testing a on anon... \n{long}\n")
    assert p.cases[0].reason == f"no result printed (last output: {'x' * 200})"
    assert p.cases[0].end == len(f"Testing a on anon... \n{long}\n")


def test_uffd_unit_case_offsets_after_the_first() -> None:
    text = "noise\nTesting a on anon... done\nTesting b on shmem... done\n"
    p = parse_uffd_unit(text)
    assert spans(text, p.cases) == [("uffd-unit-tests/a/anon", "pass", "", "Testing a on anon... done"),
                                    ("uffd-unit-tests/b/shmem", "pass", "", "Testing b on shmem... done")]


def test_uffd_unit_summary_right_after_a_start() -> None:
    """The summary printed where the outcome should be: the case spans to the end and says so."""
    text = "Testing a on anon... Userfaults unit tests: pass=0, skip=0, fail=0 (total=1)\n"
    (c,) = parse_uffd_unit(text).cases
    assert (c.status, c.end) == ("fail", len(text))
    assert c.reason == "no result printed (last output: Userfaults unit tests: pass=0, skip=0, fail=0 (total=1))"
