"""engine.try_mutant, the one way `series mutate` and bench/mutants try a
mutant, with make, objdump and qemu replaced by fakes that follow the source:
each verdict (does not compile, object unchanged, killed by which suite,
survived, not built) and the source restored after every one of them; and a
mutation of several files undone after a killed process, old marker included."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from series.mutate import engine
from series.mutate.engine import Bed, Options, base_objects, mutated_files, try_mutant, undo_stale
from series.pipeline.result import StageResult
from series.stages.boot import BootResult
from series.stages.build import BuildDir, BuildStep
from series.stages import ktap

A = "int a(int x)\n{\n\t/* a comment */\n\treturn x + 1;\n}\n"
B = "int b(void)\n{\n\treturn 0;\n}\n"


class FakeSuite:
    def __init__(self, name: str) -> None:
        self.name = name


@pytest.fixture
def bed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bed:
    """A build directory with a.c and b.c; `make X.o` writes the source without
    comments (so a comment-only change leaves the object equal), fails on
    `SYNTAX`; `make bzImage` concatenates the sources.  Suite s1 fails its test
    when the kernel holds `BROKEN`, s2 never fails; a kernel holding `GONE`
    reports no test at all."""
    bd = BuildDir(tmp_path / "bd")
    bd.src.mkdir(parents=True)
    bd.obj.mkdir(parents=True)
    (bd.src / "a.c").write_text(A)
    (bd.src / "b.c").write_text(B)
    calls: list[str] = []

    def build_kernel(src: Path, obj: Path, *, log: Path, target: str = "bzImage", **_: Any) -> BuildStep:
        calls.append(target)
        if target.endswith(".o"):
            text = (src / (target[:-2] + ".c")).read_text()
            if "SYNTAX" in text:
                return BuildStep(ok=False, duration_s=0.0, log=log, returncode=2, error_lines=["a.c:1: error"])
            (obj / target).write_text(re.sub(r"/\*.*?\*/", "", text))
        else:
            bz = obj / "arch" / "x86" / "boot" / "bzImage"
            bz.parent.mkdir(parents=True, exist_ok=True)
            bz.write_text((src / "a.c").read_text() + (src / "b.c").read_text())
        return BuildStep(ok=True, duration_s=0.0, log=log, returncode=0)

    def boot_and_test(bz: Path, suites: list[Any], *, work_dir: Path, **_: Any) -> BootResult:
        kernel = bz.read_text()
        s = suites[0].name
        tests = [] if "GONE" in kernel else \
            [ktap.TestCase(f"{s}/p/t", "fail" if s == "s1" and "BROKEN" in kernel else "pass")]
        st = StageResult(name="test", status="pass", summary="")  # type: ignore[arg-type]
        return BootResult(stage=st, accel="tcg", problems=[], tests=tests, log=work_dir / "console.log")

    monkeypatch.setattr("series.stages.build.build_kernel", build_kernel)
    monkeypatch.setattr("series.stages.boot.boot_and_test", boot_and_test)
    monkeypatch.setattr(engine, "objdump", lambda p: p.read_text() if p.is_file() else None)
    (bd.obj / "a.o").write_text("stale")     # base_objects compiles them again
    (bd.obj / "b.o").write_text("stale")
    suites: dict[str, Any] = {"s1": FakeSuite("s1"), "s2": FakeSuite("s2")}
    b = Bed(bd=bd, built=suites, cache=None,  # type: ignore[arg-type]
            opts=Options(), say=lambda _m: None)
    b.baseline = {s: {"pass": [f"{s}/p/t"], "fail": [], "boot_s": 1.0} for s in ("s1", "s2")}
    base_objects(b, ["a.c", "b.c", "c.c"], tmp_path)
    b.calls = calls  # type: ignore[attr-defined]
    return b


def restored(b: Bed) -> bool:
    return ((b.bd.src / "a.c").read_text() == A and (b.bd.src / "b.c").read_text() == B
            and not list(b.bd.root.glob("mutating*")))


def test_each_verdict_and_the_source_restored(bed: Bed, tmp_path: Path) -> None:
    assert bed.base_objs["a.c"] == A.replace("/* a comment */", "") and bed.base_objs["c.c"] is None
    cases = {
        "compile": ({"a.c": A.replace("x + 1", "x SYNTAX")}, "skipped", "does not compile"),
        "unchanged": ({"a.c": A.replace("a comment", "another comment")}, "skipped", "object unchanged"),
        "killed": ({"a.c": A.replace("x + 1", "BROKEN")}, "killed", None),
        "survived": ({"a.c": A.replace("x + 1", "x - 1")}, "survived", None),
        "two-files": ({"a.c": A.replace("a comment", "x"), "b.c": B.replace("0", "BROKEN")}, "killed", None),
        "gone": ({"b.c": B.replace("0", "GONE")}, "killed", None),
        "not-built": ({"c.c": "int c;\n"}, "skipped", "not built"),
    }
    out = {}
    for mid, (texts, status, kind) in cases.items():
        r = try_mutant(bed, mid, texts, tmp_path / "m" / mid)
        assert restored(bed), mid
        assert r["status"] == status and r.get("reason_kind") == kind, (mid, r)
        out[mid] = r
    assert out["killed"]["killed_by"] == ["s1"] and out["killed"]["suites"]["s1"]["why"] == ["p/t"]
    assert out["killed"]["suites"]["s2"]["killed"] is False
    assert out["survived"]["killed_by"] == []
    assert out["gone"]["killed_by"] == ["s1", "s2"] and out["gone"]["suites"]["s2"]["why"] == ["p/t not run"]
    # a skipped mutant is never linked or booted: make bzImage ran only for the four that booted
    assert bed.calls.count("bzImage") == 4  # type: ignore[attr-defined]


def test_a_killed_process_is_undone_for_every_file(tmp_path: Path) -> None:
    src, root = tmp_path / "src", tmp_path / "bd"
    src.mkdir()
    root.mkdir()
    (src / "a.c").write_text(A)
    (src / "b.c").write_text(B)
    cm = mutated_files(root, src, "m1", {"a.c": "x\n", "b.c": "y\n"})
    cm.__enter__()               # the process dies inside the block
    assert (src / "a.c").read_text() == "x\n" and (src / "b.c").read_text() == "y\n"
    assert undo_stale(root, src) == "a.c, b.c"
    assert (src / "a.c").read_text() == A and (src / "b.c").read_text() == B and not list(root.iterdir())
    # the marker an older series wrote (one file, mutating.orig) is undone too
    (src / "a.c").write_text("x\n")
    (root / "mutating.orig").write_text(A)
    (root / "mutating.json").write_text(json.dumps({"file": "a.c", "mutant": "old"}))
    assert undo_stale(root, src) == "a.c" and (src / "a.c").read_text() == A and not list(root.iterdir())
