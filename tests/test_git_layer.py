"""series.git: the one git layer, made to fail on purpose.

Refs move only by compare-and-swap; a worktree is removed on the way out of
its block, also on an exception; a sparse fill writes only the given paths;
a failing git command raises GitError carrying git's stderr."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from conftest import commit_files, git
from series.errors import GitError
from series.git import Git, Oid, Repo, Worktree


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Repo, str, str]:
    """A bare repository of ours with two commits: c1 (a.c, dir/b.c, c.c), c2 (a.c changed)."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    c1 = commit_files(src, "one", **{"a.c": "a1\n", "dir/b.c": "b\n", "c.c": "c\n"})
    c2 = commit_files(src, "two", **{"a.c": "a2\n"})
    bare = tmp_path / "ours.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(bare))
    return Repo(bare), c1, c2


# -- compare-and-swap ---------------------------------------------------------------
def test_update_ref_refuses_a_stale_old_value(repo: tuple[Repo, str, str]) -> None:
    r, c1, c2 = repo
    ref = "refs/heads/series/x/v1"
    r.update_ref(ref, c1, None, "create")
    assert r.ref_value(ref) == c1
    with pytest.raises(GitError) as e:
        r.update_ref(ref, c2, c2, "wrong old value")        # it is at c1, not c2
    assert r.ref_value(ref) == c1
    assert e.value.stderr and "update-ref" in e.value.args_list
    with pytest.raises(GitError):
        r.update_ref(ref, c2, None, "must not exist yet")   # it exists
    assert r.ref_value(ref) == c1
    r.update_ref(ref, c2, c1, "right old value")
    assert r.ref_value(ref) == c2
    with pytest.raises(GitError):
        r.delete_ref(ref, c1)                               # stale again
    assert r.ref_value(ref) == c2
    r.delete_ref(ref, c2)
    assert r.ref_value(ref) is None


def test_update_ref_writes_the_reflog_message(repo: tuple[Repo, str, str]) -> None:
    r, c1, c2 = repo
    ref = "refs/heads/series/y/v1"
    r.update_ref(ref, c1, None, "series test: created")
    r.update_ref(ref, c2, c1, "series test: moved")
    log = git(r.cwd, "reflog", "show", "--format=%gs", ref).splitlines()
    assert log == ["series test: moved", "series test: created"]


def test_update_ref_wants_a_full_ref_name(repo: tuple[Repo, str, str]) -> None:
    r, c1, _ = repo
    with pytest.raises(GitError):
        r.update_ref("HEAD", c1, None, "not a full ref")


# -- errors ---------------------------------------------------------------------------
def test_git_error_carries_command_and_stderr(repo: tuple[Repo, str, str]) -> None:
    r, _, _ = repo
    with pytest.raises(GitError) as e:
        r.run("cat-file", "-p", "0123456789abcdef0123456789abcdef01234567")
    err = e.value
    assert err.args_list[:2] == ["cat-file", "-p"]
    assert err.returncode != 0
    assert "0123456789abcdef0123456789abcdef01234567" in err.stderr
    assert err.stderr.splitlines()[-1] in str(err)
    # run_proc does not raise: the caller reads the exit code and stderr
    proc = r.run_proc("cat-file", "-e", "0123456789abcdef0123456789abcdef01234567")
    assert proc.returncode != 0 and isinstance(proc.stderr, bytes)
    assert r.ok("cat-file", "-e", "HEAD") and not r.ok("cat-file", "-e", "no-such-rev")


def test_rev_parse_is_typed_and_refuses_an_unknown_rev(repo: tuple[Repo, str, str]) -> None:
    r, c1, c2 = repo
    assert r.rev_parse("main") == Oid(c2) and r.rev_parse("main~1") == c1
    assert r.try_rev_parse("no-such-branch") is None
    with pytest.raises(GitError) as e:
        r.rev_parse("no-such-branch")
    assert "no-such-branch" in str(e.value)


def test_missing_directory_is_an_error_not_the_current_one(tmp_path: Path, repo: tuple[Repo, str, str]) -> None:
    """GitPython would fall back to the process's cwd: a command meant for a
    vanished worktree must not run in whatever repository we stand in."""
    r, _, _ = repo
    old = os.getcwd()
    os.chdir(r.cwd)
    try:
        with pytest.raises(GitError) as e:
            Git(tmp_path / "gone").run("rev-parse", "--git-dir")
        assert "no such directory" in e.value.stderr
    finally:
        os.chdir(old)


def test_stdin_stdout_bytes_and_env_overlay(repo: tuple[Repo, str, str]) -> None:
    r, _, _ = repo
    data = b"line one\nno newline at the end"
    oid = r.run("hash-object", "-w", "--stdin", input=data)
    assert oid == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    assert r.run_proc("cat-file", "blob", oid).stdout == data           # exactly as git wrote it
    ident = r.run("var", "GIT_AUTHOR_IDENT", env={"GIT_AUTHOR_NAME": "Overlaid Name"})
    assert ident.startswith("Overlaid Name <")


