"""series edit / series record: the next revision made on a branch in b4 prep's
layout, the changelog draft, the refusals, b4 on the branch, and the scripted
respin of the demo stack (integration; `series ci` of the result is e2e)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tomli_w

from conftest import REPO, commit_files, git, repo_state, run_series

LINES = [f"line {i}" for i in range(1, 41)]
B4 = str(Path(sys.executable).parent / "b4")


def _lines(changes: dict[int, str]) -> str:
    out = list(LINES)
    for i, text in changes.items():
        out[i - 1] = text
    return "\n".join(out) + "\n"


def _posted_mbox(user: Path, rng: str, dest: Path, version: int, title: str, blurb: str) -> Path:
    """The mails of `rng` as posted: format-patch with a cover, Message-IDs of ours."""
    out = dest / f"fp-v{version}"
    vflag = [f"-v{version}"] if version > 1 else []
    git(user, "format-patch", "-q", "--cover-letter", "--thread=shallow", "--numbered", *vflag, "-o", str(out), rng)
    files = sorted(out.glob("*.patch"))
    mails = []
    for n, f in enumerate(files):
        text = f.read_text()
        text = re.sub(r"(?m)^Message-ID: <[^>]+>$", f"Message-ID: <mini-v{version}-{n}@example.org>", text, count=1,
                      flags=re.I) if re.search(r"(?mi)^Message-ID:", text) else text
        text = re.sub(r"(?mi)^(In-Reply-To|References): <[^>]+>$", rf"\1: <mini-v{version}-0@example.org>", text)
        if n == 0:
            text = text.replace("*** SUBJECT HERE ***", title).replace("*** BLURB HERE ***", blurb)
        mails.append(text if text.endswith("\n") else text + "\n")
    mbox = dest / f"mini-v{version}.mbox"
    mbox.write_text("".join(mails))
    return mbox


@pytest.fixture
def respin(workspace: Path, tmp_path: Path):  # noqa: ANN201
    """A user repository (a path tree) and stack `mini` v1, posted (Message-IDs), three patches:
    1 changes a.c line 5, 2 adds doc.txt, 3 changes a.c line 30."""
    user = tmp_path / "linux"
    user.mkdir()
    git(user, "init", "-q", "-b", "main")
    git(user, "config", "user.name", "U")
    git(user, "config", "user.email", "u@example.org")
    commit_files(user, "base", **{"a.c": _lines({}), "b.c": "int b;\n"})
    git(user, "tag", "v6.12")
    git(user, "checkout", "-qb", "work")
    commit_files(user, "mini: change line 5\n\nLine 5 says what it does.\n\nSigned-off-by: A U Thor <a@example.org>",
            **{"a.c": _lines({5: "line 5 changed by patch 1"})})
    commit_files(user, "mini: document the lines\n\nA file that says what the lines are.\n\n"
            "Signed-off-by: A U Thor <a@example.org>", **{"doc.txt": "Lines are numbered from 1.\n"})
    commit_files(user, "mini: change line 30\n\nLine 30 too.\n\nSigned-off-by: A U Thor <a@example.org>",
            **{"a.c": _lines({5: "line 5 changed by patch 1", 30: "line 30 changed by patch 3"})})
    git(user, "checkout", "-q", "main")
    mbox = _posted_mbox(user, "main..work", tmp_path, 1, "mini: three small changes",
                        "Three small changes to a.c and a document.")
    r = run_series("import", "mini", "--mbox", str(mbox), "--create", cwd=workspace)
    assert r.rc == 0, r.err
    manifest = workspace / "patches" / "mini" / "stack.toml"
    data = tomllib.loads(manifest.read_text())
    data["revisions"][0]["base"] = "main"
    data["revisions"][0]["changelog"] = ["First posting."]
    manifest.write_text("# the mini stack (a comment that must survive)\n" + tomli_w.dumps(data))
    name = "mini-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    r = run_series("tree", "add", name, "--path", str(user), cwd=workspace)
    assert r.rc == 0, r.err
    return workspace, user, name


def _edit(ws: Path, tree: str, *extra: str) -> dict:
    r = run_series("edit", "mini", "--tree", tree, "--json", *extra, cwd=ws)
    assert r.rc == 0, r.err
    return r.json


def _reword_first(wt: Path, n: int, old: str, new: str) -> None:
    """Reword the first of the last `n` commits as a user would: an interactive rebase."""
    env = {**os.environ, "GIT_SEQUENCE_EDITOR": "sed -i '1s/^pick/reword/'", "GIT_EDITOR": f"sed -i 's/{old}/{new}/'"}
    subprocess.run(["git", "rebase", "-q", "-i", f"HEAD~{n}"], cwd=wt, env=env, check=True, capture_output=True)


def _respin(wt: Path) -> None:
    """The scripted respin: reword patch 1, change code in patch 3, add patch 4."""
    _reword_first(wt, 3, "Line 5 says what it does.", "Line 5 says what it does, and why.")
    a = (wt / "a.c").read_text().replace("line 30 changed by patch 3", "line 30 changed by patch 3, v2")
    (wt / "a.c").write_text(a)
    git(wt, "commit", "-q", "-a", "--amend", "--no-edit")
    git(wt, "sparse-checkout", "add", "/b.c")            # what a user of a sparse edit does first
    (wt / "b.c").write_text("int b;\nint c;\n")
    git(wt, "commit", "-q", "-a", "-m", "mini: add c\n\nAnd c.\n\nSigned-off-by: Test Committer <committer@example.org>")


def test_edit_puts_the_revision_on_a_branch_in_b4_layout(respin) -> None:  # noqa: ANN001
    ws, user, tree = respin
    before = repo_state(user)
    j = _edit(ws, tree)
    wt = Path(j["worktree"])
    assert j["branch"] == "series/mini/edit" and j["from_version"] == 1 and j["new_version"] == 2
    assert git(wt, "rev-parse", "--abbrev-ref", "HEAD").strip() == "series/mini/edit"
    base = git(user, "rev-parse", "main").strip()
    log = git(wt, "log", "--format=%s", f"{base}..HEAD").splitlines()
    assert log == ["mini: change line 30", "mini: document the lines", "mini: change line 5",
                   "mini: three small changes"]
    cover = git(wt, "log", "-1", "--format=%B", "HEAD~3")
    assert "--- b4-submit-tracking ---" in cover
    tracking = json.loads("{" + cover.split("--- b4-submit-tracking ---", 1)[1].split("{", 1)[1])
    assert tracking["series"]["revision"] == 2
    assert tracking["series"]["change-id"].startswith(("2024", "mini-"))
    assert tracking["series"]["history"] == {"v1": ["mini-v1-0@example.org"]}
    assert "Changes in v2:" in cover and "Link to v1: http://127.0.0.1:9/r/mini-v1-0@example.org" in cover
    assert git(wt, "diff", "--stat", "HEAD~3", "HEAD~4").strip() == ""          # the cover commit is empty
    # sparse: only what the patches touch (b.c is not)
    assert (wt / "a.c").is_file() and (wt / "doc.txt").is_file() and not (wt / "b.c").exists()
    # commits are the user's: the worktree's own config names them, not "series"
    assert git(wt, "config", "user.email").strip() == "committer@example.org"
    assert git(wt, "log", "-1", "--format=%ce|%an", "HEAD").strip() == "committer@example.org|Test Author"
    assert repo_state(user) == before                                          # the user's refs: untouched
    # a second edit reports the open one
    r = run_series("edit", "mini", "--tree", tree, cwd=ws)
    assert r.rc == 0 and "already open in" in r.out and str(wt) in r.out
    r = run_series("edit", "mini", "v1", "--tree", tree, "--json", cwd=ws)
    assert r.rc == 0 and r.json["already_open"]
    # --full gives every file; --abort drops the edit
    r = run_series("edit", "mini", "--abort", cwd=ws)
    assert r.rc == 0 and not wt.exists(), r.err
    j = _edit(ws, tree, "--full", "--worktree", str(ws.parent / "my-edit"))
    assert j["worktree"] == str((ws.parent / "my-edit").resolve()) and (ws.parent / "my-edit" / "b.c").is_file()
    assert not j["sparse"]


def test_b4_prep_works_in_the_edit_worktree(respin, tmp_path: Path) -> None:  # noqa: ANN001
    ws, user, tree = respin
    wt = Path(_edit(ws, tree)["worktree"])
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "b4cache")}
    info = subprocess.run([B4, "prep", "--show-info"], cwd=wt, capture_output=True, text=True, env=env)
    assert info.returncode == 0, info.stderr
    fields = dict(ln.split(": ", 1) for ln in info.stdout.splitlines() if ": " in ln)
    assert fields["branch"] == "series/mini/edit" and fields["revision"] == "2"
    assert fields["cover-subject"] == "mini: three small changes"
    assert fields["base-commit"] == git(user, "rev-parse", "main").strip()
    assert sum(1 for k in fields if k.startswith("commit-")) == 3
    rev = subprocess.run([B4, "prep", "--show-revision"], cwd=wt, capture_output=True, text=True, env=env)
    assert rev.returncode == 0 and (rev.stdout + rev.stderr).split()[0] == "v2", rev.stderr
    assert "v1: https://patch.msgid.link/mini-v1-0@example.org" in rev.stdout + rev.stderr   # b4 reads our history
    # --edit-cover through an editor: our "Changes in v2" line, recorded first
    script = tmp_path / "editor.py"
    script.write_text("import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
                      "p.write_text(p.read_text().replace('- EDITME: describe what is new in this series revision.',"
                      " '- Patch 3: line 30 says more (review of v1).'))\n")
    ed = subprocess.run([B4, "prep", "--edit-cover"], cwd=wt, capture_output=True, text=True,
                        env={**env, "EDITOR": f"{sys.executable} {script}", "GIT_EDITOR": f"{sys.executable} {script}"})
    assert ed.returncode == 0, ed.stderr
    # b4 trailers -u: a follow-up Reviewed-by on v1's patch 2, matched by patch-id, lands in its commit
    review = _review_mbox(tmp_path / "review.mbox", 1, {2: "Reviewed-by: Rita Reviewer <rita@example.org>\n"})
    thread = tmp_path / "thread.mbox"
    thread.write_text((tmp_path / "mini-v1.mbox").read_text() + review.read_text())
    tr = subprocess.run([B4, "--offline-mode", "--no-interactive", "trailers", "-u", "-m", str(thread)], cwd=wt,
                        capture_output=True, text=True, env=env)
    assert tr.returncode == 0, tr.stderr
    assert "Reviewed-by: Rita Reviewer <rita@example.org>" in git(wt, "log", "-1", "--format=%B", "HEAD~1")
    assert "Rita" not in git(wt, "log", "-1", "--format=%B", "HEAD")
    _respin(wt)
    r = run_series("record", "mini", "--json", cwd=ws)
    assert r.rc == 0, r.err
    assert r.json["changelog"][0] == "Patch 3: line 30 says more (review of v1)."
    p2 = next((ws / "patches" / "mini" / "v2").glob("0002-*.patch")).read_text()
    assert p2.count("Reviewed-by: Rita Reviewer <rita@example.org>") == 1       # b4's, kept (the user's commit)
    assert r.json["own_changelog"] == ["Patch 3: line 30 says more (review of v1)."]


def test_record_makes_the_next_revision_with_a_draft(respin) -> None:  # noqa: ANN001
    ws, user, tree = respin
    j = _edit(ws, tree)
    wt = Path(j["worktree"])
    _respin(wt)
    r = run_series("record", "mini", "--json", cwd=ws)
    assert r.rc == 0, r.err
    out = r.json
    assert out["version"] == 2 and out["from_version"] == 1 and out["closed_edit"]
    assert [(d["new"], d["old"], d["status"], d["what"]) for d in out["draft"]] == [
        (1, 1, "changed", "commit message"), (2, 2, "same", None), (3, 3, "changed", "code"), (4, None, "added", None)]
    assert out["changelog"][:4] == [
        'Patch 1 "mini: change line 5": changed (commit message only)',
        'Patch 2 "mini: document the lines": unchanged',
        'Patch 3 "mini: change line 30": changed (code)',
        'Patch 4 "mini: add c": added']
    assert not wt.exists()                                                     # the edit is closed
    v2 = ws / "patches" / "mini" / "v2"
    files = sorted(p.name for p in v2.glob("*.patch"))
    assert files == ["0001-mini-change-line-5.patch", "0002-mini-document-the-lines.patch",
                     "0003-mini-change-line-30.patch", "0004-mini-add-c.patch"]
    first = (v2 / files[0]).read_text()
    assert first.startswith("From 0000000000000000000000000000000000000000 ")
    assert "Subject: [PATCH v2 1/4] mini: change line 5" in first and "and why." in first
    assert (v2 / "cover.txt").read_text().startswith("Subject: [PATCH v2 0/4] mini: three small changes\n\n"
                                                     "Three small changes")
    manifest = (ws / "patches" / "mini" / "stack.toml").read_text()
    assert manifest.startswith("# the mini stack (a comment that must survive)")
    data = tomllib.loads(manifest)
    v2m = data["revisions"][-1]
    assert v2m["version"] == 2 and v2m["base"] == git(user, "rev-parse", "main").strip()
    assert v2m["change_id"] == out["change_id"] and v2m["date"]
    assert [p["subject"] for p in v2m["patches"]][-1] == "mini: add c"
    # the store reads it back; a diff pairs the two
    show = run_series("show", "mini", "v2", "--json", cwd=ws).json
    assert show["revisions"][0]["complete"] and show["revisions"][0]["present"] == [1, 2, 3, 4]
    pairs = run_series("diff", "mini", "v1", "v2", "--json", cwd=ws).json["pairs"]
    assert [p["status"] for p in pairs] == ["same", "same", "changed", "added"]
    # the changelog of v2 is the draft, not the draft plus the same lines computed again
    cl = run_series("changelog", "mini", "v2", "--json", cwd=ws).json
    assert [ln["text"] for ln in cl["lines"]] == out["changelog"]


def _review_mbox(path: Path, version: int, patches: dict[int, str], *, cover: str | None = None,
                 quote: int | None = None, title: str = "mini: three small changes", total: int = 3) -> Path:
    """Replies of our own to `mini` v<version>: per patch index, a body; one reply to the
    cover; one reply that quotes the patch (with its Signed-off-by) and gives nothing."""
    from email.message import EmailMessage

    from mailfactory import write_mbox
    subjects = {1: "mini: change line 5", 2: "mini: document the lines", 3: "mini: change line 30"}
    v = f" v{version}" if version > 1 else ""
    msgs = []
    for n, body in [*patches.items(), *([(0, cover)] if cover else [])]:
        m = EmailMessage()
        subj = title if n == 0 else subjects[n]
        m["Subject"] = f"Re: [PATCH{v} {n}/{total}] {subj}"
        m["From"] = "Rita Reviewer <rita@example.org>"
        m["Date"] = f"Tue, 02 Jan 2024 09:0{n}:00 +0000"
        m["Message-ID"] = f"<review-v{version}-{n}@example.org>"
        m["In-Reply-To"] = f"<mini-v{version}-{n}@example.org>"
        m["References"] = f"<mini-v{version}-0@example.org> <mini-v{version}-{n}@example.org>"
        m.set_content(body)
        msgs.append(m)
    if quote:
        m = EmailMessage()
        m["Subject"] = f"Re: [PATCH{v} {quote}/{total}] {subjects[quote]}"
        m["From"] = "Quentin Quoter <q@example.org>"
        m["Date"] = "Tue, 02 Jan 2024 10:00:00 +0000"
        m["Message-ID"] = f"<quote-v{version}-{quote}@example.org>"
        m["In-Reply-To"] = f"<review-v{version}-{quote}@example.org>"      # a reply to a reply
        m["References"] = f"<mini-v{version}-0@example.org> <review-v{version}-{quote}@example.org>"
        m.set_content("On Tue, Rita wrote:\n> Signed-off-by: A U Thor <a@example.org>\n"
                      "> Reviewed-by: Rita Reviewer <rita@example.org>\n\nI am not sure yet; a question below.\n\n"
                      "> -line 30\n> +line 30 changed by patch 3\n\nWhy 30?\n")
        msgs.append(m)
    return write_mbox(path, msgs)


def test_trailers_ledger_and_carry_only_to_unchanged_patches(respin, tmp_path: Path) -> None:  # noqa: ANN001
    ws, user, tree = respin
    rb = "Looks right to me.\n\nReviewed-by: Rita Reviewer <rita@example.org>\n"
    mbox = _review_mbox(tmp_path / "review.mbox", 1, {1: rb, 2: rb, 3: rb},
                        cover="For the series:\n\nTested-by: Rita Reviewer <rita@example.org>\n", quote=3)
    r = run_series("trailers", "mini", "v1", "--mbox", str(mbox), "--json", cwd=ws)
    assert r.rc == 0, r.err
    got = sorted((t["patch"], t["kind"], t["who"], t["message_id"]) for t in r.json["new"])
    assert got == [(0, "Tested-by", "Rita Reviewer <rita@example.org>", "review-v1-0@example.org"),
                   (1, "Reviewed-by", "Rita Reviewer <rita@example.org>", "review-v1-1@example.org"),
                   (2, "Reviewed-by", "Rita Reviewer <rita@example.org>", "review-v1-2@example.org"),
                   (3, "Reviewed-by", "Rita Reviewer <rita@example.org>", "review-v1-3@example.org")]
    assert r.json["replies"] == 5                 # the quoting reply was read and gave nothing
    again = run_series("trailers", "mini", "v1", "--mbox", str(mbox), "--json", cwd=ws).json
    assert again["new"] == [] and again["already_known"] == 4
    show = run_series("show", "mini", "v1", "--trailers", "--json", cwd=ws).json
    cover_entry = next(t for t in show["trailers"] if t["patch"] == 0)
    assert cover_entry["patches"] == [1, 2, 3] and cover_entry["source"] == "reply"
    text = run_series("show", "mini", "v1", "--trailers", cwd=ws).out
    assert "Reviewed-by: Rita Reviewer <rita@example.org>" in text and "<review-v1-3@example.org>" in text

    wt = Path(_edit(ws, tree)["worktree"])
    _respin(wt)
    r = run_series("record", "mini", "--json", cwd=ws)
    assert r.rc == 0, r.err
    v2 = ws / "patches" / "mini" / "v2"
    bodies = {int(f.name[:4]): f.read_text() for f in v2.glob("*.patch")}
    assert "Reviewed-by: Rita Reviewer" in bodies[2] and "Tested-by: Rita Reviewer" in bodies[2]
    for i in (1, 3, 4):
        assert "Rita Reviewer" not in bodies[i], i
    # carried at the end of the trailer block in the order given (the cover reply came first)
    assert re.search(r"Signed-off-by: A U Thor <a@example.org>\nTested-by: Rita Reviewer <rita@example.org>\n"
                     r"Reviewed-by: Rita Reviewer <rita@example.org>\n---\n", bodies[2])
    old2 = next((ws / "patches" / "mini" / "v1").glob("0002-*.patch")).read_text()
    assert bodies[2].split("\n---\n", 1)[1] == old2.split("\n---\n", 1)[1].split("-- \n")[0]   # the diff untouched
    dropped = [ln for ln in r.json["changelog"] if "dropped" in ln]
    assert dropped == [
        'Patch 1: dropped "Tested-by: Rita Reviewer <rita@example.org>" (given on v1 cover): '
        'the commit message changed since v1',
        'Patch 1: dropped "Reviewed-by: Rita Reviewer <rita@example.org>" (given on v1 patch 1): '
        'the commit message changed since v1',
        'Patch 3: dropped "Tested-by: Rita Reviewer <rita@example.org>" (given on v1 cover): '
        'the code changed since v1',
        'Patch 3: dropped "Reviewed-by: Rita Reviewer <rita@example.org>" (given on v1 patch 3): '
        'the code changed since v1']
    led = run_series("show", "mini", "v2", "--trailers", "--json", cwd=ws).json["trailers"]
    assert sorted((t["patch"], t["kind"], t["source"], t["origin_revision"]) for t in led) == [
        (2, "Reviewed-by", "carried", 1), (2, "Tested-by", "carried", 1)]


def test_keep_trailers_keeps_them_on_a_changed_patch(respin, tmp_path: Path) -> None:  # noqa: ANN001
    ws, user, tree = respin
    rb = "Reviewed-by: Rita Reviewer <rita@example.org>\n"
    mbox = _review_mbox(tmp_path / "review.mbox", 1, {3: rb})
    assert run_series("trailers", "mini", "v1", "--mbox", str(mbox), cwd=ws).rc == 0
    wt = Path(_edit(ws, tree)["worktree"])
    _respin(wt)
    r = run_series("record", "mini", "--keep-trailers", "3", "--json", cwd=ws)
    assert r.rc == 0, r.err
    p3 = next((ws / "patches" / "mini" / "v2").glob("0003-*.patch")).read_text()
    assert "Reviewed-by: Rita Reviewer <rita@example.org>" in p3
    assert any(ln.startswith('Patch 3: kept "Reviewed-by: Rita') for ln in r.json["changelog"])


def test_posted_trailers_of_a_changed_patch_are_dropped_from_the_file(respin, tmp_path: Path) -> None:  # noqa: ANN001
    """A trailer posted in v1's patch 3 is in the edit's commit; patch 3 changes: it goes."""
    ws, user, tree = respin
    p3 = next((ws / "patches" / "mini" / "v1").glob("0003-*.patch"))
    p3.write_text(p3.read_text().replace("Signed-off-by: A U Thor <a@example.org>\n",
                                         "Signed-off-by: A U Thor <a@example.org>\n"
                                         "Acked-by: Paul Posted <paul@example.org>\n"))
    led = run_series("show", "mini", "v1", "--trailers", "--json", cwd=ws).json["trailers"]
    assert [(t["patch"], t["kind"], t["who"], t["source"]) for t in led] == [
        (3, "Acked-by", "Paul Posted <paul@example.org>", "posted")]
    wt = Path(_edit(ws, tree)["worktree"])
    assert "Acked-by: Paul Posted" in git(wt, "log", "-1", "--format=%B")
    _respin(wt)
    r = run_series("record", "mini", "--json", cwd=ws)
    assert r.rc == 0, r.err
    assert "Paul Posted" not in next((ws / "patches" / "mini" / "v2").glob("0003-*.patch")).read_text()
    assert any('dropped "Acked-by: Paul Posted <paul@example.org>"' in ln for ln in r.json["changelog"])


@pytest.mark.parametrize("case", ["empty", "merge", "dirty", "older", "empty-commit"])
def test_record_refuses_on_one_line(respin, case: str) -> None:  # noqa: ANN001
    ws, user, tree = respin
    wt = Path(_edit(ws, tree)["worktree"])
    if case == "empty":
        git(wt, "reset", "-q", "--hard", "HEAD~3")
        needle = "nothing to record"
    elif case == "merge":
        git(wt, "checkout", "-q", "-b", "side", "HEAD~1")
        (wt / "doc.txt").write_text("Lines are numbered from 1.\nSide.\n")
        git(wt, "commit", "-qam", "side")
        git(wt, "checkout", "-q", "series/mini/edit")
        git(wt, "merge", "-q", "--no-edit", "side")
        needle = "merge commit"
    elif case == "dirty":
        (wt / "a.c").write_text("changed\n")
        needle = "uncommitted changes"
    elif case == "empty-commit":
        git(wt, "commit", "-q", "--allow-empty", "-m", "nothing")
        needle = "is empty"
    else:
        (ws / "patches" / "mini" / "v1").rename(ws / "patches" / "mini" / "keep")
        shutil.copytree(ws / "patches" / "mini" / "keep", ws / "patches" / "mini" / "v1")
        shutil.copytree(ws / "patches" / "mini" / "keep", ws / "patches" / "mini" / "v2")
        rec = ws / "patches" / "mini" / "v2" / "import.toml"
        rec.write_text(rec.read_text().replace("version = 1", "version = 2", 1))
        needle = "started from v1, but mini's latest revision is v2"
    r = run_series("record", "mini", cwd=ws)
    assert r.rc == 1 and needle in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (ws / "patches" / "mini" / ("v3" if case == "older" else "v2")).exists() or case == "older"


def test_record_takes_a_b4_prep_branch(respin, tmp_path: Path) -> None:  # noqa: ANN001
    """A branch b4 prep made in the user's own repository: recorded, and left alone."""
    ws, user, tree = respin
    # b4 looks for its cover among the commits of the last year: these are made now
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_COMMITTER_", "GIT_AUTHOR_DATE"))}
    env["XDG_CACHE_HOME"] = str(tmp_path / "b4cache")
    git(user, "checkout", "-q", "-b", "b4work", "work")
    p = subprocess.run([B4, "prep", "-e", "main"], cwd=user, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    cover = git(user, "log", "-1", "--format=%B", "HEAD~3")
    assert "--- b4-submit-tracking ---" in cover
    # b4 made revision 1; this branch prepares v2: b4's own way to say so
    p = subprocess.run([B4, "prep", "--force-revision", "2"], cwd=user, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    (user / "b.c").write_text("int b;\nint d;\n")
    git(user, "commit", "-qam", "mini: add d\n\nSigned-off-by: U <u@example.org>")
    before = repo_state(user)
    r = run_series("record", "mini", "--worktree", str(user), "--json", cwd=ws)
    assert r.rc == 0, r.err
    assert [d["status"] for d in r.json["draft"]] == ["same", "same", "same", "added"]
    assert not r.json["closed_edit"] and repo_state(user) == before


def test_rebase_defaults_to_the_edited_stack_and_moves_the_edit(respin) -> None:  # noqa: ANN001
    ws, user, tree = respin
    wt = Path(_edit(ws, tree)["worktree"])
    git(user, "checkout", "-q", "-b", "next", "main")
    commit_files(user, "upstream: b.c grows", **{"b.c": "int b;\nint up;\n"})
    git(user, "tag", "v6.13")
    git(user, "checkout", "-q", "work")
    r = run_series("rebase", "v6.13", "--tree", tree, cwd=ws)
    assert r.rc == 0, r.err
    assert "rebased the edit of mini onto v6.13" in r.out
    assert git(wt, "rev-parse", "HEAD~4").strip() == git(user, "rev-parse", "v6.13").strip()
    assert git(wt, "rev-parse", "--abbrev-ref", "HEAD").strip() == "series/mini/edit"
    _respin(wt)
    r = run_series("record", "mini", "--json", cwd=ws)
    assert r.rc == 0, r.err
    assert r.json["base"] == git(user, "rev-parse", "v6.13").strip()
    assert any(ln.startswith("New base: v6.13") for ln in r.json["changelog"]), r.json["changelog"]


def test_rebase_mainline_style_ref(respin) -> None:  # noqa: ANN001
    ws, user, tree = respin
    # no edit open: the only stack; a path tree with mainline tags: v6.12 just works
    r = run_series("rebase", "v6.12", "--tree", tree, "--json", cwd=ws)
    assert r.rc == 0, r.err
    assert r.json["stack"] == "mini" and r.json["new_version"] == 2
    r = run_series("rebase", "v6.99", "--tree", tree, cwd=ws)
    assert r.rc == 1 and r.err.strip() == (f"series: error: no v6.99 in tree {tree}; it has v6.12")


def test_rebase_one_argument_naming_a_stack_is_a_usage_error(respin) -> None:  # noqa: ANN001
    ws, user, tree = respin
    r = run_series("rebase", "mini", cwd=ws)
    assert r.rc == 1 and "usage" in r.err


# -- the demo stack, on the real Debian 6.12 tree -------------------------------------------
DEMO = "uffd-move-selftests"


def _demo_ws(ws: Path) -> Path:
    (ws / "patches").mkdir(parents=True)
    shutil.copytree(REPO / "patches" / DEMO, ws / "patches" / DEMO)
    # the respin starts from v2 (the real v3 committed next to it is made again here)
    for d in (ws / "patches" / DEMO).glob("v*"):
        if d.is_dir() and d.name[1:].isdigit() and int(d.name[1:]) > 2:
            shutil.rmtree(d)
    manifest = ws / "patches" / DEMO / "stack.toml"
    keep = manifest.read_text().split("\n[[revisions]]\nversion = 3\n", 1)[0]
    manifest.write_text(keep.rstrip("\n") + "\n")
    (ws / "patches" / DEMO / "trailers.toml").unlink(missing_ok=True)
    shutil.copy(REPO / "series.toml", ws / "series.toml")
    return ws


def _demo_review(path: Path) -> Path:
    """Our own review of v2: Reviewed-by on patches 1, 2 and 3."""
    from email.message import EmailMessage

    from mailfactory import write_mbox
    msgs = []
    subjects = {1: "userfaultfd: document what UFFDIO_MOVE reports in its move field",
                2: "Documentation: userfaultfd: list UFFDIO_MOVE among the ways to resolve faults",
                3: "selftests/mm: uffd: add a test of UFFDIO_MOVE error codes"}
    for n, subj in subjects.items():
        m = EmailMessage()
        m["Subject"] = f"Re: [PATCH v2 {n}/3] {subj}"
        m["From"] = "Rita Reviewer <rita@series.invalid>"
        m["Date"] = f"Wed, 25 Nov 2026 10:0{n}:00 +0000"
        m["Message-ID"] = f"<demo-review-{n}@series.invalid>"
        m["In-Reply-To"] = f"<20261124090000.3-{n}-demo@series.invalid>"
        m["References"] = f"<20261124090000.3-0-demo@series.invalid> <20261124090000.3-{n}-demo@series.invalid>"
        m.set_content("Fine with me.\n\nReviewed-by: Rita Reviewer <rita@series.invalid>\n")
        msgs.append(m)
    return write_mbox(path, msgs)


def _demo_respin(wt: Path) -> None:
    """Amend the message of patch 1, change code in patch 3, add a patch 4 (a comment in the header)."""
    env = {**os.environ, "GIT_SEQUENCE_EDITOR": "sed -i '1s/^pick/reword/'",
           "GIT_EDITOR": "sed -i 's/^Describe the two in the header/Describe both in the header/'"}
    subprocess.run(["git", "rebase", "-q", "-i", "HEAD~3"], cwd=wt, env=env, check=True, capture_output=True)
    test = wt / "tools/testing/selftests/mm/uffd-unit-tests.c"
    text = test.read_text()
    old = 'uffd_test_fail("misaligned len: got %d, want EINVAL", ret);'
    assert old in text
    test.write_text(text.replace(old, 'uffd_test_fail("misaligned length: got %d, want EINVAL", ret);'))
    git(wt, "commit", "-q", "-a", "--amend", "--no-edit")
    hdr = wt / "include/uapi/linux/userfaultfd.h"
    h = hdr.read_text()
    anchor = "struct uffdio_move {\n"
    assert anchor in h
    hdr.write_text(h.replace(anchor, "/* See Documentation/admin-guide/mm/userfaultfd.rst */\n" + anchor, 1))
    git(wt, "commit", "-q", "-a", "--author", "Series Demo <demo@series.invalid>",
        "-m", "userfaultfd: point at the admin guide from struct uffdio_move\n\n"
        "Say where UFFDIO_MOVE is described, next to its argument.\n\n"
        "Signed-off-by: Series Demo <demo@series.invalid>")


@pytest.fixture(scope="module")
def respun(debian_trees, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: ANN001
    """The scripted respin of the demo stack: review of v2, edit, the changes, record."""
    tmp = tmp_path_factory.mktemp("respin-demo")
    ws = _demo_ws(tmp / "ws")
    out: dict = {"ws": ws, "tmp": tmp}
    out["trailers"] = run_series("trailers", DEMO, "v2", "--mbox", str(_demo_review(tmp / "review.mbox")), "--json",
                                 cwd=ws)
    edit = run_series("edit", DEMO, "--tree", "debian", "--json", cwd=ws)
    assert edit.rc == 0, edit.err
    out["edit"] = edit.json
    wt = Path(edit.json["worktree"])
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "b4cache")}
    out["show_info"] = subprocess.run([B4, "prep", "--show-info"], cwd=wt, capture_output=True, text=True, env=env)
    out["checked_out"] = sum(1 for f in wt.rglob("*") if f.is_file() and ".git" not in f.parts)
    _demo_respin(wt)
    out["record"] = run_series("record", DEMO, "--json", cwd=ws)
    out["worktree"] = wt
    return out


@pytest.mark.integration
def test_scripted_respin_of_the_demo_stack(respun: dict) -> None:
    """The issue's done-when, up to the mails: edit v2, amend 1, change 3, add 4, record v3."""
    ws, tmp = respun["ws"], respun["tmp"]
    assert respun["trailers"].rc == 0 and len(respun["trailers"].json["new"]) == 3, respun["trailers"].err
    assert respun["edit"]["from_version"] == 2 and respun["edit"]["onto"] == "debian/6.12"
    assert respun["edit"]["branch"] == f"series/{DEMO}/edit"
    info = respun["show_info"]
    assert info.returncode == 0 and "revision: 3" in info.stdout, info.stderr       # b4 prep --show-info
    assert f"branch: series/{DEMO}/edit" in info.stdout
    assert respun["checked_out"] < 10                    # sparse: the touched files, not the kernel's ~90k
    r = respun["record"]
    assert r.rc == 0, r.err
    out = r.json
    assert out["version"] == 3 and out["from_version"] == 2
    assert [(d["new"], d["status"], d["what"]) for d in out["draft"]] == [
        (1, "changed", "commit message"), (2, "same", None), (3, "changed", "code"), (4, "added", None)]
    assert out["changelog"][:4] == [
        'Patch 1 "userfaultfd: document what UFFDIO_MOVE reports in its move field": changed (commit message only)',
        'Patch 2 "Documentation: userfaultfd: list UFFDIO_MOVE among the ways to resolve faults": unchanged',
        'Patch 3 "selftests/mm: uffd: add a test of UFFDIO_MOVE error codes": changed (code)',
        'Patch 4 "userfaultfd: point at the admin guide from struct uffdio_move": added']
    v3 = ws / "patches" / DEMO / "v3"
    bodies = {int(f.name[:4]): f.read_text() for f in v3.glob("*.patch")}
    assert [i for i, b in sorted(bodies.items()) if "Reviewed-by: Rita Reviewer" in b] == [2]
    dropped = [ln for ln in out["changelog"] if "dropped" in ln]
    assert dropped == [
        'Patch 1: dropped "Reviewed-by: Rita Reviewer <rita@series.invalid>" (given on v2 patch 1): '
        'the commit message changed since v2',
        'Patch 3: dropped "Reviewed-by: Rita Reviewer <rita@series.invalid>" (given on v2 patch 3): '
        'the code changed since v2']
    assert not respun["worktree"].exists()
    # the mails: Changes in v3, the link to v2 on lore, the change-id, the carried trailer; b4 reads them complete
    mails = tmp / "mails"
    r = run_series("mail", DEMO, "v3", "-o", str(mails), "--no-get-maintainer", "--to", "list@series.invalid",
                   "--json", cwd=ws)
    assert r.rc == 0, r.err
    assert r.json["validation"]["b4"] == "pass" and r.json["validation"]["git_am"] == "pass"
    cover = (mails / "0000-cover-letter.patch").read_text()
    changes = cover.split("Changes in v3:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert changes[:4] == [f"- {ln}" for ln in out["changelog"][:4]]
    assert re.search(r"^- Link to v2: \S+/r/20261124090000\.3-0-demo@series\.invalid$", cover, re.M)
    assert f"change-id: {out['change_id']}" in cover and out["change_id"].startswith("20261120-uffd-move-selftests-")
    p2 = next(mails.glob("0002-*.patch")).read_text()
    assert "Reviewed-by: Rita Reviewer <rita@series.invalid>\n---\n" in p2
    p1 = next(mails.glob("0001-*.patch")).read_text()
    assert "Reviewed-by" not in p1 and "v3: commit message changed since v2, code unchanged" in p1
    lser = _b4_series(mails / "series.mbox", 3)
    assert lser.complete and lser.expected == 4 and lser.has_cover and lser.change_id == out["change_id"]


@pytest.mark.integration
def test_rebase_names_what_a_debian_tree_has(debian_trees, tmp_path: Path) -> None:  # noqa: ANN001
    ws = _demo_ws(tmp_path / "ws")
    tags = git(debian_trees.path, "tag", "--list", "debian/6.12.*").split()
    assert len(tags) == 1
    r = run_series("rebase", "v6.12", "--tree", "debian", cwd=ws)          # the [ci] stack
    assert r.rc == 1 and r.err.strip() == (f"series: error: no v6.12 in tree debian; it has {tags[0]} "
                                           f"(Linux {tags[0].split('/')[1]})"), r.err


@pytest.mark.e2e
def test_ci_on_the_respun_v3(respun: dict) -> None:
    """`series ci` on the recorded v3: every stage green, the changed move-errors case passes in the guest."""
    assert respun["record"].rc == 0, respun["record"].err
    ws, tmp = respun["ws"], respun["tmp"]
    r = run_series("-C", str(ws), "ci", DEMO, "v3", "--json", "-o", str(tmp / "ci"), timeout=3000, subprocess=True)
    assert r.out, r.err
    res = json.loads(r.out)
    assert res["revision"] == 3
    assert {s["name"]: s["status"] for s in res["stages"]} == {
        "apply": "pass", "checkpatch": "pass", "hygiene": "pass", "build": "pass", "test": "pass", "mail": "pass"}, \
        [(s["name"], s["status"], s["summary"]) for s in res["stages"]]
    test = next(s for s in res["stages"] if s["name"] == "test")
    assert {i["name"]: i["status"] for i in test["items"]}.get("uffd-unit-tests/move-errors/anon") == "pass"
    assert r.rc == 0


def _b4_series(mbox: Path, version: int):  # noqa: ANN202
    import b4
    from liblore.utils import split_mbox_as_bytes

    from series.stacks.mailbox import _parse
    box = b4.LoreMailbox()
    for raw in split_mbox_as_bytes(mbox.read_bytes()):
        box.add_message(_parse(raw))
    return box.get_series(version, codereview_trailers=False)
