"""series.patch.Patch: one patch parsed once, on patches of our own made with git
in a temporary repository (git itself is the oracle for counts, paths, patch-ids,
file names and the diffstat)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import git
from series.errors import UserError
from series.patch import Patch, format_diffstat, patch_filename, sum_numstats
from series.patchfiles import touched_paths


def _repo(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    _write(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def _write(repo: Path, files: dict[str, str | bytes | None]) -> None:
    for name, content in files.items():
        f = repo / name
        if content is None:
            f.unlink()
            continue
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            f.write_bytes(content)
        else:
            f.write_text(content)


def _commit(repo: Path, message: str, files: dict[str, str | bytes | None]) -> None:
    _write(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def _format_patch(repo: Path, out: Path, rng: str = "-1", *extra: str) -> list[Path]:
    names = git(repo, "format-patch", "-q", "-o", str(out), *extra, rng).split()
    files = sorted(out.glob("*.patch"))
    assert files, names
    return files


def _lines(n: int, fmt: str = "line {}") -> str:
    return "".join(fmt.format(i) + "\n" for i in range(1, n + 1))


# -- counts, files, hunks -------------------------------------------------------------
def test_counts_hunks_and_mail_fields(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"mm/a.c": _lines(40), "mm/b.c": _lines(5)})
    text = _lines(40).replace("line 3\n", "line three\n").replace("line 30\n", "line 30\nline 30b\nline 30c\n")
    _commit(repo, "mm: change a and b\n\nWhy it matters.\n\nReviewed-by: Rita Reviewer <rita@example.org>\n"
                  "Signed-off-by: Test Author <author@example.org>",
            {"mm/a.c": text, "mm/b.c": _lines(4)})
    [pf] = _format_patch(repo, tmp_path / "out", "-1", "--subject-prefix=PATCH v2")
    p = Patch.load(pf)
    numstat = {line.split("\t")[2]: tuple(int(x) for x in line.split("\t")[:2])
               for line in git(repo, "diff", "--numstat", "HEAD~1", "HEAD").splitlines()}
    assert {f.path: (f.added, f.removed) for f in p.files} == numstat == {"mm/a.c": (3, 1), "mm/b.c": (0, 1)}
    assert (p.added, p.removed) == (3, 2)
    a = next(f for f in p.files if f.path == "mm/a.c")
    assert len(a.hunks) == 2 and not (a.is_added or a.is_removed or a.is_renamed or a.is_binary)
    assert a.hunks[0].added == ("line three",) and a.hunks[0].removed == ("line 3",)
    assert a.hunks[1].added == ("line 30b", "line 30c") and a.hunks[1].removed == ()
    assert a.old_blob and a.new_blob and git(repo, "rev-parse", "HEAD~1:mm/a.c").startswith(a.old_blob)
    # the mail
    assert p.subject == "mm: change a and b"
    assert p.posted_subject == "[PATCH v2] mm: change a and b"
    assert p.author == ("Test Author", "author@example.org") and not p.in_body_from
    assert p.trailers == ("Reviewed-by: Rita Reviewer <rita@example.org>",
                          "Signed-off-by: Test Author <author@example.org>")
    assert p.commit_message == git(repo, "log", "-1", "--format=%B").rstrip("\n") + "\n"
    assert p.message_id is None          # format-patch without --thread writes none
    assert p.touched_paths == ["mm/a.c", "mm/b.c"]


def test_patch_id_is_gits(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"f.c": _lines(10)})
    _commit(repo, "f: two", {"f.c": _lines(10).replace("line 2\n", "two\n")})
    [pf] = _format_patch(repo, tmp_path / "out")
    want = subprocess.run(["git", "patch-id", "--stable"], input=pf.read_bytes(), capture_output=True,
                          check=True).stdout.split()[0].decode()
    assert Patch.load(pf).patch_id == want


def test_in_body_from_makes_the_author(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"f.c": _lines(3)})
    _commit(repo, "f: x\n\nSigned-off-by: Ann Author <ann@example.org>", {"f.c": _lines(4)})
    git(repo, "commit", "-q", "--amend", "--no-edit", "--author", "Ann Author <ann@example.org>")
    [pf] = _format_patch(repo, tmp_path / "out", "-1", "--from=Sam Sender <sam@example.org>")
    p = Patch.load(pf)
    assert p.sender == ("Sam Sender", "sam@example.org")
    assert p.author == ("Ann Author", "ann@example.org") and p.in_body_from
    assert p.author_line == "Ann Author <ann@example.org>"


def test_rename_new_deleted_binary_and_mode_only(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"old/name.c": _lines(30), "gone.c": _lines(4, "gone {}"), "blob.bin": b"\x00\x01\x02",
                            "run.sh": "echo hi\n"})
    (repo / "new").mkdir()
    git(repo, "mv", "old/name.c", "new/name.c")
    _commit(repo, "rename and tweak", {"new/name.c": _lines(30).replace("line 7\n", "line seven\n")})
    _commit(repo, "add and delete", {"gone.c": None, "fresh.c": _lines(3, "fresh {}")})
    _commit(repo, "binary", {"blob.bin": b"\x00\x09\x08\x07"})
    (repo / "run.sh").chmod(0o755)
    git(repo, "commit", "-q", "-am", "mode only")
    ren, addel, binary, mode = (Patch.load(f) for f in _format_patch(repo, tmp_path / "out", "HEAD~4..HEAD", "-M"))

    [r] = ren.files
    assert r.is_renamed and (r.source_path, r.target_path, r.path) == ("old/name.c", "new/name.c", "new/name.c")
    assert (r.added, r.removed) == (1, 1)
    assert ren.touched_paths == ["new/name.c", "old/name.c"]   # a sparse worktree needs both sides

    by = {f.path: f for f in addel.files}
    assert by["fresh.c"].is_added and by["fresh.c"].source_path is None and by["fresh.c"].added == 3
    assert by["gone.c"].is_removed and by["gone.c"].target_path is None and by["gone.c"].removed == 4
    assert not by["fresh.c"].is_renamed and not by["gone.c"].is_renamed

    [b] = binary.files
    assert b.is_binary and not b.hunks and b.path == "blob.bin" and binary.numstat == [("blob.bin", 0, 0)]
    assert binary.text_files == ()

    [m] = mode.files
    assert m.is_mode_change and (m.old_mode, m.new_mode) == ("100644", "100755") and not m.hunks
    assert mode.numstat == [("run.sh", 0, 0)] and mode.touched_paths == ["run.sh"]
    assert "old mode 100644" in mode.normalised_lines and "-- " not in mode.normalised_lines


def test_quoted_non_ascii_path(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"drivers/été.c": _lines(3)})
    _commit(repo, "été", {"drivers/été.c": _lines(4)})
    [pf] = _format_patch(repo, tmp_path / "out")
    assert '"a/drivers/\\303\\251t\\303\\251.c"' in pf.read_text()    # git quotes it
    assert Patch.load(pf).touched_paths == ["drivers/été.c"]


# -- corrupt patches --------------------------------------------------------------------
def _truncate_hunk(pf: Path) -> None:
    lines = pf.read_text().splitlines(keepends=True)
    last_plus = max(i for i, l in enumerate(lines) if l.startswith("+") and not l.startswith("+++"))
    pf.write_text("".join(lines[:last_plus]))       # the hunk ends early, no signature


def test_truncated_hunk_is_refused_naming_the_file(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"f.c": _lines(20)})
    _commit(repo, "f: more", {"f.c": _lines(20).replace("line 10\n", "line 10\nnew a\nnew b\n")})
    [pf] = _format_patch(repo, tmp_path / "out")
    _truncate_hunk(pf)
    with pytest.raises(UserError) as ei:
        Patch.load(pf)
    msg = str(ei.value)
    assert str(pf) in msg and "corrupt patch" in msg and "\n" not in msg


def test_stray_line_inside_a_hunk_is_refused(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"f.c": _lines(20)})
    _commit(repo, "f: more", {"f.c": _lines(20).replace("line 10\n", "line ten\n")})
    [pf] = _format_patch(repo, tmp_path / "out")
    pf.write_text(pf.read_text().replace("+line ten\n", "*line ten\n"))
    with pytest.raises(UserError, match="corrupt patch"):
        Patch.load(pf)


def test_not_a_mail_is_refused_naming_the_file(tmp_path: Path) -> None:
    pf = tmp_path / "0001-junk.patch"
    pf.write_bytes(b"\xff\xfe\x01 junk")
    with pytest.raises(UserError, match="0001-junk.patch"):
        Patch.load(pf)


# -- parsed once ---------------------------------------------------------------------------
def test_load_is_cached_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path, {"f.c": _lines(5)})
    _commit(repo, "f: one", {"f.c": _lines(6)})
    [pf] = _format_patch(repo, tmp_path / "out")
    calls: list[str] = []
    real = Patch.from_bytes.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Patch], raw: bytes, what: str = "a patch") -> Patch:
        calls.append(what)
        return real(cls, raw, what)

    monkeypatch.setattr(Patch, "from_bytes", classmethod(counting))
    first = Patch.load(pf)
    assert Patch.load(pf) is first and Patch.load(str(pf)) is first
    assert calls == [str(pf)]
    size = pf.stat().st_size
    pf.write_text(pf.read_text().replace("+line 6\n", "+line X\n"))    # same size, maybe the same mtime
    assert pf.stat().st_size == size
    again = Patch.load(pf)
    assert len(calls) == 2 and again is not first and again.files[0].hunks[0].added == ("line X",)


# -- diffstat: git diff --stat is the oracle ----------------------------------------------
LONG = "tools/testing/selftests/some/very/deep/directory/with/a_long_file_name.c"


@pytest.mark.parametrize("case", ["small", "scaled", "long-name", "mode-only"])
def test_diffstat_is_gits(tmp_path: Path, case: str) -> None:
    base = {"mm/a.c": _lines(50), "b.c": _lines(5), "gone.c": _lines(3), LONG: _lines(10), "run.sh": "x\n"}
    repo = _repo(tmp_path, base)
    change: dict[str, str | bytes | None] = {
        "small": {"mm/a.c": _lines(50).replace("line 4\n", "four\n"), "gone.c": None, "new.c": _lines(2)},
        "scaled": {"mm/a.c": _lines(50, "changed {}") + _lines(90, "more {}"), "b.c": _lines(3)},
        "long-name": {LONG: _lines(10, "x {}") + _lines(120, "y {}"), "b.c": _lines(7)},
        "mode-only": {},
    }[case]
    if case == "mode-only":
        (repo / "run.sh").chmod(0o755)
    _commit(repo, f"change: {case}", change)
    [pf] = _format_patch(repo, tmp_path / "out", "-1", "--no-renames")
    want = git(repo, "diff", "--stat=80", "--no-renames", "HEAD~1", "HEAD").rstrip("\n")
    assert Patch.load(pf).diffstat == want


def test_revision_diffstat_sums_its_patches_like_git(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"a.c": _lines(30), "b.c": _lines(30)})
    _commit(repo, "one", {"a.c": _lines(30).replace("line 2\n", "two\n"), "c.c": _lines(4)})
    _commit(repo, "two", {"a.c": _lines(30).replace("line 2\n", "two\n").replace("line 25\n", "25\n"),
                          "b.c": _lines(60)})
    patches = [Patch.load(f) for f in _format_patch(repo, tmp_path / "out", "HEAD~2..HEAD")]
    want = git(repo, "diff", "--stat=80", "HEAD~2", "HEAD").rstrip("\n")
    assert format_diffstat(sum_numstats(patches)) == want


# -- names, lineage lines, touched paths ---------------------------------------------------
def test_patch_filename_is_format_patchs(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"f": "0\n"})
    subjects = ["mm: userfaultfd: add UFFDIO-MOVE (with a long tail of words to cut off)", "x86/mm: fix  it!"]
    for n, s in enumerate(subjects):
        _commit(repo, s, {"f": f"{n + 1}\n"})
    files = _format_patch(repo, tmp_path / "out", f"HEAD~{len(subjects)}..HEAD")
    assert [f.name for f in files] == [patch_filename(n, s) for n, s in enumerate(subjects, start=1)]
    # Unlike git, '_' and '.' become '-' too (the names the store has always used).
    assert patch_filename(3, "selftests/mm: call uffd_test_ctx_clear v2.0") == \
        "0003-selftests-mm-call-uffd-test-ctx-clear-v2-0.patch"


def test_normalised_lines_ignore_line_numbers_and_blobs(tmp_path: Path) -> None:
    one = _repo(tmp_path / "1", {"f.c": _lines(10)})
    two = _repo(tmp_path / "2", {"f.c": "header\n" * 7 + _lines(10)})   # same change, other line numbers
    _commit(one, "f", {"f.c": _lines(10).replace("line 5\n", "five\n")})
    _commit(two, "f", {"f.c": "header\n" * 7 + _lines(10).replace("line 5\n", "five\n")})
    [p1] = [Patch.load(f) for f in _format_patch(one, tmp_path / "o1")]
    [p2] = [Patch.load(f) for f in _format_patch(two, tmp_path / "o2")]
    assert p1.diff != p2.diff
    assert p1.normalised_lines == p2.normalised_lines
    assert not any(l.startswith("index ") for l in p1.normalised_lines)
    assert "+five" in p1.normalised_lines and "-line 5" in p1.normalised_lines


def test_touched_paths_of_mail_texts(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"a/x.c": _lines(3), "b/y.c": _lines(3)})
    git(repo, "mv", "a/x.c", "a/z.c")
    _commit(repo, "move", {"b/y.c": _lines(4)})
    [pf] = _format_patch(repo, tmp_path / "out", "-1", "-M")
    assert touched_paths([pf.read_text()]) == ["a/x.c", "a/z.c", "b/y.c"]


# -- pairing computed once -----------------------------------------------------------------
def test_pairing_is_computed_once_per_pair_of_revisions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from series.stacks import lineage
    from series.stacks.model import PatchInfo, Revision
    repo = _repo(tmp_path, {"f.c": _lines(20), "g.c": _lines(20)})
    _commit(repo, "f: change", {"f.c": _lines(20).replace("line 3\n", "three\n")})
    _commit(repo, "g: change", {"g.c": _lines(20).replace("line 9\n", "nine\n")})
    old_files = _format_patch(repo, tmp_path / "v1", "HEAD~2..HEAD")
    _commit(repo, "g: change more", {"g.c": _lines(20).replace("line 9\n", "nine\n").replace("line 1\n", "1\n")})
    new_files = _format_patch(repo, tmp_path / "v2", "HEAD~3..HEAD")

    def rev(version: int, files: list[Path]) -> Revision:
        return Revision(version=version, expected=len(files), imported=True,
                        patches=[PatchInfo(index=i, subject=f.stem, file=f, imported=True)
                                 for i, f in enumerate(files, start=1)])

    calls: list[int] = []
    real = lineage._pair_revisions

    def counting(a: Revision, b: Revision) -> list[lineage.Pair]:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(lineage, "_pair_revisions", counting)
    first = lineage.pair_revisions(rev(1, old_files), rev(2, new_files))
    again = lineage.pair_revisions(rev(1, old_files), rev(2, new_files))   # equal revisions, new objects
    assert len(calls) == 1
    assert [p.to_json() for p in first] == [p.to_json() for p in again] and first[0] is not again[0]
    assert [(p.old, p.new, p.status) for p in first] == [(1, 1, "changed"), (2, 2, "changed"), (None, 3, "added")]
    new_files[2].write_text(new_files[2].read_text().replace("+1\n", "+I\n"))   # changed on disk, same size
    lineage.pair_revisions(rev(1, old_files), rev(2, new_files))
    assert len(calls) == 2
