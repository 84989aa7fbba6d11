"""Lineage pairing in process, on revisions built here from patch files of our
own: the similarity's parts and weights, the threshold, best-first pairing,
structural pairing of missing patches, the order of the pairs, the range-diff
text and the per-process memo."""

from __future__ import annotations

from pathlib import Path

import pytest

from series.stacks import lineage as lin
from series.stacks.model import PatchInfo, Revision


def body(tag: str, n: int = 8) -> str:
    return "".join(f"+\t{tag}_step{k}(ctx, {k});\n" for k in range(n))


def diff(path: str, tag: str, n: int = 8, *, header: str = "") -> str:
    return (f"diff --git a/{path} b/{path}\n{header}index 1111111..2222222 100644\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,0 +1,{n} @@ static int {path.split('/')[-1].split('.')[0]}(void)\n{body(tag, n)}")


def write(tmp: Path, name: str, subject: str, message: str, d: str) -> Path:
    f = tmp / name
    f.write_text(f"From: A U Thor <a@example.org>\nSubject: [PATCH] {subject}\nMessage-Id: <{name}@x>\n\n"
                 f"{message}\n---\n{d}-- \n2.42.0\n")
    return f


def rev(tmp: Path, version: int, specs: list[tuple], expected: int | None = None) -> Revision:
    """specs: (index, subject, message, diff or None for a patch not imported, patch_id)."""
    d = tmp / f"v{version}"
    d.mkdir(exist_ok=True)
    patches = []
    for spec in specs:
        i, subject, message, df = spec[:4]
        pid = spec[4] if len(spec) > 4 else None
        if df is None:
            patches.append(PatchInfo(index=i, subject=subject))
            continue
        f = write(d, f"{i:04d}.patch", subject, message, df)
        patches.append(PatchInfo(index=i, subject=subject, file=f, patch_id=pid, imported=True))
    return Revision(version=version, expected=expected or max(s[0] for s in specs), patches=patches, imported=True)


def sub(tmp: Path, name: str) -> Path:
    d = tmp / name
    d.mkdir()
    return d


def parsed(tmp: Path, name: str, message: str, d: str, pid: str | None = None) -> lin.Parsed:
    f = write(tmp, name, "s", message, d)
    return lin.parse_patch(PatchInfo(index=1, subject="s", file=f, patch_id=pid, imported=True))


MSG = "mm: do the thing properly\n\nBecause it was wrong.\n\nSigned-off-by: A U Thor <a@example.org>"


def test_similarity_weights_diff_and_message(tmp_path: Path) -> None:
    a = parsed(tmp_path, "a", MSG, diff("mm/a.c", "alpha"))
    assert lin.similarity(a, parsed(tmp_path, "b", MSG, diff("mm/a.c", "alpha"))) == 1.0
    other_msg = "zz yy xx ww"                                   # no word in common
    assert lin.similarity(a, parsed(tmp_path, "c", other_msg, diff("mm/a.c", "alpha"))) == pytest.approx(0.85)
    # no diff line in common (other file, other hunk section, other lines), the same message
    assert lin.similarity(a, parsed(tmp_path, "d", MSG, diff("fs/b.c", "beta"))) == pytest.approx(0.15)
    # equal patch-ids: 1.0 whatever the text; unequal or absent: computed
    x = parsed(tmp_path, "e", other_msg, diff("fs/b.c", "beta"), pid="p1")
    assert lin.similarity(parsed(tmp_path, "f", MSG, diff("mm/a.c", "alpha"), pid="p1"), x) == 1.0
    assert lin.similarity(parsed(tmp_path, "g", MSG, diff("mm/a.c", "alpha"), pid="p2"), x) == pytest.approx(0.0)
    assert lin.similarity(parsed(tmp_path, "h", MSG, diff("mm/a.c", "alpha"), pid=""),
                          parsed(tmp_path, "i", other_msg, diff("fs/b.c", "beta"), pid="")) == pytest.approx(0.0)


