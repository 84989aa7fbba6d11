"""The build sandbox (series/sandbox.py): bwrap around make and the suites'
compile.  Unit tests of the argv it builds and of the reason it gives when it
stopped a build; then real sandboxed builds, without a kernel (a small tree of
ours with a kernel-shaped Makefile, built through `series build`) and, e2e,
of Debian's 6.12 in the warm build directory of test_build_boot.py: a patch
whose Makefile writes outside the tree, and one that reaches for a server on
the host's 127.0.0.1, fail the build with the sandbox's reason and leave
nothing behind; with --no-sandbox the same patches do write and connect."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import git, make_mbox, run_series
from series.errors import InfraError
from series.sandbox import HINT, Sandbox, blocked, explain, needs_network, sandbox
from series.stages.build import build_verdict
from test_build_boot import ONTO, TREE, kernel_ws  # noqa: F401  (kernel_ws: a session fixture)
from test_distcc import distccd  # noqa: F401  (a fixture: a distcc daemon of ours on 127.0.0.1)


# -- the argv ---------------------------------------------------------------------------
def _pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_wrap_read_only_but_the_named_paths_no_network(tmp_path: Path) -> None:
    cache, src = tmp_path / "cache", tmp_path / "cache" / "build" / "x" / "src"
    obj, ccache = src.parent / "obj", cache / "ccache"
    for d in (src / "sub", obj, ccache):
        d.mkdir(parents=True)
    sb = Sandbox(exe="/usr/bin/bwrap", see=(cache,), extra_writable=(ccache,))
    argv = sb.wrap(["make", "-C", str(src), "bzImage"], writable=[src, obj, src / "sub"], cwd=src, env={})
    sep = argv.index("--")
    opts, inner = argv[:sep], argv[sep + 1:]
    assert argv[0] == "/usr/bin/bwrap" and inner == ["make", "-C", str(src), "bzImage"]
    for flag in ("--die-with-parent", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"):
        assert flag in opts
    assert "--share-net" not in opts
    # everything read-only, then a private /tmp, then what it may write
    i = opts.index("--ro-bind")
    assert opts[i:i + 3] == ["--ro-bind", "/", "/"] and opts.index("--tmpfs") > i
    assert _pairs(opts, "--tmpfs") == ["/tmp"]
    assert sorted(_pairs(opts, "--bind")) == sorted(str(p.resolve()) for p in (src, obj, ccache))  # sub: in src
    # the cache, under /tmp here, stays visible, read-only, mounted before the writable paths
    assert str(cache.resolve()) in _pairs(opts, "--ro-bind")
    assert opts.index(str(cache.resolve())) < opts.index("--bind")
    assert str(Path.home()) not in _pairs(opts, "--bind")
    assert _pairs(opts, "--chdir") == [str(src.resolve())]
    assert "/tmp" in sb.describe([src, obj]) and "network: none" in sb.describe([src, obj])


def test_wrap_shares_the_network_for_distcc_with_a_private_distcc_dir(tmp_path: Path) -> None:
    assert needs_network("distcc gcc") and needs_network("/usr/bin/icecc gcc") and needs_network("ccache distcc gcc")
    assert not needs_network("gcc") and not needs_network("ccache gcc") and not needs_network("clang")
    home = tmp_path / "home"
    (home / ".distcc").mkdir(parents=True)
    (home / ".distcc" / "hosts").write_text("buildbox/8\n")
    sb = Sandbox(share_net=True)
    argv = sb.wrap(["make"], writable=[tmp_path], cwd=tmp_path, env={"HOME": str(home)})
    assert "--share-net" in argv and "--unshare-net" not in argv
    assert argv[argv.index("DISTCC_DIR") + 1] == "/tmp/distcc"
    assert argv[argv.index(str(home / ".distcc" / "hosts")) + 1] == "/tmp/distcc/hosts"   # the user's hosts file
    argv = sb.wrap(["make"], writable=[tmp_path], cwd=tmp_path, env={"HOME": str(home), "DISTCC_HOSTS": "a"})
    assert str(home / ".distcc" / "hosts") not in argv
    assert "shared" in sb.describe([tmp_path])


# -- the reason -----------------------------------------------------------------------
WRITABLE = [Path("/cache/build/x/src"), Path("/cache/build/x/obj")]


@pytest.mark.parametrize("line, where", [
    ("touch: cannot touch '/root/x': Read-only file system", "/root/x: Read-only file system"),
    ("/bin/sh: 1: cannot create /home/u/.bashrc: Read-only file system", "/home/u/.bashrc: Read-only file system"),
    ("OSError: [Errno 30] Read-only file system: '/cache/build/x/obj/../escaped'",
     "/cache/build/x/escaped: Read-only file system"),
    ("mkdir: cannot create directory '/etc/evil': Permission denied", "/etc/evil: Permission denied"),
])
def test_a_write_outside_is_named(line: str, where: str) -> None:
    text = f"  CC      init/main.o\n{line}\nmake[1]: *** [init/Makefile:9: x] Error 1\n"
    assert blocked(text, WRITABLE) == f"it tried to write outside its build directories ({where})"


@pytest.mark.parametrize("line", [
    "ConnectionRefusedError: [Errno 111] Connection refused",
    "curl: (6) Could not resolve host: example.org",
    "socket.gaierror: [Errno -3] Temporary failure in name resolution",
    "OSError: [Errno 101] Network is unreachable",
])
def test_the_network_is_named_unless_shared(line: str) -> None:
    text = f"{line}\nmake: *** [Makefile:3: bzImage] Error 1\n"
    why = blocked(text, WRITABLE)
    assert why is not None and why.startswith("it tried to reach the network") and line.split()[-1] in why
    assert blocked(text, WRITABLE, share_net=True) is None       # distcc's own network: not the sandbox


@pytest.mark.parametrize("text", [
    "mm/x.c:3:1: error: expected ';' before '}' token\nmake: *** [mm/x.o] Error 1\n",
    # a script without its exec bit, in the tree: an ordinary mistake of the patch
    "/bin/sh: 1: /cache/build/x/src/scripts/gen.sh: Permission denied\n",
    "/bin/sh: 1: ./scripts/gen.sh: Permission denied\n",
    "",
])
def test_an_ordinary_failure_is_not_blamed_on_the_sandbox(text: str) -> None:
    assert blocked(text, WRITABLE) is None


def test_the_build_stage_says_so_in_one_line() -> None:
    why = "it tried to write outside its build directories (/root/x: Read-only file system)"
    items = [{"index": 0, "status": "pass", "new_warnings": []},
             {"index": 1, "status": "pass", "new_warnings": []},
             {"index": 2, "status": "fail", "new_warnings": [], "sandbox_blocked": why}]
    st = build_verdict(items)
    assert st.status == "fail"
    assert st.summary == f"build of patch 2 failed: {why}; {HINT}" == explain("build of patch 2", why)
    assert "\n" not in st.summary and "--no-sandbox" in st.summary
    # without the sandbox's refusal: the ordinary summary
    del items[2]["sandbox_blocked"]
    assert build_verdict(items).summary == "build fails at patch 2"
    items[0] = {"index": 0, "status": "fail", "new_warnings": [], "sandbox_blocked": why}
    assert build_verdict(items).summary.startswith("build of the base failed: it tried to write outside")


# -- detection ------------------------------------------------------------------------
def test_no_bwrap_is_an_infra_error_naming_no_sandbox(tmp_path: Path) -> None:
    with pytest.raises(InfraError) as e:
        sandbox(exe=str(tmp_path / "no-such-bwrap"))
    assert "not installed" in str(e.value) and "--no-sandbox" in str(e.value) and "\n" not in str(e.value)
    broken = tmp_path / "bwrap"       # a bwrap that cannot make namespaces, as in a locked-down container
    broken.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(InfraError) as e:
        sandbox(exe=str(broken))
    msg = str(e.value)
    assert "cannot create its namespaces" in msg and "uid map: Permission denied" in msg and "--no-sandbox" in msg
    assert sandbox().exe == shutil.which("bwrap")       # the real one works here (tools/setup installs it)


# -- real sandboxed builds of a small tree of ours ----------------------------------------------
MAKEFILE = """\
# a kernel-shaped Makefile: the targets and the O= of series' build
O ?= .
.PHONY: tinyconfig olddefconfig bzImage headers
tinyconfig olddefconfig:
\tmkdir -p $(O) && touch $(O)/.config
bzImage:
\tmkdir -p $(O)/arch/x86/boot
\t$(CC) -c main.c -o $(O)/main.o
\tcp $(O)/main.o $(O)/arch/x86/boot/bzImage
"""
RECIPE = "\tcp $(O)/main.o $(O)/arch/x86/boot/bzImage\n"


VAR_TMP = Path("/var/tmp")


def _escape(token: str) -> str:
    """A rule that writes outside /tmp (the tests' own files are all under it) and
    beside the build's output directory (in the cache, outside O= and the tree)."""
    return f"\ttouch {VAR_TMP}/escaped-{token} $(O)/../escaped-{token}\n"


def _connect(port: int) -> str:
    """A rule that opens a TCP connection to the host's 127.0.0.1:port."""
    return f"\tpython3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\"\n"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A server on the host's loopback: the sandbox has a loopback of its own and must not reach it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        s.setblocking(False)
        yield s


def _connections(s: socket.socket) -> int:
    n = 0
    while True:
        try:
            c, _ = s.accept()
        except BlockingIOError:
            return n
        c.close()
        n += 1


@pytest.fixture
def small_tree(workspace: Path, tmp_path: Path, listener: socket.socket) -> Iterator[dict]:
    """Tree `sbx-*` (a checkout of ours), stack `escape`: patch 1 adds a rule
    that writes outside, patch 2 replaces it by one that connects to `listener`."""
    repo = tmp_path / "linux"
    (repo / "scripts" / "kconfig").mkdir(parents=True)
    (repo / "scripts" / "kconfig" / "merge_config.sh").write_text('cat "$5" >> "$4"\n')
    (repo / "Makefile").write_text(MAKEFILE)
    (repo / "main.c").write_text("int main(void) { return 0; }\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    tree = f"sbx-{uuid.uuid4().hex[:10]}"
    assert run_series("-C", str(workspace), "tree", "add", tree, "--path", str(repo)).rc == 0
    token = uuid.uuid4().hex[:8]
    port = listener.getsockname()[1]
    patches = [("build: write outside the tree", "Makefile", lambda s: s.replace(RECIPE, RECIPE + _escape(token))),
               ("build: reach the network", "Makefile", lambda s: s.replace(_escape(token), _connect(port)))]
    mbox = tmp_path / "escape.mbox"
    mbox.write_text(make_mbox(repo, "main", patches, "escape"))
    assert run_series("-C", str(workspace), "import", "escape", "--mbox", str(mbox), "--create").rc == 0
    yield {"ws": workspace, "tree": tree, "token": token}
    (VAR_TMP / f"escaped-{token}").unlink(missing_ok=True)


def _build(t: dict, *extra: str) -> tuple[int, dict]:
    r = run_series("-C", str(t["ws"]), "build", "escape", "--tree", t["tree"], "--onto", "main", "--per-patch",
                   "--json", *extra)
    assert r.rc in (0, 2), r.err
    return r.rc, r.json


def _escaped(build_dir: Path, token: str) -> list[Path]:
    return list(build_dir.parent.rglob(f"escaped-{token}"))


def test_the_sandbox_stops_a_write_outside_and_the_network(small_tree: dict, listener: socket.socket) -> None:
    t = small_tree
    rc, d = _build(t)
    assert rc == 2 and d["status"] == "fail"
    base, p1, p2 = d["patches"]
    assert base["status"] == "pass"                      # an ordinary build works in the sandbox
    assert p1["status"] == "fail" and p2["status"] == "fail"
    assert p1["sandbox_blocked"].startswith("it tried to write outside its build directories (")
    assert f"({VAR_TMP}/escaped-{t['token']}: Read-only file system)" in p1["sandbox_blocked"]
    assert p2["sandbox_blocked"].startswith("it tried to reach the network") and "Connection refused" in p2["sandbox_blocked"]
    assert p1["errors"][0] == explain("the build", p1["sandbox_blocked"])
    assert d["summary"] == explain("build of patch 1", p1["sandbox_blocked"]) + " (build fails at patch 1, 2)"
    # nothing escaped: no file beside the build directory, no connection to the host's server
    assert _escaped(Path(d["build_dir"]), t["token"]) == [] and not (VAR_TMP / f"escaped-{t['token']}").exists()
    assert _connections(listener) == 0
    res = json.loads((Path(d["log"]) / "results.json").read_text())
    build = next(s for s in res["stages"] if s["name"] == "build")
    assert build["extra"]["toolchain"]["sandbox"] == {"tool": "bwrap", "network": False}
    assert build["summary"] == d["summary"]
    assert "# sandboxed (bwrap)" in Path(p1["log"]).read_text()

    # the same patches without the sandbox do write and connect (the test above can fail)
    rc, d = _build(t, "--no-sandbox")
    assert rc == 0 and [p["status"] for p in d["patches"]] == ["pass"] * 3, d
    assert len(_escaped(Path(d["build_dir"]), t["token"])) == 1 and (VAR_TMP / f"escaped-{t['token']}").is_file()
    assert _connections(listener) >= 1
    res = json.loads((Path(d["log"]) / "results.json").read_text())
    assert next(s for s in res["stages"] if s["name"] == "build")["extra"]["toolchain"]["sandbox"] is None
    assert "--no-sandbox" in res["reproduce"]


def test_distcc_compiles_in_the_sandbox_only_with_the_network_shared(
        distccd: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """`--cc 'distcc gcc'`: the sandbox shares the network, so the compiles reach
    distccd (its log shows them); an unshared one would stop them, and say why."""
    from series.cache import Cache
    from series.stages.build import Toolchain, build_kernel, toolchain
    hosts, log = distccd
    monkeypatch.setenv("DISTCC_HOSTS", hosts)
    monkeypatch.setenv("DISTCC_FALLBACK", "0")       # never compile locally instead, silently
    src, obj = tmp_path / "src", tmp_path / "obj"
    src.mkdir()
    (src / "Makefile").write_text(MAKEFILE)
    (src / "main.c").write_text("int main(void) { return 0; }\n")
    tc = toolchain(Cache(tmp_path / "cache"), use_ccache=False, compiler="distcc gcc")
    assert tc.sandbox is not None and tc.sandbox.share_net
    step = build_kernel(src, obj, log=tmp_path / "build.log", tc=tc)
    assert step.ok, step.log.read_text()
    assert "COMPILE_OK" in log.read_text() and "gcc main.c" in log.read_text()
    assert "network: shared" in step.log.read_text()
    closed = Toolchain(cc=tc.cc, ident=tc.ident, sandbox=Sandbox(exe=tc.sandbox.exe, see=tc.sandbox.see))
    (obj / "main.o").unlink()
    (obj / "distcc").mkdir()
    monkeypatch.setenv("DISTCC_DIR", str(obj / "distcc"))     # distcc's state where this sandbox lets it write
    step = build_kernel(src, obj, log=tmp_path / "closed.log", tc=closed)
    assert not step.ok and step.blocked is not None and step.blocked.startswith("it tried to reach the network")


def test_a_suite_compiles_in_the_sandbox_and_cannot_write_outside(tmp_path: Path) -> None:
    from series.cache import Cache
    from series.stages.build import build_suite, toolchain
    from series.suites import Program, Suite
    src, obj, out = tmp_path / "src", tmp_path / "obj", tmp_path / "run" / "selftests"
    (src / "tools" / "t").mkdir(parents=True)
    (src / "tools" / "t" / "t.c").write_text("int main(void) { return 0; }\n")
    (obj / "usr" / "include").mkdir(parents=True)
    tc = toolchain(Cache(tmp_path / "cache"), use_ccache=False)
    token = uuid.uuid4().hex[:8]
    good = Suite(name="good", file=tmp_path / "good.toml", source_path="tools/t",
                 command=("cc", "-o", "{out}/t", "{suite_dir}/t.c"), programs=(Program("t"),))
    evil = Suite(name="evil", file=tmp_path / "evil.toml", source_path="tools/t",
                 command=("sh", "-c", f"cc -o {{out}}/t {{suite_dir}}/t.c && touch {VAR_TMP}/escaped-{token}"),
                 programs=(Program("t"),))
    try:
        b = build_suite(good, src, obj, obj / "usr" / "include", out, log=out / "good.log", tc=tc)
        assert b.status == "built" and (out / "good" / "t").is_file(), b.reason
        assert "# sandboxed (bwrap)" in (out / "good.log").read_text()
        b = build_suite(evil, src, obj, obj / "usr" / "include", out, log=out / "evil.log", tc=tc)
        assert b.status == "fail" and b.reason.startswith(
            f"the suite's build failed: it tried to write outside its build directories ({VAR_TMP}/escaped-{token}: "
            "Read-only file system); the build runs sandboxed, see --no-sandbox"), b.reason
        assert not (VAR_TMP / f"escaped-{token}").exists()
    finally:
        (VAR_TMP / f"escaped-{token}").unlink(missing_ok=True)


# -- e2e: Debian 6.12, in the warm build directory of test_build_boot.py ------------------------
def _init_rule(s: str, rule: str, token: str) -> str:
    """init/Makefile plus a target built with init/ (always-y) whose recipe is `rule`."""
    return s + f"\nalways-y += series-{token}\n$(obj)/series-{token}: FORCE\n{rule}"


@pytest.mark.e2e
def test_kernel_patch_that_escapes_fails_its_build(kernel_ws: Path, session_cache: Path,  # noqa: F811
                                                   listener: socket.socket, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:8]
    port = listener.getsockname()[1]
    write = f"\ttouch $(CURDIR)/../escaped-{token}\n"      # make runs in O=
    net = _connect(port)
    repo = session_cache / "trees" / f"{TREE}.git"
    base = subprocess.run(["git", "-C", str(repo), "tag", "--list", "debian/6.12.*"], check=True,
                          capture_output=True, text=True).stdout.split()[-1]
    stack = f"escape-{token}"
    patches = [("init: write outside the tree", "init/Makefile", lambda s: _init_rule(s, write, token)),
               ("init: reach the network", "init/Makefile", lambda s: s.replace(write, net))]
    mbox = tmp_path / "escape.mbox"
    mbox.write_text(make_mbox(repo, base, patches, stack))
    assert run_series("-C", str(kernel_ws), "import", stack, "--mbox", str(mbox), "--create").rc == 0

    def build(*extra: str) -> dict:
        r = run_series("-C", str(kernel_ws), "build", stack, "--onto", ONTO, "--tree", TREE, "--per-patch", "--json",
                       *extra)
        assert r.rc in (0, 2), r.err
        return r.json
    # --rebuild: the base is built, not reused, so obj/ starts at the base whatever an earlier test
    # left in this shared build directory (a cached base does not move the worktree, and a failed
    # step leaves objects of that earlier state stale: the rebuilt counts below would depend on it)
    d = build("--rebuild")
    assert d["status"] == "fail" and [p["status"] for p in d["patches"]] == ["pass", "fail", "fail"], d
    assert not d["patches"][0]["cached"], d["patches"][0]
    p1, p2 = d["patches"][1:]
    root = Path(d["build_dir"])
    assert f"({root}/escaped-{token}: Read-only file system)" in p1["sandbox_blocked"], p1
    assert "Connection refused" in p2["sandbox_blocked"], p2
    assert d["summary"].startswith("build of patch 1 failed: it tried to write outside its build directories (")
    assert d["summary"].count(HINT) == 1
    assert not (root / f"escaped-{token}").exists() and _connections(listener) == 0
    release = (root / "obj" / "include" / "config" / "kernel.release").read_text()
    d = build("--no-sandbox")
    assert [p["status"] for p in d["patches"]] == ["pass"] * 3, d
    # the same kernel with and without the sandbox (it sees the tree's git as make does outside)
    assert (root / "obj" / "include" / "config" / "kernel.release").read_text() == release
    assert all(p["rebuilt"] < 20 for p in d["patches"][1:]), d["patches"]
    assert (root / f"escaped-{token}").is_file() and _connections(listener) >= 1
    (root / f"escaped-{token}").unlink()
