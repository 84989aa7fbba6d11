"""bench/mutants' two sets (issue 15): the evaluation set is a definition the
bench generates again and picks by id, refusing an id the generator no longer
makes; its verdicts can be taken from a `series mutate` state file; the
report keeps the sets apart and leaves equivalents out of the rates, counted.
No kernel here: the generator runs on C written for the purpose."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from series.mutate.engine import select
from series.mutate.operators import OPERATORS

REPO = Path(__file__).resolve().parents[1]

C = """\
static int check(struct thing *t, unsigned long flags)
{
	if (t->mode & MODE_A && !busy(t))
		return -EINVAL;
	t->flags = FLAG_X | FLAG_Y;
	return t->len + 1;
}

int other(void)
{
	return -ENOENT;
}
"""


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    mp = pytest.MonkeyPatch()
    mp.setenv("SERIES_BENCH_REEXEC", "1")       # never exec another interpreter from pytest
    try:
        loader = importlib.machinery.SourceFileLoader("bench_mutants", str(REPO / "bench" / "mutants"))
        spec = importlib.util.spec_from_loader("bench_mutants", loader)
        assert spec is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bench_mutants"] = mod
        loader.exec_module(mod)
    finally:
        mp.undo()
    return mod


@pytest.fixture
def src(tmp_path: Path) -> Path:
    (tmp_path / "src" / "x").mkdir(parents=True)
    (tmp_path / "src" / "x" / "c.c").write_text(C)
    return tmp_path / "src"


def definition(tmp: Path, mutants: list[dict[str, Any]], **gen: Any) -> Path:
    g = {"command": "series mutate st --functions x/c.c:check --list --json", "version": "6.12", "seed": 0,
         "functions": ["x/c.c:check"], **gen}
    lines = ["[generator]"] + [f"{k} = {json.dumps(v)}" for k, v in g.items()]
    for m in mutants:
        lines += ["[[mutant]]"] + [f"{k} = {json.dumps(v)}" for k, v in m.items()]
    f = tmp / "eval.toml"
    f.write_text("\n".join(lines) + "\n")
    return f


def rows(ms: list[Any], positions: range) -> list[dict[str, Any]]:
    return [{"position": p, "id": m.id, "file": m.file, "function": m.function, "operator": m.operator}
            for p, m in zip(positions, ms)]


def test_the_set_is_generated_again_and_picked_by_id(bench: ModuleType, src: Path, tmp_path: Path) -> None:
    ops = list(OPERATORS)
    order = select(src, {}, ["x/c.c:check"], ops, 0, None, None).generated
    assert len(order) >= 4
    chosen = order[1:4]                       # positions 2-4 of the seeded order
    d = bench.load_eval(definition(tmp_path, rows(chosen, range(2, 5)), positions=[2, 4], operators=ops))
    trials = bench.eval_trials(d, src)
    assert [t.id for t in trials] == [m.id for m in chosen]
    assert [t.position for t in trials] == [2, 3, 4]
    m = chosen[0]
    assert trials[0].texts(lambda f: (src / f).read_text()) == {m.file: m.apply(C)}
    # an id the generator no longer makes: the tree or the operators changed
    bad = rows(chosen, range(2, 5))
    bad[1]["id"] = "0123456789ab"
    d = bench.load_eval(definition(tmp_path, bad, operators=ops))
    with pytest.raises(bench.BenchError, match="no longer generated from the tree \\(0123456789ab\\)"):
        bench.eval_trials(d, src)
    d = bench.load_eval(definition(tmp_path, rows(chosen, range(2, 5)),
                                   operators=[o for o in ops if o != m.operator]))
    with pytest.raises(bench.BenchError, match=f"no longer generated from the tree \\({m.id}\\)"):
        bench.eval_trials(d, src)
    (src / "x" / "c.c").write_text(C.replace("t->len", "t->size"))     # the tree changed
    d = bench.load_eval(definition(tmp_path, rows(chosen, range(2, 5)), operators=ops))
    with pytest.raises(bench.BenchError, match="no longer generated"):
        bench.eval_trials(d, src)
    (src / "x" / "c.c").write_text(C)
    # an id generated for another function than the definition says
    wrong = rows(chosen, range(2, 5))
    wrong[0]["function"] = "other"
    d = bench.load_eval(definition(tmp_path, wrong, operators=ops))
    with pytest.raises(bench.BenchError, match="not x/c.c:other"):
        bench.eval_trials(d, src)


def test_only_refuses_an_unknown_mutant(bench: ModuleType, src: Path, tmp_path: Path) -> None:
    m = select(src, {}, ["x/c.c:check"], ("errno",), 0, None, None).generated[0]
    d = bench.load_eval(definition(tmp_path, rows([m], range(1, 2)), operators=["errno"]))
    trials = {"eval": bench.eval_trials(d, src), "tuned": bench.tuned_trials(REPO / "bench" / "mutants.toml")}
    picked = bench.only(trials, [m.id, "eexist-skipped"])
    assert [t.id for t in picked["eval"]] == [m.id] and [t.id for t in picked["tuned"]] == ["eexist-skipped"]
    with pytest.raises(bench.BenchError, match="unknown mutant.*nope"):
        bench.only(trials, [m.id, "nope"])


@pytest.mark.parametrize("gen,mutants,msg", [
    ({"functions": ["check"]}, None, "FILE.c:FUNCTION"),
    ({"operators": ["nope"]}, None, "unknown operator"),
    ({"seed": None}, None, "lacks seed"),
    ({}, [{"id": "a", "file": "x/c.c", "function": "check", "operator": "errno"}] * 2, "duplicate ids a"),
    ({}, [{"id": "a", "file": "x/c.c", "operator": "errno"}], "lacks function"),
    ({}, [], "no \\[\\[mutant\\]\\]"),
    ({"positions": [1, 2]}, [{"id": "a", "file": "x/c.c", "function": "check", "operator": "errno",
                              "position": 1}], "positions"),
])
def test_a_bad_definition_is_refused(bench: ModuleType, tmp_path: Path, gen: dict[str, Any],
                                     mutants: list[dict[str, Any]] | None, msg: str) -> None:
    ms = mutants if mutants is not None else [{"id": "a", "file": "x/c.c", "function": "check", "operator": "errno"}]
    g = {k: v for k, v in gen.items() if v is not None}
    f = definition(tmp_path, ms, **g)
    if gen.get("seed", 0) is None:
        f.write_text(f.read_text().replace("seed = 0\n", ""))
    with pytest.raises(bench.BenchError, match=msg):
        bench.load_eval(f)


def test_the_committed_sets_load(bench: ModuleType) -> None:
    d = bench.load_eval(REPO / "bench" / "mutants-eval.toml")
    assert d.version == "6.12" and d.seed == 0 and "--list" in d.command
    assert [m["position"] for m in d.mutants] == list(range(25, 61))
    assert len(bench.tuned_trials(REPO / "bench" / "mutants.toml")) == 25
    before = json.loads((REPO / "bench" / "results" / "mutants-eval-before.json").read_text())
    assert [r["id"] for r in before["sets"]["eval"]["mutants"]] == [m["id"] for m in d.mutants]
    assert all("diff" not in r and all("log" not in v for v in r.get("suites", {}).values())
               for r in before["sets"]["eval"]["mutants"])


def state_record(mid: str, status: str, killed: tuple[bool, bool] = (False, False)) -> dict[str, Any]:
    r: dict[str, Any] = {"id": mid, "file": "x/c.c", "function": "check", "operator": "errno", "status": status,
                         "diff": "--- a/x/c.c\n+++ b/x/c.c\n", "build_s": 1.0}
    if status == "skipped":
        r.update(reason_kind="object unchanged", reason="objdump -d equal")
    else:
        r["suites"] = {s: {"killed": k, "why": ["t"] if k else [], "boot_s": 1.0, "log": "/x/console.log"}
                       for s, k in zip(("uffd-unit-tests", "uffd-move-tests"), killed)}
        r["killed_by"] = [s for s, k in zip(("uffd-unit-tests", "uffd-move-tests"), killed) if k]
    return r


def test_verdicts_from_a_series_mutate_state(bench: ModuleType, tmp_path: Path) -> None:
    ids = ["aaaaaaaaaaa1", "aaaaaaaaaaa2", "aaaaaaaaaaa3", "aaaaaaaaaaa4"]
    d = bench.load_eval(definition(tmp_path, [{"id": i, "file": "x/c.c", "function": "check", "operator": "errno",
                                               "position": p} for p, i in enumerate(ids, 5)],
                                   base_commit="b" * 40))
    key = {"base": "b" * 40, "config": "c", "suites": ["uffd-unit-tests", "uffd-move-tests"], "seed": 0}
    recs = [state_record(ids[0], "killed", (True, True)), state_record(ids[1], "killed", (False, True)),
            state_record(ids[2], "survived"), state_record(ids[3], "skipped"), state_record("other", "survived")]
    st = tmp_path / "state.json"
    st.write_text(json.dumps({"schema": 1, "key": key, "mutants": recs}))
    got = bench.from_mutate(st, d)
    assert [r["id"] for r in got] == ids and [r["position"] for r in got] == [5, 6, 7, 8]
    assert all("diff" not in r for r in got) and got[0]["suites"]["uffd-move-tests"] == \
        {"killed": True, "why": ["t"], "boot_s": 1.0}
    for bad_key, msg in (({**key, "seed": 1}, "seed 1"), ({**key, "base": "a" * 40}, "base a"),
                         ({**key, "suites": ["uffd-move-tests"]}, "suites")):
        st.write_text(json.dumps({"schema": 1, "key": bad_key, "mutants": recs}))
        with pytest.raises(bench.BenchError, match=msg):
            bench.from_mutate(st, d)
    st.write_text(json.dumps({"schema": 1, "key": key, "mutants": recs[1:]}))
    with pytest.raises(bench.BenchError, match="no verdict yet for 1"):
        bench.from_mutate(st, d)


def test_report_keeps_equivalents_out_of_the_rates(bench: ModuleType) -> None:
    from series.mutate.engine import mark_equivalent
    recs = [state_record("k1", "killed", (True, True)), state_record("k2", "killed", (False, True)),
            state_record("s1", "survived"), state_record("e1", "survived"), state_record("x1", "skipped")]
    mark_equivalent(recs, {"e1": "a check an earlier one makes redundant"})
    s = bench.set_summary(recs)
    assert s["ran"] == 3 and s["killed_by_suite"] == {"uffd-unit-tests": 1, "uffd-move-tests": 2}
    assert s["only"] == {"uffd-unit-tests": [], "uffd-move-tests": ["k2"]} and s["survived_all"] == ["s1"]
    text = "\n".join(bench.set_report("eval", recs, s))
    assert "chosen before any test was written" in text
    assert "equivalent (bench/mutants-equivalent.toml, not counted): 1 (e1)" in text
    assert "skipped (not counted): 1 object unchanged" in text
    assert "upstream (uffd-unit-tests -f move)   killed 1/3 (33%)" in text
    assert "ours (uffd-move-tests)               killed 2/3 (67%)" in text
    tuned = "\n".join(bench.set_report("tuned", recs, s))
    assert "tests were added to kernel-tests until each one died" in tuned


def test_compare_names_a_lost_kill_per_set(bench: ModuleType, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    before = tmp_path / "before.json"
    before.write_text(json.dumps({"sets": {"eval": {"mutants": [state_record("k1", "killed", (True, True)),
                                                                state_record("k2", "killed", (False, True))]}}}))
    now = {"eval": [state_record("k1", "killed", (False, True)), state_record("k2", "killed", (True, True))]}
    assert bench.compare(before, now) == ["k1 (upstream)"]
    assert "KILLED/survived" in capsys.readouterr().out
    assert bench.compare(before, {"eval": [state_record("k1", "killed", (True, True)),
                                           state_record("k2", "killed", (False, True))]}) == []