@pytest.mark.parametrize("name, header_a, header_b", [
    ("mode change", "old mode 100644\nnew mode 100755\n", ""),
    ("new file", "new file mode 100644\n", ""),
    ("rename", "similarity index 90%\nrename from mm/old.c\nrename to mm/a.c\n", ""),
])
def test_file_headers_do_not_count(tmp_path: Path, name: str, header_a: str, header_b: str) -> None:
    """Two patches with the same hunks, one with an extended header line: the same change."""
    a = parsed(tmp_path, "a", MSG, diff("mm/a.c", "alpha", header=header_a))
    b = parsed(tmp_path, "b", MSG, diff("mm/a.c", "alpha", header=header_b))
    assert a.diff_lines != b.diff_lines, name
    assert lin.similarity(a, b) == 1.0, name


def test_deleted_file_header_does_not_count(tmp_path: Path) -> None:
    minus = "".join(f"-\tgone_{k}();\n" for k in range(8))
    a = parsed(tmp_path, "a", MSG, "diff --git a/mm/a.c b/mm/a.c\ndeleted file mode 100644\nindex 1111111..0000000\n"
                                  f"--- a/mm/a.c\n+++ /dev/null\n@@ -1,8 +0,0 @@\n{minus}")
    b = parsed(tmp_path, "b", MSG, "diff --git a/mm/a.c b/mm/a.c\nindex 1111111..2222222 100644\n"
                                  f"--- a/mm/a.c\n+++ b/mm/a.c\n@@ -1,8 +0,0 @@\n{minus}")
    assert a.diff_lines != b.diff_lines
    assert lin.similarity(a, b) == 1.0


def test_file_names_do_not_count(tmp_path: Path) -> None:
    a = parsed(tmp_path, "a", MSG, diff("mm/a.c", "alpha").replace("static int a(void)", "f"))
    b = parsed(tmp_path, "b", MSG, diff("mm/b.c", "alpha").replace("static int b(void)", "f"))
    assert lin.similarity(a, b) == 1.0


def test_message_body_ignores_trailers() -> None:
    assert lin._message_body("Subject line\n\nText.\nSigned-off-by: A <a@x>\nReviewed-by: B <b@x>") == \
        "Subject line\n\nText."
    assert lin._message_body("Link: x\nCc: y\nnot-a-trailer\nFixes: 123") == "not-a-trailer"
    assert lin._message_body("Text: with a colon-space is a trailer too") == ""
    assert lin._message_body("Text:without space") == "Text:without space"


def test_subject_similarity_ignores_case() -> None:
    assert lin._subject_sim("MM: Fix", "mm: fix") == 1.0
    assert lin._subject_sim("abc", "xyz") == 0.0


def test_pairing_best_first_above_the_threshold(tmp_path: Path) -> None:
    # v1: A, B.  v2: B' (B edited a little), A (same patch-id), C (new).
    old = rev(tmp_path, 1, [(1, "a", MSG, diff("mm/a.c", "alpha"), "pa"),
                            (2, "b", MSG, diff("mm/b.c", "beta"), "pb")])
    edited = diff("mm/b.c", "beta").replace("beta_step7(ctx, 7)", "beta_step7(ctx, 77)")
    new = rev(tmp_path, 2, [(1, "b v2", MSG, edited, "pb2"), (2, "a", MSG, diff("mm/a.c", "alpha"), "pa"),
                            (3, "c", "zz yy", diff("fs/c.c", "gamma"), "pc")])
    pairs = lin.pair_revisions(old, new)
    got = [(p.old, p.new, p.status) for p in pairs]
    assert got == [(2, 1, "changed"), (1, 2, "same"), (None, 3, "added")]      # sorted by the new index
    by = {(p.old, p.new): p for p in pairs}
    assert by[(1, 2)].similarity == 1.0
    assert 0.9 < by[(2, 1)].similarity < 1.0
    assert by[(2, 1)].old_subject == "b" and by[(2, 1)].new_subject == "b v2"
    assert by[(None, 3)].similarity == 0.0 and by[(None, 3)].new_subject == "c" and by[(None, 3)].old_subject == ""
    assert not by[(2, 1)].message_changed
    j = by[(2, 1)].to_json()
    assert j == {"old": 2, "new": 1, "status": "changed", "similarity": round(by[(2, 1)].similarity, 3),
                 "old_subject": "b", "new_subject": "b v2", "message_changed": False}


def test_below_threshold_is_removed_and_added(tmp_path: Path) -> None:
    old = rev(tmp_path, 1, [(1, "a", MSG, diff("mm/a.c", "alpha"))])
    # the same message, no diff line in common: 0.15, under the threshold
    new = rev(tmp_path, 2, [(1, "a", MSG, diff("fs/b.c", "beta"))])
    assert [(p.old, p.new, p.status) for p in lin.pair_revisions(old, new)] == [(None, 1, "added"), (1, None, "removed")]
    assert lin.THRESHOLD == 0.35


