"""series check: checkpatch parsing, hygiene checks (a passing and a failing case
each), the CLI without a tree, and, on a real Debian tree, counts equal to those
of running the tree's checkpatch.pl directly on the same patch text."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import git, run_series
from series.stages.check import checkpatch as cp
from series.stages.check import hygiene as hy
from series.stages.check.runner import _history_lookup
from series.patch import Patch

# -- checkpatch output parsing ----------------------------------------------------------
SAMPLE = """\
WARNING:COMMIT_LOG_LONG_LINE: Prefer a maximum 75 chars per line (possible unwrapped commit description?)
#12: 
This is a very long line of commit description that goes on and on and on and on and on.

ERROR:MISSING_SIGN_OFF: Missing Signed-off-by: line(s)

WARNING:LINE_SPACING: Missing a blank line after declarations
#40: FILE: mm/foo.c:17:
+	int a;
+	a = 1;

CHECK:PARENTHESIS_ALIGNMENT: Alignment should match open parenthesis
#55: FILE: mm/foo.c:30:
+	foo(a,
+		b);

total: 1 errors, 2 warnings, 1 checks, 60 lines checked
"""


def test_parse_output_structure_and_totals() -> None:
    findings, totals = cp.parse_output(SAMPLE)
    assert totals == {"errors": 1, "warnings": 2, "checks": 1, "lines": 60}
    assert [(f.level, f.type, f.file, f.line) for f in findings] == [
        ("WARNING", "COMMIT_LOG_LONG_LINE", None, 12), ("ERROR", "MISSING_SIGN_OFF", None, None),
        ("WARNING", "LINE_SPACING", "mm/foo.c", 17), ("CHECK", "PARENTHESIS_ALIGNMENT", "mm/foo.c", 30)]
    assert findings[1].message == "Missing Signed-off-by: line(s)"
    assert "+" not in findings[2].message  # quoted source lines are not part of the message


def test_parse_output_without_checks_column() -> None:
    findings, totals = cp.parse_output("total: 0 errors, 0 warnings, 42 lines checked\n")
    assert findings == [] and totals == {"errors": 0, "warnings": 0, "checks": 0, "lines": 42}


def test_flags_and_reproducible_command(tmp_path: Path) -> None:
    assert "--strict" in cp.flags_for(True) and "--strict" not in cp.flags_for(False)
    line = cp.command_line(tmp_path, cp.flags_for(False), "x.patch")
    assert line.endswith("--no-tree --show-types --color=never x.patch") and "checkpatch.pl" in line


# -- hygiene: a passing and a failing case each -----------------------------------------
def mail(message: str, *, sender: str = "Ann Author <ann@example.org>", in_body: str | None = None,
         subject: str = "[PATCH v2 1/2] mm: do a thing", diff: str | None = None, crlf: bool = False) -> bytes:
    body = (f"From: {in_body}\n\n" if in_body else "") + message + "\n---\n"
    body += diff if diff is not None else ("diff --git a/mm/foo.c b/mm/foo.c\n--- a/mm/foo.c\n+++ b/mm/foo.c\n"
                                           "@@ -1,2 +1,3 @@\n int a;\n+int b;\n int c;\n")
    text = f"From: {sender}\nSubject: {subject}\nMessage-Id: <1@x>\n\n{body}-- \n2.42.0\n"
    return text.replace("\n", "\r\n").encode() if crlf else text.encode()


def statuses(items: list[hy.Item], check: str) -> list[str]:
    return [i.status for i in items if i.check == check]


def test_signoff_pass_and_fail() -> None:
    ok = Patch.from_bytes(mail("mm: thing\n\nBody.\n\nSigned-off-by: Ann Author <ann@example.org>"))
    assert statuses(hy.check_signoff(ok), "signed-off-by") == ["pass"]
    none = Patch.from_bytes(mail("mm: thing\n\nBody."))
    assert statuses(hy.check_signoff(none), "signed-off-by") == ["fail"]
    other = Patch.from_bytes(mail("Body.\n\nSigned-off-by: Bob <bob@example.org>"))
    assert statuses(hy.check_signoff(other), "signed-off-by") == ["fail"]
    wrong_name = Patch.from_bytes(mail("Body.\n\nSigned-off-by: Anne Other <ann@example.org>"))
    assert statuses(hy.check_signoff(wrong_name), "signed-off-by") == ["fail"]
    wrong_mail = Patch.from_bytes(mail("Body.\n\nSigned-off-by: Ann Author <ann@elsewhere.org>"))
    assert "another address" in hy.check_signoff(wrong_mail)[0].message


def test_signoff_in_body_from_counts_and_sender_chain() -> None:
    chain = mail("Body.\n\nSigned-off-by: Ann Author <ann@example.org>\nSigned-off-by: Sam Sender <sam@example.org>",
                 sender="Sam Sender <sam@example.org>", in_body="Ann Author <ann@example.org>")
    pm = Patch.from_bytes(chain)
    assert pm.in_body_from and pm.author == ("Ann Author", "ann@example.org")
    assert statuses(hy.check_signoff(pm), "signed-off-by") == ["pass", "pass"]
    broken = mail("Body.\n\nSigned-off-by: Ann Author <ann@example.org>", sender="Sam Sender <sam@example.org>",
                  in_body="Ann Author <ann@example.org>")
    assert statuses(hy.check_signoff(Patch.from_bytes(broken)), "signed-off-by") == ["pass", "warn"]
    # The sender signed off but the in-body author did not: the author's sign-off is what counts.
    no_author = mail("Body.\n\nSigned-off-by: Sam Sender <sam@example.org>", sender="Sam Sender <sam@example.org>",
                     in_body="Ann Author <ann@example.org>")
    assert statuses(hy.check_signoff(Patch.from_bytes(no_author)), "signed-off-by")[0] == "fail"


def history_repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "linux"
    repo.mkdir()
    git(repo, "init", "-q")
    for n in (1, 2):
        (repo / "f").write_text(f"{n}\n")
        git(repo, "add", "f")
        git(repo, "commit", "-q", "-m", f"mm: change number {n}")
    return repo, git(repo, "rev-parse", "HEAD~1").strip()


def test_fixes_with_history_pass_and_fail(tmp_path: Path) -> None:
    from series.trees import Tree
    repo, sha = history_repo(tmp_path)
    lookup = _history_lookup(Tree(name="t", kind="path", path=repo))
    assert lookup.lookup is not None

    def run(line: str) -> list[str]:
        pm = Patch.from_bytes(mail(f"Body.\n\n{line}\nSigned-off-by: Ann Author <ann@example.org>"))
        return statuses(hy.check_fixes(pm, lookup), "fixes")

    assert run(f'Fixes: {sha[:12]} ("mm: change number 1")') == ["pass"]
    assert run(f'Fixes: {sha[:12]} ("mm: another subject")') == ["fail"]          # subject differs
    assert run('Fixes: 0123456789ab ("mm: change number 1")') == ["fail"]          # not in the tree
    assert run(f'Fixes: {sha[:8]} ("mm: change number 1")') == ["fail"]            # too short
    assert run(f"Fixes: {sha[:12]} mm: change number 1") == ["fail"]               # not quoted
    assert run("Reviewed-by: X <x@example.org>") == ["pass"]                        # no Fixes: at all


def test_fixes_without_history_skips_existence() -> None:
    pm = Patch.from_bytes(mail('Body.\n\nFixes: 0123456789ab ("mm: x")\nSigned-off-by: A <a@b.c>'))
    items = hy.check_fixes(pm, hy.CommitLookup(None, "Debian tarball without history"))
    assert statuses(items, "fixes") == ["skip"] and "history" in items[0].message


def test_numbering_pass_gap_and_known_missing() -> None:
    subj = {1: "[PATCH v3 1/3] a", 2: "[PATCH v3 2/3] b", 3: "[PATCH v3 3/3] c"}
    per, rev = hy.check_numbering(3, subj, [], 3)
    assert all(i.status == "pass" for items in per.values() for i in items)
    assert [i.status for i in rev] == ["pass", "pass"]
    # Patch 2 was not imported (known missing): not a numbering error.
    per, rev = hy.check_numbering(3, {1: subj[1], 3: subj[3]}, [2], 3)
    assert statuses(rev, "numbering") == ["pass"]
    # ... but an unexplained gap is.
    per, rev = hy.check_numbering(3, {1: subj[1], 3: subj[3]}, [], 3)
    assert statuses(rev, "numbering") == ["fail"] and "gaps" in rev[-1].message


def test_numbering_version_prefix_and_total_failures() -> None:
    per, _ = hy.check_numbering(3, {1: "[PATCH v2 1/2] a", 2: "[PATCH 2/2] b"}, [], 2)
    assert [per[1][0].status, per[2][0].status] == ["fail", "fail"]
    per, _ = hy.check_numbering(1, {1: "[PATCH 1/2] a", 2: "[PATCH 2/2] b"}, [], 2)   # v1 may omit vN
    assert [per[1][0].status, per[2][0].status] == ["pass", "pass"]
    _, rev = hy.check_numbering(2, {1: "[RFC PATCH v2 1/2] a", 2: "[PATCH v2 2/2] b"}, [], 2)
    assert statuses(rev, "subject-prefixes") == ["fail"]
    _, rev = hy.check_numbering(2, {1: "[PATCH v2 1/2] a", 2: "[PATCH v2 2/3] b"}, [], 2)
    assert statuses(rev, "numbering") == ["fail"]
    per, _ = hy.check_numbering(2, {1: "mm: no prefix"}, [], 1)
    assert per[1][0].status == "fail"


def test_cover_letter_pass_and_fail() -> None:
    assert hy.check_cover(3, "Subject: [PATCH 0/3] x\n\nwhy").status == "pass"
    assert hy.check_cover(3, None).status == "fail"
    assert hy.check_cover(1, None).status == "pass"


def test_whitespace_and_crlf_pass_and_fail() -> None:
    clean = hy.check_whitespace(mail("Body.\n\nSigned-off-by: A <a@b.c>"))
    assert statuses(clean, "crlf") == ["pass"] and statuses(clean, "trailing-whitespace") == ["pass"]
    trailing = mail("Body. ", diff="diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1,2 @@\n x\n+y \t\n")
    items = hy.check_whitespace(trailing)
    assert statuses(items, "trailing-whitespace") == ["fail"]   # the added line, not the message's trailing space
    assert "1 added lines" in [i for i in items if i.check == "trailing-whitespace"][0].message
    assert statuses(hy.check_whitespace(mail("Body.", crlf=True)), "crlf") == ["fail"]


GM_OUT = """\
Andrew Morton <akpm@linux-foundation.org> (maintainer:MEMORY MANAGEMENT)
Jan Kara <jack@suse.cz> (reviewer:FILESYSTEMS (VFS and infrastructure))
linux-mm@kvack.org (open list:MEMORY MANAGEMENT)
linux-kernel@vger.kernel.org (open list)
"""


def test_recipients_pass_and_warn() -> None:
    named = hy.parse_get_maintainer(GM_OUT)
    assert [(n.email, n.is_list) for n in named] == [
        ("akpm@linux-foundation.org", False), ("jack@suse.cz", False), ("linux-mm@kvack.org", True),
        ("linux-kernel@vger.kernel.org", True)]
    everyone = [("", n.email.upper()) for n in named]  # addresses compare case-insensitively
    assert hy.check_recipients(named, everyone[:1], everyone[1:]).status == "pass"
    item = hy.check_recipients(named, [("", "akpm@linux-foundation.org")], [("", "linux-kernel@vger.kernel.org")])
    assert item.status == "warn"
    assert "jack@suse.cz" in item.message and "linux-mm@kvack.org" in item.message
    assert "akpm" not in item.message


# -- the CLI on the real mails -------------------------------------------------------------
@pytest.fixture
def uffd_ws(repo_workspace: Path, lore_dir: Path) -> Path:
    r = run_series("-C", str(repo_workspace), "fetch", "uffd-move", "--mirror", str(lore_dir))
    assert r.rc == 0, r.err
    return repo_workspace


@pytest.mark.integration
def test_check_without_tree_runs_hygiene_and_reports_missing(uffd_ws: Path, tmp_path: Path) -> None:
    env = {"SERIES_CACHE": str(tmp_path / "empty-cache")}
    r = run_series("-C", str(uffd_ws), "check", "uffd-move", "v6", "--json", env=env)
    assert r.rc == 0, r.err       # warn: patch 2 was never imported
    d = r.json
    assert d["stack"] == "uffd-move" and d["version"] == 6 and d["tree"] is None
    assert d["missing"] == [2] and [p["index"] for p in d["patches"]] == [1, 3, 4, 5]
    for p in d["patches"]:
        assert p["checkpatch"]["status"] == "skip" and "series tree add" in p["checkpatch"]["reason"]
        checks = {h["check"]: h["status"] for h in p["hygiene"]}
        assert checks["signed-off-by"] == "pass" and checks["recipients"] == "skip"
        assert checks["subject"] == "pass"
    assert Path(d["results"]).is_file()
    text = run_series("-C", str(uffd_ws), "check", "uffd-move", "v6", env=env)
    assert "missing: patch 2 of 5 not imported" in text.out and "checkpatch: skip" in text.out


@pytest.mark.integration
def test_check_user_errors(uffd_ws: Path, tmp_path: Path) -> None:
    env = {"SERIES_CACHE": str(tmp_path / "empty-cache")}
    for args in (("check", "no-such-stack"), ("check", "uffd-move", "v99"), ("check", "uffd-move", "--tree", "nope")):
        r = run_series("-C", str(uffd_ws), *args, env=env)
        assert r.rc == 1 and "Traceback" not in r.err and r.err.startswith("series: error:"), (args, r.err)


@pytest.fixture(scope="session")
def debian_tree(session_cache: Path) -> str:
    import os
    from series import trees
    from series.workspace import Workspace
    if not trees.debian_tarball("6.12").is_file():
        pytest.skip("linux-source-6.12 is not installed")
    os.environ.setdefault("SERIES_CACHE", str(session_cache))
    ws = Workspace(root=session_cache, cache=session_cache, config={})
    trees.ensure_debian_tree(ws, "debian", "6.12")
    return "debian"


# The oracle: checkpatch.pl taken out of the tree with `git show` and run with the
# flags the check promises (README, DESIGN), not with what the tool's JSON says.
PROMISED_FLAGS = ["--no-tree", "--show-types", "--color=never"]
# What the real revisions give on 6.12 (the checkpatch error of v4's patch 5 fails v4).
CHECK_RC = {1: 0, 2: 0, 3: 0, 4: 2, 5: 0, 6: 0}


def newest_tag_commit(repo: Path) -> str:
    tags = subprocess.run(["git", "--git-dir", str(repo), "tag", "--list", "debian/*", "--sort=version:refname"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert tags, f"{repo}: no debian/* tag"
    return subprocess.run(["git", "--git-dir", str(repo), "rev-parse", f"{tags[-1]}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def checkpatch_from_git(repo: Path, sha: str, dest: Path) -> Path:
    """scripts/checkpatch.pl and the data files it reads, from `git show`, in dest/scripts."""
    (dest / "scripts").mkdir(parents=True, exist_ok=True)
    for name in ("checkpatch.pl", "spelling.txt", "const_structs.checkpatch"):
        blob = subprocess.run(["git", "--git-dir", str(repo), "show", f"{sha}:scripts/{name}"],
                              capture_output=True, check=True).stdout
        (dest / "scripts" / name).write_bytes(blob)
    return dest


def direct_totals(root: Path, flags: list[str], patch: Path) -> dict[str, int]:
    out = subprocess.run(["perl", "scripts/checkpatch.pl", *flags, str(patch)], cwd=root,
                         capture_output=True, text=True).stdout
    m = re.search(r"^total: (\d+) errors, (\d+) warnings, (?:(\d+) checks, )?\d+ lines checked", out, re.M)
    assert m, out[-500:]
    return {"errors": int(m.group(1)), "warnings": int(m.group(2)), "checks": int(m.group(3) or 0)}


@pytest.mark.integration
@pytest.mark.parametrize("strict", [False, True])
def test_counts_equal_direct_checkpatch_on_every_revision(uffd_ws: Path, debian_tree: str, strict: bool,
                                                          tmp_path: Path) -> None:
    import os
    repo = Path(os.environ["SERIES_CACHE"]) / "trees" / f"{debian_tree}.git"
    sha = newest_tag_commit(repo)         # the revisions' bases are not in the tree: its newest release
    root = checkpatch_from_git(repo, sha, tmp_path / "oracle")
    flags = PROMISED_FLAGS + (["--strict"] if strict else [])
    seen = 0
    for v in range(1, 7):
        r = run_series("-C", str(uffd_ws), "check", "uffd-move", f"v{v}", "--tree", debian_tree,
                       "--strict" if strict else "--no-strict", "--json")
        assert r.rc == CHECK_RC[v], (v, r.err)
        d = r.json
        assert d["status"] == ("fail" if CHECK_RC[v] else "warn")
        assert d["flags"] == flags and d["tree"]["sha"] == sha
        for p in d["patches"]:
            c = p["checkpatch"]
            assert "error" not in c, c
            want = direct_totals(root, flags, Path(p["file"]))
            got = {k: c[k] for k in ("errors", "warnings", "checks")}
            assert got == want, (v, p["index"])
            assert len(c["findings"]) == sum(got.values())
            if c["errors"]:
                assert p["status"] == "fail"
            seen += 1
        # Missing patches are listed, and not checked.
        assert set(d["missing"]).isdisjoint(p["index"] for p in d["patches"])
    assert seen == 2 + 3 + 2 + 4 + 4 + 4


@pytest.mark.integration
def test_delta_new_and_fixed_are_consistent(uffd_ws: Path, debian_tree: str) -> None:
    reports = {}
    for v in range(1, 7):
        r = run_series("-C", str(uffd_ws), "check", "uffd-move", f"v{v}", "--tree", debian_tree, "--json")
        reports[v] = r.json
    assert reports[1]["delta"]["against"] is None
    moved = 0
    for v in range(2, 7):
        d = reports[v]["delta"]
        assert d["against"] == f"v{v - 1}"
        cur = {p["index"]: p["checkpatch"]["findings"] for p in reports[v]["patches"]}
        old = {p["index"]: p["checkpatch"]["findings"] for p in reports[v - 1]["patches"]}
        key = lambda f: (f["level"], f["type"], f["file"], f["message"])  # noqa: E731
        for f in d["new"]:
            assert key(f) in map(key, cur[f["patch"]])
            if f["old_patch"] is not None:
                assert sum(key(g) == key(f) for g in cur[f["patch"]]) > sum(key(g) == key(f) for g in old[f["old_patch"]])
        for f in d["fixed"]:
            assert key(f) in map(key, old[f["old_patch"]])
            assert sum(key(g) == key(f) for g in old[f["old_patch"]]) > sum(key(g) == key(f) for g in cur[f["patch"]])
        moved += len(d["new"]) + len(d["fixed"])
    assert moved > 0  # the real series does gain and lose findings between revisions


@pytest.mark.integration
def test_rerun_is_cached_and_text_names_the_command(uffd_ws: Path, debian_tree: str) -> None:
    run_series("-C", str(uffd_ws), "check", "uffd-move", "v5", "--tree", debian_tree, "--json")
    r = run_series("-C", str(uffd_ws), "check", "uffd-move", "v5", "--tree", debian_tree, "--json")
    assert all(p["checkpatch"]["cached"] for p in r.json["patches"])
    t = run_series("-C", str(uffd_ws), "check", "uffd-move", "v5", "--tree", debian_tree)
    assert "scripts/checkpatch.pl --no-tree --show-types --color=never" in t.out
    res = json.loads(Path(t.out.strip().splitlines()[-1].split("results: ", 1)[1]).read_text())
    assert res["stack"] == "uffd-move" and res["revision"] == 5
    assert [s["name"] for s in res["stages"]] == ["checkpatch", "hygiene"]


def test_strict_default_from_manifest(workspace: Path) -> None:
    from series.stacks.store import load_stack
    from series.stages.check import strict_default
    from series.workspace import find_workspace
    for name, extra, want in (("plain", "", False), ("strict", "strict = true\n", True),
                              ("section", "[check]\nstrict = true\n", True)):
        d = workspace / "patches" / name
        d.mkdir()
        (d / "stack.toml").write_text(f'name = "{name}"\n{extra}')
        assert strict_default(load_stack(find_workspace(str(workspace)), name)) is want
