"""The kernel-problem scan of a guest console, line by line: where each problem
starts and ends, what its excerpt keeps, the bounds, and the no-init report."""

from __future__ import annotations

from series.stages import console as con
from series.stages.console import INIT_MARKER, scan_console

OK = f"{INIT_MARKER}\n"


def got(text: str, **kw: bool) -> list[tuple[str, int, str]]:
    return [(p.kind, p.line, p.excerpt) for p in scan_console(text, **kw)]


def test_excerpt_runs_to_the_end_marker_inclusive() -> None:
    text = OK + "[    1.0] Oops: 0002 [#1]\nCall Trace:\n ? foo\n---[ end trace 0 ]---\nafter\n"
    assert got(text) == [("oops", 2, "[    1.0] Oops: 0002 [#1]\nCall Trace:\n ? foo\n---[ end trace 0 ]---")]
    # the marker right after the first line
    assert got(OK + "Kernel panic - not syncing: x\n---[ end Kernel panic - not syncing: x ]---\nz\n") == [
        ("panic", 2, "Kernel panic - not syncing: x\n---[ end Kernel panic - not syncing: x ]---")]


def test_excerpt_stops_before_our_markers() -> None:
    text = OK + "WARNING: CPU: 0 PID: 1 at mm/x.c:1 f\nModules linked in:\nSERIES-TEST-END t rc=0\nlater\n"
    assert got(text) == [("warning", 2, "WARNING: CPU: 0 PID: 1 at mm/x.c:1 f\nModules linked in:")]
    text = OK + "BUG: unable to handle page fault\nSERIES-DONE\n"
    assert got(text) == [("bug", 2, "BUG: unable to handle page fault")]


def test_excerpt_is_bounded() -> None:
    body = [f"  frame {k}" for k in range(50)]
    text = OK + "\n".join(["kernel BUG at mm/x.c:10!"] + body) + "\n"
    (kind, line, excerpt), = got(text)
    assert kind == "bug" and line == 2
    assert excerpt.splitlines() == ["kernel BUG at mm/x.c:10!"] + body[:con.MAX_EXCERPT_LINES - 1]
    # a report cut by the end of the log
    text = OK + "Oops: 1\n  a\n  b\n"
    assert got(text) == [("oops", 2, "Oops: 1\n  a\n  b")]
    # a marker just past the bound is not reached
    text = OK + "\n".join(["Oops: 1"] + body[:con.MAX_EXCERPT_LINES - 1] + ["---[ end trace ]---"]) + "\n"
    assert got(text)[0][2].splitlines()[-1] == body[con.MAX_EXCERPT_LINES - 2]
    text = OK + "\n".join(["Oops: 1"] + body[:con.MAX_EXCERPT_LINES - 2] + ["---[ end trace ]---"]) + "\n"
    assert got(text)[0][2].splitlines()[-1] == "---[ end trace ]---"


def test_excerpt_keeps_blank_and_spaced_lines_inside() -> None:
    text = OK + "Oops: 1\n\n  x  \n---[ end trace ]---\n"
    assert got(text) == [("oops", 2, "Oops: 1\n\n  x  \n---[ end trace ]---")]
    text = OK + "Oops: 1\n  \n"                    # a trailing line of blanks is kept as it is
    assert got(text) == [("oops", 2, "Oops: 1\n  ")]


def test_a_line_inside_an_excerpt_of_its_kind_starts_nothing() -> None:
    text = OK + "Oops: 1\nOops: 2 (inside)\n---[ end trace ]---\nOops: 3\n"
    assert [(k, n) for k, n, _ in got(text)] == [("oops", 2), ("oops", 5)]
    # another kind inside the excerpt is its own problem
    text = OK + "Oops: 1\nKernel panic - not syncing: Fatal exception\n---[ end Kernel panic ]---\n"
    assert [(k, n) for k, n, _ in got(text)] == [("oops", 2), ("panic", 3)]
    # a problem on the very first line
    assert [(k, n) for k, n, _ in got("Oops: 1\n" + OK)] == [("oops", 1)]


def test_at_most_max_problems() -> None:
    text = OK + "".join(f"Oops: {k}\nSERIES-DONE\n" for k in range(con.MAX_PROBLEMS + 5))
    ps = scan_console(text)
    assert len(ps) == con.MAX_PROBLEMS and ps[-1].line == 2 * con.MAX_PROBLEMS
    text = OK + "".join(f"Oops: {k}\nSERIES-DONE\n" for k in range(con.MAX_PROBLEMS))
    assert len(scan_console(text, expect_init=False)) == con.MAX_PROBLEMS
    # the bound does not eat the no-init report
    text = "".join(f"Oops: {k}\nSERIES-DONE\n" for k in range(con.MAX_PROBLEMS + 1))
    ps = scan_console(text)
    assert len(ps) == con.MAX_PROBLEMS + 1 and ps[-1].kind == "no-init"


def test_no_init() -> None:
    lines = [f"boot line {k}" for k in range(20)]
    text = "\n".join(lines[:2] + ["Kernel panic - not syncing: No working init found."] + lines[2:]) + "\n"
    ps = scan_console(text)
    assert [p.kind for p in ps] == ["panic", "no-init"]
    no_init = ps[-1]
    assert no_init.line == 0
    # the hint line (far above the last 15 lines) first, then "...", then the tail
    assert no_init.excerpt.splitlines() == ["Kernel panic - not syncing: No working init found.", "..."] + lines[5:]
    # the hint already in the tail: not repeated
    short = "a\nFailed to execute /init (error -2)\nb\n"
    assert scan_console(short)[-1].excerpt == "a\nFailed to execute /init (error -2)\nb"
    # "Run /init as init process" alone is no hint (init did start to run)
    text = "Run /init as init process\n" + "\n".join(lines) + "\n"
    assert scan_console(text)[-1].excerpt.splitlines() == lines[5:]
    assert scan_console("")[-1].excerpt == "(empty console)"
    assert scan_console("\n  \n")[-1].excerpt == "(empty console)"
    assert scan_console("x\n", expect_init=False) == []
    assert scan_console(OK) == []
    blank_tail = "\n".join(lines[:16]) + "\n\n\n"
    assert scan_console(blank_tail)[-1].excerpt.splitlines() == lines[1:16]     # the last 15 non-blank lines


def test_problem_to_dict() -> None:
    assert con.Problem("oops", "x", 3).to_dict() == {"kind": "oops", "excerpt": "x", "line": 3}
    assert con.Problem("timeout", "y").to_dict() == {"kind": "timeout", "excerpt": "y", "line": 0}


def test_excerpt_keeps_its_last_character() -> None:
    text = OK + "Oops: 1\n  at fooX\nSERIES-DONE\n"
    assert got(text) == [("oops", 2, "Oops: 1\n  at fooX")]
