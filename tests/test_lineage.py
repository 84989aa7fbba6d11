"""Lineage pairing on revisions of our own: renames, growth, drops, missing patches."""

from __future__ import annotations

from pathlib import Path

from mailfactory import diff_for, patch_mail, write_mbox
from conftest import run_series


def _diff(tag: str, i: int) -> str:
    # Ten lines of a function; `tag` renames identifiers like REMAP -> MOVE did.
    body = "".join(f"+\tret = uffd_{tag}_step{i}(ctx, {k});\n" for k in range(10))
    f = f"mm/feature{i}.c"
    return f"diff --git a/{f} b/{f}\nnew file mode 100644\nindex 0000000..2222222\n--- /dev/null\n+++ b/{f}\n@@ -0,0 +1,10 @@\n{body}"


def _rev(ws: Path, tmp: Path, version: int, specs: list[tuple[int, str, str]], n: int) -> None:
    msgs = [patch_mail(i, n, version=version, subject=subj, diff=d, msgid=f"v{version}-{i}@x") for i, subj, d in specs]
    box = write_mbox(tmp / f"v{version}.mbox", msgs)
    r = run_series("-C", str(ws), "import", "feat", "--mbox", str(box), "--create", "--revision", str(version))
    assert r.rc == 0, r.err


def test_pairs_follow_content_not_subjects(workspace: Path, tmp_path: Path) -> None:
    # v1: three patches.  v2: renamed subjects, reordered, patch 2 dropped, a new one added, one missing.
    _rev(workspace, tmp_path, 1, [(1, "feat: REMAP prep", _diff("remap", 1)),
                                  (2, "feat: REMAP helper", diff_for(7)),
                                  (3, "feat: REMAP tests", _diff("remap", 3))], 3)
    v2_1 = _diff("remap", 3).replace("step3(ctx, 9)", "step3(ctx, 99)")   # v1 3/3, edited, now first
    _rev(workspace, tmp_path, 2, [(1, "feat: MOVE tests", v2_1),
                                  (2, "feat: MOVE prep", _diff("remap", 1)),  # identical diff: same
                                  (4, "feat: brand new", diff_for(9, lines=12))], 4)  # 3/4 missing
    d = run_series("-C", str(workspace), "diff", "feat", "v1", "v2", "--json").json
    got = {(p["old"], p["new"], p["status"]) for p in d["pairs"]}
    assert (1, 2, "same") in got
    assert (3, 1, "changed") in got
    assert (None, 4, "added") in got
    # v1 2/3 has no content match; v2 3/4 is missing between the same neighbours: paired as missing.
    assert (2, 3, "missing") in got
    assert not any(s == "removed" for _, _, s in got)
    sims = {(p["old"], p["new"]): p["similarity"] for p in d["pairs"]}
    assert sims[(1, 2)] == 1.0 and 0.5 < sims[(3, 1)] < 1.0


def test_removed_when_nothing_is_missing(workspace: Path, tmp_path: Path) -> None:
    _rev(workspace, tmp_path, 1, [(1, "a", _diff("x", 1)), (2, "b", diff_for(5))], 2)
    _rev(workspace, tmp_path, 2, [(1, "a", _diff("x", 1))], 1)
    d = run_series("-C", str(workspace), "diff", "feat", "1", "2", "--json").json
    assert {(p["old"], p["new"], p["status"]) for p in d["pairs"]} == {(1, 1, "same"), (2, None, "removed")}


def test_diff_refuses_unknown_revision(workspace: Path, tmp_path: Path) -> None:
    _rev(workspace, tmp_path, 1, [(1, "a", _diff("x", 1))], 1)
    r = run_series("-C", str(workspace), "diff", "feat", "1", "7")
    assert r.rc == 1 and "no revision v7" in r.err