def test_fast_import_failure_raises_with_stderr(repo: tuple[Repo, str, str]) -> None:
    r, _, _ = repo
    with pytest.raises(GitError) as e:
        with r.fast_import() as out:
            out.write(b"this is not a fast-import command\n")
    assert e.value.args_list[0] == "fast-import" and e.value.stderr
    with r.fast_import() as out:
        out.write(b"blob\nmark :1\ndata 3\nhi\n\n"
                  b"commit refs/series-test/fi\ncommitter T <t@x> 0 +0000\ndata 2\nm\nM 100644 :1 f\n\ndone\n")
    assert r.run("show", "refs/series-test/fi:f") == "hi"


# -- worktrees ------------------------------------------------------------------------
def test_worktree_removed_on_exception(tmp_path: Path, repo: tuple[Repo, str, str]) -> None:
    r, c1, _ = repo
    path = tmp_path / "wt"
    with pytest.raises(RuntimeError, match="boom"):
        with Worktree.add(r, path, c1) as wt:
            assert (wt.path / "a.c").read_text() == "a1\n"
            assert wt.head() == c1
            raise RuntimeError("boom")
    assert not path.exists()
    assert path not in r.worktree_paths()
    assert path.resolve() not in [p.resolve() for p in r.worktree_paths()]


def test_temporary_worktree_removed_on_exception(tmp_path: Path, repo: tuple[Repo, str, str]) -> None:
    r, c1, _ = repo
    seen: list[Path] = []
    with pytest.raises(KeyError):
        with Worktree.temporary(r, tmp_path / "scratch", c1, sparse=["c.c"]) as wt:
            seen.append(wt.path)
            assert (wt.path / "c.c").is_file()
            raise KeyError("x")
    assert seen and not seen[0].exists()
    assert len(r.worktree_paths()) == 1   # the bare repository itself


def test_sparse_fill_writes_only_the_given_paths(tmp_path: Path, repo: tuple[Repo, str, str]) -> None:
    r, c1, _ = repo
    with Worktree.add(r, tmp_path / "wt", c1, sparse=["dir/b.c"]) as wt:
        on_disk = sorted(str(p.relative_to(wt.path)) for p in wt.path.rglob("*") if p.is_file() and ".git" not in p.parts)
        assert on_disk == ["dir/b.c"]
        # the index is complete: a commit made there holds the whole tree
        assert wt.git.run("ls-files").splitlines() == ["a.c", "c.c", "dir/b.c"]
        (wt.path / "dir" / "b.c").write_text("b changed\n")
        wt.git.run("commit", "-qam", "change b")
        assert wt.git.run("ls-tree", "-r", "--name-only", "HEAD").splitlines() == ["a.c", "c.c", "dir/b.c"]
        assert wt.git.run("show", "HEAD:a.c") == "a1"
        # the setting is the worktree's own, never the repository's
        assert wt.is_sparse()
        assert Git(r.cwd).run_proc("config", "--local", "--get", "core.sparseCheckout").returncode != 0


def test_open_or_add_reuses_and_moves_by_detached_checkout(tmp_path: Path, repo: tuple[Repo, str, str]) -> None:
    """The build directory's worktree: a stable path, moved with a detached
    checkout, so files that did not change keep their mtime."""
    r, c1, c2 = repo
    path = tmp_path / "build" / "src"
    wt = Worktree.open_or_add(r, path, c1, clean=False)
    (path / "obj-note").write_text("untracked, kept without clean\n")
    st = (path / "c.c").stat()
    wt2 = Worktree.open_or_add(r, path, c2, clean=False)
    assert wt2.path == path and wt2.head() == c2
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD").strip() == "HEAD"   # detached
    assert (path / "a.c").read_text() == "a2\n"
    after = (path / "c.c").stat()
    assert (after.st_ino, after.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)   # not rewritten
    assert (path / "obj-note").is_file()
    # with clean (an apply worktree): a dirty, half-applied state is reset
    (path / "a.c").write_text("garbage\n")
    Worktree.open_or_add(r, path, c1)
    assert (path / "a.c").read_text() == "a1\n" and not (path / "obj-note").exists()
    # a leftover that is not a worktree any more is made anew
    (path / ".git").write_text("gitdir: /nonexistent/worktrees/x\n")
    with pytest.raises(GitError):       # not ours: left alone, and git refuses to add over it
        Worktree.open_or_add(r, path, c1)
    assert (path / "a.c").is_file()
    wt.remove()


def test_remove_leaves_a_directory_that_is_not_our_worktree(tmp_path: Path, repo: tuple[Repo, str, str]) -> None:
    r, _, _ = repo
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me\n")
    Worktree(r, victim).remove()
    assert (victim / "precious").read_text() == "keep me\n"
    # a worktree of another repository is not ours either
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    commit_files(other, "o", **{"o.c": "o\n"})
    git(other, "worktree", "add", "-q", "--detach", str(tmp_path / "other-wt"))
    Worktree(r, tmp_path / "other-wt").remove()
    assert (tmp_path / "other-wt" / "o.c").is_file()


def test_stale_worktree_is_replaced(tmp_path: Path, repo: tuple[Repo, str, str]) -> None:
    import shutil
    r, c1, c2 = repo
    path = tmp_path / "wt"
    Worktree.add(r, path, c1)
    shutil.rmtree(path)                       # gone without `git worktree remove`
    wt = Worktree.open_or_add(r, path, c2)
    assert wt.head() == c2 and (path / "a.c").read_text() == "a2\n"
    wt.remove()
    assert not path.exists()
