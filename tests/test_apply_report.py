"""The apply report, in process and fast: per-file hunk counts read from what
GNU patch really prints (a dry run on small trees made here, each built to give
a known outcome per hunk), and the already-present rule on hand-made files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import git
from series.patch import Patch
from series.stages import apply as ap

LINES = [f"line {i}" for i in range(1, 61)]


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def make_patch(tmp: Path, before: dict[str, str], after: dict[str, str]) -> Patch:
    """A real `git format-patch` mail turning `before` into `after`."""
    repo = tmp / "src"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for path, text in before.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    for path, text in after.items():
        if text is None:
            (repo / path).unlink()
        else:
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the change\n\nSigned-off-by: Test Author <author@example.org>")
    mail = subprocess.run(["git", "format-patch", "-1", "--stdout"], cwd=repo, capture_output=True,
                          check=True).stdout
    return Patch.from_bytes(mail)


def dry_run(tmp: Path, patch: Patch, tree: dict[str, str]) -> str:
    root = tmp / "tree"
    root.mkdir()
    for path, text in tree.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    diff = tmp / "diff"
    diff.write_bytes(patch.diff_bytes)
    return subprocess.run(["patch", "-p1", "--force", "--dry-run", "--verbose", "-i", str(diff)], cwd=root,
                          capture_output=True, text=True).stdout


def counts(reports: list[ap.FileReport]) -> dict[str, tuple[int, int, int, int, int]]:
    return {r.path: (r.hunks, r.clean, r.offset, r.fuzz, r.rejected) for r in reports}


# Two hunks in a.c (lines 5 and 40), one in b.c.
BEFORE = {"a.c": _text(LINES), "b.c": _text(LINES[:20])}
A_AFTER = list(LINES)
A_AFTER[4] = "line 5 changed"
A_AFTER[39] = "line 40 changed"
B_AFTER = list(LINES[:20])
B_AFTER[9] = "line 10 changed"
AFTER = {"a.c": _text(A_AFTER), "b.c": _text(B_AFTER)}


def _shift(lines: list[str], n: int) -> list[str]:
    return [f"new {i}" for i in range(n)] + lines


@pytest.mark.parametrize("name, tree, want", [
    ("clean", BEFORE, {"a.c": (2, 2, 0, 0, 0), "b.c": (1, 1, 0, 0, 0)}),
    # 3 lines on top of a.c: both hunks exactly, 3 lines down
    ("offset", {"a.c": _text(_shift(LINES, 3)), "b.c": BEFORE["b.c"]},
     {"a.c": (2, 0, 2, 0, 0), "b.c": (1, 1, 0, 0, 0)}),
    # the first context line of hunk 2 differs: fuzz 1; hunk 1 is clean
    ("fuzz", {"a.c": _text(LINES[:36] + ["line 37 edited"] + LINES[37:]), "b.c": BEFORE["b.c"]},
     {"a.c": (2, 1, 0, 1, 0), "b.c": (1, 1, 0, 0, 0)}),
    # shifted and fuzzed: counted once, as fuzz
    ("fuzz and offset", {"a.c": _text(_shift(LINES[:36] + ["line 37 edited"] + LINES[37:], 2)), "b.c": BEFORE["b.c"]},
     {"a.c": (2, 0, 1, 1, 0), "b.c": (1, 1, 0, 0, 0)}),
    # the line hunk 1 removes is not there: rejected; the rest applies
    ("rejected", {"a.c": _text(LINES[:4] + ["line 5 rewritten"] + LINES[5:]), "b.c": BEFORE["b.c"]},
     {"a.c": (2, 1, 0, 0, 1), "b.c": (1, 1, 0, 0, 0)}),
    # a.c absent: every hunk of it rejected; b.c, after it, still read correctly
    ("file missing", {"b.c": _text(["top"] + LINES[:20])}, {"a.c": (2, 0, 0, 0, 2), "b.c": (1, 0, 1, 0, 0)}),
    ("second file missing", {"a.c": BEFORE["a.c"]}, {"a.c": (2, 2, 0, 0, 0), "b.c": (1, 0, 0, 0, 1)}),
])
def test_hunk_report_from_gnu_patch(tmp_path: Path, name: str, tree: dict[str, str], want: dict) -> None:
    patch = make_patch(tmp_path, BEFORE, AFTER)
    out = dry_run(tmp_path, patch, tree)
    reports = ap.hunk_report(patch.text_files, out)
    assert counts(reports) == want, out
    for r in reports:
        assert r.hunks == r.clean + r.offset + r.fuzz + r.rejected
        missing = r.path not in tree
        assert (r.note == "file not in the base") is missing
        j = r.to_json()
        assert j == {"path": r.path, "hunks": r.hunks, "clean": r.clean, "offset": r.offset, "fuzz": r.fuzz,
                     "rejected": r.rejected, **({"note": r.note} if missing else {})}


def test_hunk_report_without_output_rejects_everything(tmp_path: Path) -> None:
    patch = make_patch(tmp_path, BEFORE, AFTER)
    assert counts(ap.hunk_report(patch.text_files, "")) == {"a.c": (2, 0, 0, 0, 2), "b.c": (1, 0, 0, 0, 1)}


def test_hunk_report_reads_each_outcome_word() -> None:
    """The lines GNU patch prints, one file each, including `ignored` and an offset of 1 line."""
    class F:                                  # hunk_report reads .path and len(.hunks)
        def __init__(self, path: str, n: int) -> None:
            self.path, self.hunks = path, (None,) * n
    fs = [F("a", 1), F("b", 1), F("c", 1), F("d", 1), F("e", 2), F("f", 1)]
    out = "\n".join([
        "checking file a", "Hunk #1 succeeded at 10.",
        "checking file b", "Hunk #1 succeeded at 11 (offset 1 line).",
        "checking file c", "Hunk #1 succeeded at 9 with fuzz 2 (offset -1 lines).",
        "checking file d", "Hunk #1 FAILED at 10.", "1 out of 1 hunk FAILED",
        "checking file e", "Hunk #1 succeeded at 3 with fuzz 1.", "Hunk #2 FAILED at 30.",
        "patching file f", "Hunk #1 ignored at 4.", "1 out of 1 hunk ignored",
    ]) + "\n"
    got = counts(ap.hunk_report(fs, out))  # type: ignore[arg-type]
    assert got == {"a": (1, 1, 0, 0, 0), "b": (1, 0, 1, 0, 0), "c": (1, 0, 0, 1, 0), "d": (1, 0, 0, 0, 1),
                   "e": (2, 0, 0, 1, 1), "f": (1, 0, 0, 0, 1)}


# -- already present -----------------------------------------------------------------
def test_subsequence_in_order_within_a_window() -> None:
    want = ["x", "y"]                        # window: 3 * 2 + 20 = 26 lines from the first
    assert ap._subsequence(want, ["x", "y"])
    assert ap._subsequence(want, ["a", "x", "b", "y"])
    assert not ap._subsequence(want, ["y", "x"])                     # order matters
    assert ap._subsequence(want, ["x"] + ["."] * 24 + ["y"])        # y at 25: inside
    assert not ap._subsequence(want, ["x"] + ["."] * 25 + ["y"])    # y at 26: outside
    assert ap._subsequence(want, ["x"] + ["."] * 30 + ["x", "y"])   # a later start counts
    assert ap._subsequence(["x  "], ["x"])                           # trailing blanks ignored
    assert ap._subsequence([], ["anything"])
    assert not ap._subsequence(["x"], [])
    three = ["x", "y", "z"]                  # window 29
    assert ap._subsequence(three, ["x"] + ["."] * 10 + ["y"] + ["."] * 16 + ["z"])       # z at 28
    assert not ap._subsequence(three, ["x"] + ["."] * 10 + ["y"] + ["."] * 17 + ["z"])   # z at 29


def test_contiguous() -> None:
    assert ap._contiguous(["b", "c"], ["a", "b", "c", "d"])
    assert ap._contiguous(["c", "d"], ["a", "b", "c", "d"])          # at the very end
    assert ap._contiguous(["a"], ["a"])
    assert not ap._contiguous(["b", "d"], ["a", "b", "c", "d"])
    assert not ap._contiguous(["a", "b"], ["a"])
    assert ap._contiguous(["b "], ["b"])


def _present(tmp: Path, before: dict[str, str], after: dict[str, str], tree: dict[str, str | None]) -> bool:
    patch = make_patch(tmp, before, after)
    root = tmp / "wt"
    root.mkdir()
    for path, text in tree.items():
        if text is not None:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
    return ap.added_lines_present(root, patch.text_files)


def test_added_lines_present(tmp_path: Path) -> None:
    merged = list(A_AFTER)
    merged.insert(20, "an unrelated line upstream added")
    cases = [
        ({"a.c": _text(A_AFTER)}, True),                        # exactly the result
        ({"a.c": _text(merged)}, True),                          # the result, and more
        ({"a.c": _text(LINES)}, False),                          # the base: nothing added
        ({"a.c": _text(A_AFTER[:30] + LINES[30:])}, False),     # hunk 1 only
        ({}, False),                                             # no file
    ]
    for n, (tree, want) in enumerate(cases):
        d = tmp_path / str(n)
        d.mkdir()
        assert _present(d, {"a.c": _text(LINES)}, {"a.c": _text(A_AFTER)}, tree) is want, n


def test_removal_only_and_deleted_files(tmp_path: Path) -> None:
    drop = LINES[:10] + LINES[13:]                               # lines 11-13 removed, nothing added
    cases = [
        ({"a.c": _text(drop)}, True),                            # the block is gone
        ({"a.c": _text(LINES)}, False),                          # still there
        ({"a.c": _text(LINES[:11] + ["x"] + LINES[12:])}, True),  # no longer there as a block
    ]
    for n, (tree, want) in enumerate(cases):
        d = tmp_path / f"r{n}"
        d.mkdir()
        assert _present(d, {"a.c": _text(LINES)}, {"a.c": _text(drop)}, tree) is want, n
    for n, (tree, want) in enumerate([({}, True), ({"gone.c": "still here\n"}, False)]):
        d = tmp_path / f"d{n}"
        d.mkdir()
        assert _present(d, {"a.c": "keep\n", "gone.c": "still here\n"}, {"gone.c": None}, tree) is want, n


def test_added_lines_present_needs_files(tmp_path: Path) -> None:
    assert ap.added_lines_present(tmp_path, []) is False


def test_already_present_says_which_rule(tmp_path: Path) -> None:
    patch = make_patch(tmp_path, {"a.c": _text(LINES)}, {"a.c": _text(A_AFTER)})
    diff = tmp_path / "diff"
    diff.write_bytes(patch.diff_bytes)
    wt = tmp_path / "wt"
    wt.mkdir()
    git(wt, "init", "-q")
    from series.git import Git
    g = Git(wt)
    (wt / "a.c").write_text(_text(A_AFTER))                      # the result: reverse-applies
    assert ap.already_present(g, wt, diff, patch.text_files) == "reverse-applies"
    assert (wt / "a.c").read_text() == _text(A_AFTER)            # only checked, never applied
    merged = list(A_AFTER)
    merged[5] = "line 6 changed upstream too"                    # a context line differs
    (wt / "a.c").write_text(_text(merged))
    assert ap.already_present(g, wt, diff, patch.text_files) == "all added lines present"
    (wt / "a.c").write_text(_text(LINES))                         # the base
    assert ap.already_present(g, wt, diff, patch.text_files) is None


class _F:                                     # what hunk_report reads of a file: .path, len(.hunks)
    def __init__(self, path: str, n: int) -> None:
        self.path, self.hunks = path, (None,) * n


@pytest.mark.parametrize("hunks, lines, want", [
    (2, ["checking file f", "Hunk #1 FAILED at 3.", "Hunk #2 FAILED at 9.", "2 out of 2 hunks FAILED"], (2, 0, 0, 0, 2)),
    (2, ["checking file f", "Hunk #1 succeeded at 3 with fuzz 1.", "Hunk #2 succeeded at 9 with fuzz 2."], (2, 0, 0, 2, 0)),
    (2, ["checking file f", "Hunk #1 succeeded at 3.", "Hunk #2 succeeded at 12 (offset 3 lines)."], (2, 1, 1, 0, 0)),
    # `ignored` hunks alone (no summary line): rejected
    (2, ["checking file f", "Hunk #1 ignored at 3.", "Hunk #2 succeeded at 9."], (2, 1, 0, 0, 1)),
    # more outcome lines than the diff has hunks: no hunk counted twice
    (1, ["checking file f", "Hunk #1 FAILED at 3.", "Hunk #2 succeeded at 9 with fuzz 1."], (1, 0, 0, 0, 1)),
    (2, ["checking file f", "Hunk #1 succeeded at 3 with fuzz 1.", "Hunk #2 succeeded at 9 (offset 1 line).",
         "Hunk #3 succeeded at 12 (offset 1 line)."], (2, 0, 1, 1, 0)),
    (2, ["checking file f", "Hunk #1 FAILED at 3.", "Hunk #2 succeeded at 9 (offset 1 line).",
         "Hunk #3 succeeded at 12 (offset 1 line)."], (2, 0, 1, 0, 1)),
])
def test_hunk_report_counts(hunks: int, lines: list[str], want: tuple) -> None:
    (rep,) = ap.hunk_report([_F("f", hunks)], "\n".join(lines) + "\n")  # type: ignore[list-item]
    assert (rep.hunks, rep.clean, rep.offset, rep.fuzz, rep.rejected) == want
    assert rep.note is None


@pytest.mark.parametrize("lines", [
    ["can't find file to patch at input line 5"],
    ["patching file f", "2 out of 2 hunks ignored"],
    ["checking file f", "1 out of 2 hunk ignored"],
])
def test_hunk_report_file_not_in_the_base(lines: list[str]) -> None:
    (rep,) = ap.hunk_report([_F("f", 2)], "\n".join(lines) + "\n")  # type: ignore[list-item]
    assert (rep.hunks, rep.clean, rep.offset, rep.fuzz, rep.rejected, rep.note) == (2, 0, 0, 0, 2, "file not in the base")


def test_added_lines_present_more_cases(tmp_path: Path) -> None:
    indented = ["int f(void)", "{", "\treturn 1;", "}"]
    after = indented[:2] + ["\tint x = 2;"] + indented[2:]
    d = tmp_path / "ind"
    d.mkdir()
    assert _present(d, {"a.c": _text(indented)}, {"a.c": _text(after)}, {"a.c": _text(after)}) is True
    # a deleted file that is gone, then a file whose change is not there: not present
    d = tmp_path / "del"
    d.mkdir()
    assert _present(d, {"gone.c": "x\n", "b.c": _text(LINES)}, {"gone.c": None, "b.c": _text(A_AFTER)},
                    {"b.c": _text(LINES)}) is False
    # a file that is not UTF-8 is read anyway
    d = tmp_path / "bin"
    d.mkdir()
    patch = make_patch(d, {"a.c": _text(LINES)}, {"a.c": _text(A_AFTER)})
    root = d / "wt"
    root.mkdir()
    (root / "a.c").write_bytes(b"\xff\xfe\n" + _text(A_AFTER).encode())
    assert ap.added_lines_present(root, patch.text_files) is True