def test_threshold_edge(tmp_path: Path) -> None:
    """Half the lines shared and another message: about 0.42, above 0.35, paired."""
    a = "".join(f"+\tx_{k}();\n" for k in range(10))
    b = "".join(f"+\tx_{k}();\n" for k in range(5)) + "".join(f"+\ty_{k}();\n" for k in range(5))
    mk = lambda lines: f"diff --git a/f.c b/f.c\n--- a/f.c\n+++ b/f.c\n@@ -1,0 +1,10 @@\n{lines}"  # noqa: E731
    old = rev(tmp_path, 1, [(1, "a", "one two", mk(a))])
    new = rev(tmp_path, 2, [(1, "a", "three four", mk(b))])
    p = lin.pair_revisions(old, new)
    assert [(x.old, x.new, x.status) for x in p] == [(1, 1, "changed")]
    assert 0.35 < p[0].similarity < 0.5


def test_message_changed_ignores_trailers(tmp_path: Path) -> None:
    d = diff("mm/a.c", "alpha")
    old = rev(tmp_path, 1, [(1, "a", MSG, d), (2, "b", "Old text.", diff("mm/b.c", "beta"))])
    new = rev(tmp_path, 2, [(1, "a", MSG + "\nReviewed-by: R <r@example.org>", d),
                            (2, "b", "New text.", diff("mm/b.c", "beta"))])
    by = {p.old: p for p in lin.pair_revisions(old, new)}
    assert by[1].message_changed is False and by[2].message_changed is True


def test_missing_paired_between_the_same_neighbours(tmp_path: Path) -> None:
    # v1: 1..4 all imported; v2: 1, 3, 4 imported, 2 not.  v1's 2 pairs with v2's 2 (missing).
    specs1 = [(i, f"p{i}", MSG, diff(f"mm/f{i}.c", f"t{i}")) for i in range(1, 5)]
    specs2 = [(1, "p1", MSG, diff("mm/f1.c", "t1")), (2, "p2 renamed", MSG, None),
              (3, "p3", MSG, diff("mm/f3.c", "t3")), (4, "p4", MSG, diff("mm/f4.c", "t4"))]
    pairs = lin.pair_revisions(rev(tmp_path, 1, specs1), rev(tmp_path, 2, specs2, expected=4))
    assert [(p.old, p.new, p.status) for p in pairs] == [(1, 1, "changed"), (2, 2, "missing"), (3, 3, "changed"),
                                                         (4, 4, "changed")]
    miss = pairs[1]
    assert miss.similarity == 0.0 and miss.old_subject == "p2" and miss.new_subject == "p2 renamed"


def test_missing_prefers_the_slot_between_neighbours_then_the_subject(tmp_path: Path) -> None:
    # v1: 1..5; v2: 1..5 with 2 and 4 not imported.  v1's 2 goes to v2's 2, 4 to 4 (brackets),
    # though the subjects would say otherwise.
    specs1 = [(i, f"s{i}", MSG, diff(f"mm/f{i}.c", f"t{i}")) for i in range(1, 6)]
    specs2 = [(1, "s1", MSG, diff("mm/f1.c", "t1")), (2, "s4", MSG, None), (3, "s3", MSG, diff("mm/f3.c", "t3")),
              (4, "s2", MSG, None), (5, "s5", MSG, diff("mm/f5.c", "t5"))]
    pairs = lin.pair_revisions(rev(tmp_path, 1, specs1), rev(tmp_path, 2, specs2, expected=5))
    assert [(p.old, p.new, p.status) for p in pairs if p.status == "missing"] == [(2, 2, "missing"), (4, 4, "missing")]
    # without anchors between them, the subject decides: v1's 2 ("s2") goes to v2's 4 ("s2")
    specs2b = [(1, "s1", MSG, diff("mm/f1.c", "t1")), (2, "s4", MSG, None), (3, "s2", MSG, None),
               (4, "zz", MSG, None), (5, "s5", MSG, diff("mm/f5.c", "t5"))]
    specs1b = [(1, "s1", MSG, diff("mm/f1.c", "t1")), (2, "s2", MSG, diff("mm/f2.c", "t2")),
               (3, "s4", MSG, diff("mm/f4.c", "t4")), (4, "qq", MSG, diff("mm/f9.c", "t9")),
               (5, "s5", MSG, diff("mm/f5.c", "t5"))]
    b = sub(tmp_path, "b")
    pairs = lin.pair_revisions(rev(b, 1, specs1b), rev(b, 2, specs2b, expected=5))
    got = {(p.old, p.new) for p in pairs if p.status == "missing"}
    assert (2, 3) in got and (3, 2) in got and (4, 4) in got


