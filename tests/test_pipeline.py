"""The pipeline: stages as data, the engine's skip rule, one status vocabulary,
one results.json writer, and suites/configs as data (each validator made to fail)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from series.cache import Cache
from series.errors import InfraError, UserError
from series.pipeline import Options, Run, StageResult, Status, overall, status_of, worst
from series.pipeline import stages as pst
from series.pipeline.stages import STAGE_NAMES, Stage, closure, execute
from series.stacks.model import PatchInfo, Revision, Stack
from series.suites import (BuiltProgram, BuiltSuite, Program, Suite, available, expand, load_suite, parse_suite,
                           plan_for)
from series.stages.boot import guest_tests
from series.workspace import Workspace


# -- statuses ---------------------------------------------------------------------
def test_status_order_and_mappings() -> None:
    assert worst(["pass", "skip", "warn"]) is Status.WARN
    assert worst([]) is Status.PASS
    assert worst(["pass", "error", "fail"]) is Status.ERROR
    assert overall(["skip", "pass"]) is Status.PASS           # skips do not count ...
    assert overall(["skip", "skip"]) is Status.SKIP           # ... unless nothing ran
    assert overall(["skip", "fail"]) is Status.FAIL
    assert status_of("conflict") is Status.FAIL and status_of("fuzz") is Status.WARN
    assert status_of("missing") is Status.SKIP
    assert status_of("no-such-word") is Status.ERROR          # unknown is never a pass
    assert [s.junit for s in Status] == [None, None, "failure", "skipped", "error"]
    assert {s: s.patchwork for s in Status} == {Status.PASS: "success", Status.WARN: "warning",
                                                Status.FAIL: "fail", Status.SKIP: "pending", Status.ERROR: "fail"}
    assert json.dumps({"s": Status.WARN}) == '{"s": "warn"}'


# -- the engine ----------------------------------------------------------------------
def test_closure_adds_what_a_stage_needs_in_pipeline_order() -> None:
    assert [s.name for s in closure(["test"])] == ["apply", "build", "test"]
    assert [s.name for s in closure(["mail", "apply"])] == ["apply", "mail"]
    assert [s.name for s in closure(["hygiene"])] == ["hygiene"]
    with pytest.raises(UserError, match="unknown stage"):
        closure(["apply", "boot"])
    with pytest.raises(UserError, match="no stage selected"):
        closure([])
    assert STAGE_NAMES == ("apply", "checkpatch", "hygiene", "build", "test", "mail")


def _run(tmp_path: Path) -> Run:
    ws = Workspace(root=tmp_path / "ws", cache=Cache(tmp_path / "c"))
    rev = Revision(version=2, expected=2, patches=[PatchInfo(index=1, subject="a", imported=True),
                                                   PatchInfo(index=2, subject="b", imported=True)], imported=True)
    st = Stack(name="demo", dir=tmp_path / "ws" / "patches" / "demo", title="Demo", revisions=[rev])
    return Run(ws, "ci", st, rev, Options(argv=["demo"]), out=tmp_path / "run")


@pytest.fixture
def fake_stages(monkeypatch: pytest.MonkeyPatch) -> dict[str, Status | Exception]:
    """Replace the stage bodies by ones that return what the test says."""
    outcome: dict[str, Status | Exception] = {}
    ran: list[str] = []

    def body(name: str):  # noqa: ANN202
        def f(run: Run) -> StageResult:
            ran.append(name)
            o = outcome.get(name, Status.PASS)
            if isinstance(o, Exception):
                raise o
            return StageResult(name=name, status=o, summary=f"{name} said {o}")
        return f
    monkeypatch.setattr(pst, "STAGES", tuple(Stage(s.name, s.needs, body(s.name)) for s in pst.STAGES))
    monkeypatch.setattr(pst, "_BY_NAME", {s.name: s for s in pst.STAGES})
    outcome["__ran__"] = ran  # type: ignore[assignment]
    return outcome


def test_a_stage_whose_input_failed_is_skipped_with_the_reason(tmp_path: Path, fake_stages) -> None:  # noqa: ANN001
    fake_stages["apply"] = Status.FAIL
    run = _run(tmp_path)
    execute(run, list(STAGE_NAMES), keep_going=True)
    got = {s.name: s for s in run.stages}
    assert got["build"].status is Status.SKIP and "apply fail: apply said fail" in got["build"].summary
    assert got["test"].status is Status.SKIP and got["test"].summary.startswith("build skip")
    assert got["checkpatch"].status is Status.PASS and got["mail"].status is Status.PASS   # independent stages ran
    assert "build" not in fake_stages["__ran__"] and "test" not in fake_stages["__ran__"]  # type: ignore[operator]
    on_disk = json.loads((run.dir / "results.json").read_text())
    assert on_disk["schema"] == 1 and on_disk["status"] == "fail" and on_disk["finished"] is None
    assert [s["name"] for s in on_disk["stages"]] == list(STAGE_NAMES)


def test_a_warning_does_not_block_what_needs_it(tmp_path: Path, fake_stages) -> None:  # noqa: ANN001
    fake_stages["apply"] = Status.WARN          # fuzz: still built and tested
    run = _run(tmp_path)
    execute(run, ["test"], keep_going=False)
    assert [(s.name, s.status) for s in run.stages] == [("apply", Status.WARN), ("build", Status.PASS),
                                                         ("test", Status.PASS)]


def test_keep_going_turns_a_raising_stage_into_error(tmp_path: Path, fake_stages) -> None:  # noqa: ANN001
    fake_stages["build"] = InfraError("make not found")
    run = _run(tmp_path)
    execute(run, ["test", "mail"], keep_going=True)
    got = {s.name: s for s in run.stages}
    assert got["build"].status is Status.ERROR and got["build"].summary == "make not found"
    assert got["test"].status is Status.SKIP and got["mail"].status is Status.PASS
    run2 = _run(tmp_path / "2")
    with pytest.raises(InfraError):                 # other commands: the error reaches the CLI
        with run2:
            execute(run2, ["test"], keep_going=False)
    r = json.loads((run2.dir / "results.json").read_text())
    assert r["status"] == "error" and r["error"] == "make not found" and r["finished"]   # never a silent pass


def test_finish_writes_every_report_from_one_results(tmp_path: Path, fake_stages) -> None:  # noqa: ANN001
    fake_stages["hygiene"] = Status.FAIL
    with _run(tmp_path) as run:
        execute(run, ["checkpatch", "hygiene"], keep_going=True)
    r = json.loads((run.dir / "results.json").read_text())
    assert r["status"] == "fail" and r["revision"] == 2 and r["command"] == "ci" and r["selected"] == ["checkpatch", "hygiene"]
    for f in ("junit.xml", "patchwork-checks.json", "summary.md", "index.html"):
        assert (run.dir / f).is_file(), f
    assert 'failures="1"' in (run.dir / "junit.xml").read_text()


# -- suites and configs as data ----------------------------------------------------
def _suite(tmp_path: Path, text: str, name: str = "s") -> Path:
    d = tmp_path / "suites"
    d.mkdir(exist_ok=True)
    p = d / f"{name}.toml"
    p.write_text(text)
    return p


GOOD = """
name = "ksm"
config = ["uffd"]
[source]
kind = "tree"
path = "tools/testing/selftests/mm"
[build]
command = ["make", "-C", "{suite_dir}", "O={out}"]
[[program]]
name = "ksm_functional_tests"
[run]
parser = "ktap"
"""


def test_the_shipped_suites_parse() -> None:
    names = available(None)
    assert {"uffd-unit-tests", "uffd-move-tests"} <= set(names)
    uut = load_suite(None, "uffd-unit-tests")
    assert uut.parser == "uffd-unit" and uut.expect == ("move", "move-pmd", "move-pmd-split")
    assert uut.programs == (Program("uffd-unit-tests", ("-f", "move")),)
    kt = load_suite(None, "uffd-move-tests")
    assert kt.source_kind == "bundled" and (kt.source_dir(Path("/nonexistent")) / "Makefile").is_file()


def test_a_workspace_suite_is_a_file_not_code(tmp_path: Path) -> None:
    _suite(tmp_path, GOOD, "ksm")
    s = load_suite(tmp_path, "ksm")
    assert s.programs == (Program("ksm_functional_tests"),) and s.source_dir(Path("/k")) == Path("/k/tools/testing/selftests/mm")
    plan = plan_for(tmp_path, {"test": {"suites": ["ksm"]}}, "any")
    assert [p.name for p in plan.fragments] == ["base.config", "uffd.config"]
    assert plan.config_hash == plan_for(tmp_path, {"test": {"suites": ["ksm", "ksm"]}}, "any").config_hash


@pytest.mark.parametrize("mutation, message", [
    (lambda t: t.replace('parser = "ktap"', 'parser = "tap14"'), "run.parser must be one of"),
    (lambda t: t.replace('kind = "tree"', 'kind = "web"'), "source.kind"),
    (lambda t: t.replace('path = "tools/testing/selftests/mm"', 'path = "../../etc"'), "relative path"),
    (lambda t: t.replace('"O={out}"', '"O={home}"'), "unknown placeholder {home}"),
    (lambda t: t.replace('[[program]]\nname = "ksm_functional_tests"\n', ''), "name the programs"),
    (lambda t: t.replace('command = ["make", "-C", "{suite_dir}", "O={out}"]', 'command = "make"'), "list of strings"),
    (lambda t: t.replace('name = "ksm"', 'name = "../x"'), "invalid suite name"),
    (lambda t: t + "\n[[[", "not a valid suite file"),
])
def test_a_bad_suite_file_is_refused_in_one_line(tmp_path: Path, mutation, message: str) -> None:  # noqa: ANN001
    p = _suite(tmp_path, mutation(GOOD), "bad")
    with pytest.raises(UserError, match=message.replace("{", r"\{").replace("}", r"\}")) as e:
        parse_suite(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_selection_per_stack_and_unknown_names(tmp_path: Path) -> None:
    cfg = {"test": {"suites": ["uffd-unit-tests"], "stacks": {"other": {"suites": ["uffd-move-tests"]}}}}
    assert [s.name for s in plan_for(None, cfg, "mine").suites] == ["uffd-unit-tests"]
    assert [s.name for s in plan_for(None, cfg, "other").suites] == ["uffd-move-tests"]
    assert [s.name for s in plan_for(None, cfg, "mine", suites=[]).suites] == []
    none = plan_for(None, {}, "mine")
    assert not none.suites and "set [test] suites" in none.reason
    assert [p.name for p in none.fragments] == ["base.config"]
    with pytest.raises(UserError, match="unknown test suite 'nope'"):
        plan_for(None, {"test": {"suites": ["nope"]}}, "mine")
    with pytest.raises(UserError, match="unknown config fragment 'nope'"):
        plan_for(None, {"test": {"config": ["nope"]}}, "mine")
    with pytest.raises(UserError, match="must be a list of strings"):
        plan_for(None, {"test": {"suites": "uffd-unit-tests"}}, "mine")


def test_placeholders_and_guest_names() -> None:
    assert expand(("cc", "{sources}", "-o", "{out}/x", "-I{src}"), {"out": "/o", "src": "/s"}, ["a.c", "b.c"]) == \
        ["cc", "a.c", "b.c", "-o", "/o/x", "-I/s"]
    one = Suite(name="uffd-unit-tests", file=Path("/x.toml"), parser="uffd-unit", expect=("move",))
    many = Suite(name="kt", file=Path("/y.toml"))
    built = [BuiltSuite(one, "built", [BuiltProgram(one.name, "uffd-unit-tests", Path("/b/uffd-unit-tests"), ("-f", "move"))]),
             BuiltSuite(many, "built", [BuiltProgram("kt", "kt-pte", Path("/b/kt-pte")),
                                        BuiltProgram("kt", "kt-thp", Path("/b/kt-thp"))]),
             BuiltSuite(many, "skip", reason="absent")]
    gts = guest_tests(built)
    assert [(g.name, g.args, g.parser, g.guest_path) for g in gts] == [
        ("uffd-unit-tests", "-f move", "uffd-unit", "/tests/uffd-unit-tests/uffd-unit-tests"),
        ("kt/kt-pte", "", "ktap", "/tests/kt/kt-pte"), ("kt/kt-thp", "", "ktap", "/tests/kt/kt-thp")]
    assert gts[0].expect == ("move",)
