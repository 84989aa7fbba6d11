"""The CLI as a demanding user meets it: every refusal is one `series: error:` line
and exit 1 (never a traceback, never exit 3 for the user's own mistake), nothing of
the user's is lost, and every --json output carries the keys the issues promise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import git, repo_state, run_series, unique_name

# ---------------------------------------------------------------------------------
# helpers


def _assert_refused(r, needle: str | None = None) -> None:  # noqa: ANN001
    lines = r.err.strip().splitlines()
    assert r.rc == 1, f"rc={r.rc}\nstdout: {r.out}\nstderr: {r.err}"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{r.err}"
    assert lines[0].startswith("series: error: "), lines[0]
    assert "Traceback" not in r.err and "internal error" not in r.err
    if needle is not None:
        assert needle in lines[0], lines[0]


def _commit(repo: Path, msg: str, **files: str) -> None:
    for name, text in files.items():
        (repo / name).write_text(text)
        git(repo, "add", name)
    git(repo, "commit", "-qm", msg)


def _make_user_repo(repo: Path) -> Path:
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "U")
    git(repo, "config", "user.email", "u@example.org")
    lines = [f"line {i}" for i in range(1, 31)]
    _commit(repo, "base", **{"a.c": "\n".join(lines) + "\n"})
    git(repo, "checkout", "-qb", "work")
    for n in (1, 2, 3):
        lines[n * 7] = f"line {n * 7 + 1} changed by patch {n}"
        _commit(repo, f"demo: patch number {n}\n\nBody of patch {n}.\n\nSigned-off-by: U <u@example.org>",
                **{"a.c": "\n".join(lines) + "\n", f"f{n}.c": f"int f{n};\n"})
    git(repo, "checkout", "-q", "main")
    return repo


def _make_plain_mbox(repo: Path, tmp: Path) -> Path:
    out = tmp / "fp"
    git(repo, "format-patch", "-q", "-o", str(out), "main..work")
    mbox = tmp / "plain.mbox"
    mbox.write_bytes(b"".join(f.read_bytes() for f in sorted(out.glob("*.patch"))))
    return mbox


@pytest.fixture
def user_repo(tmp_path: Path) -> Path:
    """A small git repository of the user's: main, plus a 3-patch branch `work`."""
    return _make_user_repo(tmp_path / "linux")


@pytest.fixture
def plain_mbox(user_repo: Path, tmp_path: Path) -> Path:
    """Plain `git format-patch` output (no Message-ID headers), concatenated."""
    return _make_plain_mbox(user_repo, tmp_path)