def test_equal_subject_similarity_takes_the_nearest_slot(tmp_path: Path) -> None:
    specs1 = [(1, "a", MSG, diff("mm/f1.c", "t1")), (2, "x", MSG, diff("mm/f2.c", "t2")),
              (5, "e", MSG, diff("mm/f5.c", "t5"))]
    specs2 = [(1, "a", MSG, diff("mm/f1.c", "t1")), (2, "y", MSG, None), (3, "y", MSG, None), (4, "y", MSG, None),
              (5, "e", MSG, diff("mm/f5.c", "t5"))]
    old = rev(tmp_path, 1, specs1, expected=5)
    old.patches = [p for p in old.patches]                    # v1 3 and 4 were never posted: not in the list
    pairs = lin.pair_revisions(old, rev(tmp_path, 2, specs2, expected=5))
    assert (2, 2, "missing") in [(p.old, p.new, p.status) for p in pairs]


def test_missing_without_a_slot_stays_missing_or_removed(tmp_path: Path) -> None:
    specs1 = [(1, "a", MSG, diff("mm/f1.c", "t1")), (2, "b", MSG, diff("mm/f2.c", "t2"))]
    specs2 = [(1, "a", MSG, diff("mm/f1.c", "t1"))]
    pairs = lin.pair_revisions(rev(tmp_path, 1, specs1), rev(tmp_path, 2, specs2, expected=1))
    assert [(p.old, p.new, p.status) for p in pairs] == [(1, 1, "changed"), (2, None, "removed")]
    specs1 = [(1, "a", MSG, diff("mm/f1.c", "t1")), (2, "b", MSG, None)]
    x = sub(tmp_path, "x")
    pairs = lin.pair_revisions(rev(x, 1, specs1, expected=2), rev(x, 2, specs2, expected=1))
    assert [(p.old, p.new, p.status) for p in pairs] == [(1, 1, "changed"), (2, None, "missing")]
    specs2 = [(1, "a", MSG, diff("mm/f1.c", "t1")), (2, "b", MSG, None)]
    specs1 = [(1, "a", MSG, diff("mm/f1.c", "t1"))]
    y = sub(tmp_path, "y")
    pairs = lin.pair_revisions(rev(y, 1, specs1, expected=1), rev(y, 2, specs2, expected=2))
    assert [(p.old, p.new, p.status) for p in pairs] == [(1, 1, "changed"), (None, 2, "missing")]


def test_pairs_are_ordered_by_new_index_removed_after_their_slot(tmp_path: Path) -> None:
    specs1 = [(1, "a", MSG, diff("mm/f1.c", "t1")), (2, "gone", "zz", diff("fs/x.c", "xx")),
              (3, "c", MSG, diff("mm/f3.c", "t3"))]
    specs2 = [(1, "c", MSG, diff("mm/f3.c", "t3")), (2, "a", MSG, diff("mm/f1.c", "t1"))]
    pairs = lin.pair_revisions(rev(tmp_path, 1, specs1), rev(tmp_path, 2, specs2))
    assert [(p.old, p.new) for p in pairs] == [(3, 1), (1, 2), (2, None)]
    specs1 = [(1, "gone", "zz", diff("fs/x.c", "xx")), (2, "a", MSG, diff("mm/f1.c", "t1"))]
    specs2 = [(1, "a", MSG, diff("mm/f1.c", "t1")), (2, "new", "qq", diff("fs/y.c", "yy"))]
    o = sub(tmp_path, "o")
    pairs = lin.pair_revisions(rev(o, 1, specs1), rev(o, 2, specs2))
    assert [(p.old, p.new) for p in pairs] == [(2, 1), (1, None), (None, 2)]


