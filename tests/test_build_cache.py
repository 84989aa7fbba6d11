"""Warm builds without a kernel: build_series on a small repository of ours with
a fake `make` on PATH (it "compiles" each .c whose object is older, and
writes a bzImage), to pin what is built, what is reused (`cached`), what a
patch that changes no build input gets, --rebuild, the recorded object count
that gives the progress bar its total, and the suites' and headers' reuse.
The real kernel is in test_ci_all_e2e.py."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from conftest import git
from series.stages.build import (BuildDir, build_series, build_suites, changed_paths, install_headers,
                                 is_build_input, toolchain)

FAKE_MAKE = r'''#!PYTHON
import os, sys, pathlib
args = sys.argv[1:]
log = os.environ["FAKE_MAKE_LOG"]
with open(log, "a") as f:
    f.write(" ".join(a for a in args if not a.startswith(("-C", "O=", "-j", "CC="))) + "\n")
src = pathlib.Path(args[args.index("-C") + 1])
obj = pathlib.Path(next(a[2:] for a in args if a.startswith("O=")))
target = args[-1]
obj.mkdir(parents=True, exist_ok=True)
if target in ("tinyconfig", "olddefconfig"):
    (obj / ".config").touch()
    sys.exit(0)
if target == "headers":
    (obj / "usr" / "include").mkdir(parents=True, exist_ok=True)
    sys.exit(0)
built = False
for c in sorted(src.rglob("*.c")):
    rel = c.relative_to(src)
    if rel.parts[0] == "tools":
        continue
    o = obj / rel.with_suffix(".o")
    if not o.exists() or o.stat().st_mtime_ns < c.stat().st_mtime_ns:
        print(f"  CC      {rel.with_suffix('.o')}", flush=True)
        if "#error" in c.read_text():   # like gcc: no object
            print(f"{rel}:1:1: error: #error", flush=True)
            sys.exit(2)
        o.parent.mkdir(parents=True, exist_ok=True)
        o.write_text(c.read_text())
        if "warn" in c.read_text():
            print(f"{rel}:2:1: warning: unused variable 'x' [-Wunused-variable]", flush=True)
        built = True
bz = obj / "arch" / "x86" / "boot" / "bzImage"
if built or not bz.exists():
    bz.parent.mkdir(parents=True, exist_ok=True)
    bz.write_text("".join(p.read_text() for p in sorted(obj.rglob("*.o"))))
    print("  LD      vmlinux", flush=True)
'''


@pytest.fixture
def kernelish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    make = bindir / "make"
    make.write_text(FAKE_MAKE.replace("PYTHON", sys.executable))
    make.chmod(make.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "make.log"
    log.write_text("")
    monkeypatch.setenv("FAKE_MAKE_LOG", str(log))
    repo = tmp_path / "linux"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "scripts" / "kconfig").mkdir(parents=True)
    (repo / "scripts" / "kconfig" / "merge_config.sh").write_text('cat "$5" >> "$4"\n')
    (repo / "mm").mkdir()
    (repo / "mm" / "a.c").write_text("int a;\n")
    (repo / "mm" / "b.c").write_text("int b;\n")
    (repo / "Documentation").mkdir()
    (repo / "Documentation" / "x.rst").write_text("doc\n")
    (repo / "Documentation" / "Kconfig").write_text("# doc options\n")
    (repo / "include" / "uapi").mkdir(parents=True)
    (repo / "include" / "uapi" / "u.h").write_text("#define U 1\n")
    (repo / "tools" / "testing" / "t").mkdir(parents=True)
    (repo / "tools" / "testing" / "t" / "t.c").write_text("int main(void) { return 0; }\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD").strip()

    def commit(path: str, text: str, msg: str) -> str:
        (repo / path).write_text(text)
        git(repo, "commit", "-qam", msg)
        return git(repo, "rev-parse", "HEAD").strip()
    commits = [(1, commit("mm/a.c", "int a = 1;\n", "p1")),
               (2, commit("Documentation/x.rst", "doc, changed\n", "p2: documentation only")),
               (3, commit("mm/b.c", "int b = 3;\n", "p3"))]
    from series.cache import Cache
    cache = Cache(tmp_path / "cache")
    # the fake make lives, and logs, under /tmp, which the build sandbox hides (its own tests: test_sandbox.py)
    bd = BuildDir(cache.build_dir("t", base, "cfg00001"), toolchain(cache, use_ccache=False, sandboxed=False))
    frag = tmp_path / "frag.config"
    frag.write_text("CONFIG_X=y\n")
    return {"repo": repo, "base": base, "commits": commits, "bd": bd, "frag": frag, "log": log, "cache": cache,
            "commit": commit}


def _makes(log: Path) -> list[str]:
    return [ln for ln in log.read_text().splitlines() if ln.endswith("bzImage")]


def test_cold_then_warm_then_rebuild(kernelish: dict) -> None:
    k = kernelish
    ticks: list[tuple[str, int, int | None, str]] = []
    sb = build_series(k["bd"], k["repo"], k["base"], k["commits"], fragment=k["frag"],
                      tick=lambda *a: ticks.append(a))
    items = {i["index"]: i for i in sb.stage.items}
    assert [i["status"] for i in sb.stage.items] == ["pass"] * 4
    assert (items[0]["rebuilt"], items[1]["rebuilt"], items[3]["rebuilt"]) == (2, 1, 1)
    assert not any(items[i]["cached"] for i in (0, 1, 3))
    # patch 2 changes documentation only: the kernel of patch 1, no make
    assert items[2]["cached"] and "no kernel build input changed" in items[2]["cached_from"]
    assert items[2]["rebuilt"] == 0 and items[2]["log"] is None
    assert len(_makes(k["log"])) == 3
    # what each count is relative to: cold, then the step make last ran on (patch 2 ran no make)
    assert [items[i]["built_from"] for i in (0, 1, 3)] == [None, k["base"], k["commits"][0][1]]
    assert sb.bzimage is not None and sb.bzimage.read_text() == "int a = 1;\nint b = 3;\n"
    # the cold base build had no count to go by; its count is now recorded
    assert ("base", 0, None, "make") in ticks and k["bd"].full_object_count() == 2
    # the worktree is left at the last commit (the suites are built from it)
    assert git(k["bd"].src, "rev-parse", "HEAD").strip() == k["commits"][-1][1]

    # warm: every step reused, no make at all, the same kernel
    k["log"].write_text("")
    sb2 = build_series(k["bd"], k["repo"], k["base"], k["commits"], fragment=k["frag"])
    assert all(i["cached"] for i in sb2.stage.items) and sb2.stage.cached
    assert _makes(k["log"]) == []
    assert sb2.bzimage is not None and sb2.bzimage.read_text() == sb.bzimage.read_text()
    assert "(4 of 4 cached)" in sb2.stage.summary

    # --rebuild: make runs for every step again
    sb3 = build_series(k["bd"], k["repo"], k["base"], k["commits"], fragment=k["frag"], rebuild=True)
    assert not any(i["cached"] for i in sb3.stage.items) and len(_makes(k["log"])) == 4


def test_a_respin_rebuilds_only_its_change_and_reuses_the_rest(kernelish: dict) -> None:
    k = kernelish
    build_series(k["bd"], k["repo"], k["base"], k["commits"], fragment=k["frag"])
    # v2: patch 1 and 2 as before, patch 3 respun (same parent: the same trees for 1 and 2)
    git(k["repo"], "checkout", "-q", k["commits"][1][1])
    p3b = k["commit"]("mm/b.c", "int b = 33;\n", "p3 respun")
    k["log"].write_text("")
    sb = build_series(k["bd"], k["repo"], k["base"], [*k["commits"][:2], (3, p3b)], fragment=k["frag"])
    items = {i["index"]: i for i in sb.stage.items}
    assert items[0]["cached"] and items[1]["cached"] and items[2]["cached"]
    assert not items[3]["cached"] and items[3]["rebuilt"] == 1 and len(_makes(k["log"])) == 1
    # patches 1 and 2 were reused, so obj/ was still v1's patch 3: the count is relative to that, and says so
    assert items[3]["built_from"] == k["commits"][-1][1] != items[2]["commit"]
    assert sb.bzimage is not None and "int b = 33;" in sb.bzimage.read_text()


def test_a_respin_that_only_rewords_a_comment_reuses_the_kernel(kernelish: dict) -> None:
    """neutral.py: the same code on the same lines is the same kernel, no make; with a
    config that embeds the raw headers (IKHEADERS) it is built as any change."""
    k = kernelish
    sb1 = build_series(k["bd"], k["repo"], k["base"], k["commits"], fragment=k["frag"])
    git(k["repo"], "checkout", "-q", k["commits"][1][1])
    p3c = k["commit"]("mm/b.c", "int b = 3;\t/* three, as v1 said */\n", "p3: a comment reworded")
    k["log"].write_text("")
    sb = build_series(k["bd"], k["repo"], k["base"], [*k["commits"][:2], (3, p3c)], fragment=k["frag"])
    it = {i["index"]: i for i in sb.stage.items}[3]
    assert it["cached"] and "only comments or whitespace changed: mm/b.c" in it["cached_from"], it
    assert _makes(k["log"]) == []
    assert sb.bzimage is not None and sb1.bzimage is not None and sb.bzimage.read_text() == sb1.bzimage.read_text()

    git(k["repo"], "checkout", "-q", k["commits"][1][1])
    p3d = k["commit"]("mm/b.c", "int b = 3; /* three */\n", "p3: another wording")
    (k["bd"].obj / ".config").write_text("CONFIG_IKHEADERS=y\n")
    sb = build_series(k["bd"], k["repo"], k["base"], [*k["commits"][:2], (3, p3d)], fragment=k["frag"])
    it = {i["index"]: i for i in sb.stage.items}[3]
    assert not it["cached"] and it["rebuilt"] == 1 and len(_makes(k["log"])) == 1


def test_a_comment_only_file_keeps_its_mtime_beside_a_real_change(kernelish: dict) -> None:
    """A step that changes code in one file and only a comment in another: make compiles
    the first only (the second keeps the mtime it had, so its object stays)."""
    k = kernelish
    build_series(k["bd"], k["repo"], k["base"], k["commits"], fragment=k["frag"])
    git(k["repo"], "checkout", "-q", k["commits"][1][1])
    (k["repo"] / "mm" / "a.c").write_text("int a = 1; /* one */\n")
    p3x = k["commit"]("mm/b.c", "int b = 4;\n", "p3: b is 4, a comment on a")
    k["log"].write_text("")
    sb = build_series(k["bd"], k["repo"], k["base"], [*k["commits"][:2], (3, p3x)], fragment=k["frag"])
    it = {i["index"]: i for i in sb.stage.items}[3]
    assert not it["cached"] and it["rebuilt"] == 1 and len(_makes(k["log"])) == 1, it
    # the fake make's kernel is its objects: a.o is still the one compiled before the comment
    assert sb.bzimage is not None and sb.bzimage.read_text() == "int a = 1;\nint b = 4;\n"
    assert (k["bd"].src / "mm" / "a.c").read_text() == "int a = 1; /* one */\n"


def test_a_built_from_commit_gone_from_the_repository_still_builds(kernelish: dict) -> None:
    """obj-state may name a commit git has since pruned (nothing refers to it once the worktree
    moved on): the progress bar's estimate falls back to the worktree's commit, the build goes on."""
    k = kernelish
    build_series(k["bd"], k["repo"], k["base"], k["commits"][:1], fragment=k["frag"])
    gone = "0123456789abcdef" * 2 + "01234567"
    k["bd"].state_file.write_text(gone + "\n")
    ticks: list[tuple[str, int, int | None, str]] = []
    sb = build_series(k["bd"], k["repo"], k["base"], k["commits"], fragment=k["frag"],
                      tick=lambda *a: ticks.append(a))
    items = {i["index"]: i for i in sb.stage.items}
    assert items[3]["status"] == "pass" and items[1]["cached"]
    assert [t for t in ticks if t[0] == "patch 3"][-1][3] == "ok"
    assert k["bd"].built_state() == k["commits"][-1][1]


def test_failures_and_new_warnings_are_not_cached(kernelish: dict) -> None:
    k = kernelish
    bad = [(1, k["commit"]("mm/a.c", "int a, warn;\n", "warn")), (2, k["commit"]("mm/b.c", "#error\n", "break"))]
    sb = build_series(k["bd"], k["repo"], k["base"], bad, fragment=k["frag"])
    items = {i["index"]: i for i in sb.stage.items}
    assert items[1]["status"] == "pass" and items[1]["new_warnings"]
    assert items[2]["status"] == "fail" and sb.stage.status == "fail" and sb.bzimage is None
    k["log"].write_text("")
    sb2 = build_series(k["bd"], k["repo"], k["base"], bad, fragment=k["frag"])
    items2 = {i["index"]: i for i in sb2.stage.items}
    assert items2[1]["cached"] and items2[1]["new_warnings"] == items[1]["new_warnings"]   # the warning is kept
    assert not items2[2]["cached"] and items2[2]["status"] == "fail"                     # a failure is retried
    assert len(_makes(k["log"])) == 1


def test_expected_count_of_a_cold_build_comes_from_the_same_config(kernelish: dict) -> None:
    k = kernelish
    build_series(k["bd"], k["repo"], k["base"], k["commits"][:1], fragment=k["frag"])
    other = BuildDir(k["cache"].build_dir("t", k["commits"][0][1], "cfg00001"), k["bd"].toolchain)
    known = next(n for d in k["cache"].build_dirs_with_config("cfg00001") if (n := BuildDir(d).full_object_count()))
    ticks: list[tuple[str, int, int | None, str]] = []
    build_series(other, k["repo"], k["commits"][0][1], [], fragment=k["frag"], expected_full=known,
                 tick=lambda *a: ticks.append(a))
    assert ("base", 0, 2, "make") in ticks and ("base", 1, 2, "CC mm/a.o") in ticks


def test_build_inputs() -> None:
    assert not is_build_input("Documentation/admin-guide/mm/userfaultfd.rst")
    assert not is_build_input("tools/testing/selftests/mm/uffd-unit-tests.c")
    assert not is_build_input("MAINTAINERS")
    assert is_build_input("Documentation/Kconfig") and is_build_input("Documentation/Makefile")
    assert is_build_input("include/uapi/linux/userfaultfd.h") and is_build_input("tools/objtool/check.c")


def test_suites_and_headers_are_reused(kernelish: dict, tmp_path: Path) -> None:
    from series.suites import Program, Suite
    k = kernelish
    build_series(k["bd"], k["repo"], k["base"], k["commits"], fragment=k["frag"])
    bd = k["bd"]
    suite_file = tmp_path / "t.toml"
    suite_file.write_text("# a suite of ours\n")
    suite = Suite(name="t", file=suite_file, source_kind="tree", source_path="tools/testing/t",
                  command=("cc", "-static", "-o", "{out}/t", "{suite_dir}/t.c"), programs=(Program("t"),))
    out1 = tmp_path / "run1"
    b1 = build_suites(bd.src, bd.obj, out1, (suite,), log_dir=out1, tc=bd.toolchain, record_dir=bd.suite_results)
    assert b1[0].status == "built" and not b1[0].cached
    k["log"].write_text("")
    out2 = tmp_path / "run2"
    b2 = build_suites(bd.src, bd.obj, out2, (suite,), log_dir=out2, tc=bd.toolchain, record_dir=bd.suite_results)
    assert b2[0].cached and b2[0].programs[0].path == out2 / "t" / "t" and b2[0].programs[0].path.is_file()
    assert k["log"].read_text() == ""                      # no `make headers` either
    # the suite's source changes: built again; the headers' inputs did not: no `make headers`
    git(k["repo"], "checkout", "-q", k["commits"][-1][1])
    c = k["commit"]("tools/testing/t/t.c", "int main(void) { return 1; }\n", "test changed")
    git(bd.src, "checkout", "-q", "--detach", c)
    out3 = tmp_path / "run3"
    b3 = build_suites(bd.src, bd.obj, out3, (suite,), log_dir=out3, tc=bd.toolchain, record_dir=bd.suite_results)
    assert not b3[0].cached and b3[0].status == "built"
    assert "headers" not in k["log"].read_text()
    # a uapi header changes: make headers runs again
    c = k["commit"]("include/uapi/u.h", "#define U 2\n", "uapi")
    git(bd.src, "checkout", "-q", "--detach", c)
    install_headers(bd.src, bd.obj, log=tmp_path / "h.log", tc=bd.toolchain)
    assert "headers" in k["log"].read_text()
    assert set(changed_paths(k["repo"], k["base"], c)) == {"Documentation/x.rst", "include/uapi/u.h", "mm/a.c",
                                                           "mm/b.c", "tools/testing/t/t.c"}


def test_expected_objects_from_kbuild_dependencies(tmp_path: Path) -> None:
    """The incremental bar's total: objects whose recorded dependencies name a changed file."""
    from series.stages.build import expected_objects
    obj = tmp_path / "obj"
    (obj / "mm").mkdir(parents=True)
    (obj / "fs").mkdir()
    (obj / "mm" / ".userfaultfd.o.cmd").write_text(
        "savedcmd_mm/userfaultfd.o := gcc ...\nsource_mm/userfaultfd.o := /k/src/mm/userfaultfd.c\n"
        "deps_mm/userfaultfd.o := \\\n  /k/src/include/uapi/linux/userfaultfd.h \\\n")
    (obj / "fs" / ".userfaultfd.o.cmd").write_text(
        "source_fs/userfaultfd.o := /k/src/fs/userfaultfd.c\ndeps_fs/userfaultfd.o := \\\n"
        "  /k/src/include/uapi/linux/userfaultfd.h \\\n")
    (obj / "mm" / ".memory.o.cmd").write_text("source_mm/memory.o := /k/src/mm/memory.c\n")
    assert expected_objects(obj, ["include/uapi/linux/userfaultfd.h"]) == 2
    assert expected_objects(obj, ["mm/userfaultfd.c"]) == 1
    assert expected_objects(obj, ["Documentation/x.rst"]) == 0 and expected_objects(obj, []) == 0


