"""Changes the compiler cannot see (series/stages/neutral.py): the reader's verdicts on
texts written here, each kind of change that must stay CHANGED, the config guard, and
the MOVED proof with the real gcc on a small tree of ours (kbuild-style .cmd files)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import git
from series.stages.neutral import Keep, Verdict, compare, config_allows, dependents, shape

HEADER = """\
/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _DEMO_H
#define _DEMO_H

/*
 * What the move reports.
 */
#define MODE_A (1 << 0) /* wake */
#define MODE_B (1 << 1)

struct demo {
	int src;	/* where from */
	long move;
};

static inline int demo_line(void)
{
	return __LINE__;
}
#endif
"""


@pytest.mark.parametrize("new", [
    HEADER.replace("What the move reports.", "What the mvoe reports, in bytes."),     # a reworded comment
    HEADER + "/* appended */\n",                                                    # a comment at the end
    HEADER.replace("#define MODE_B (1 << 1)", "#define MODE_B (1 << 1)   "),      # trailing blanks
    HEADER.replace("/* wake */", "/* wake the dst range up */"),                   # a comment after a directive
    HEADER.replace("#define MODE_B (1 << 1)\n", "#define MODE_B   (1 << 1)\n"),    # blanks inside a #define
    HEADER.replace("#define MODE_A (1 << 0) /* wake */\n#define MODE_B (1 << 1)\n\n",
                   "/* modes */\n#define MODE_A (1 << 0)\n#define MODE_B (1 << 1)\n"),  # directives moved, code not
])
def test_the_same_code_on_the_same_lines_is_same(new: str) -> None:
    assert compare(HEADER, new) is Verdict.SAME


@pytest.mark.parametrize("new", [
    HEADER.replace(" * What the move reports.\n", " * What the move reports:\n * bytes, or an error.\n"),
    "/* a new first line */\n" + HEADER,
])
def test_a_comment_that_moves_code_lines_is_moved(new: str) -> None:
    assert compare(HEADER, new) is Verdict.MOVED


@pytest.mark.parametrize("old,new", [
    (HEADER, HEADER.replace("long move;", "long moved;")),                       # a token
    (HEADER, HEADER.replace("\tint src;", "\tint  src;")),                       # a column in code
    (HEADER, HEADER.replace("\tint src;\t/* where from */", "\tint /**/src;")),  # a comment before a token
    ('const char *s = "a  b";\n', 'const char *s = "a b";\n'),                  # blanks in a literal
    ('const char *s = "a /* b */ c";\n', 'const char *s = "a   c";\n'),         # a "comment" in a literal
    ("int ab;\n", "int a/**/b;\n"),                                              # a comment splits a token
    ("#define X 1 /* a\n b */ + 2\nint y = X;\n", "#define X 1 /* a b */\n + 2\nint y = X;\n"),  # a comment joins
    ("// note\nint x;\n", "// note \\\nint x;\n"),                                # a splice comments the next line out
    ("#include <a//b.h>\n", "#include <a//c.h>\n"),                              # "//" in a header name
    ("int x;\n", "int x;\nchar c = 'a;\n"),                                       # an unterminated literal
    ("int x;\n", "/* never closed\nint x;\n"),
    ("#define A(x) x\n", "#define A (x) x\n"),                                    # function-like or not
    (HEADER, HEADER.replace("#endif\n", "")),                                     # a directive gone
])
def test_anything_else_is_changed(old: str, new: str) -> None:
    assert compare(old, new) is Verdict.CHANGED


def test_a_directive_whose_line_matters_may_not_move() -> None:
    old = "#if __LINE__ > 3\nint x;\n#endif\n"
    assert compare(old, "/* c */\n" + old) is Verdict.CHANGED
    assert compare("#pragma once\n", "\n#pragma once\n") is Verdict.CHANGED
    ifdef = "#ifdef X\nint x;\n#endif\n"
    moved_directive = "/* c */\n#if defined(X)\n#endif\nint y;\n"
    assert compare("#if defined(X)\n#endif\n\nint y;\n", moved_directive) is Verdict.SAME
    assert shape(ifdef) is not None


def test_config_guard() -> None:
    assert config_allows("CONFIG_MMU=y\n", Verdict.SAME) and config_allows("CONFIG_MMU=y\n", Verdict.MOVED)
    assert not config_allows("CONFIG_IKHEADERS=m\n", Verdict.SAME)       # raw headers are in the kernel
    assert config_allows("CONFIG_DEBUG_INFO=y\n", Verdict.SAME)          # lines and columns unchanged
    assert not config_allows("CONFIG_DEBUG_INFO=y\n", Verdict.MOVED)     # line tables move
    assert not config_allows("CONFIG_UBSAN=y\n", Verdict.MOVED)
    assert not config_allows("CONFIG_X=y\n", Verdict.CHANGED)


# -- the MOVED proof, with gcc --------------------------------------------------------
@pytest.fixture
def tree(tmp_path: Path) -> dict:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is not installed (tools/setup installs it)")
    src, obj = tmp_path / "src", tmp_path / "obj"
    src.mkdir()
    obj.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "demo.h").write_text(HEADER)
    (src / "u.c").write_text('#include "demo.h"\nint f(void) { return demo_line() + MODE_B; }\n')
    (src / "v.c").write_text("int g(void) { return 1; }\n")
    git(src, "add", ".")
    git(src, "commit", "-qm", "base")

    def cmd(target: str, source: str, deps: list[str], command: str | None = None) -> None:
        c = command or f"gcc -Wp,-MMD,.{target}.d -O2 -c -o {target} {src}/{source}"
        body = f"savedcmd_{target} := {c}\n\nsource_{target} := {src}/{source}\n\ndeps_{target} := \\\n"
        body += "".join(f"  {src}/{d} \\\n" for d in deps) + "\n"
        where = obj / target
        where.parent.mkdir(parents=True, exist_ok=True)
        (where.parent / f".{where.name}.cmd").write_text(body)
        os.system(f"cd {obj} && {c}")   # the object, as make would have left it
    cmd("u.o", "u.c", ["u.c", "demo.h"])
    cmd("v.o", "v.c", ["v.c"])
    t: dict = {"src": src, "obj": obj, "base": git(src, "rev-parse", "HEAD").strip(), "cmd": cmd}

    def commit(text: str) -> str:
        """A commit on the base with this header; the worktree is left at the base."""
        git(src, "checkout", "-q", "--detach", t["base"])
        (src / "demo.h").write_text(text)
        git(src, "commit", "-qam", "respin")
        c = git(src, "rev-parse", "HEAD").strip()
        git(src, "checkout", "-q", "--detach", t["base"])
        return c
    t["commit"] = commit
    return t


def _step(t: dict, commit: str) -> tuple[Keep, int]:
    """Keep.plan, the checkout, Keep.settle: as a build step does it; the header's mtime before."""
    src, obj = t["src"], t["obj"]
    mtime = (src / "demo.h").stat().st_mtime_ns
    keep = Keep.plan(src, src, obj, t["base"], commit, ["demo.h"], config_text="CONFIG_MMU=y\n", jobs=2,
                     env=dict(os.environ), sandbox=None)
    git(src, "checkout", "-q", "--detach", commit)
    keep.settle(src, obj, jobs=2, env=dict(os.environ), sandbox=None)
    return keep, mtime


