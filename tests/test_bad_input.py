"""More bad input (issue 11, item 11 and 13): what the audit of the corpus in
test_hostile.py found uncovered or wrong.  Each case ends in exit 1 with one
`series: error:` line and no traceback, the workspace byte-identical before and
after, no run directory made, and a cache the next run trusts.

Found wrong by the audit (each of these failed before its fix):
- an empty --tree (`--tree ''`) was ignored silently: the default tree was used;
- `edit --onto ''` and `mail --base ''` were ignored silently (the revision's
  recorded base was used);
- `ci --all` with an unknown --tree, an --onto that is no ref, or an empty --onto
  reported every revision `skip` and exited 0 (the user's mistake as a result).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import git, run_series
from mailfactory import series_mails, write_mbox
from safety import SmallStack, assert_refused, cache_problems, run_proc, small_stack, tree_hash

_MAIL = ["mail", "demo", "v1", "--tree", "mini", "--base", "main", "--to", "Maint <maint@example.org>",
         "--no-get-maintainer"]


@dataclass
class Case:
    args: list[str]
    needle: str
    env: dict[str, str] = field(default_factory=dict)
    proc: bool = False
    stdout: str | None = None
    not_in: str | None = None         # a phrase the line must not hold (wrong advice)


def _cache_file(inputs: Path) -> dict[str, str]:
    f = inputs / "cachefile"
    f.write_text("not a cache\n")
    return {"SERIES_CACHE": str(f)}


def _binary_workspace_template(ws: Path) -> None:
    (ws / "templates").mkdir(exist_ok=True)
    (ws / "templates" / "cover.j2").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))


def _long_patch_subject(ws: Path, inputs: Path, st: SmallStack) -> list[str]:
    """v5 whose patch 1 has a 200 KB subject (imported: the mail parses), then mailed."""
    msgs = series_mails(2, version=5)
    subj = str(msgs[1]["Subject"])
    del msgs[1]["Subject"]
    msgs[1]["Subject"] = subj + " " + "x" * 200_000
    r = run_series("-C", str(ws), "import", "demo", "--mbox", str(write_mbox(inputs / "long.mbox", msgs)),
                   env=st.env())
    assert r.rc == 0, r.err
    return ["mail", "demo", "v5", "--tree", "mini", "--base", "main", "--to", "m@example.org", "--no-get-maintainer",
            "-o", str(inputs / "out")]


# name -> (workspace, inputs, stack) -> Case
CASES: dict[str, Callable[[Path, Path, SmallStack], Case]] = {
    # empty values (item 13: "an --onto '' argument is ignored silently"; the same for --tree, --base)
    "apply_tree_empty": lambda ws, i, st: Case(["apply", "demo", "v1", "--tree", "", "--onto", "main"],
                                               "--tree needs a name (it is empty)"),
    "ci_tree_empty": lambda ws, i, st: Case(["ci", "demo", "v1", "--stages", "apply", "--tree", " ", "--onto", "main"],
                                            "--tree needs a name (it is empty)"),
    "emit_tree_empty": lambda ws, i, st: Case(["ci", "demo", "--emit", "gitlab", "--tree", "", "--onto", "main"],
                                              "--tree needs a name (it is empty)"),
    "rebase_tree_empty": lambda ws, i, st: Case(["rebase", "demo", "main", "--tree", ""],
                                                "--tree needs a name (it is empty)"),
    "edit_onto_empty": lambda ws, i, st: Case(["edit", "demo", "--tree", "mini", "--onto", ""],
                                              "--onto needs a ref (it is empty)"),
    "mail_base_empty": lambda ws, i, st: Case([*_MAIL[:5], "--base", "", *_MAIL[7:], "-o", str(i / "o")],
                                              "--base needs a ref (it is empty)"),
    "ci_all_onto_empty": lambda ws, i, st: Case(["ci", "demo", "--all", "--stages", "apply", "--tree", "mini",
                                                 "--onto", ""], "--onto needs a ref (it is empty)"),
    # ci --all: a mistake every revision would share is refused once
    "ci_all_unknown_tree": lambda ws, i, st: Case(["ci", "demo", "--all", "--stages", "apply", "--tree", "nosuch",
                                                   "--onto", "main"], "unknown kernel tree 'nosuch'"),
    "ci_all_onto_no_ref": lambda ws, i, st: Case(["ci", "demo", "--all", "--stages", "apply", "--tree", "mini",
                                                  "--onto", "no/such/ref"], "unknown ref 'no/such/ref'"),
    # -o in /proc or /sys, for every command that writes a directory
    "ci_output_in_proc": lambda ws, i, st: Case(["ci", "demo", "v1", "--stages", "apply", "--tree", "mini",
                                                 "--onto", "main", "-o", "/proc/series-out"], "/proc/series-out"),
    "ci_output_in_sys": lambda ws, i, st: Case(["ci", "demo", "v1", "--stages", "apply", "--tree", "mini",
                                                "--onto", "main", "-o", "/sys/series-out"], "/sys/series-out"),
    "report_output_in_proc": lambda ws, i, st: Case(["report", "-o", "/proc/series-out"], "/proc/series-out"),
    "mail_force_over_proc": lambda ws, i, st: Case([*_MAIL, "-o", "/proc/self/fd", "--force"], "did not write"),
    # SERIES_CACHE is a file: named, for every command; never "run series tree add"
    **{f"cache_is_a_file_{'_'.join(a[:2])}": (lambda a: lambda ws, i, st: Case(
        a, "SERIES_CACHE", env=_cache_file(i), not_in="tree add"))(a)
       for a in (["list"], ["show", "demo"], ["tree", "list"], ["report"], ["edit", "demo", "--onto", "main"],
                 ["rebase", "demo", "main"], ["ci", "demo", "--all", "--stages", "apply", "--onto", "main"])},
    # stdout to /dev/full, for more commands
    **{f"stdout_to_dev_full_{a[0]}": (lambda a: lambda ws, i, st: Case(
        a, "cannot write to standard output", proc=True, stdout="/dev/full"))(a)
       for a in (["cover", "demo", "v1"], ["diff", "demo", "v1", "v1"], ["changelog", "demo", "v1"],
                 ["tree", "list"], ["report", "--json", "-o", "REPORT"])},
    # non-ASCII addresses anywhere, a binary workspace template in mail, a 200 KB patch subject
    "mail_to_non_ascii": lambda ws, i, st: Case([*_MAIL[:7], "--to", "Zoë <zoë@exämple.org>", "--no-get-maintainer",
                                                 "-o", str(i / "o")], "is not ASCII"),
    "mail_cc_non_ascii": lambda ws, i, st: Case([*_MAIL, "--cc", "ü@ü.de", "-o", str(i / "o")], "is not ASCII"),
    "mail_binary_workspace_template": lambda ws, i, st: (_binary_workspace_template(ws), Case(
        [*_MAIL, "-o", str(i / "o")], "a binary file, not a jinja2 template"))[1],
    "mail_patch_subject_of_200k": lambda ws, i, st: Case(_long_patch_subject(ws, i, st), "998"),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> SmallStack:
    return small_stack(tmp_path_factory.mktemp("bad-input"))


def _runs(cache: Path) -> list[str]:
    d = cache / "runs"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, template: SmallStack, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(template.ws, ws, symlinks=True)
    inputs = tmp_path / "in"
    inputs.mkdir()
    c = CASES[name](ws, inputs, template)
    c.args = [str(inputs / "report") if a == "REPORT" else a for a in c.args]
    before, runs = tree_hash(ws), _runs(template.cache)
    env = {**template.env(), **c.env}
    if c.proc:
        r = run_proc(["-C", str(ws), "--quiet", *c.args], env=env, stdout_path=c.stdout)
    else:
        r = run_series("-C", str(ws), "--quiet", *c.args, env=env)
    assert_refused(r, 1, c.needle)
    if c.not_in:
        assert c.not_in not in r.err, r.err
    assert tree_hash(ws) == before, "the workspace changed"
    # A refusal before the run began leaves no run directory; one during the run
    # (mail's cover template) leaves a finished results.json that says the same.
    for new in sorted(set(_runs(template.cache)) - set(runs)):
        res = json.loads((template.cache / "runs" / new / "results.json").read_text())
        assert res["status"] == "error" and res["finished"] and res["error"] in r.err, (new, res)
    assert cache_problems(template.cache, ws) == []
    # the next ordinary run works on that cache
    r = run_series("-C", str(ws), "apply", "demo", "v1", "--onto", "main", "--tree", "mini", env=template.env())
    assert r.rc == 0, r.err


def test_an_empty_onto_is_not_replaced_by_the_recorded_base(tmp_path: Path) -> None:
    """The silent case of item 13: a revision that records its base (as `series
    record` writes it) must not be edited or mailed on that base when the user
    passed an empty one."""
    st = small_stack(tmp_path / "s")
    base = git(st.repo, "rev-parse", "main").strip()
    manifest = st.ws / "patches" / "demo" / "stack.toml"
    manifest.write_text(manifest.read_text().replace("version = 1\n", f'version = 1\nbase = "{base}"\n', 1))
    assert run_series("-C", str(st.ws), "show", "demo", "--json", env=st.env()).json["revisions"][0]["base"] == base
    assert_refused(st.series("edit", "demo", "--onto", ""), 1, "--onto needs a ref (it is empty)")
    assert_refused(st.series("--quiet", *_MAIL[:5], "--base", "", *_MAIL[7:], "-o", str(tmp_path / "o")), 1,
                   "--base needs a ref (it is empty)")
    assert not (tmp_path / "o").exists()


# Item 13: "Imported revision directories are mode 0700": every revision directory
# series writes (import, record, rebase) follows the umask, as its files do.
def test_revision_directories_of_record_and_rebase_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        st = small_stack(tmp_path / "s", n=2)
        r = st.series("edit", "demo", "--onto", "main", "--json")
        assert r.rc == 0, r.err
        wt = Path(r.json["worktree"])
        (wt / "mm" / "demo1.c").write_text((wt / "mm" / "demo1.c").read_text() + "int demo1_extra;\n")
        git(wt, "commit", "-qam", "demo: a fixup")
        assert st.series("record", "demo").rc == 0
        (st.repo / "NEWS").write_text("a new base\n")
        git(st.repo, "add", "NEWS")
        git(st.repo, "commit", "-qm", "a new base")
        r = st.series("rebase", "demo", "main")
        assert r.rc == 0, r.err
    finally:
        os.umask(old)
    d = st.ws / "patches" / "demo"
    for v in ("v1", "v2", "v3"):
        assert (d / v).stat().st_mode & 0o777 == 0o755, v
        assert all(f.stat().st_mode & 0o777 == 0o644 for f in (d / v).iterdir()), v