def test_a_kept_mtime_survives_the_next_steps_checkout(kernelish: dict) -> None:
    """The worktree moves by forced checkouts, which rewrite a file whose stat differs from the
    index's: a file whose mtime was set back must be restated, or the next step compiles it."""
    k = kernelish
    build_series(k["bd"], k["repo"], k["base"], k["commits"], fragment=k["frag"])
    git(k["repo"], "checkout", "-q", k["base"])
    p1 = k["commit"]("mm/a.c", "int a = 1; /* one */\n", "p1: a comment more")
    p2 = k["commit"]("Documentation/x.rst", "doc, v2\n", "p2")
    p3 = k["commit"]("mm/b.c", "int b = 4;\n", "p3: b is 4")
    sb = build_series(k["bd"], k["repo"], k["base"], [(1, p1), (2, p2), (3, p3)], fragment=k["frag"])
    items = {i["index"]: i for i in sb.stage.items}
    assert items[1]["rebuilt"] == 1 and items[3]["rebuilt"] == 1, items   # b.c each time; a.c never
    assert sb.bzimage is not None and sb.bzimage.read_text() == "int a = 1;\nint b = 4;\n"


def test_the_toolchain_identity_follows_the_programs_path_finds(kernelish: dict, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """The identity (part of every recorded result's key) is computed once per process: per the
    make, ld and compiler that PATH finds, not per compiler name (a fake make earlier in one
    process once gave a later real build another identity than a second process's)."""
    k = kernelish
    fake = toolchain(k["cache"], use_ccache=False, sandboxed=False).ident      # the fake make is first on PATH
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                               if p != str(tmp_path / "bin")))
    real = toolchain(k["cache"], use_ccache=False, sandboxed=False).ident
    assert fake != real