def test_a_moved_line_that_no_object_reads_is_proven_neutral(tree: dict) -> None:
    # lines added above the struct: the code moves, but nothing expands __LINE__ above demo_line()
    new = HEADER.replace("struct demo {", "/*\n * Two more lines.\n */\nstruct demo {").replace(
        "\treturn __LINE__;", "\treturn 19;")
    old = HEADER.replace("\treturn __LINE__;", "\treturn 19;")
    t = tree
    git(t["src"], "checkout", "-q", "--detach", t["base"])
    (t["src"] / "demo.h").write_text(old)
    git(t["src"], "commit", "-qam", "no __LINE__")
    t["base"] = git(t["src"], "rev-parse", "HEAD").strip()
    c = t["commit"](new)
    assert compare(old, new) is Verdict.MOVED
    keep, mtime = _step(t, c)
    assert keep.proven and keep.all_neutral and [u.target for u in keep.units] == ["u.o"]
    assert (t["src"] / "demo.h").stat().st_mtime_ns == mtime         # make will not compile u.o
    assert (t["src"] / "demo.h").read_text() == new                   # the worktree has the new text


def test_a_moved_line_under_LINE_is_caught_by_the_proof(tree: dict) -> None:
    new = HEADER.replace("struct demo {", "/*\n * Two more lines.\n */\nstruct demo {")
    assert compare(HEADER, new) is Verdict.MOVED
    keep, mtime = _step(tree, tree["commit"](new))
    assert not keep.proven and not keep.all_neutral and keep.real == ["demo.h"]
    assert (tree["src"] / "demo.h").stat().st_mtime_ns > mtime        # the checkout's: make compiles u.o


