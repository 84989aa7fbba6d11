"""Kernel trees: registry, tarball import, ref resolution, materialising scripts."""

from __future__ import annotations


import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import git, repo_state, run_series, unique_name


def _fake_tarball(src: Path, version: str = "9.9", sublevel: int = 3) -> Path:
    """A tiny linux-source-X.Y.tar.xz shaped like Debian's, with its `/*` .gitignore."""
    path = src / f"linux-source-{version}.tar.xz"
    top = f"linux-source-{version}"
    major, minor = version.split(".")
    files = {
        "Makefile": f"# SPDX\nVERSION = {major}\nPATCHLEVEL = {minor}\nSUBLEVEL = {sublevel}\nEXTRAVERSION =\n".encode(),
        ".gitignore": b"/*\n",
        "MAINTAINERS": b"USERFAULTFD\nM:\tSomeone <someone@example.org>\nF:\tmm/userfaultfd.c\n",
        "mm/userfaultfd.c": b"// SPDX-License-Identifier: GPL-2.0-only\nint a;\nint b;\nint c;\n",
        "scripts/checkpatch.pl": b"#!/usr/bin/perl\nprint \"total: 0 errors\\n\";\n",
    }
    with tarfile.open(path, "w:xz") as tf:
        d = tarfile.TarInfo(top + "/")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
        tf.addfile(d)
        for name, data in files.items():
            ti = tarfile.TarInfo(f"{top}/{name}")
            ti.size, ti.mtime = len(data), 1_700_000_000
            ti.mode = 0o755 if name.endswith(".pl") else 0o644
            tf.addfile(ti, io.BytesIO(data))
        ln = tarfile.TarInfo(f"{top}/scripts/link")
        ln.type, ln.linkname, ln.mtime = tarfile.SYMTYPE, "checkpatch.pl", 1_700_000_000
        tf.addfile(ln)
    return path


@pytest.fixture
def fake_src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    src = tmp_path / "usr-src"
    src.mkdir()
    _fake_tarball(src, "9.9", 3)
    _fake_tarball(src, "9.8", 17)
    monkeypatch.setenv("SERIES_DEBIAN_SRC", str(src))
    return src


def _ws(workspace: Path):  # noqa: ANN202
    from series.workspace import find_workspace
    return find_workspace(str(workspace))


def test_debian_import_two_roots_and_quirks(workspace: Path, fake_src: Path, tmp_path: Path) -> None:
    name = unique_name("fake")
    r = run_series("tree", "add", name, "--debian", "9.9", "--json", cwd=workspace)
    assert r.rc == 0, r.err
    assert r.json["tags"] == ["debian/9.9.3"]
    r = run_series("tree", "add", name, "--debian", "9.8", cwd=workspace)
    assert r.rc == 0, r.err
    repo = Path(r.out.split(": ", 1)[1].split()[0])
    # two parentless commits, one per release, each tagged from its Makefile
    for tag in ("debian/9.9.3", "debian/9.8.17"):
        assert git(repo, "rev-list", "--parents", "-n1", tag).split()[1:] == []
    # the `/*` .gitignore did not drop anything; modes and symlinks kept
    ls = git(repo, "ls-tree", "-r", "debian/9.9.3")
    assert "mm/userfaultfd.c" in ls and ".gitignore" in ls and "MAINTAINERS" in ls
    modes = {line.split("\t")[1]: line.split()[0] for line in ls.splitlines()}
    assert modes["scripts/checkpatch.pl"] == "100755"
    assert modes["scripts/link"] == "120000"
    assert modes["Makefile"] == "100644"
    lst = run_series("tree", "list", "--json", cwd=workspace).json["trees"]
    mine = next(t for t in lst if t["name"] == name)
    assert mine["kind"] == "debian" and set(mine["tags"]) == {"debian/9.9.3", "debian/9.8.17"}
    assert mine["path"] == str(repo)
    # idempotent: a second add keeps the same commit
    before = git(repo, "rev-parse", "debian/9.9.3")
    assert run_series("tree", "add", name, "--debian", "9.9", cwd=workspace).rc == 0
    assert git(repo, "rev-parse", "debian/9.9.3") == before


def test_resolve_ref_and_materialize(workspace: Path, fake_src: Path, tmp_path: Path) -> None:
    from series import trees
    from series.errors import UserError
    ws = _ws(workspace)
    name = unique_name("res")
    tree = trees.add_debian(ws, name, "9.9")
    sha = trees.resolve_ref(tree, "debian/9.9")
    assert sha == trees.resolve_ref(tree, "debian/9.9.3") == trees.resolve_ref(tree, sha)
    with pytest.raises(UserError):
        trees.resolve_ref(tree, "debian/1.2")
    cp = trees.script_path(tree, "debian/9.9", "scripts/checkpatch.pl")
    assert cp.is_file() and os.stat(cp).st_mode & stat.S_IXUSR
    assert (cp.parent.parent / "MAINTAINERS").is_file()
    assert cp.parent.parent.name == sha
    out = subprocess.run(["perl", str(cp)], capture_output=True, text=True).stdout
    assert "total: 0 errors" in out