def test_range_diff_text(tmp_path: Path) -> None:
    old = rev(tmp_path, 1, [(1, "a", MSG, diff("mm/a.c", "alpha"), "pa111111x"),
                            (2, "b", MSG, diff("mm/b.c", "beta"), "pb222222x"),
                            (3, "c", MSG, diff("fs/c.c", "gamma"), "pc333333x")])
    edited = diff("mm/b.c", "beta").replace("beta_step7(ctx, 7)", "beta_step7(ctx, 77)")
    new = rev(tmp_path, 2, [(1, "a", MSG, diff("mm/a.c", "alpha"), "pa111111x"),
                            (2, "b renamed", MSG, edited, "pn222222x"), (3, "c", MSG, None),
                            (4, "d", "zz", diff("fs/d.c", "delta"), "pd444444x")], expected=4)
    pairs = lin.pair_revisions(old, new)
    text = lin.range_diff_text(old, new, pairs)
    lines = text.splitlines()
    sim = next(p.similarity for p in pairs if p.status == "changed")
    assert lines[0] == "1: pa111111 = 1: pa111111 a"
    assert lines[1] == f"2: pb222222 ! 2: pn222222 b renamed ({sim:.0%})"
    assert lines[2] == "    @@ Subject: b"
    assert lines[3] == "    ## Subject: b renamed"
    assert "    -+\tbeta_step7(ctx, 7);" in lines and "    ++\tbeta_step7(ctx, 77);" in lines
    assert "3: pc333333 ? 3: -------- c (not imported: cannot compare)" in lines
    assert "-: -------- > 4: pd444444 d" in lines
    assert text.endswith("\n") and not text.endswith("\n\n\n")
    removed = lin.range_diff_text(old, new, [lin.Pair(3, None, "removed", 0.0, "c", "")])
    assert removed == "3: pc333333 < -: -------- c\n"


def test_pairing_is_memoised_and_copies_are_returned(tmp_path: Path) -> None:
    old = rev(tmp_path, 1, [(1, "a", MSG, diff("mm/a.c", "alpha"))])
    new = rev(tmp_path, 2, [(1, "a", MSG, diff("mm/a.c", "alpha"))])
    lin._PAIRS.clear()
    first = lin.pair_revisions(old, new)
    assert len(lin._PAIRS) == 1
    first[0].status = "tampered"
    again = lin.pair_revisions(old, new)
    assert again[0].status == "changed" and len(lin._PAIRS) == 1
    # an edited patch file is a new key (its content, not its mtime)
    f = new.patches[0].file
    assert f is not None
    f.write_text(f.read_text().replace("alpha_step0", "omega_step0"))
    lin.pair_revisions(old, new)
    assert len(lin._PAIRS) == 2
    assert lin._file_stamp(None) is None and lin._file_stamp(tmp_path / "absent") is None
    assert lin._file_stamp(f) == __import__("hashlib").sha1(f.read_bytes()).hexdigest()


def test_memo_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lin, "_PAIRS_MAX", 2)
    lin._PAIRS.clear()
    revs = [rev(sub(tmp_path, str(i)), 1, [(1, "a", MSG, diff("mm/a.c", f"t{i}"))]) for i in range(4)]
    for r in revs[1:]:
        lin.pair_revisions(revs[0], r)
    assert len(lin._PAIRS) == 2
    lin._PAIRS.clear()


def _lines(tag: str, n: int, *, common: str = "+\t}") -> str:
    """n changed lines, every other one the same popular line."""
    return "".join(f"+\t{tag}_{k}();\n" if k % 2 else f"{common}\n" for k in range(n))


def test_long_diffs_and_messages_have_no_junk_heuristic(tmp_path: Path) -> None:
    """difflib's autojunk would drop lines that fill over 1% of a 200+ line
    sequence (`}`, `the`): two near-identical long patches stay near 1.0."""
    hdr = "diff --git a/f.c b/f.c\n--- a/f.c\n+++ b/f.c\n@@ -1,0 +1,300 @@\n"
    a = parsed(tmp_path, "a", MSG, hdr + _lines("x", 300))
    b = parsed(tmp_path, "b", MSG, hdr + _lines("x", 300).replace("x_299()", "y_299()"))
    assert lin.similarity(a, b) > 0.99
    words = " ".join(["the"] * 150 + [f"w{k}" for k in range(150)])
    c = parsed(tmp_path, "c", words, hdr + _lines("x", 300))
    d = parsed(tmp_path, "d", words.replace("w149", "v149"), hdr + _lines("x", 300))
    assert lin.similarity(c, d) > 0.999