def test_a_reader_of_the_raw_text_blocks_the_proof_and_installed_copies_go(tree: dict) -> None:
    t = tree
    (t["obj"] / "usr" / "include").mkdir(parents=True)
    t["cmd"]("usr/include/demo.h", "demo.h", ["demo.h"], command=f"cp {t['src']}/demo.h usr/include/demo.h")
    d = dependents(t["obj"], t["src"], ["demo.h"])
    assert d.installed == ["usr/include/demo.h"] and [u.target for u in d.units] == ["u.o"] and d.other == []
    t["cmd"]("gen.s", "demo.h", ["demo.h"], command=f"awk 1 {t['src']}/demo.h > gen.s")   # not a compiler
    assert dependents(t["obj"], t["src"], ["demo.h"]).other == ["gen.s"]
    new = HEADER.replace("struct demo {", "/* one */\nstruct demo {").replace("\treturn __LINE__;", "\treturn 1;")
    keep, _ = _step(t, t["commit"](new))
    assert keep.moved == [] and keep.real == ["demo.h"] and keep.units == []     # no proof attempted
    # a SAME change: the installed copy is deleted, so `make headers` copies the new text
    (t["obj"] / ".gen.s.cmd").unlink()
    git(t["src"], "checkout", "-q", "--detach", t["base"])
    keep, mtime = _step(t, t["commit"](HEADER.replace("What the move", "What the MOVE")))
    assert keep.same == ["demo.h"] and keep.all_neutral
    assert not (t["obj"] / "usr" / "include" / "demo.h").exists()
    assert (t["src"] / "demo.h").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("macros,proven", [
    ("#define HERE() at(0)\n", True),
    ("#define HERE() at(__LINE__)\n", False),                              # a macro reaches __LINE__
    ("#define WHERE __LINE__\n#define HERE() at(WHERE)\n", False),         # through another macro
    ("#define CAT(a, b) a##b\n#define HERE() CAT(at, 0)\n", False),         # a paste may make any name
    ("#define HERE() at(__builtin_LINE())\n", False),
])
def test_a_macro_of_the_object_that_reaches_LINE_blocks_the_proof(tree: dict, macros: str, proven: bool) -> None:
    """The header's code calls HERE(); what HERE is, the object that includes it says."""
    t = tree
    body = HEADER.replace("\treturn __LINE__;", "\treturn HERE();")
    git(t["src"], "checkout", "-q", "--detach", t["base"])
    (t["src"] / "demo.h").write_text(body)
    (t["src"] / "u.c").write_text("int at(int);\n" + macros + '#include "demo.h"\nint f(void) { return demo_line(); }\n')
    git(t["src"], "commit", "-qam", "HERE")
    t["base"] = git(t["src"], "rev-parse", "HEAD").strip()
    keep, mtime = _step(t, t["commit"](body.replace("struct demo {", "/*\n * More.\n */\nstruct demo {")))
    assert keep.proven is proven and keep.all_neutral is proven, keep.why_not
    assert ((t["src"] / "demo.h").stat().st_mtime_ns == mtime) is proven
    if not proven:
        assert keep.why_not == "its code uses HERE, which may expand __LINE__", keep.why_not