def test_path_tree_is_read_only(workspace: Path, tmp_path: Path) -> None:
    user = tmp_path / "linux"
    user.mkdir()
    git(user, "init", "-q", "-b", "main")
    (user / "a.c").write_text("int a;\n")
    git(user, "add", "a.c")
    git(user, "commit", "-qm", "base")
    before = repo_state(user)
    cfg = (user / ".git" / "config").read_text()
    name = unique_name("user")
    r = run_series("tree", "add", name, "--path", str(user), "--json", cwd=workspace)
    assert r.rc == 0, r.err
    assert r.json["kind"] == "path" and r.json["path"] == str(user)
    from series import trees
    tree = trees.load_tree(_ws(workspace), name)
    sha = trees.resolve_ref(tree, "main")
    with trees.worktree(tree, tmp_path / "wt", sha) as wt:
        assert (wt / "a.c").read_text() == "int a;\n"
    assert repo_state(user) == before
    assert (user / ".git" / "config").read_text() == cfg
    # Adding it again is idempotent; re-pointing the name elsewhere is refused.
    assert run_series("tree", "add", name, "--path", str(user), cwd=workspace).rc == 0
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    r = run_series("tree", "add", name, "--path", str(other), cwd=workspace)
    assert r.rc == 1 and "already points at" in r.err and len(r.err.strip().splitlines()) == 1
    assert trees.load_tree(_ws(workspace), name).path == user


def test_list_survives_a_deleted_path_tree(workspace: Path, tmp_path: Path) -> None:
    """The registry lives in the cache, which outlives the checkouts it names (a
    test cache reused across sessions does): a vanished --path tree is listed as
    missing, and the others still are."""
    import shutil
    gone = tmp_path / "gone"
    gone.mkdir()
    git(gone, "init", "-q", "-b", "main")
    git(gone, "commit", "-q", "--allow-empty", "-m", "base")
    name = unique_name("gone")
    assert run_series("tree", "add", name, "--path", str(gone), cwd=workspace).rc == 0
    shutil.rmtree(gone)
    r = run_series("tree", "list", "--json", cwd=workspace)
    assert r.rc == 0, r.err
    entry = next(t for t in r.json["trees"] if t["name"] == name)
    assert entry["tags"] == [] and entry["missing"] == f"{gone} no longer exists"
    text = run_series("tree", "list", cwd=workspace)
    assert text.rc == 0 and f"(missing: {gone} no longer exists)" in text.out


@pytest.mark.parametrize("args, needle", [
    (["tree", "add", "x", "--debian", "5.99"], "apt-get install linux-source-5.99"),
    (["tree", "add", "x", "--debian", "banana"], "not a Debian kernel series"),
    (["tree", "add", "x", "--path", "/nonexistent/dir"], "no such directory"),
    (["tree", "add", "bad name!", "--path", "/tmp"], "invalid tree name"),
    (["tree", "add", "x"], ""),
])
def test_bad_input_one_line(workspace: Path, args: list[str], needle: str) -> None:
    r = run_series(*args, cwd=workspace)
    assert r.rc == 1
    assert "Traceback" not in r.err
    if needle:
        assert needle in r.err and len(r.err.strip().splitlines()) == 1


@pytest.mark.integration
def test_real_debian_trees(debian_trees, workspace: Path) -> None:  # noqa: ANN001
    from series import trees
    tags = debian_trees.tags()
    assert any(t.startswith("debian/6.12.") for t in tags) and any(t.startswith("debian/6.1.") for t in tags)
    g = debian_trees.git
    for short in ("debian/6.12", "debian/6.1"):
        sha = trees.resolve_ref(debian_trees, short)
        assert g.run("rev-list", "--count", sha) == "1"          # a root commit
        top = g.run("ls-tree", "--name-only", sha).split()
        assert {"Makefile", "MAINTAINERS", "mm", "scripts", ".gitignore"} <= set(top)
        mk = g.run("show", f"{sha}:Makefile")
        tag = trees.describe_ref(debian_trees, sha)
        assert f"SUBLEVEL = {tag.rsplit('.', 1)[1]}" in mk
    r = run_series("tree", "list", "--json", cwd=workspace)
    assert any(t["name"] == "debian" for t in r.json["trees"])