def test_best_pair_first_when_patches_compete(tmp_path: Path) -> None:
    """One old patch close to two new ones: the closer wins; the next pair is still made."""
    base = "".join(f"+\tp_{k}();\n" for k in range(10))
    mk = lambda lines: f"diff --git a/f.c b/f.c\n--- a/f.c\n+++ b/f.c\n@@ -1,0 +1,10 @@\n{lines}"  # noqa: E731
    near = base.replace("p_9()", "q_9()")
    far = base.replace("p_5()", "q_5()").replace("p_6()", "q_6()").replace("p_7()", "q_7()").replace("p_8()", "q_8()")
    other = "".join(f"+\tr_{k}();\n" for k in range(10))
    other2 = other.replace("r_0()", "s_0()").replace("r_1()", "s_1()").replace("r_2()", "s_2()")
    old = rev(tmp_path, 1, [(1, "p", MSG, mk(base)), (2, "r", MSG, mk(other))])
    new = rev(tmp_path, 2, [(1, "far", MSG, mk(far)), (2, "near", MSG, mk(near)), (3, "r2", MSG, mk(other2))])
    pairs = lin.pair_revisions(old, new)
    assert [(p.old, p.new, p.status) for p in pairs] == [(None, 1, "added"), (1, 2, "changed"), (2, 3, "changed")]
    sims = {(p.old, p.new): p.similarity for p in pairs}
    assert sims[(1, 2)] > sims[(2, 3)]


def test_memo_computes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = rev(tmp_path, 1, [(1, "a", MSG, diff("mm/a.c", "memo"))])
    new = rev(tmp_path, 2, [(1, "a", MSG, diff("mm/a.c", "memo"))])
    lin._PAIRS.clear()
    calls = []
    real = lin._pair_revisions
    monkeypatch.setattr(lin, "_pair_revisions", lambda o, n: calls.append(1) or real(o, n))
    first = lin.pair_revisions(old, new)
    second = lin.pair_revisions(old, new)
    assert len(calls) == 1 and first == second and first[0] is not second[0]
    lin._PAIRS.clear()


def test_structural_pairing_uses_the_anchors(tmp_path: Path) -> None:
    """old 1..4 all imported; new 1 and 3 not imported, new 2 = old 1, new 4 = old 4.
    old 2 lies between anchors (1,2) and (4,4): it goes to new 3, though its subject is
    new 1's; old 3 then takes new 1, the one left."""
    specs1 = [(1, "one", MSG, diff("mm/f1.c", "t1")), (2, "same subject", MSG, diff("mm/f2.c", "t2")),
              (3, "three", MSG, diff("mm/f3.c", "t3")), (4, "four", MSG, diff("mm/f4.c", "t4"))]
    specs2 = [(1, "same subject", MSG, None), (2, "one", MSG, diff("mm/f1.c", "t1")), (3, "zzz", MSG, None),
              (4, "four", MSG, diff("mm/f4.c", "t4"))]
    pairs = lin.pair_revisions(rev(tmp_path, 1, specs1), rev(tmp_path, 2, specs2, expected=4))
    assert [(p.old, p.new, p.status) for p in pairs] == [(3, 1, "missing"), (1, 2, "changed"), (2, 3, "missing"),
                                                         (4, 4, "changed")]


def test_structural_pairing_before_the_first_anchor(tmp_path: Path) -> None:
    """old 1 free, no anchor before it: both new 1 and 2 (missing) are candidates; the subject decides."""
    specs1 = [(1, "alpha", MSG, diff("mm/f1.c", "t1")), (2, "beta", MSG, None), (3, "c", MSG, diff("mm/f3.c", "t3"))]
    specs2 = [(1, "alpha", MSG, None), (2, "beta", MSG, None), (3, "c", MSG, diff("mm/f3.c", "t3"))]
    pairs = lin.pair_revisions(rev(tmp_path, 1, specs1, expected=3), rev(tmp_path, 2, specs2, expected=3))
    assert [(p.old, p.new, p.status) for p in pairs] == [(1, 1, "missing"), (2, 2, "missing"), (3, 3, "changed")]