@pytest.fixture(scope="module")
def refusal_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One workspace for the refusal matrix (refusals change nothing; a test checks that)."""
    root = tmp_path_factory.mktemp("refusals")
    env = {"HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(root / ".gitconfig"),
           "SERIES_CACHE": str(root / "cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        repo = _make_user_repo(root / "linux")
        mbox = _make_plain_mbox(repo, root)
        ws = root / "ws"
        (ws / "patches").mkdir(parents=True)
        (ws / "series.toml").write_text('[workspace]\nname = "refusals"\n')
        r = run_series("import", "demo", "--mbox", str(mbox), "--create", cwd=ws)
        assert r.rc == 0, r.err
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return ws


@pytest.fixture
def demo_ws(workspace: Path, plain_mbox: Path) -> Path:
    """A workspace with stack `demo` v1 imported from plain format-patch output."""
    r = run_series("import", "demo", "--mbox", str(plain_mbox), "--create", "--json", cwd=workspace)
    assert r.rc == 0, r.err
    return workspace


# ---------------------------------------------------------------------------------
# import of plain `git format-patch` output (it has no Message-ID)


def test_plain_format_patch_imports_and_reimport_changes_nothing(workspace: Path, plain_mbox: Path) -> None:
    r = run_series("import", "demo", "--mbox", str(plain_mbox), "--create", "--json", cwd=workspace)
    assert r.rc == 0, r.err
    imp = r.json["imports"][0]
    assert imp["status"] == "created" and imp["present"] == [1, 2, 3] and imp["missing"] == []
    r2 = run_series("import", "demo", "--mbox", str(plain_mbox), "--json", cwd=workspace)
    assert r2.rc == 0, r2.err
    assert r2.json["imports"][0]["status"] == "unchanged"


# ---------------------------------------------------------------------------------
# refusals that need no kernel tree

REFUSALS = [
    (["show", "nosuch"], "unknown stack"),
    (["show", "demo", "v0"], "not a revision"),
    (["show", "demo", "vX"], "not a revision"),
    (["show", "demo", "-1"], None),
    (["show", "demo", "99"], "no revision v99"),
    (["show", "../etc"], "invalid stack name"),
    (["diff", "demo", "1"], "required"),
    (["diff", "demo", "v1", "v7"], "no revision v7"),
    (["changelog", "demo"], "required"),
    (["changelog", "demo", "v0"], "not a revision"),
    (["cover", "demo", "v1", "--template", "/nonexistent/cover.j2"], "no such template"),
    (["list", "--bogus"], "unrecognized arguments"),
    (["bogus-command"], "invalid choice"),
    ([], "no command given"),
    (["tree"], "say add or list"),
    (["tree", "add", "x"], "--path --debian is required"),
    (["tree", "add", "x", "--path", "/tmp", "--debian", "6.1"], "not allowed with"),
    (["tree", "add", "x", "--path", "/nonexistent-dir"], "no such directory"),
    (["tree", "add", "x", "--path", "/etc/hostname"], "no such directory"),
    (["tree", "add", "x", "--debian", "garbage"], "not a Debian kernel series"),
    (["tree", "add", "x", "--debian", "9.9"], "apt-get install linux-source-9.9"),
    (["tree", "add", "../evil", "--path", "/tmp"], "invalid tree name"),
    (["apply", "demo", "--onto", "main", "--tree", "nosuchtree"], "unknown kernel tree"),
    (["apply", "demo", "v9", "--onto", "main"], "no revision v9"),
    (["apply", "demo", "--onto"], "expected one argument"),
    (["check", "demo", "-j", "0"], "--jobs must be at least 1"),
    (["check", "demo", "-j", "abc"], "invalid int value"),
    (["check", "demo", "--tree", "nosuchtree"], "unknown kernel tree"),
    (["rebase"], "usage"),
    (["rebase", "demo"], "usage"),
    (["rebase", "--continue"], "no rebase in progress"),
    (["rebase", "--abort"], "no rebase in progress"),
    (["rebase", "demo", "main", "--continue"], "at most the stack name"),
    (["rebase", "--continue", "--from", "v1"], "do not go with"),
    (["rebase", "--continue", "--abort"], "not allowed with"),
    (["mail", "demo", "v1"], "-o/--output"),
    (["mail", "demo", "v1", "-o", "/etc/hostname"], "not a directory"),
    (["mail", "demo", "v1", "-o", "/etc/hostname/sub"], "not a directory"),
    (["mail", "demo", "v1", "-o", "OUT", "--to", "a@b.c\nBcc: x@y"], "header injection"),
    (["mail", "demo", "v1", "-o", "OUT", "--to", "a@b.c Bcc: x@y"], "not an e-mail address"),
    (["mail", "demo", "v1", "-o", "OUT", "--cc", "nobody"], "not an e-mail address"),
    (["mail", "demo", "v1", "-o", "OUT", "--from", "Foo Bar foo@example.org"], "not an e-mail address"),
    (["mail", "demo", "v1", "-o", "OUT", "--send"], "SMTP server"),
    (["ci", "nosuch"], "unknown stack"),
    (["ci", "demo", "v5"], "no revision v5"),
    (["ci", "demo", "--stages", "bogus"], "unknown stage"),
    (["ci", "demo", "--stages", ","], "no stage selected"),
    (["fetch", "nosuch"], "unknown stack"),
    (["fetch", "demo", "--mirror", "/nonexistent-dir"], "not a directory"),
    (["fetch", "demo", "--mirror", "MIRROR"], "has no revision of demo"),
    (["fetch", "demo", "--revision", "v0"], "not a revision"),
    (["import", "nosuch", "--mbox", "/dev/null"], "--create"),
    (["import", "demo", "--mbox", "/nonexistent.mbox"], "no such mailbox"),
    (["import", "demo", "--mbox", "/tmp"], "not a maildir"),
    (["import", "demo", "--mbox", "/dev/null"], "not a regular file"),
    (["import", "junk", "--mbox", "JUNK", "--create"], "no patch found"),
    (["import", "demo", "--mbox", "/dev/null", "--select", "5-2"], "--select"),
    (["import", "demo", "--mbox", "/dev/null", "--select", "x"], "--select"),
    (["build", "nosuch"], "unknown stack"),
    (["test", "nosuch"], "unknown stack"),
]


@pytest.mark.parametrize("args, needle", REFUSALS, ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_refusal_is_one_line_exit_1(refusal_ws: Path, tmp_path: Path, args: list[str], needle: str | None) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 64)
    (tmp_path / "mirror").mkdir()
    subst = {"OUT": str(tmp_path / "out"), "JUNK": str(junk), "MIRROR": str(tmp_path / "mirror")}
    snapshot = sorted((str(p.relative_to(refusal_ws)), p.stat().st_mtime_ns) for p in refusal_ws.rglob("*"))
    r = run_series(*[subst.get(a, a) for a in args], cwd=refusal_ws)
    _assert_refused(r, needle)
    assert not (tmp_path / "out").exists()   # nothing written by a refused `mail`
    after = sorted((str(p.relative_to(refusal_ws)), p.stat().st_mtime_ns) for p in refusal_ws.rglob("*"))
    assert after == snapshot, "a refused command changed the workspace"


def test_not_a_workspace(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _assert_refused(run_series("list", cwd=tmp_path / "empty"), "not inside a series workspace")
    _assert_refused(run_series("-C", str(tmp_path / "nope"), "list", cwd=tmp_path), "not a series workspace")
    _assert_refused(run_series("list", cwd=tmp_path, env={"SERIES_WORKSPACE": "/nonexistent"}),
                    "not a series workspace")


@pytest.mark.parametrize("content, needle", [
    ("this is [not toml\n", "series.toml"),
    ("ci = 5\n", "[ci] must be a table"),
    ("[ci]\nstack = 7\n", "[ci] stack must be a string"),
    ("[ci]\nonto = [1]\n", "[ci] onto must be a string"),
    (b"\xff\xfe\x00 not text", "UTF-8"),
])
def test_malformed_series_toml(demo_ws: Path, content: str | bytes, needle: str) -> None:
    path = demo_ws / "series.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for args in (["list"], ["show", "demo"], ["apply", "demo", "--onto", "main"], ["ci"]):
        _assert_refused(run_series(*args, cwd=demo_ws), needle)


@pytest.mark.parametrize("content, needle", [
    ("x = [\n", "malformed TOML"),
    ('revisions = ["x"]\n', "must be a table"),
    ("revisions = 5\n", "malformed revision"),
    ('[[revisions]]\nversion = "abc"\n', "malformed revision"),
    ("[[revisions]]\nversion = 0\n", "version must be 1 or more"),
    ("[[revisions]]\nversion = 1\nexpected = -1\n", "expected must be >= 0"),
    ('[[revisions]]\nversion = 1\nprefixes = "RFC"\n', "prefixes must be a list"),
    ("[[revisions]]\nversion = 1\npatches = [1, 2]\n", "must be a table"),
    ("[[revisions]]\nversion = 1\n[[revisions]]\nversion = 1\n", "listed twice"),
    ("derived_from = 3\n", "derived_from must be a string"),
    (b"\xff\xfe", "UTF-8"),
])
def test_malformed_stack_toml(demo_ws: Path, content: str | bytes, needle: str) -> None:
    path = demo_ws / "patches" / "demo" / "stack.toml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for args in (["show", "demo", "--json"], ["list"], ["diff", "demo", "1", "1"], ["changelog", "demo", "v1"]):
        _assert_refused(run_series(*args, cwd=demo_ws), needle)


def _edit_import(ws: Path, fn) -> None:  # noqa: ANN001
    import tomllib

    import tomli_w
    p = ws / "patches" / "demo" / "v1" / "import.toml"
    rec = tomllib.loads(p.read_text())
    fn(rec)
    p.write_text(tomli_w.dumps(rec))


def test_malformed_import_record(demo_ws: Path) -> None:
    rec_path = demo_ws / "patches" / "demo" / "v1" / "import.toml"
    good = rec_path.read_bytes()
    cases = [
        (lambda r: r["patches"][1].update(file="../../../../etc/passwd"), "not a file name"),
        (lambda r: r["patches"][1].update(file="/etc/hostname"), "not a file name"),
        (lambda r: r["patches"][0].update(index="two"), "malformed import record"),
        (lambda r: r.update(revision=5), "must be a table"),
    ]
    for edit, needle in cases:
        rec_path.write_bytes(good)
        _edit_import(demo_ws, edit)
        for args in (["show", "demo", "--json"], ["diff", "demo", "1", "1"]):
            _assert_refused(run_series(*args, cwd=demo_ws), needle)
    rec_path.write_bytes(b"\xff\xfe\x01")
    _assert_refused(run_series("show", "demo", cwd=demo_ws), "UTF-8")


def test_corrupt_patch_file_is_named(demo_ws: Path) -> None:
    patch = sorted((demo_ws / "patches" / "demo" / "v1").glob("0002-*.patch"))[0]
    patch.write_bytes(b"\xff\xfe\x01 junk")
    assert run_series("show", "demo", "--json", cwd=demo_ws).rc == 0   # show reads no patch body
    r = run_series("diff", "demo", "1", "1", cwd=demo_ws)
    _assert_refused(r, patch.name)


def test_non_utf8_paths(demo_ws: Path, plain_mbox: Path, tmp_path: Path) -> None:
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/odd-\xff"))
    odd.mkdir()
    shutil.copy(plain_mbox, odd / "p.mbox")
    r = run_series("import", "odd", "--mbox", str(odd / "p.mbox"), "--create", "--json", cwd=demo_ws)
    assert r.rc == 0, r.err
    assert run_series("show", "odd", "--json", cwd=demo_ws).json["revisions"][0]["present"] == [1, 2, 3]
    _assert_refused(run_series("show", os.fsdecode(b"odd\xff"), cwd=demo_ws), "invalid stack name")
    _assert_refused(run_series("-C", str(odd), "list", cwd=demo_ws), "not a series workspace")
    _assert_refused(run_series("tree", "add", "odd", "--path", str(odd), cwd=demo_ws), "not a git repository")


def test_incomplete_or_unimported_revision_refused_before_work(demo_ws: Path) -> None:
    """apply/rebase/check/mail of a revision with nothing imported, and rebase/mail of an
    incomplete one, are refused up front (no worktree, no tree needed)."""
    import tomllib

    import tomli_w
    st = demo_ws / "patches" / "demo" / "stack.toml"
    data = tomllib.loads(st.read_text())
    data["revisions"].append({"version": 2, "expected": 3, "patches": []})   # listed, never imported
    st.write_text(tomli_w.dumps(data))
    _assert_refused(run_series("apply", "demo", "v2", "--onto", "main", cwd=demo_ws), "no imported patch")
    _assert_refused(run_series("rebase", "demo", "main", "--from", "v2", cwd=demo_ws), "no imported patch")
    _assert_refused(run_series("check", "demo", "v2", cwd=demo_ws), "not imported")
    _assert_refused(run_series("diff", "demo", "v1", "v2", cwd=demo_ws), "not imported")
    # v1 loses patch 2: incomplete
    _edit_import(demo_ws, lambda r: r.update(patches=[p for p in r["patches"] if p["index"] != 2]))
    _assert_refused(run_series("rebase", "demo", "main", "--from", "v1", cwd=demo_ws), "incomplete (patch(es) 2")
    _assert_refused(run_series("mail", "demo", "v1", "-o", str(demo_ws / "out"), cwd=demo_ws),
                    "patch 2 is missing")


# ---------------------------------------------------------------------------------
# nothing is lost


def test_mail_force_never_deletes_foreign_files(demo_ws: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work\n")
    r = run_series("mail", "demo", "v1", "-o", str(victim), "--force", cwd=demo_ws)
    _assert_refused(r, "not replacing it")
    assert (victim / "thesis.tex").read_text() == "years of work\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".victim")) == []
    # the workspace itself, with --force: refused too
    _assert_refused(run_series("mail", "demo", "v1", "-o", ".", "--force", cwd=demo_ws), "not replacing it")
    assert (demo_ws / "series.toml").is_file() and (demo_ws / "patches" / "demo").is_dir()


def test_tree_add_path_is_read_only(demo_ws: Path, user_repo: Path) -> None:
    (user_repo / "wip.c").write_text("uncommitted\n")
    before = repo_state(user_repo)
    mine = unique_name("mine")
    r = run_series("tree", "add", mine, "--path", str(user_repo), "--json", cwd=demo_ws)
    assert r.rc == 0, r.err
    assert set(r.json) >= {"name", "kind", "path", "tags"} and r.json["kind"] == "path"
    r = run_series("apply", "demo", "--onto", "main", "--tree", mine, "--json", cwd=demo_ws)
    assert r.rc == 0, r.err
    _assert_refused(run_series("apply", "demo", "--onto", "no-such-ref", "--tree", mine, cwd=demo_ws), "unknown ref")
    _assert_refused(run_series("apply", "demo", "--onto", "-rf", "--tree", mine, cwd=demo_ws))
    assert repo_state(user_repo) == before


# ---------------------------------------------------------------------------------
# JSON contracts (keys and types, as the issues state them)


def _types(d: dict, spec: dict) -> None:
    for key, typ in spec.items():
        assert key in d, f"missing key {key!r} in {sorted(d)}"
        assert isinstance(d[key], typ), f"{key}: {type(d[key]).__name__}, wanted {typ}"


def _check_show(j: dict) -> None:
    _types(j, {"name": str, "title": str, "derived_from": (str, type(None)), "revisions": list})
    for rev in j["revisions"]:
        _types(rev, {"version": int, "prefixes": list, "date": (str, type(None)),
                     "cover_message_id": (str, type(None)), "expected": int, "present": list, "missing": list,
                     "complete": bool, "base": (str, type(None)), "patches": list})
        assert all(isinstance(x, str) for x in rev["prefixes"])
        assert all(isinstance(x, int) for x in rev["present"] + rev["missing"])
        assert rev["complete"] == (not rev["missing"] and bool(rev["present"]))
        for p in rev["patches"]:
            _types(p, {"index": int, "subject": str, "author": str, "message_id": (str, type(None)),
                       "patch_id": (str, type(None)), "imported": bool})
        assert sorted(p["index"] for p in rev["patches"] if p["imported"]) == rev["present"]


def _check_diff(j: dict, a: int, b: int) -> None:
    _types(j, {"from": int, "to": int, "pairs": list})
    assert (j["from"], j["to"]) == (a, b)
    for p in j["pairs"]:
        _types(p, {"old": (int, type(None)), "new": (int, type(None)), "status": str, "similarity": float})
        assert p["status"] in ("same", "changed", "added", "removed", "missing")
        assert 0.0 <= p["similarity"] <= 1.0


def _check_apply(j: dict) -> None:
    _types(j, {"stack": str, "version": int, "onto": str, "base_commit": str, "status": str, "patches": list,
               "worktree": (str, type(None))})
    assert j["status"] in ("applied", "conflict", "partial")
    for p in j["patches"]:
        _types(p, {"index": int, "subject": str, "status": str, "files": list})
        assert p["status"] in ("applied", "fuzz", "conflict", "already-present", "missing", "not-attempted")
        for f in p["files"]:
            _types(f, {"path": str, "hunks": int, "clean": int, "offset": int, "fuzz": int, "rejected": int})
            assert f["hunks"] == f["clean"] + f["offset"] + f["fuzz"] + f["rejected"]


def test_show_and_diff_json(demo_ws: Path, user_repo: Path) -> None:
    r = run_series("show", "demo", "--json", cwd=demo_ws)
    assert r.rc == 0, r.err
    _check_show(r.json)
    assert r.json["revisions"][0]["present"] == [1, 2, 3] and r.json["revisions"][0]["complete"]
    r1 = run_series("show", "demo", "v1", "--json", cwd=demo_ws)
    assert r1.json["revisions"] == r.json["revisions"]
    r = run_series("diff", "demo", "v1", "1", "--json", cwd=demo_ws)
    assert r.rc == 0, r.err
    _check_diff(r.json, 1, 1)
    assert [p["status"] for p in r.json["pairs"]] == ["same"] * 3
    r = run_series("list", "--json", cwd=demo_ws)
    assert r.rc == 0 and [s["name"] for s in r.json["stacks"]] == ["demo"]
    r = run_series("tree", "list", "--json", cwd=demo_ws)
    assert r.rc == 0 and isinstance(r.json["trees"], list)


def test_apply_and_rebase_json_on_a_path_tree(demo_ws: Path, user_repo: Path) -> None:
    before = repo_state(user_repo)
    mine = unique_name("mine")
    assert run_series("tree", "add", mine, "--path", str(user_repo), cwd=demo_ws).rc == 0
    r = run_series("apply", "demo", "--onto", "main", "--tree", mine, "--json", cwd=demo_ws)
    assert r.rc == 0, r.err
    _check_apply(r.json)
    assert r.json["status"] == "applied" and [p["status"] for p in r.json["patches"]] == ["applied"] * 3
    r = run_series("rebase", "demo", "main", "--tree", mine, "--json", cwd=demo_ws)
    assert r.rc == 0, r.err
    _check_apply(r.json)
    assert r.json["new_version"] == 2
    show = run_series("show", "demo", "--json", cwd=demo_ws)
    _check_show(show.json)
    assert [v["version"] for v in show.json["revisions"]] == [1, 2]
    assert repo_state(user_repo) == before


# ---------------------------------------------------------------------------------
# help and --json everywhere


def _parsers():  # noqa: ANN202
    import argparse

    from series.cli import build_parser
    out = []

    def walk(p: argparse.ArgumentParser, name: list[str]) -> None:
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                helps = {c.dest: c.help for c in a._choices_actions}
                for n, sp in a.choices.items():
                    out.append((name + [n], sp, helps.get(n)))
                    walk(sp, name + [n])
    walk(build_parser(), [])
    return out


def test_every_command_has_help_and_json() -> None:
    import argparse
    groups = {"tree"}   # a group of sub-commands: no state of its own
    seen = set()
    for name, parser, one_line in _parsers():
        seen.add(" ".join(name))
        assert one_line and len(one_line) > 15, f"series {' '.join(name)}: no one-line help"
        assert parser.description, f"series {' '.join(name)}: no description"
        for a in parser._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert a.help, f"series {' '.join(name)}: argument {a.dest} has no help"
        if " ".join(name) not in groups:
            assert any(a.dest == "json" for a in parser._actions), f"series {' '.join(name)} has no --json"
    assert {"import", "fetch", "list", "show", "diff", "tree add", "tree list", "apply", "rebase", "check",
            "changelog", "cover", "mail", "ci", "build", "test"} <= seen


@pytest.mark.parametrize("cmd", ["", "import", "fetch", "list", "show", "diff", "tree", "tree add", "tree list",
                                 "apply", "rebase", "check", "changelog", "cover", "mail", "ci", "build", "test"])
def test_help_exits_0(cmd: str, workspace: Path) -> None:
    r = run_series(*cmd.split(), "--help", cwd=workspace)
    assert r.rc == 0 and r.out.startswith("usage: series") and not r.err


# ---------------------------------------------------------------------------------
# the real mails and a real kernel tree


@pytest.mark.integration
def test_uffd_move_show_and_diff_contract(uffd_workspace: Path) -> None:
    r = run_series("show", "uffd-move", "--json", cwd=uffd_workspace)
    assert r.rc == 0, r.err
    _check_show(r.json)
    by = {rev["version"]: rev for rev in r.json["revisions"]}
    assert by[2]["complete"] and by[2]["present"] == [1, 2, 3]
    assert all(by[v]["missing"] == [2] for v in (1, 3, 4, 5, 6))
    r = run_series("diff", "uffd-move", "2", "3", "--json", cwd=uffd_workspace)
    assert r.rc == 0, r.err
    _check_diff(r.json, 2, 3)
    assert [(p["old"], p["new"]) for p in r.json["pairs"]] == [(1, 1), (2, 2), (3, 3)]
    _assert_refused(run_series("rebase", "uffd-move", "main", cwd=uffd_workspace), "incomplete")
    _assert_refused(run_series("mail", "uffd-move", "v6", "-o", str(uffd_workspace / "o"), cwd=uffd_workspace),
                    "patch 2 is missing")


@pytest.mark.integration
def test_check_and_apply_json_contract(debian_trees, uffd_workspace: Path) -> None:  # noqa: ANN001
    r = run_series("check", "uffd-move", "v6", "--tree", "debian", "--json", cwd=uffd_workspace)
    assert r.rc == 0, r.err           # warn: patch 2 missing, checkpatch warnings, no error
    j = r.json
    _types(j, {"stack": str, "version": int, "flags": list, "status": str, "patches": list, "missing": list,
               "delta": dict})
    assert "tree" in j and j["missing"] == [2] and j["version"] == 6
    assert all(isinstance(f, str) for f in j["flags"]) and "--show-types" in j["flags"]
    assert j["status"] == "warn"
    for p in j["patches"]:
        _types(p, {"index": int, "subject": str, "status": str, "checkpatch": dict, "hygiene": list})
        _types(p["checkpatch"], {"errors": int, "warnings": int, "checks": int, "findings": list})
        for f in p["checkpatch"]["findings"]:
            _types(f, {"level": str, "type": str, "message": str})
            assert {"file", "line"} <= set(f) and f["level"] in ("ERROR", "WARNING", "CHECK")
        counted = [f["level"] for f in p["checkpatch"]["findings"]]
        assert (counted.count("ERROR"), counted.count("WARNING"), counted.count("CHECK")) == \
            (p["checkpatch"]["errors"], p["checkpatch"]["warnings"], p["checkpatch"]["checks"])
        for h in p["hygiene"]:
            _types(h, {"check": str, "status": str, "message": str})
    _types(j["delta"], {"new": list, "fixed": list})
    assert sorted(p["index"] for p in j["patches"]) == [1, 3, 4, 5]
    r = run_series("apply", "uffd-move", "v2", "--onto", "debian/6.12", "--tree", "debian", "--json",
                   cwd=uffd_workspace)
    assert r.rc == 2, r.err           # patches 2 and 3 conflict on 6.12
    _check_apply(r.json)
    for bad in ("v0", "nosuchref", "debian/9.9", "HEAD~999", "0" * 40):
        _assert_refused(run_series("apply", "uffd-move", "v2", "--onto", bad, "--tree", "debian",
                                   cwd=uffd_workspace), "unknown ref" if bad != "v0" else None)
    _assert_refused(run_series("ci", "uffd-move", "v2", "--onto", "nosuchref", "--tree", "debian",
                               "--stages", "apply", cwd=uffd_workspace), "unknown ref")


# ---------------------------------------------------------------------------------
# Ctrl-C that Python wrapped: a KeyboardInterrupt while a class is being made
# (dataclass fields' __set_name__, at import) reaches the CLI as a RuntimeError.

@pytest.mark.parametrize("where", ["command", "import"])
def test_wrapped_ctrl_c_is_an_interruption(workspace: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    import series.cli as cli
    from series.commands import list as list_cmd

    def wrapped(*_a: object, **_k: object) -> int:
        class Field:
            def __set_name__(self, owner: type, name: str) -> None:
                raise KeyboardInterrupt
        type("Revision", (), {"prefixes": Field()})     # RuntimeError: Error calling __set_name__ ...
        return 0
    if where == "command":
        monkeypatch.setattr(list_cmd, "run", wrapped)
    else:
        monkeypatch.setattr(cli, "build_parser", wrapped)
    r = run_series("list", cwd=workspace)
    assert (r.rc, r.err) == (130, "series: interrupted\n"), (r.rc, r.err)
