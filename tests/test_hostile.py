"""Hostile input (issue 11): the bad-input corpus, and one test per numbered defect.

The corpus: every case is input a hostile or careless user (or a mailing list)
can give.  Each one must end with exit 1, one `series: error:` line and no
traceback; the workspace must be byte-identical before and after (a hash of the
whole tree); and the cache must be one the next run trusts: no lock held, no
half-written directory, every results.json readable, and the next ordinary
command (`show`, and an import of the good mails, which changes nothing) works.

The numbered tests below the corpus each reproduce one defect of the issue;
each failed on the code before the fix.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomli_w

from conftest import REPO, git, run_series
from mailfactory import cover_mail, diff_for, patch_mail, reply_mail, series_mails, write_maildir, write_mbox
from safety import SmallStack, assert_refused, cache_problems, run_proc, small_stack, store_state, tree_hash


# ---------------------------------------------------------------------------------
# inputs of our own


def _subject_swap(msgs, old: str, new: str):  # noqa: ANN001, ANN202
    for m in msgs:
        s = str(m["Subject"])
        del m["Subject"]
        m["Subject"] = s.replace(old, new, 1)
    return msgs


def _without(msg, header: str):  # noqa: ANN001, ANN202
    del msg[header]
    return msg


def _truncated_mail(i: int = 1, n: int = 1, version: int = 1, cut: int = 3):  # noqa: ANN202
    """Patch i/n whose only hunk says 6 lines but carries fewer (the mail was cut)."""
    d = diff_for(i, version)
    lines = d.splitlines(keepends=True)
    return patch_mail(i, n, version=version, diff="".join(lines[:-cut]), msgid=f"trunc-{i}@example.org")


def _cut_at_file_boundary(i: int = 1, n: int = 1):  # noqa: ANN202
    """Patch i/n whose diffstat counts two files and whose diff has only the first."""
    m = patch_mail(i, n, diff=diff_for(i), msgid=f"half-{i}@example.org")
    body = m.get_content().replace(" 1 file changed", " 2 files changed")
    m.set_content(body)
    return m


def _gzip_bomb(path: Path, size: int) -> Path:
    """`size` bytes of zeros, gzipped (a few hundred KB on disk), made in chunks."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    with path.open("wb") as fh:
        for _ in range(size // len(chunk)):
            fh.write(comp.compress(chunk))
        fh.write(comp.flush())
    return path


def _edit_toml(path: Path, fn: Callable[[dict], None]) -> None:
    import tomllib
    data = tomllib.loads(path.read_text())
    fn(data)
    path.write_text(tomli_w.dumps(data))


# ---------------------------------------------------------------------------------
# the corpus


@dataclass
class Ctx:
    st: SmallStack            # the module's template (its workspace is not the one under test)
    ws: Path                  # this case's workspace (a copy)
    inputs: Path              # where a case puts its hostile files (outside the workspace)

    @property
    def stack_dir(self) -> Path:
        return self.ws / "patches" / "demo"


@dataclass
class Case:
    args: list[str]
    needle: str | None = None         # a word the one line must hold
    proc: bool = False                # run the real process (signals, fds, /dev/full)
    env: dict[str, str] = field(default_factory=dict)
    stdout: str | None = None         # a path for stdout (proc only)


def _mbox(ctx: Ctx, name: str, msgs) -> str:  # noqa: ANN001
    return str(write_mbox(ctx.inputs / name, msgs))


CASES: dict[str, Callable[[Ctx], Case]] = {}


def case(fn: Callable[[Ctx], Case]) -> Callable[[Ctx], Case]:
    CASES[fn.__name__] = fn
    return fn


# -- mailboxes -------------------------------------------------------------------------
@case
def v0_subjects(c: Ctx) -> Case:
    return Case(["import", "demo", "--mbox", _mbox(c, "v0", _subject_swap(series_mails(2, version=2), "v2", "v0"))],
                "v0")


@case
def version_over_the_limit(c: Ctx) -> Case:
    return Case(["import", "demo", "--mbox", _mbox(c, "v", _subject_swap(series_mails(2, version=2), "v2", "v99999"))],
                "limit")


@case
def patch_count_over_the_limit(c: Ctx) -> Case:
    msgs = [patch_mail(1, 9999, version=4)]
    return Case(["import", "demo", "--mbox", _mbox(c, "n", msgs)], "limit")


@case
def gzip_bomb(c: Ctx) -> Case:
    return Case(["import", "demo", "--mbox", str(_gzip_bomb(c.inputs / "bomb.mbox.gz", 160 << 20))], "limit")


@case
def dev_zero(c: Ctx) -> Case:
    return Case(["import", "demo", "--mbox", "/dev/zero"], "not a regular file")


@case
def fifo(c: Ctx) -> Case:
    f = c.inputs / "fifo"
    os.mkfifo(f)
    return Case(["import", "demo", "--mbox", str(f)], "FIFO")


@case
def symlink_to_dev_zero(c: Ctx) -> Case:
    link = c.inputs / "zero.mbox"
    link.symlink_to("/dev/zero")
    return Case(["import", "demo", "--mbox", str(link)], "not a regular file")


@case
def huge_sparse_mailbox(c: Ctx) -> Case:
    f = c.inputs / "huge.mbox"
    with f.open("wb") as fh:
        fh.truncate(200 << 20)
    return Case(["import", "demo", "--mbox", str(f)], "limit")


@case
def too_many_messages(c: Ctx) -> Case:
    f = c.inputs / "many.mbox"
    f.write_bytes(b"From x@y Thu Jan  1 00:00:00 1970\nSubject: x\n\nx\n\n" * 20001)
    return Case(["import", "demo", "--mbox", str(f)], "limit")


@case
def truncated_hunk(c: Ctx) -> Case:
    return Case(["import", "demo", "--mbox", _mbox(c, "t", [_truncated_mail(1, 1, version=5)])], "corrupt")


@case
def truncated_at_a_file_boundary(c: Ctx) -> Case:
    m = _cut_at_file_boundary()
    _subject_swap([m], "[PATCH ", "[PATCH v5 ")
    return Case(["import", "demo", "--mbox", _mbox(c, "t", [m])], "truncated")


@case
def patch_without_from(c: Ctx) -> Case:
    return Case(["import", "demo", "--mbox", _mbox(c, "f", [_without(patch_mail(1, 1, version=5), "From")])], "From")


@case
def patch_without_date(c: Ctx) -> Case:
    return Case(["import", "demo", "--mbox", _mbox(c, "d", [_without(patch_mail(1, 1, version=5), "Date")])], "Date")


@case
def patch_with_a_bogus_date(c: Ctx) -> Case:
    m = _without(patch_mail(1, 1, version=5), "Date")
    m["Date"] = "the day after tomorrow"
    return Case(["import", "demo", "--mbox", _mbox(c, "d", [m])], "Date")


@case
def cover_without_date(c: Ctx) -> Case:
    msgs = series_mails(1, version=5)
    _without(msgs[0], "Date")
    return Case(["import", "demo", "--mbox", _mbox(c, "c", msgs)], "cover")


@case
def corrupt_gzip(c: Ctx) -> Case:
    whole = gzip.compress(Path(c.st.mboxes[1]).read_bytes())
    f = c.inputs / "bad.mbox.gz"
    f.write_bytes(whole[: len(whole) // 2])
    return Case(["import", "demo", "--mbox", str(f)], "gzip")


@case
def empty_file(c: Ctx) -> Case:
    f = c.inputs / "empty.mbox"
    f.write_bytes(b"")
    return Case(["import", "demo", "--mbox", str(f)], "no patch")


@case
def binary_garbage(c: Ctx) -> Case:
    f = c.inputs / "garbage.mbox"
    f.write_bytes(bytes(range(256)) * 64)
    return Case(["import", "demo", "--mbox", str(f)], "no patch")


@case
def only_replies(c: Ctx) -> Case:
    msgs = series_mails(2, version=5)
    return Case(["import", "demo", "--mbox", _mbox(c, "r", [reply_mail(m) for m in msgs])], "no patch")


@case
def directory_not_a_maildir(c: Ctx) -> Case:
    (c.inputs / "dir").mkdir()
    return Case(["import", "demo", "--mbox", str(c.inputs / "dir")], "maildir")


@case
def maildir_of_a_fifo_and_a_device_link(c: Ctx) -> Case:
    md = write_maildir(c.inputs / "md", [])
    os.mkfifo(md / "new" / "1.fifo")
    (md / "new" / "2.zero").symlink_to("/dev/zero")
    return Case(["import", "demo", "--mbox", str(md)], "no patch")


@case
def no_such_mailbox(c: Ctx) -> Case:
    return Case(["import", "demo", "--mbox", str(c.inputs / "nosuch.mbox")], "no such mailbox")


@case
def different_mails_for_an_imported_patch(c: Ctx) -> Case:
    m = patch_mail(2, 3, subject="demo: a different patch 2", msgid="v1-2-demo@example.org")
    return Case(["import", "demo", "--mbox", _mbox(c, "x", [m])], "different mails")


@case
def unknown_stack_without_create(c: Ctx) -> Case:
    return Case(["import", "other", "--mbox", str(c.st.mboxes[1])], "--create")


@case
def stack_name_with_a_path(c: Ctx) -> Case:
    return Case(["import", "../../etc", "--mbox", str(c.st.mboxes[1]), "--create"], "invalid stack name")


@case
def select_beyond_the_posting(c: Ctx) -> Case:
    return Case(["import", "demo", "--mbox", str(c.st.mboxes[1]), "--select", "2-9"], "--select")


@case
def revision_contradicting_the_subjects(c: Ctx) -> Case:
    return Case(["import", "demo", "--mbox", _mbox(c, "v3", series_mails(2, version=3)), "--revision", "4"],
                "contradicts")


@case
def fetch_from_a_mirror_of_a_fifo(c: Ctx) -> Case:
    (c.inputs / "mirror" / "demo").mkdir(parents=True)
    os.mkfifo(c.inputs / "mirror" / "demo" / "v1.mbox")
    return Case(["fetch", "demo", "--mirror", str(c.inputs / "mirror")], "FIFO")


@case
def fetch_from_a_missing_mirror(c: Ctx) -> Case:
    return Case(["fetch", "demo", "--mirror", str(c.inputs / "nomirror")], "mirror")


# -- the store ---------------------------------------------------------------------------
@case
def manifest_expects_99999999_patches(c: Ctx) -> Case:
    _edit_toml(c.stack_dir / "stack.toml", lambda d: d["revisions"][0].update(expected=99999999))
    return Case(["show", "demo"], "out of range")


@case
def manifest_expects_infinitely_many_patches(c: Ctx) -> Case:
    """Found by bench/fuzz: `expected = inf` (a TOML float) crashed the loader."""
    text = (c.stack_dir / "stack.toml").read_text()
    (c.stack_dir / "stack.toml").write_text(text.replace("expected = 3", "expected = inf", 1))
    return Case(["show", "demo"], "malformed revision entry")


@case
def import_record_expects_99999999_patches(c: Ctx) -> Case:
    _edit_toml(c.stack_dir / "v1" / "import.toml", lambda d: d["revision"].update(expected=99999999))
    (c.stack_dir / "stack.toml").write_text('name = "demo"\n')
    return Case(["show", "demo", "--json"], "out of range")


@case
def manifest_version_0(c: Ctx) -> Case:
    _edit_toml(c.stack_dir / "stack.toml", lambda d: d["revisions"][0].update(version=0))
    return Case(["list"], "version must be 1 or more")


@case
def import_record_naming_a_file_outside(c: Ctx) -> Case:
    _edit_toml(c.stack_dir / "v1" / "import.toml", lambda d: d["patches"][0].update(file="../../../etc/passwd"))
    return Case(["show", "demo"], "not a file name")


@case
def manifest_not_utf8(c: Ctx) -> Case:
    (c.stack_dir / "stack.toml").write_bytes(b'name = "d\xe9mo"\n')
    return Case(["show", "demo"], "UTF-8")


@case
def manifest_revisions_not_a_list(c: Ctx) -> Case:
    (c.stack_dir / "stack.toml").write_text('name = "demo"\nrevisions = 5\n')
    return Case(["show", "demo"], "revisions must be a list")


@case
def series_toml_garbage(c: Ctx) -> Case:
    (c.ws / "series.toml").write_text("[workspace\n")
    return Case(["list"], "series.toml")


@case
def ci_tree_names_no_tree(c: Ctx) -> Case:
    (c.ws / "series.toml").write_text('[workspace]\n[ci]\ntree = "nosuch"\n')
    return Case(["apply", "demo", "v1", "--onto", "main"], "nosuch")


# -- templates ---------------------------------------------------------------------------
def _template(c: Ctx, text: str | bytes) -> None:
    (c.ws / "templates").mkdir(exist_ok=True)
    t = c.ws / "templates" / "cover.j2"
    t.write_bytes(text if isinstance(text, bytes) else text.encode())


@case
def template_running_a_shell_command(c: Ctx) -> Case:
    _template(c, "{{ cycler.__init__.__globals__.os.popen('touch " + str(c.inputs / "PWNED") + "').read() }}")
    return Case(["cover", "demo", "v1"], "unsafe")


@case
def template_reaching_a_class(c: Ctx) -> Case:
    _template(c, "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    return Case(["cover", "demo", "v1"], "unsafe")


@case
def template_binary(c: Ctx) -> Case:
    _template(c, b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    return Case(["cover", "demo", "v1"], "binary")


@case
def template_not_utf8(c: Ctx) -> Case:
    _template(c, b"caf\xe9 {{ version }}\n")
    return Case(["cover", "demo", "v1"], "UTF-8")


@case
def template_rendering_too_much(c: Ctx) -> Case:
    _template(c, "{% for i in range(100000) %}{% for j in range(100) %}xxxxxxxxxx{% endfor %}{% endfor %}")
    return Case(["cover", "demo", "v1"], "limit")


@case
def template_allocating_without_end(c: Ctx) -> Case:
    _template(c, "{{ 'x' * 10**11 }}")
    return Case(["cover", "demo", "v1"], "limit")


@case
def template_syntax_error(c: Ctx) -> Case:
    _template(c, "{% for %}")
    return Case(["cover", "demo", "v1"], "TemplateSyntaxError")


@case
def template_option_names_nothing(c: Ctx) -> Case:
    return Case(["cover", "demo", "v1", "--template", str(c.inputs / "nosuch.j2")], "no such template")


# -- mail ----------------------------------------------------------------------------------
_MAIL = ["mail", "demo", "v1", "--tree", "mini", "--base", "main", "--to", "Maint <maint@example.org>",
         "--no-get-maintainer"]


@case
def mail_from_a_non_ascii_address(c: Ctx) -> Case:
    return Case([*_MAIL, "-o", str(c.inputs / "out"), "--from", "Zoë <zoë@exämple.org>"], "not ASCII")


@case
def mail_from_with_a_header_injection(c: Ctx) -> Case:
    return Case([*_MAIL, "-o", str(c.inputs / "out"), "--from", "a@example.org\nBcc: x@example.org"], "injection")


@case
def mail_output_in_proc(c: Ctx) -> Case:
    return Case([*_MAIL, "-o", "/proc/series-out"], "choose another -o")


@case
def mail_subject_of_200k(c: Ctx) -> Case:
    _edit_toml(c.stack_dir / "stack.toml", lambda d: d["revisions"][0].update(title="t" * 200_000))
    (c.stack_dir / "v1" / "cover.txt").unlink()
    return Case([*_MAIL, "-o", str(c.inputs / "out")], "998")


# -- refs, trees, caches, output ------------------------------------------------------------
@case
def onto_empty(c: Ctx) -> Case:
    return Case(["apply", "demo", "v1", "--onto", ""], "--onto")


@case
def onto_a_ref_that_does_not_exist(c: Ctx) -> Case:
    return Case(["apply", "demo", "v1", "--onto", "no/such/ref"], "no/such/ref")


@case
def unknown_tree(c: Ctx) -> Case:
    return Case(["apply", "demo", "v1", "--onto", "main", "--tree", "nosuch"], "nosuch")


@case
def cache_is_a_file(c: Ctx) -> Case:
    f = c.inputs / "cachefile"
    f.write_text("not a cache\n")
    return Case(["apply", "demo", "v1", "--onto", "main"], "SERIES_CACHE", env={"SERIES_CACHE": str(f)})


@case
def cache_below_a_file(c: Ctx) -> Case:
    f = c.inputs / "cachefile"
    f.write_text("not a cache\n")
    return Case(["import", "demo", "--mbox", str(c.st.mboxes[1])], "SERIES_CACHE",
                env={"SERIES_CACHE": str(f / "sub")})


@case
def stdout_to_dev_full(c: Ctx) -> Case:
    return Case(["show", "demo"], "standard output", proc=True, stdout="/dev/full")


@case
def rebase_continue_without_a_rebase(c: Ctx) -> Case:
    return Case(["rebase", "demo", "--continue"], None)


@case
def unknown_revision(c: Ctx) -> Case:
    return Case(["show", "demo", "v7"], "no revision v7")


# Cases that, were they to regress, would hang or take all memory: run in a
# process of their own, with a memory cap and a timeout.
RISKY = {"gzip_bomb", "dev_zero", "fifo", "symlink_to_dev_zero", "huge_sparse_mailbox", "too_many_messages",
         "maildir_of_a_fifo_and_a_device_link", "fetch_from_a_mirror_of_a_fifo", "manifest_expects_99999999_patches",
         "import_record_expects_99999999_patches", "template_rendering_too_much", "template_allocating_without_end",
         "template_running_a_shell_command", "template_reaching_a_class", "patch_count_over_the_limit",
         "version_over_the_limit"}


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40, len(CASES)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> SmallStack:
    return small_stack(tmp_path_factory.mktemp("hostile"))


def _good_import_changes_nothing(st: SmallStack, ws: Path) -> None:
    r = run_series("-C", str(ws), "import", "demo", "--mbox", str(st.mboxes[1]), "--json", env=st.env())
    assert r.rc == 0, r.err
    assert r.json["imports"][0]["status"] == "unchanged"


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input(name: str, template: SmallStack, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(template.ws, ws, symlinks=True)
    inputs = tmp_path / "in"
    inputs.mkdir()
    ctx = Ctx(st=template, ws=ws, inputs=inputs)
    c = CASES[name](ctx)
    before = tree_hash(ws)
    env = {**template.env(), **c.env}
    if c.proc or name in RISKY:
        r = run_proc(["-C", str(ws), "--quiet", *c.args], env=env, stdout_path=c.stdout)
    else:
        r = run_series("-C", str(ws), "--quiet", *c.args, env=env)
    assert_refused(r, 1, c.needle)
    assert tree_hash(ws) == before, "the workspace changed"
    assert not (inputs / "PWNED").exists(), "the template ran a command"
    assert cache_problems(template.cache, ws) == []
    # The next ordinary run trusts what is there (the case's own damage undone first).
    shutil.rmtree(ws)
    shutil.copytree(template.ws, ws, symlinks=True)
    _good_import_changes_nothing(template, ws)


def test_after_the_corpus_the_cache_still_works(template: SmallStack, tmp_path: Path) -> None:
    """A real run on the cache the corpus used: apply makes its worktree and commits."""
    ws = tmp_path / "ws"
    shutil.copytree(template.ws, ws, symlinks=True)
    r = run_series("-C", str(ws), "apply", "demo", "v1", "--onto", "main", "--tree", "mini", "--json",
                   env=template.env())
    assert r.rc == 0, r.err
    assert cache_problems(template.cache, ws) == []


# =================================================================================
# One test per numbered defect (each failed before its fix).


@pytest.fixture
def st(tmp_path: Path) -> SmallStack:
    return small_stack(tmp_path / "s", versions=(1, 2, 3), import_versions=(1,))


# 1. A [PATCH v0 ...] mail corrupted the manifest.
def test_1_v0_mail_is_refused_and_the_manifest_stays_loadable(st: SmallStack) -> None:
    box = write_mbox(st.ws.parent / "v0.mbox", _subject_swap(series_mails(2, version=2), "v2", "v0"))
    before = tree_hash(st.ws)
    assert_refused(st.series("import", "demo", "--mbox", str(box)), 1, "v0")
    assert tree_hash(st.ws) == before
    r = st.series("list")
    assert r.rc == 0, r.err


def test_1_a_manifest_the_loader_rejects_is_never_written(st: SmallStack) -> None:
    from series.errors import UserError
    from series.stacks.model import Revision
    from series.stacks.store import load_stack
    from series.workspace import Workspace
    stack = load_stack(Workspace(root=st.ws, cache=st.cache), "demo")
    stack.revisions.append(Revision(version=0))
    before = (st.ws / "patches/demo/stack.toml").read_bytes()
    with pytest.raises(UserError, match="would not load again"):
        stack.save()
    assert (st.ws / "patches/demo/stack.toml").read_bytes() == before


# 2. A workspace's templates/cover.j2 ran arbitrary code.
def test_2_cover_template_cannot_run_a_command(st: SmallStack) -> None:
    marker = st.ws.parent / "PWNED"
    (st.ws / "templates").mkdir()
    (st.ws / "templates" / "cover.j2").write_text(
        "{{ cycler.__init__.__globals__.os.popen('touch %s').read() }}" % marker)
    r = st.series("cover", "demo", "v1")
    assert_refused(r, 1, "unsafe")
    assert not marker.exists()


def test_2_templates_are_limited_in_time_memory_and_output() -> None:
    from series.errors import UserError
    from series.mail.sandbox import render_untrusted
    assert render_untrusted("v{{ version }}: {{ items|join(',') }}", {"version": 3, "items": ["a", "b"]}, "t") == "v3: a,b"
    t0 = time.monotonic()
    with pytest.raises(UserError, match="longer than the limit of 1 s"):
        render_untrusted("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {},
                         "t", time_limit=1.0)
    assert time.monotonic() - t0 < 30
    with pytest.raises(UserError, match="memory"):
        render_untrusted("{{ 'x' * 10**11 }}", {}, "t")
    with pytest.raises(UserError, match="more than the limit of 1 KiB"):
        render_untrusted("{% for i in range(5000) %}x{% endfor %}", {}, "t", max_output=1024)
    with pytest.raises(UserError, match="unsafe"):
        render_untrusted("{{ [].append(1) }}", {}, "t")     # immutable: no method that changes a value


# 3. Import and fetch took no lock.
def test_3_import_and_fetch_are_refused_while_the_stack_is_locked(st: SmallStack) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from series.fsutil import exclusive_lock; from pathlib import Path\n"
         "with exclusive_lock(Path(sys.argv[1]), 'x'):\n    print('held', flush=True); time.sleep(60)",
         str(st.cache / "locks" / "demo.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = tree_hash(st.ws)
        assert_refused(st.series("import", "demo", "--mbox", str(st.mboxes[2])), 1, "busy")
        mirror = st.ws.parent / "mirror" / "demo"
        mirror.mkdir(parents=True)
        shutil.copy(st.mboxes[1], mirror / "v1.mbox")
        assert_refused(st.series("fetch", "demo", "--mirror", str(mirror.parent)), 1, "busy")
        assert tree_hash(st.ws) == before
    finally:
        holder.kill()
        holder.wait()
    assert st.series("import", "demo", "--mbox", str(st.mboxes[2])).rc == 0


# 6. A kill between the two renames of a growing import made the revision vanish.
_KILL_AT_RENAME = r"""
import os, signal, sys
n = int(os.environ["KILL_AT_RENAME"])
real = os.rename
count = 0
def rename(a, b, *args, **kw):
    global count
    count += 1
    if count == n:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(a, b, *args, **kw)
os.rename = rename
sys.argv = ["series", *sys.argv[1:]]
from series.cli import entry
entry()
"""


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
@pytest.mark.parametrize("mode", ["grow", "replace"])
def test_6_a_kill_at_any_rename_of_an_import_loses_no_revision(tmp_path: Path, kill_at: int, mode: str) -> None:
    st = small_stack(tmp_path / "s", versions=(1,), import_versions=())
    full = st.mboxes[1]
    msgs = series_mails(3, missing=(2,))
    partial = write_mbox(tmp_path / "partial.mbox", msgs)
    r = st.series("import", "demo", "--mbox", str(partial), "--create")
    assert r.rc == 0, r.err
    old = store_state(st.ws, "demo")
    if mode == "grow":
        args = ["import", "demo", "--mbox", str(full)]
    else:
        other = write_mbox(tmp_path / "other.mbox", series_mails(3, body_extra=" (respun)"))
        args = ["import", "demo", "--mbox", str(other), "--force"]
    p = subprocess.run([sys.executable, "-c", _KILL_AT_RENAME, "-C", str(st.ws), *args], capture_output=True,
                       text=True, env={**os.environ, **st.env(), "KILL_AT_RENAME": str(kill_at)}, timeout=120)
    killed = p.returncode == -signal.SIGKILL
    # Readers see the old revision or the new one, never none, before any recovery.
    seen = store_state(st.ws, "demo")
    assert seen[1], "v1 vanished"
    # The next write finishes (or undoes) the swap; then the store is old or new, whole.
    r = st.series("import", "demo", "--mbox", str(full), *(["--force"] if mode == "replace" else []), "--json")
    assert r.rc == 0, r.err
    after = store_state(st.ws, "demo")
    assert len(after[1]) == 3
    assert cache_problems(st.cache, st.ws) == []
    assert old[1] and (killed or p.returncode == 0)
    if mode == "replace" and killed and kill_at >= 2:
        # the old copy, moved out before the kill, is kept aside where a user finds it
        assert list((st.ws / "patches" / "demo").glob("v1.replaced-*"))


def test_6_stale_temporary_directories_are_cleaned(st: SmallStack) -> None:
    stale = st.ws / "patches" / "demo" / ".v2.abcdef012345.tmp"
    stale.mkdir()
    (stale / "0001-half.patch").write_text("half\n")
    r = st.series("import", "demo", "--mbox", str(st.mboxes[2]), "--json")
    assert r.rc == 0, r.err
    assert not stale.exists()
    assert any("removed .v2.abcdef012345.tmp" in n for n in r.json["imports"][0]["notes"])


# 7. Importing a revision dropped the comments of stack.toml.
def test_7_import_keeps_the_comments_and_order_of_the_manifest(st: SmallStack) -> None:
    path = st.ws / "patches" / "demo" / "stack.toml"
    text = path.read_text()
    text = "# Our demo stack: keep this comment.\n" + text.replace("[[revisions]]", "# v1 was the RFC\n[[revisions]]", 1)
    text = text.replace('title = "demo helpers"', 'title = "demo helpers"  # the title as posted')
    path.write_text(text)
    r = st.series("import", "demo", "--mbox", str(st.mboxes[2]))
    assert r.rc == 0, r.err
    new = path.read_text()
    assert new.startswith("# Our demo stack: keep this comment.\n")
    assert "# v1 was the RFC\n[[revisions]]" in new and "# the title as posted" in new
    assert new.index("version = 1") < new.index("version = 2")
    assert st.series("show", "demo").rc == 0


# 8. A stored revision could not be re-imported from its own posted.mbox.
def test_8_reimport_from_posted_mbox_changes_nothing(st: SmallStack, tmp_path: Path) -> None:
    posted = tmp_path / "posted-copy.mbox"
    shutil.copy(st.ws / "patches/demo/v1/posted.mbox", posted)
    before = tree_hash(st.ws)
    r = st.series("import", "demo", "--mbox", str(posted), "--json")
    assert r.rc == 0, r.err
    assert r.json["imports"][0]["status"] == "unchanged"
    assert tree_hash(st.ws) == before
    crlf = tmp_path / "crlf.mbox"
    crlf.write_bytes(posted.read_bytes().replace(b"\n", b"\r\n"))
    r = st.series("import", "demo", "--mbox", str(crlf), "--json")
    assert r.rc == 0 and r.json["imports"][0]["status"] == "unchanged", r.err


def test_8_fetch_restores_a_deleted_patch_file(st: SmallStack, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "demo"
    mirror.mkdir(parents=True)
    shutil.copy(st.mboxes[1], mirror / "v1.mbox")
    victim = sorted((st.ws / "patches/demo/v1").glob("0002-*.patch"))[0]
    good = victim.read_bytes()
    victim.unlink()
    r = st.series("fetch", "demo", "--mirror", str(mirror.parent), "--json")
    assert r.rc == 0, r.err
    assert r.json["revisions"][0]["import"]["status"] == "updated"
    assert victim.read_bytes() == good


# 9. A truncated patch imported as complete.
def test_9_truncated_patch_is_reported_corrupt_not_imported(st: SmallStack, tmp_path: Path) -> None:
    msgs = [cover_mail(3, version=4)] + [patch_mail(i, 3, version=4) for i in (1, 3)] + [_truncated_mail(2, 3, 4)]
    box = write_mbox(tmp_path / "t.mbox", msgs)
    r = st.series("import", "demo", "--mbox", str(box), "--json")
    assert r.rc == 0, r.err
    rep = r.json["imports"][0]
    assert rep["present"] == [1, 3] and rep["missing"] == [2] and not rep["complete"]
    assert rep["corrupt"][0]["index"] == 2 and rep["corrupt"][0]["reason"].startswith("corrupt patch: Hunk is")
    rev = [x for x in st.series("show", "demo", "--json").json["revisions"] if x["version"] == 4][0]
    assert rev["missing"] == [2] and not rev["complete"]
    # the text line says so too
    r = st.series("import", "demo", "--mbox", str(write_mbox(tmp_path / "t5.mbox", [_truncated_mail(1, 2, 5), patch_mail(2, 2, version=5)])))
    assert r.rc == 0 and "corrupt (not imported): patch 1" in r.out, r.out


def test_9_a_patch_cut_at_a_file_boundary_is_corrupt(st: SmallStack, tmp_path: Path) -> None:
    m = _cut_at_file_boundary(1, 2)
    _subject_swap([m], "[PATCH ", "[PATCH v6 ")
    box = write_mbox(tmp_path / "h.mbox", [m, patch_mail(2, 2, version=6)])
    r = st.series("import", "demo", "--mbox", str(box), "--json")
    assert r.rc == 0, r.err
    assert r.json["imports"][0]["corrupt"][0]["index"] == 1


# 10. Unbounded memory: bombs, /dev/zero, FIFOs, huge counts.
def test_10_dev_zero_and_a_fifo_are_refused_at_once(st: SmallStack, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for src in ("/dev/zero", str(fifo)):
        r = st.series("import", "demo", "--mbox", src, proc=True, timeout=30)
        assert_refused(r, 1, "not a regular file")


def test_10_a_gzip_bomb_is_refused_naming_the_limit(st: SmallStack, tmp_path: Path) -> None:
    from series.stacks.mailbox import MAX_MAILBOX_BYTES
    bomb = _gzip_bomb(tmp_path / "bomb.mbox.gz", MAX_MAILBOX_BYTES + (8 << 20))
    assert bomb.stat().st_size < 1 << 20
    r = st.series("import", "demo", "--mbox", str(bomb), proc=True, timeout=120)
    assert_refused(r, 1, "decompresses to more than the limit of 128 MiB")


def test_10_huge_expected_in_the_manifest_is_refused(st: SmallStack) -> None:
    _edit_toml(st.ws / "patches/demo/stack.toml", lambda d: d["revisions"][0].update(expected=99999999))
    r = st.series("show", "demo", proc=True, timeout=60)
    assert_refused(r, 1, "out of range (0 to 5000 patches)")


# 11. Ordinary faults ended as "internal error".
def test_11_cache_is_a_file_names_the_variable(st: SmallStack, tmp_path: Path) -> None:
    f = tmp_path / "cachefile"
    f.write_text("")
    r = run_series("-C", str(st.ws), "apply", "demo", "v1", "--onto", "main", env={"SERIES_CACHE": str(f)})
    assert_refused(r, 1, "SERIES_CACHE")
    assert "tree add" not in r.err


def test_11_stdout_to_dev_full(st: SmallStack) -> None:
    for args in (["show", "demo"], ["show", "demo", "--json"], ["list"]):
        with open("/dev/full", "w") as full:
            p = subprocess.run([sys.executable, "-m", "series", "-C", str(st.ws), *args], stdout=full,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, **st.env()}, timeout=60)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 1 and len(lines) == 1, p.stderr
        assert lines[0] == "series: error: cannot write to standard output: No space left on device"


def test_11_non_ascii_address_binary_template_and_proc_output(st: SmallStack, tmp_path: Path) -> None:
    r = st.series(*_MAIL, "-o", str(tmp_path / "o"), "--from", "Zoë <zoë@exämple.org>")
    assert_refused(r, 1, "is not ASCII")
    r = st.series(*_MAIL, "-o", "/proc/x")
    assert_refused(r, 1, "choose another -o")
    t = tmp_path / "bin.j2"
    t.write_bytes(bytes(range(256)))
    assert_refused(st.series("cover", "demo", "v1", "--template", str(t)), 1, "binary")


def test_11_os_errors_map_to_one_line_with_advice() -> None:
    import errno
    from series.cli import os_error_line
    line, rc = os_error_line(OSError(errno.ENOSPC, "No space left on device", "/x/y"))
    assert rc == 3 and line.startswith("/x/y: the file system is full")
    line, rc = os_error_line(OSError(errno.EROFS, "Read-only file system", "/ws/patches/demo"))
    assert rc == 1 and "read-only" in line
    line, rc = os_error_line(PermissionError(errno.EACCES, "Permission denied", "/ws/a"))
    assert rc == 1 and "permission denied" in line


def _unshare_ok() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_unshare = pytest.mark.skipif(not _unshare_ok(), reason="needs unshare -rm (user and mount namespaces)")


def _in_namespace(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


@needs_unshare
def test_11_full_disk(st: SmallStack, tmp_path: Path) -> None:
    """The workspace on a 512 KiB tmpfs, already full: an import ends in one line, exit 3."""
    ws2 = tmp_path / "full-ws"
    ws2.mkdir()
    py = sys.executable
    script = (f"mount -t tmpfs -o size=512k tmpfs {ws2} && cp -a {st.ws}/. {ws2}/ && "
              f"(head -c 2M /dev/zero > {ws2}/filler 2>/dev/null; true) && "
              f"exec {py} -m series -C {ws2} import demo --mbox {st.mboxes[2]}")
    p = _in_namespace(script, st.env())
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 3 and len(lines) == 1, p.stderr
    assert "the file system is full" in lines[0] and "internal error" not in lines[0]


@needs_unshare
def test_11_read_only_workspace(st: SmallStack) -> None:
    before = tree_hash(st.ws)
    py = sys.executable
    script = (f"mount --bind {st.ws} {st.ws} && mount -o remount,bind,ro {st.ws} && "
              f"exec {py} -m series -C {st.ws} import demo --mbox {st.mboxes[2]}")
    p = _in_namespace(script, st.env())
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1, p.stderr
    assert "read-only" in lines[0] and "internal error" not in lines[0]
    assert tree_hash(st.ws) == before


_INTERRUPT_AT_IMPORT = r"""
import importlib.abc, os, signal, sys
target = os.environ["INTERRUPT_AT"]
class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target_=None):
        if name == target:
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Finder())
sys.argv = ["series", *sys.argv[1:]]
from series.cli import entry
entry()
"""


@pytest.mark.parametrize("module", ["series.context", "series.errors", "argparse", "series.commands.apply",
                                    "series.commands.tree", "series.workspace", "series.stacks.store"])
def test_11_ctrl_c_while_starting_is_one_line(st: SmallStack, module: str) -> None:
    """A real SIGINT, sent by the process to itself as it imports `module` (the
    first tens of milliseconds of a run), ends in one line and exit 130."""
    p = subprocess.run([sys.executable, "-c", _INTERRUPT_AT_IMPORT, "-C", str(st.ws), "show", "demo"],
                       capture_output=True, text=True, env={**os.environ, **st.env(), "INTERRUPT_AT": module}, timeout=60)
    assert p.returncode == 130, (p.returncode, p.stderr)
    assert p.stderr == "series: interrupted\n", p.stderr


# 13. Smaller ones.
def test_13_dateless_and_fromless_mails_are_not_imported_silently(st: SmallStack, tmp_path: Path) -> None:
    msgs = [patch_mail(1, 3, version=7), _without(patch_mail(2, 3, version=7), "Date"),
            _without(patch_mail(3, 3, version=7), "From")]
    r = st.series("import", "demo", "--mbox", str(write_mbox(tmp_path / "d.mbox", msgs)), "--json")
    assert r.rc == 0, r.err
    rep = r.json["imports"][0]
    assert rep["present"] == [1]
    assert {c["index"]: c["reason"] for c in rep["corrupt"]} == {2: "no Date: header",
                                                                3: "no From: header (the author is unknown)"}


def test_13_a_header_line_over_998_characters_is_refused(st: SmallStack, tmp_path: Path) -> None:
    _edit_toml(st.ws / "patches/demo/stack.toml", lambda d: d["revisions"][0].update(title="t" * 200_000))
    (st.ws / "patches/demo/v1/cover.txt").unlink()
    r = st.series("--quiet", *_MAIL, "-o", str(tmp_path / "out"))
    assert_refused(r, 1, "998")
    assert not (tmp_path / "out").exists()


def test_13_onto_empty_is_refused(st: SmallStack) -> None:
    assert_refused(st.series("apply", "demo", "v1", "--onto", "", "--tree", "mini"), 1, "--onto")


def test_13_ci_tree_naming_no_tree_is_refused_not_replaced(st: SmallStack) -> None:
    (st.ws / "series.toml").write_text('[workspace]\n[ci]\ntree = "nosuch"\n')
    assert_refused(st.series("apply", "demo", "v1", "--onto", "main"), 1, "nosuch")
    from series.errors import UserError
    from series.trees import load_tree
    from series.workspace import Workspace
    with pytest.raises(UserError, match=r"\[ci\] tree = 'nosuch'"):
        load_tree(Workspace(root=st.ws, cache=st.cache, config={"ci": {"tree": "nosuch"}}))


def test_13_one_malformed_stack_does_not_hide_the_others(st: SmallStack) -> None:
    bad = st.ws / "patches" / "broken"
    bad.mkdir()
    (bad / "stack.toml").write_text("revisions = [[\n")
    r = st.series("list")
    assert r.rc == 1
    assert r.out.splitlines()[0].startswith("broken") or "demo" in r.out
    assert any(line.startswith("demo ") for line in r.out.splitlines()), r.out
    assert_refused(r, 1, "stack broken cannot be read")
    r = st.series("list", "--json")
    assert [s["name"] for s in r.json["stacks"]] == ["demo"]
    assert r.json["unreadable"][0]["name"] == "broken"


def test_13_imported_revision_directories_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        st = small_stack(tmp_path / "s", import_versions=(1,))
    finally:
        os.umask(old)
    d = st.ws / "patches" / "demo"
    assert (d / "v1").stat().st_mode & 0o777 == 0o755
    assert (d / "stack.toml").stat().st_mode & 0o777 == 0o644
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in (d / "v1").iterdir())
