"""series mutate: finding the functions a patch touches, each operator on C we
wrote for the purpose, the seeded order, the resumable state, restoring the
source; and one e2e run (--max 2) on a small stack against Debian 6.12."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from series.mutate.cfuncs import functions, mask, section_name, touched_functions
from series.mutate.engine import State, find_targets, mutated, summarise, undo_stale
from series.mutate.judge import judge
from series.mutate.operators import OPERATORS, Mutant, mutants_of, order, unified_diff
from series.patch import parse_diff

C = """\
/* if (commented) return -EINVAL; */
#define FOO(x) { (x) + 1 }
static const struct ops my_ops = {
	.open = my_open,
};

static int my_check(struct thing *t, unsigned long flags)
{
	int err = 0;

	if (t->mode & MODE_A && !busy(t)) {
		err = -EINVAL;
		goto out;
	}
	t->flags = FLAG_X | FLAG_Y;
	t->mask = t->old & ~FLAG_Z;
	WARN_ON_ONCE(t->count);
	t->count = t->len + 1;
	puts("a; b");
out:
	return err;
}

int other(void)
{
	return -ENOENT;
}
"""


def diff_of(text: str, mutant: Mutant) -> list[str]:
    """The changed lines of a mutant (- then +), read from its diff."""
    return [ln for ln in mutant.diff.splitlines()[3:] if ln[:1] in "+-"]


def only(ms: list[Mutant], op: str) -> list[Mutant]:
    return [m for m in ms if m.operator == op]


@pytest.fixture
def muts() -> list[Mutant]:
    return mutants_of("x.c", C, [f for f in functions(C) if f.name == "my_check"])


# -- finding functions -------------------------------------------------------------------
def test_functions_found_not_structs_macros_or_comments() -> None:
    fs = functions(C)
    assert [f.name for f in fs] == ["my_check", "other"]
    f = fs[0]
    assert C.split("\n")[f.first_line - 1].startswith("static int my_check(")
    assert C.split("\n")[f.last_line - 1] == "}"


def test_by_name_gives_every_definition_of_an_ifdef_pair() -> None:
    from series.mutate.cfuncs import by_name
    text = "#ifdef CONFIG_A\nstatic void lock(int *a)\n{\n\tget(a);\n}\n#else\nstatic void lock(int *a)\n{\n\tput(a);\n}\n#endif\n"
    assert [(f.name, f.first_line) for f in by_name(text, ["lock"])] == [("lock", 2), ("lock", 7)]
    assert len(mutants_of("x.c", text, by_name(text, ["lock"]), ["delete-stmt"])) == 2


def test_mask_blanks_comments_and_strings_keeps_offsets() -> None:
    m = mask(C)
    assert len(m) == len(C) and m.count("\n") == C.count("\n")
    assert "commented" not in m and "a; b" not in m and 'puts(""' in m.replace(" ", "")


def test_section_name_of_hunk_header() -> None:
    assert section_name("static int my_check(struct thing *t, unsigned long flags)") == "my_check"
    assert section_name("ssize_t move_pages(struct userfaultfd_ctx *ctx, unsigned long dst_start,") == "move_pages"
    assert section_name("struct anon_vma *folio_lock_anon_vma_read(struct folio *folio,") == \
        "folio_lock_anon_vma_read"
    assert section_name("") is None


def _diff(old: str, new: str) -> str:
    return "diff --git a/x.c b/x.c\n" + "".join(difflib.unified_diff(
        old.splitlines(True), new.splitlines(True), "a/x.c", "b/x.c"))


def test_touched_functions_from_hunks() -> None:
    new = C.replace("\tt->count = t->len + 1;\n", "\tt->count = t->len + 1;\n\tt->seen = true;\n")
    files = parse_diff(_diff(C, new))
    assert touched_functions(new, files) == ["my_check"]
    # a base that already holds the change (the hunk's lines found by content)
    assert touched_functions("/* moved */\n\n" + new, files) == ["my_check"]
    # a new function is touched, the one before it (named in the hunk header) is not
    new2 = C + "\nstatic void added(void)\n{\n\tother();\n}\n"
    assert touched_functions(new2, parse_diff(_diff(C, new2))) == ["added"]


def test_touched_functions_removal_only_uses_the_hunk_header() -> None:
    new = C.replace("\tWARN_ON_ONCE(t->count);\n", "")
    d = _diff(C, new)      # difflib writes no section: put in the one git would
    d = d.replace(" @@\n", " @@ static int my_check(struct thing *t, unsigned long flags)\n", 1)
    files = parse_diff(d)
    assert files[0].hunks[0].section.startswith("static int my_check(")
    assert touched_functions(new, files) == ["my_check"]


def test_find_targets_named_functions(tmp_path: Path) -> None:
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm" / "a.c").write_text(C)
    new = C.replace("\tt->count = t->len + 1;\n", "\tt->count = t->len + 2;\n")
    changes = {"mm/a.c": list(parse_diff(_diff(C, new).replace("x.c", "mm/a.c")))}
    (tmp_path / "mm" / "a.c").write_text(new)
    assert [(t.file, t.functions) for t in find_targets(tmp_path, changes, None)] == [("mm/a.c", ["my_check"])]
    assert [(t.file, t.functions) for t in find_targets(tmp_path, changes, ["other"])] == [("mm/a.c", ["other"])]
    (tmp_path / "mm" / "b.c").write_text(C)
    got = find_targets(tmp_path, changes, ["mm/b.c:other"])
    assert [(t.file, t.functions) for t in got] == [("mm/b.c", ["other"])]
    from series.errors import UserError
    with pytest.raises(UserError, match="nope"):
        find_targets(tmp_path, changes, ["nope"])


def test_select_only_runs_the_given_ids_in_order(tmp_path: Path) -> None:
    from series.errors import UserError
    from series.mutate.engine import select
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm" / "a.c").write_text(C)
    everything = select(tmp_path, {}, ["mm/a.c:my_check"], OPERATORS, 0, None, None)
    ids = [m.id for m in everything.chosen]
    assert len(ids) > 3
    pick = [ids[3], ids[1]]
    got = select(tmp_path, {}, ["mm/a.c:my_check"], OPERATORS, 0, None, None, only=pick)
    assert [m.id for m in got.chosen] == [ids[1], ids[3]]          # the seeded order, not the given one
    assert len(got.generated) == len(ids)
    assert [m.id for m in select(tmp_path, {}, ["mm/a.c:my_check"], OPERATORS, 0, 1, None,
                                 only=pick).chosen] == [ids[1]]
    with pytest.raises(UserError, match="--only: no mutant 000000000000"):
        select(tmp_path, {}, ["mm/a.c:my_check"], OPERATORS, 0, None, None, only=[ids[0], "000000000000"])


# -- each operator ----------------------------------------------------------------------
def test_delete_statement(muts: list[Mutant]) -> None:
    got = {tuple(diff_of(C, m)) for m in only(muts, "delete-stmt")}
    assert ("-\t\terr = -EINVAL;", "+\t\t;") in got
    assert ("-\tt->flags = FLAG_X | FLAG_Y;", "+\t;") in got
    assert ("-\tt->mask = t->old & ~FLAG_Z;", "+\t;") in got
    assert ('-\tputs("a; b");', "+\t;") in got
    text = " ".join(" ".join(d) for d in got)
    assert "int err" not in text and "WARN_ON_ONCE" not in text and "goto" not in text   # declarations, asserts


def test_negate_condition(muts: list[Mutant]) -> None:
    assert [diff_of(C, m) for m in only(muts, "negate-cond")] == [
        ["-\tif (t->mode & MODE_A && !busy(t)) {", "+\tif (!(t->mode & MODE_A && !busy(t))) {"]]


def test_drop_term(muts: list[Mutant]) -> None:
    got = sorted(diff_of(C, m)[1] for m in only(muts, "drop-term"))
    assert got == ["+\tif ( !busy(t)) {", "+\tif (t->mode & MODE_A ) {"]


def test_errno(muts: list[Mutant]) -> None:
    assert [diff_of(C, m) for m in only(muts, "errno")] == [["-\t\terr = -EINVAL;", "+\t\terr = -EFAULT;"]]
    other = mutants_of("x.c", C, [f for f in functions(C) if f.name == "other"], ["errno"])
    assert [diff_of(C, m) for m in other] == [["-\treturn -ENOENT;", "+\treturn -EINVAL;"]]


def test_drop_flag(muts: list[Mutant]) -> None:
    got = sorted(diff_of(C, m)[1] for m in only(muts, "drop-flag"))
    assert got == ["+\tt->flags = FLAG_X;", "+\tt->flags = FLAG_Y;", "+\tt->mask = t->old;"]


def test_swap_and_or(muts: list[Mutant]) -> None:
    assert [diff_of(C, m) for m in only(muts, "swap-andor")] == [
        ["-\tif (t->mode & MODE_A && !busy(t)) {", "+\tif (t->mode & MODE_A || !busy(t)) {"]]


def test_off_by_one(muts: list[Mutant]) -> None:
    assert [diff_of(C, m) for m in only(muts, "off-by-one")] == [
        ["-\tt->count = t->len + 1;", "+\tt->count = t->len - 1;"]]


def test_nothing_in_comments_strings_or_other_functions(muts: list[Mutant]) -> None:
    for m in muts:
        assert m.function == "my_check"
        assert "commented" not in "".join(diff_of(C, m)[1:]) or m.operator == "delete-stmt"
        assert m.apply(C).count("\n") == C.count("\n")          # line numbers kept
    assert {m.operator for m in muts} == set(OPERATORS)


def test_diff_applies_with_git(tmp_path: Path, muts: list[Mutant]) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "x.c").write_text(C)
    for m in muts:
        p = subprocess.run(["git", "-C", str(tmp_path), "apply", "--check", "-"], input=m.diff, text=True,
                           capture_output=True)
        assert p.returncode == 0, (m.diff, p.stderr)
    assert unified_diff("x.c", C, 0, 0, "") .count("@@") == 2


# -- order, resume, restore -------------------------------------------------------------
def test_order_is_stable_and_seeded(muts: list[Mutant]) -> None:
    a = [m.id for m in order(muts, 1)]
    assert a == [m.id for m in order(list(reversed(muts)), 1)]
    assert sorted(a) == sorted(m.id for m in muts) and len(set(a)) == len(a)
    assert a != [m.id for m in order(muts, 2)]


def test_state_resumes_only_with_the_same_key(tmp_path: Path) -> None:
    f = tmp_path / "s.json"
    key = {"base": "b", "config": "c", "suites": ["s"], "seed": 0}
    st = State.load(f, key)
    st.records["abc"] = {"id": "abc", "status": "killed"}
    st.save({})
    assert State.load(f, key).records == {"abc": {"id": "abc", "status": "killed"}}
    assert State.load(f, {**key, "seed": 1}).records == {}


def test_source_restored_on_interrupt_and_after_a_killed_run(tmp_path: Path, muts: list[Mutant]) -> None:
    src, root = tmp_path / "src", tmp_path / "bd"
    src.mkdir()
    root.mkdir()
    m = Mutant(**{**muts[0].__dict__, "file": "x.c"})
    (src / "x.c").write_text(C)
    with pytest.raises(KeyboardInterrupt):
        with mutated(root, src, m, C):
            assert (src / "x.c").read_text() != C
            raise KeyboardInterrupt
    assert (src / "x.c").read_text() == C and not list(root.iterdir())
    # a process killed inside the block: the next run undoes it from the marker
    cm = mutated(root, src, m, C)
    cm.__enter__()
    assert (src / "x.c").read_text() == m.apply(C)
    assert undo_stale(root, src) == "x.c"
    assert (src / "x.c").read_text() == C and undo_stale(root, src) is None


def test_summary_groups_survivors() -> None:
    recs = [{"id": "1", "status": "survived", "file": "a.c", "function": "f", "operator": "errno", "suites": {}},
            {"id": "2", "status": "killed", "file": "a.c", "function": "f", "operator": "errno",
             "suites": {"s": {"killed": True, "why": ["t"]}}},
            {"id": "3", "status": "skipped", "reason_kind": "object unchanged", "file": "a.c", "function": "g",
             "operator": "drop-flag"}]
    s = summarise(recs, ["s"])
    assert s["ran"] == 2 and s["killed"] == 1 and s["killed_by_suite"] == {"s": 1}
    assert s["skipped"] == {"object unchanged": 1}
    assert s["survivors_by_function"] == {"a.c:f": ["1"]} and s["survivors_by_operator"] == {"errno": ["1"]}


def test_judge_counts_only_what_passed_at_baseline() -> None:
    from series.pipeline.result import StageResult
    from series.stages.boot import BootResult
    from series.stages.console import Problem
    from series.stages.ktap import TestCase
    st = StageResult(name="test", status="fail", summary="")  # type: ignore[arg-type]
    tests = [TestCase("s/p/a", "fail"), TestCase("s/p/b", "fail"), TestCase("o/p/c", "fail")]
    br = BootResult(stage=st, accel="kvm", problems=[], tests=tests, log=Path("x"))
    v = judge(br, "s", ["s/p/a", "s/p/gone"])
    assert v.killed and v.why == ["p/a", "p/gone not run"]
    assert not judge(BootResult(stage=st, accel="kvm", problems=[], tests=[TestCase("s/p/a", "pass")],
                                log=Path("x")), "s", ["s/p/a"]).killed
    assert judge(BootResult(stage=st, accel="kvm", problems=[Problem("oops", "")], tests=[], log=Path("x")),
                 "s", []).why == ["kernel oops"]


def test_equivalent_list_needs_reasons(tmp_path: Path) -> None:
    from series.errors import UserError
    from series.mutate.engine import load_equivalent
    f = tmp_path / "eq.toml"
    f.write_text('[[equivalent]]\nid = "abc"\nreason = "an earlier check returns first"\n')
    assert load_equivalent(f) == {"abc": "an earlier check returns first"}
    f.write_text('[[equivalent]]\nid = "abc"\n')
    with pytest.raises(UserError, match="reason"):
        load_equivalent(f)
    assert load_equivalent(Path(__file__).resolve().parents[1] / "bench" / "mutants-equivalent.toml") is not None


def test_reports_show_survivor_diffs_escaped() -> None:
    from series.mutate.engine import html_report, text_report
    recs = [{"id": "1", "status": "survived", "file": "a.c", "function": "f", "operator": "errno",
             "diff": "-\tif (a < b)\n+\tif (!(a < b))\n", "suites": {"s": {"killed": False, "why": []}}}]
    s = summarise(recs, ["s"])
    page = html_report(s, recs, ["s"], "t")
    assert "if (!(a &lt; b))" in page and "a.c:f (1)" in page
    txt = text_report(s, recs, ["s"])
    assert "kill rate: s 0/1 (0%)" in txt and "survivors by function:\n  a.c:f: 1" in txt


def test_run_page_shows_survivor_diffs(tmp_path: Path) -> None:
    from series.commands.mutate import mutate_stage
    from series.report.html import to_html
    from series.report.junit import to_junit
    recs = [{"id": "s1", "status": "survived", "file": "a.c", "function": "f", "operator": "errno",
             "diff": "-\tif (a < b)\n+\tif (!(a < b))\n", "suites": {"s": {"killed": False, "why": []}}},
            {"id": "k1", "status": "killed", "killed_by": ["s"], "file": "a.c", "function": "f",
             "operator": "negate-cond", "diff": "-x\n+KILLEDDIFF\n", "suites": {"s": {"killed": True, "why": ["t"]}}}]
    out = {"summary": summarise(recs, ["s"]), "mutants": recs, "html": str(tmp_path / "mutants.html"),
           "mutants_json": str(tmp_path / "mutants.json")}
    st = mutate_stage(out)
    assert str(st.status) == "warn" and st.summary.startswith("1/2 killed (s 1/2); 1 survived")
    results = {"schema": 1, "command": "mutate", "stack": "x", "revision": 1, "status": "warn", "patches": [],
               "stages": [st.to_dict()], "run_dir": str(tmp_path)}
    page = to_html(results)
    assert "if (!(a &lt; b))" in page and "KILLEDDIFF" not in page and 'href="mutants.html"' in page
    assert "mutate" in to_junit(results)


def test_cli_refuses_bad_options_before_any_work(workspace: Path) -> None:
    from conftest import run_series
    for args, msg in ((["--max", "0"], "--max"), (["--operators", "nope"], "unknown operator"),
                      (["--functions", ","], "--functions"), (["--only", ","], "--only")):
        r = run_series("-C", str(workspace), "mutate", "st", *args)
        assert r.rc == 1 and msg in r.err and "Traceback" not in r.err, (args, r.err)


# -- e2e: a real kernel, two mutants ---------------------------------------------------
COMMENT = "\t/* Only allow moving if both have the same access and protection */\n"
ADDED = "\t/* series test: the checks below are what series mutate mutates */\n"


@pytest.mark.e2e
def test_mutate_e2e_two_mutants_killed_and_resumed(tmp_path: Path, session_cache: Path) -> None:
    from conftest import run_series
    if not Path("/usr/src/linux-source-6.12.tar.xz").is_file() or not shutil.which("qemu-system-x86_64"):
        pytest.skip("needs linux-source-6.12 and qemu-system-x86")
    ws = tmp_path / "ws"
    (ws / "patches").mkdir(parents=True)
    (ws / "series.toml").write_text('[workspace]\nname = "mut"\n[test]\nsuites = ["uffd-move-tests"]\n')
    env = {"SERIES_CACHE": str(session_cache)}
    r = run_series("-C", str(ws), "tree", "add", "debian", "--debian", "6.12", env=env)
    assert r.rc == 0 or "exists" in r.err, r.err
    repo = session_cache / "trees" / "debian.git"
    base = subprocess.run(["git", "-C", str(repo), "tag", "--list", "debian/6.12.*"], check=True,
                          capture_output=True, text=True).stdout.split()[-1]
    old = subprocess.run(["git", "-C", str(repo), "show", f"{base}:mm/userfaultfd.c"], check=True,
                         capture_output=True, text=True).stdout
    assert old.count(COMMENT) == 1
    new = old.replace(COMMENT, ADDED + COMMENT)
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "a/mm/userfaultfd.c",
                                        "b/mm/userfaultfd.c"))
    (ws / "mut.mbox").write_text(
        "From series-test Mon Sep 17 00:00:00 2001\nFrom: Series Test <test@series.invalid>\n"
        "Date: Mon, 1 Jan 2024 00:01:00 +0000\nSubject: [PATCH] mm: userfaultfd: a comment\n"
        "Message-ID: <mut-1@series.invalid>\n\nA comment.\n\nSigned-off-by: Series Test <test@series.invalid>\n"
        f"---\ndiff --git a/mm/userfaultfd.c b/mm/userfaultfd.c\n{diff}--\n2.39.0\n\n")
    from conftest import unique_name
    stack = unique_name("mut")      # a fresh mutate state, also in a reused test cache
    r = run_series("-C", str(ws), "import", stack, "--mbox", str(ws / "mut.mbox"), "--create", env=env)
    assert r.rc == 0, r.err
    # every negated check of validate_move_areas() refuses a valid move: both mutants must be killed
    args = ("-C", str(ws), "mutate", stack, "--onto", "debian/6.12", "--tree", "debian",
            "--operators", "negate-cond", "--max", "2", "--json")
    # --list: the mutants the run is about to try, in its order, nothing built
    r = run_series(*args, "--list", env=env)
    assert r.rc == 0, r.err
    listed = json.loads(r.out)
    assert listed["generated"] == 6 and len(listed["mutants"]) == 2
    r = run_series(*args, env=env)
    assert r.rc == 0, r.err
    out = json.loads(r.out)
    assert [m["id"] for m in out["mutants"]] == [m["id"] for m in listed["mutants"]]
    assert [m["diff"] for m in out["mutants"]] == [m["diff"] for m in listed["mutants"]]
    assert out["targets"] == [{"file": "mm/userfaultfd.c", "functions": ["validate_move_areas"]}]
    assert out["generated"] == 6 and out["resumed"] == 0
    assert len(out["mutants"]) == 2
    for m in out["mutants"]:
        assert m["function"] == "validate_move_areas" and m["operator"] == "negate-cond"
        assert m["diff"].startswith("--- a/mm/userfaultfd.c\n+++ b/mm/userfaultfd.c\n@@ ")
        assert m["status"] == "killed" and m["killed_by"] == ["uffd-move-tests"], m
    assert out["summary"]["killed_by_suite"] == {"uffd-move-tests": 2}
    # the source in the build directory is the revision's again, and the run has its files
    assert (Path(out["build_dir"]) / "src" / "mm" / "userfaultfd.c").read_text() == new
    assert json.loads(Path(out["mutants_json"]).read_text())["mutants"] == out["mutants"]
    assert "Survivors" in Path(out["html"]).read_text()
    # a re-run resumes: nothing is built or booted again, the verdicts are the same
    r = run_series(*args, env=env)
    assert r.rc == 0, r.err
    again = json.loads(r.out)
    assert again["resumed"] == 2
    # with a kernel built, --list knows what the build compiles, and picks the same
    r = run_series(*args, "--list", "--max", "6", env=env)
    assert r.rc == 0, r.err
    full = json.loads(r.out)
    assert full["compiled_checked"] is True
    assert [m["id"] for m in full["mutants"]][:2] == [m["id"] for m in out["mutants"]] and len(full["mutants"]) == 6
    assert [(m["id"], m["status"]) for m in again["mutants"]] == [(m["id"], m["status"]) for m in out["mutants"]]