def test_a_slot_without_candidates_does_not_stop_the_others(tmp_path: Path) -> None:
    # old 1 imported and unmatched, nothing missing on the new side: no candidate, removed;
    # old 2, not imported, after it: still paired (with new 2, which is new).
    specs1 = [(1, "gone", "zz", diff("fs/x.c", "xx")), (2, "b", MSG, None), (3, "c", MSG, diff("mm/f3.c", "t3"))]
    specs2 = [(1, "c", MSG, diff("mm/f3.c", "t3")), (2, "new", "qq", diff("fs/y.c", "yy"))]
    pairs = lin.pair_revisions(rev(tmp_path, 1, specs1, expected=3), rev(tmp_path, 2, specs2, expected=2))
    assert [(p.old, p.new, p.status, p.old_subject, p.new_subject, p.similarity) for p in pairs] == [
        (3, 1, "changed", "c", "c", 1.0), (1, None, "removed", "gone", "", 0.0), (2, 2, "missing", "b", "new", 0.0)]


def test_slots_without_an_entry_have_empty_subjects(tmp_path: Path) -> None:
    """Slots of a revision that no patch entry describes (never posted): no subject."""
    old = rev(tmp_path, 1, [(1, "a", MSG, diff("mm/f1.c", "t1"))], expected=3)       # 2, 3: no entry
    new = rev(tmp_path, 2, [(1, "a", MSG, diff("mm/f1.c", "t1"))], expected=1)
    pairs = lin.pair_revisions(old, new)
    assert [(p.old, p.new, p.status, p.old_subject, p.new_subject) for p in pairs] == [
        (1, 1, "changed", "a", "a"), (2, None, "missing", "", ""), (3, None, "missing", "", "")]
    x = sub(tmp_path, "x")
    pairs = lin.pair_revisions(rev(x, 1, [(1, "a", MSG, diff("mm/f1.c", "t1"))], expected=1),
                               rev(x, 2, [(1, "a", MSG, diff("mm/f1.c", "t1"))], expected=2))
    assert [(p.old, p.new, p.status, p.old_subject, p.new_subject) for p in pairs] == [
        (1, 1, "changed", "a", "a"), (None, 2, "missing", "", "")]


def test_a_far_slot_is_still_a_candidate(tmp_path: Path) -> None:
    """A new revision of 95 slots, most never posted: old 2 (not imported) may pair with slot 95."""
    old = rev(tmp_path, 1, [(1, "a", MSG, diff("mm/f1.c", "t1")), (2, "the far one", MSG, None)], expected=2)
    new = rev(tmp_path, 2, [(1, "a", MSG, diff("mm/f1.c", "t1")), (3, "zz", MSG, None),
                            (95, "the far one", MSG, None)], expected=95)
    pairs = lin.pair_revisions(old, new)
    assert (2, 95, "missing") in [(p.old, p.new, p.status) for p in pairs]


def test_range_diff_text_exactly(tmp_path: Path) -> None:
    msg_a = "Subject line\n\nFirst.\nLast line a."
    msg_b = "Subject line\n\nFirst.\nLast line b."
    mk = lambda lines: f"diff --git a/f.c b/f.c\n--- a/f.c\n+++ b/f.c\n@@ -1,0 +1,6 @@\n{lines}"  # noqa: E731
    la = "".join(f"+l{k}\n" for k in range(6))
    lb = la.replace("+l5", "+L5")
    old = rev(tmp_path, 1, [(1, "s", msg_a, mk(la)), (2, "t", MSG, None)], expected=2)
    new = rev(tmp_path, 2, [(1, "s", msg_b, mk(lb)), (2, "t", MSG, None)], expected=2)
    pairs = lin.pair_revisions(old, new)
    assert [(p.old, p.new, p.status) for p in pairs] == [(1, 1, "changed"), (2, 2, "missing")]
    sim = pairs[0].similarity
    text = lin.range_diff_text(old, new, pairs)
    assert text.splitlines() == [
        f"1:  ! 1:  s ({sim:.0%})",                      # no patch-id known: none shown
        "    @@ -2,5 +2,5 @@",
        "     ",
        "     First.",
        "    -Last line a.",
        "    +Last line b.",
        "     ---",
        "     diff --git a/f.c b/f.c",
        "    @@ -13,3 +13,3 @@",
        "     +l3",
        "     +l4",
        "    -+l5",
        "    ++L5",
        "",
        "2: -------- ? 2: -------- t (not imported: cannot compare)",
    ]
