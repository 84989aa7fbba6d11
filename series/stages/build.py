"""Kernel builds: tinyconfig + a fragment, out-of-tree (`make O=`), per patch.

A build directory is kept per (tree, base, config) under the cache:

    $SERIES_CACHE/build/<tree>-<base12>-<cfg8>/
        src/        a detached git worktree of the tree's work repository; each
                    patch is `git checkout --detach <commit>`, which rewrites
                    only the files that change, so make rebuilds only those
        obj/        make O=obj (objects kept warm between runs)
        base-warnings.json   warnings of the base build (for "new" warnings)
        logs/       one log per build step
        lock        flock: one run per build directory at a time
        objects.json         objects a full build of this config compiled (the progress bar's total)
        obj-state   the commit make last ran on in obj/: a step's `built_from`
                    (its `rebuilt` count is relative to it; after a cached
                    step that is not the previous step)
        results/<tree>-<toolchain>.json (+ .bzImage)   the recorded result of a
                    commit's build, keyed by its tree (content), reused as `cached`
        suites/<suite>-<key>/   a built test suite (programs, log), reused likewise

Compiles go through ccache when it is installed (CC="ccache gcc", depend mode, CCACHE_DIR
under the cache): content compiled once is a cache hit whatever the mtimes,
so moving the worktree back and forth costs little.  A commit whose tree was
already built here with the same toolchain is not built again: its recorded
result is reported, marked `cached` (`--rebuild` forces a build).

The source path is stable, so command lines in obj/**/.*.cmd do not change
between runs and nothing is rebuilt for that reason.

Every make, and every suite's compile, runs in the toolchain's sandbox
(series/sandbox.py: bwrap, no network, writable only src/, obj/ and ccache's
store; a suite: its output directory) unless --no-sandbox; a step the sandbox
stopped says so (`BuildStep.blocked`, the item's `sandbox_blocked`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InfraError
from ..cache import Cache
from ..fsutil import atomic_write_json, atomic_write_text
from ..git import Repo, Worktree
from ..pipeline.result import StageResult
from ..pipeline.status import Status
from ..sandbox import Sandbox, blocked, explain
from ..sandbox import sandbox as make_sandbox
from ..suites import BuiltProgram, BuiltSuite, Program, Suite, expand
from .neutral import Keep, Verdict, config_allows, short, verdicts

MAX_ERROR_LINES = 8

Progress = Callable[[str], None]
# (label, objects done, objects expected or None, what is being done)
Tick = Callable[[str, int, "int | None", str], None]

_DIAG_RE = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)? "
                      r"(?P<sev>warning|error|fatal error): (?P<msg>.*?)\s*$")
_FLAG_RE = re.compile(r"\s*\[(-W[^\]]+)\]$")
_OTHER_ERR_RE = re.compile(r"(undefined reference to|\bld(?:\.\w+)?: .*error|No rule to make target|"
                           r"^make(?:\[\d+\])?: \*\*\*|Error \d+\s*$)")
_KBUILD_STEP_RE = re.compile(r"^\s{2}([A-Z][A-Z0-9_]{1,9})\s+(\S+)\s*$")
_CFG_LINE_RE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$|^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@dataclass
class Diag:
    file: str      # relative to the source tree when possible
    line: int
    severity: str  # warning | error | fatal error
    message: str

    @property
    def key(self) -> str:
        """Identity across patches: file and message, not the line number (patches move lines)."""
        return f"{self.file}: {self.severity}: {self.message}"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.message}"


@dataclass
class BuildStep:
    ok: bool
    duration_s: float
    log: Path
    returncode: int
    diags: list[Diag] = field(default_factory=list)
    compiled: list[str] = field(default_factory=list)   # kbuild targets (CC/AS/LD lines)
    error_lines: list[str] = field(default_factory=list)
    blocked: str | None = None     # what the sandbox stopped, when its refusal made the step fail

    @property
    def warnings(self) -> list[Diag]:
        return [d for d in self.diags if d.severity == "warning"]


@dataclass
class ConfigResult:
    fragment: Path
    not_set: list[dict[str, str]]     # [{"option", "wanted", "got"}]
    duration_s: float
    log: Path


# -- small helpers ------------------------------------------------------------
def fragment_hash(fragment: Path) -> str:
    return hashlib.sha256(fragment.read_bytes()).hexdigest()[:8]


def build_dir_for(cache: Cache, tree_name: str, base_commit: str, config_hash: str) -> Path:
    return cache.build_dir(tree_name, base_commit, config_hash)


def read_config(path: Path) -> dict[str, str]:
    """CONFIG_X -> value ('n' for `# CONFIG_X is not set`)."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for ln in path.read_text(errors="replace").splitlines():
        m = _CFG_LINE_RE.match(ln.strip())
        if m:
            if m.group(1):
                out[m.group(1)] = m.group(2)
            else:
                out[m.group(3)] = "n"
    return out


def options_not_set(fragment: Path, final_config: Path) -> list[dict[str, str]]:
    want = read_config(fragment)
    have = read_config(final_config)
    missing = []
    for opt, val in want.items():
        got = have.get(opt, "n")
        if got != val:
            missing.append({"option": opt, "wanted": val, "got": got if opt in have else "(absent)"})
    return missing


def parse_diags(text: str, src: Path, obj: Path) -> list[Diag]:
    out: list[Diag] = []
    seen: set[str] = set()
    for ln in text.splitlines():
        m = _DIAG_RE.match(ln)
        if not m:
            continue
        msg = m.group("msg")
        d = Diag(file=_rel_source(m.group("file"), src, obj), line=int(m.group("line")),
                 severity=m.group("sev"), message=msg)
        k = f"{d.file}:{d.line}:{d.key}"
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out


def _rel_source(path: str, src: Path, obj: Path) -> str:
    p = Path(path)
    cands = [p] if p.is_absolute() else [obj / p, src / p]
    for c in cands:
        try:
            return str(Path(os.path.normpath(c)).relative_to(src))
        except ValueError:
            continue
    return os.path.normpath(path)


def first_errors(text: str, diags: list[Diag]) -> list[str]:
    errs = [str(d) for d in diags if d.severity != "warning"]
    if not errs:
        errs = [ln.strip() for ln in text.splitlines() if _OTHER_ERR_RE.search(ln)]
    return errs[:MAX_ERROR_LINES]


def _run_logged(cmd: list[str], *, cwd: Path, log: Path, progress: Progress | None = None,
                env: dict[str, str] | None = None, sandbox: Sandbox | None = None,
                writable: tuple[Path, ...] = (), readable: tuple[Path, ...] = ()) -> tuple[int, str]:
    """Run `cmd`, output (stdout+stderr) to `log` and returned; each line to `progress`.
    With `sandbox`, in it: only `writable` (and the sandbox's own) can be written."""
    log.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    full_env = {**os.environ, **(env or {})}
    argv = cmd
    if sandbox is not None:
        for p in sandbox.writable(writable):
            p.mkdir(parents=True, exist_ok=True)      # a bind needs its source
        argv = sandbox.wrap(cmd, writable=writable, readable=readable, cwd=cwd, env=full_env)
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.write("# " + (sandbox.describe(writable) if sandbox else "not sandboxed (--no-sandbox)") + "\n")
        f.flush()
        from ..proc import die_with_parent, stop
        try:
            # Its own process group, dying with series: an interrupted or killed
            # run leaves no make writing into the build directory (series/proc.py).
            proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, errors="replace",
                                    env=full_env, start_new_session=True,
                                    preexec_fn=die_with_parent)
        except OSError as e:
            raise InfraError(f"cannot run {argv[0]}: {e}") from None
        assert proc.stdout is not None
        try:
            for ln in proc.stdout:
                f.write(ln)
                f.flush()
                lines.append(ln)
                if progress:
                    progress(ln.rstrip("\n"))
            rc = proc.wait()
        finally:
            stop(proc, group=True)
    return rc, "".join(lines)


def _make_env() -> dict[str, str]:
    # reproducible banners: no rebuild of init/version for a changed user/host
    return {"KBUILD_BUILD_USER": "series", "KBUILD_BUILD_HOST": "series", "LC_ALL": "C"}


@dataclass(frozen=True)
class Toolchain:
    """What compiles: make's CC (through ccache when available), its identity,
    and the sandbox every step runs in (None: --no-sandbox)."""

    cc: str = "gcc"
    env: tuple[tuple[str, str], ...] = ()
    ident: str = ""           # a hash of the compiler's and linker's versions and CC
    sandbox: Sandbox | None = None

    @property
    def make_vars(self) -> list[str]:
        return [f"CC={self.cc}"]

    @property
    def environ(self) -> dict[str, str]:
        return {**_make_env(), **dict(self.env)}

    @property
    def ccache(self) -> bool:
        return self.cc.split()[0] == "ccache"

    def to_json(self) -> dict[str, Any]:
        return {"cc": self.cc, "ident": self.ident, "ccache": self.ccache,
                "sandbox": self.sandbox.to_json() if self.sandbox else None}

    def blocked(self, rc: int, output: str, writable: tuple[Path, ...]) -> str | None:
        """What the sandbox stopped, when a sandboxed step failed because of it."""
        if rc == 0 or self.sandbox is None:
            return None
        return blocked(output, self.sandbox.writable(writable), share_net=self.sandbox.share_net)


def _version_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.splitlines()[0] if out else ""


_IDENTS: dict[str, str] = {}


def toolchain(cache: Cache | None = None, *, use_ccache: bool = True, compiler: str = "gcc",
              sandboxed: bool = True) -> Toolchain:
    """The toolchain of a kernel build: `compiler`, prefixed by ccache when it is
    installed (and `cache` given: its store lives in the cache), run in the
    sandbox (series/sandbox.py) unless not `sandboxed`: InfraError when it
    cannot be made."""
    cc = compiler
    env: tuple[tuple[str, str], ...] = ()
    if use_ccache and cache is not None and shutil.which("ccache") and not compiler.startswith("ccache"):
        words = compiler.split()
        # distcc/icecc behind ccache: ccache hashes locally, a miss compiles remotely (CCACHE_PREFIX)
        prefix = words[0] if len(words) > 1 and Path(words[0]).name in ("distcc", "icecc") else None
        cc = f"ccache {' '.join(words[1:]) if prefix else compiler}"
        # depend mode: a miss runs the compiler alone and learns the headers from
        # the -MMD file kbuild asks for, where the default mode would preprocess
        # each source first to hash it (a cold base build here: 162 s against
        # 262 s); a hit is found the same way (the manifest of header contents)
        env = (("CCACHE_DIR", str(cache.ccache)), ("CCACHE_MAXSIZE", "5G"), ("CCACHE_NOHASHDIR", "1"),
               ("CCACHE_DEPEND", "1"), *((("CCACHE_PREFIX", prefix),) if prefix else ()))
    # per the programs PATH finds now, not per name: a PATH with another make is another toolchain
    which = "\0".join([compiler, *(shutil.which(w) or w for w in (compiler.split()[0], "ld", "make"))])
    if which not in _IDENTS:
        text = "\n".join([_version_line(compiler.split() + ["--version"]), _version_line(["ld", "--version"]),
                          _version_line(["make", "--version"])])
        _IDENTS[which] = hashlib.sha256(text.encode()).hexdigest()[:12]
    sb = None
    if sandboxed:
        # the cache stays visible (read-only) even when it lives under /tmp; ccache's store is writable
        sb = make_sandbox(compiler=compiler, see=(cache.root,) if cache else (),
                          writable=tuple(Path(v) for k, v in env if k == "CCACHE_DIR"))
    return Toolchain(cc=cc, env=env, ident=_IDENTS[which], sandbox=sb)


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


# -- config -----------------------------------------------------------------
def configure(src: Path, obj: Path, fragment: Path, *, log: Path, tc: Toolchain | None = None) -> ConfigResult:
    """tinyconfig, merge the fragment with the tree's merge_config.sh, olddefconfig."""
    if shutil.which("make") is None:
        raise InfraError("make not found")
    tc = tc or Toolchain()
    obj.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    steps = [
        # -j: tinyconfig first compiles kconfig's own tools (10 s of a cold run one at a time)
        ["make", "-C", str(src), f"O={obj}", *tc.make_vars, f"-j{default_jobs()}", "tinyconfig"],
        ["bash", str(src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(obj), str(obj / ".config"), str(fragment)],
        ["make", "-C", str(src), f"O={obj}", *tc.make_vars, f"-j{default_jobs()}", "olddefconfig"],
    ]
    texts = []
    rw = (src, obj)
    for i, cmd in enumerate(steps):
        rc, out = _run_logged(cmd, cwd=src, log=log.with_suffix(f".{i}.log"), env=tc.environ, sandbox=tc.sandbox,
                              writable=rw, readable=(fragment,))
        texts.append(out)
        if rc != 0:
            why = tc.blocked(rc, out, rw)
            if why:
                raise InfraError(explain("the kernel config step", why) + f" ({log.with_suffix(f'.{i}.log')})")
            raise InfraError(f"kernel config step failed ({' '.join(cmd[:4])}...): see {log.with_suffix(f'.{i}.log')}")
    log.write_text("\n".join(texts))
    return ConfigResult(fragment=fragment, not_set=options_not_set(fragment, obj / ".config"),
                        duration_s=time.monotonic() - start, log=log)


# -- one build --------------------------------------------------------------
@contextmanager
def make_guard(obj: Path) -> Iterator[None]:
    """Around a make that writes into obj/.  A make stopped hard (series killed,
    or interrupted: it stops its children with SIGKILL) can leave outputs half
    written with fresh mtimes, an empty vmlinux.o or a truncated object, that
    the next make takes as up to date.  A mark beside obj/ says a make is
    running and is removed when it returns; a make that finds the mark first
    deletes every file in obj/ written since it (but .config, which kconfig
    replaces whole), and make writes them again (ccache hits, mostly)."""
    mark = obj.parent / f".{obj.name}-make-running"
    try:
        since = mark.stat().st_mtime_ns
    except FileNotFoundError:
        since = None
    if since is not None:
        for dirpath, _dirs, files in os.walk(obj):
            for f in files:
                path = os.path.join(dirpath, f)
                try:
                    if f != ".config" and os.lstat(path).st_mtime_ns >= since:
                        os.unlink(path)
                except FileNotFoundError:
                    pass
    obj.mkdir(parents=True, exist_ok=True)
    mark.write_text(f"{os.getpid()}\n")
    yield
    mark.unlink(missing_ok=True)     # not on an exception: that make did not return


def build_kernel(src: Path, obj: Path, *, log: Path, jobs: int | None = None,
                 progress: Progress | None = None, target: str = "bzImage", tc: Toolchain | None = None,
                 on_object: Callable[[int, str], None] | None = None) -> BuildStep:
    """`make O=obj -jN bzImage`; the diagnostics and the kbuild steps it printed.
    `on_object(n, "CC path")` is called for each object compiled (CC, AS)."""
    start = time.monotonic()
    tc = tc or Toolchain()
    cmd = ["make", "-C", str(src), f"O={obj}", *tc.make_vars, f"-j{jobs or default_jobs()}", target]
    count = [0]

    def line(ln: str) -> None:
        if progress:
            progress(ln)
        if on_object:
            m = _KBUILD_STEP_RE.match(ln)
            if m and m.group(1) in ("CC", "AS"):
                count[0] += 1
                on_object(count[0], f"{m.group(1)} {m.group(2)}")
    rw = (src, obj)
    with make_guard(obj):
        rc, out = _run_logged(cmd, cwd=src, log=log, progress=line if (progress or on_object) else None,
                              env=tc.environ, sandbox=tc.sandbox, writable=rw)
    diags = parse_diags(out, src, obj)
    compiled = [m.group(2) for m in map(_KBUILD_STEP_RE.match, out.splitlines()) if m and m.group(1) in ("CC", "AS")]
    why = tc.blocked(rc, out, rw)
    errors = ([explain("the build", why)] if why else []) + (first_errors(out, diags) if rc != 0 else [])
    return BuildStep(ok=rc == 0, duration_s=time.monotonic() - start, log=log, returncode=rc, diags=diags,
                     compiled=compiled, error_lines=errors[:MAX_ERROR_LINES], blocked=why)


def bzimage_path(obj: Path) -> Path:
    return obj / "arch" / "x86" / "boot" / "bzImage"


# -- the build directory ------------------------------------------------------
@dataclass
class BuildDir:
    root: Path
    toolchain: Toolchain = field(default_factory=Toolchain)

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def obj(self) -> Path:
        return self.root / "obj"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def base_warnings_file(self) -> Path:
        return self.root / "base-warnings.json"

    def ensure_worktree(self, repo: Path, commit: str, *, move: bool = True) -> None:
        """A detached worktree of `repo` at `commit` at the stable path src/: made
        once, then moved by detached checkouts (make rebuilds only what changed).
        `move=False` leaves a healthy worktree where it is (the next step moves it)."""
        r = Repo(repo)
        if self.src.exists() and not Worktree(r, self.src).belongs_to_repo():
            shutil.rmtree(self.src)  # not a worktree of ours: a leftover in our build directory
        wt = Worktree(r, self.src)
        if not move and wt.is_ours() and not wt.is_sparse():
            return
        Worktree.open_or_add(r, self.src, commit, clean=False)

    # -- recorded results (reused as `cached`) ---------------------------------
    @property
    def results(self) -> Path:
        return self.root / "results"

    def result_key(self, repo: Path, commit: str) -> str:
        """The content built (the commit's tree) and the toolchain: the config is the directory's."""
        tree = Repo(repo).ref_value(commit + "^{tree}")
        if tree is None:
            raise InfraError(f"no commit {commit} in {repo}")
        return f"{tree}-{self.toolchain.ident}"

    def recorded(self, key: str) -> dict[str, Any] | None:
        import json
        try:
            rec = json.loads((self.results / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        bz = self.results / f"{key}.bzImage"
        return rec if isinstance(rec, dict) and bz.is_file() else None

    def record(self, key: str, item: dict[str, Any], bzimage: Path | None = None) -> None:
        """Keep a passing step's result and its bzImage (a later run of the same tree reuses them)."""
        self.results.mkdir(parents=True, exist_ok=True)
        tmp = self.results / f".{key}.bzImage.tmp"
        shutil.copy2(bzimage or bzimage_path(self.obj), tmp)
        os.replace(tmp, self.results / f"{key}.bzImage")
        atomic_write_json(self.results / f"{key}.json", item)

    def recorded_bzimage(self, key: str) -> Path:
        return self.results / f"{key}.bzImage"

    def passing_kernel(self, repo: Path, commit: str) -> Path | None:
        """The recorded bzImage of a commit whose build here passed, else None."""
        key = self.result_key(repo, commit)
        rec = self.recorded(key)
        return self.recorded_bzimage(key) if rec is not None and rec.get("status") == "pass" else None

    @property
    def suite_results(self) -> Path:
        """Built test suites, per (tree, suite, toolchain): see build_suites."""
        return self.root / "suites"

    # -- what obj/ was last built from ------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.root / "obj-state"

    def built_state(self) -> str | None:
        """The commit make last ran on in obj/ (None: a cold directory, or not known).
        A cached step does not move obj/, so this is not always the previous step."""
        try:
            text = self.state_file.read_text().strip()
        except OSError:
            return None
        return text if re.fullmatch(r"[0-9a-f]{40}", text) and bzimage_path(self.obj).is_file() else None

    def save_built_state(self, commit: str) -> None:
        atomic_write_text(self.state_file, commit + "\n")

    # -- object counts (the progress bar's total) --------------------------------
    @property
    def objects_file(self) -> Path:
        return self.root / "objects.json"

    def full_object_count(self) -> int | None:
        import json
        try:
            n = json.loads(self.objects_file.read_text()).get("full")
        except (OSError, ValueError, AttributeError):
            return None
        return int(n) if isinstance(n, int) and n > 0 else None

    def save_full_object_count(self, n: int) -> None:
        atomic_write_json(self.objects_file, {"full": n})

    def write_fragment(self, text: str) -> Path:
        """The merged config fragment of this build directory (rewritten only when it changed)."""
        path = self.root / "config.fragment"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
        return path

    def configured(self, fragment: Path) -> bool:
        stamp = self.root / "config.stamp"
        return (self.obj / ".config").is_file() and stamp.is_file() and stamp.read_text().strip() == fragment_hash(fragment)

    def mark_configured(self, fragment: Path, cfg: ConfigResult) -> None:
        (self.root / "config.stamp").write_text(fragment_hash(fragment) + "\n")
        atomic_write_json(self.root / "config.json", {"fragment": str(fragment), "not_set": cfg.not_set})

    def stored_not_set(self) -> list[dict[str, str]]:
        import json
        try:
            return list(json.loads((self.root / "config.json").read_text()).get("not_set", []))
        except (OSError, ValueError):
            return []

    def load_base_warnings(self) -> set[str]:
        import json
        try:
            return set(json.loads(self.base_warnings_file.read_text()))
        except (OSError, ValueError):
            return set()

    def save_base_warnings(self, keys: set[str]) -> None:
        atomic_write_json(self.base_warnings_file, sorted(keys))


def checkout(worktree: Path, commit: str) -> None:
    """Move the build worktree to `commit`: only files that differ are rewritten."""
    Worktree.at(worktree).checkout(commit)


# -- what the kernel build reads ------------------------------------------------------
_NOT_BUILD_INPUT_RE = re.compile(r"^(Documentation/|tools/testing/|LICENSES/|MAINTAINERS$|CREDITS$|README$|\.mailmap$)")


def is_build_input(path: str) -> bool:
    """Whether `make bzImage` may read `path`.  Not: the documentation (but its
    Kconfig files), the selftests, the licences and the maintainers' files."""
    name = path.rsplit("/", 1)[-1]
    if name.startswith("Kconfig") or name in ("Makefile", "Kbuild"):
        return True
    return not _NOT_BUILD_INPUT_RE.match(path)


def move_worktree(bd: "BuildDir", repo: Path, commit: str, *, config_text: str | None, jobs: int | None,
                  prove: bool = True) -> tuple[str | None, Keep | None]:
    """Move the build worktree to `commit`; a file whose change the compiler cannot see
    keeps the mtime it had, so make compiles nothing for it (neutral.Keep; `prove`:
    preprocess to settle a comment that moved code lines, else it counts as a change).
    Returns the commit it came from (None when obj/ is cold) and what was kept."""
    since = Worktree.at(bd.src).head() if bzimage_path(bd.obj).is_file() else None
    keep = None
    tc, n = bd.toolchain, jobs or default_jobs()
    env = {**os.environ, **tc.environ}
    if since is not None and since != commit and config_text is not None:
        inputs = [p for p in changed_paths(repo, since, commit) if is_build_input(p)]
        keep = Keep.plan(repo, bd.src, bd.obj, since, commit, inputs, config_text=config_text, jobs=n,
                         env=env, sandbox=tc.sandbox, prove=prove)
    checkout(bd.src, commit)
    if keep is not None:
        keep.settle(bd.src, bd.obj, jobs=n, env=env, sandbox=tc.sandbox)
        Worktree.at(bd.src).restat(keep.neutral)   # else the next forced checkout rewrites them: a new mtime
    return since, keep


def same_kernel(repo: Path, a: str, b: str, config_text: str | None) -> str | None:
    """Why commit b's kernel is commit a's, without preprocessing (no build input
    changed, or only comments and whitespace that leave every code line in place),
    else None."""
    changed = changed_paths(repo, a, b)
    inputs = [p for p in changed if is_build_input(p)]
    if not inputs:
        return f"no kernel build input changed: {short(changed)}"
    if config_text is None or not config_allows(config_text, Verdict.SAME):
        return None
    if all(v is Verdict.SAME for v in verdicts(repo, a, b, inputs).values()):
        return f"only comments or whitespace changed: {short(inputs)}"
    return None


def _built_kernels(bd: "BuildDir", repo: Path, prev: tuple[str, str, Path] | None,
                   built_from: str | None) -> Iterator[tuple[str, str, Path]]:
    """The kernels a step may be: the previous step's, then the recorded build of obj/'s commit."""
    if prev is not None:
        yield prev
    if built_from is not None and (prev is None or prev[1] != built_from):
        bz = bd.passing_kernel(repo, built_from) if Repo(repo).ref_value(built_from + "^{commit}") else None
        if bz is not None:
            yield (built_from[:12], built_from, bz)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def changed_paths(repo: Path, a: str, b: str) -> list[str]:
    out = Repo(repo).run("diff", "--name-only", "--no-renames", a, b)
    return [ln for ln in out.splitlines() if ln]


def expected_objects(obj: Path, changed: list[str]) -> int:
    """How many objects an incremental build will compile: those whose recorded
    kbuild dependencies (obj/**/.*.o.cmd) name a changed file (the relink's own
    objects are not counted)."""
    if not changed:
        return 0
    needles = tuple(f"/{c}" for c in changed) + tuple(f" {c}" for c in changed)
    n = 0
    for cmd in obj.rglob(".*.o.cmd"):
        try:
            text = cmd.read_text(errors="replace")
        except OSError:
            continue
        if any(x in text for x in needles):
            n += 1
    return n


# -- the series -----------------------------------------------------------------
@dataclass
class SeriesBuild:
    stage: StageResult
    bzimage: Path | None              # the bzImage of the last commit, when it built
    not_set: list[dict[str, str]]


def build_series(bd: BuildDir, repo: Path, base: str, commits: list[tuple[int, str]], *,
                 fragment: Path, per_patch: bool = True, jobs: int | None = None,
                 progress: Progress | None = None, build_base: bool = True, rebuild: bool = False,
                 tick: Tick | None = None, expected_full: int | None = None) -> SeriesBuild:
    """Build the base (entry index 0), then each commit (per_patch) or only the
    last one, in the same build directory.  The caller holds bd.lock.

    A step whose tree was built here before with the same toolchain reuses the
    recorded result (`cached`), unless `rebuild`.  The worktree is moved only
    for the steps that build, and to the last commit at the end (the test
    suites are built from it).  `tick(label, done, expected, what)` follows the
    objects compiled; `expected` is the full build's count for a cold build
    (this directory's, else `expected_full`), None for an incremental one."""
    start = time.monotonic()
    say = progress or (lambda _m: None)
    bd.root.mkdir(parents=True, exist_ok=True)
    tc = bd.toolchain
    bd.ensure_worktree(repo, base, move=False)
    if bd.configured(fragment):
        not_set = bd.stored_not_set()
    else:
        say(f"configuring: tinyconfig + {fragment.name} (CC={tc.cc})")
        bd.ensure_worktree(repo, base)
        cfg = configure(bd.src, bd.obj, fragment, log=bd.logs / "config.log", tc=tc)
        bd.mark_configured(fragment, cfg)
        not_set = cfg.not_set

    items: list[dict[str, Any]] = []
    base_keys = bd.load_base_warnings()
    last_ok: Path | None = None
    steps = ([(0, base)] if build_base or not commits else []) + (commits if per_patch else commits[-1:])
    prev: tuple[str, str, Path] | None = None   # the last passing step: (label, commit, its bzImage)
    for index, commit in steps:
        label = "base" if index == 0 else f"patch {index}"
        key = bd.result_key(repo, commit)
        rec = None if rebuild else bd.recorded(key)
        if rec is not None:
            item = {**rec, "index": index, "commit": commit, "cached": True,
                    "cached_from": f"{str(rec.get('commit', '?'))[:12]} (the same tree, config and toolchain)"}
            items.append(item)
            prev = (label, commit, bd.recorded_bzimage(key)) if item.get("status") == "pass" else None
            if commit == steps[-1][1]:
                last_ok = bd.recorded_bzimage(key)
            say(f"{label}: cached (built before as {str(rec.get('commit', '?'))[:12]}, same tree and toolchain)")
            if tick:
                tick(label, 1, 1, "cached")
            continue
        config_text = _read(bd.obj / ".config")
        built_from = bd.built_state()   # None when cold

        def reuse(bz: Path, source: str, why: str, _l: str = label, _i: int = index, _c: str = commit,
                  _k: str = key) -> tuple[str, str, Path]:
            """This step's kernel is one built already: recorded as this step's, no make."""
            item = {"index": _i, "commit": _c, "status": "pass", "duration_s": 0.0, "new_warnings": [],
                    "errors": [], "rebuilt": 0, "log": None, "cached": True, "cached_from": f"{source} ({why})"}
            bd.record(_k, item, bzimage=bz)
            items.append(item)
            say(f"{_l}: the kernel of {source} ({why})")
            if tick:
                tick(_l, 1, 1, "unchanged kernel")
            return (_l, _c, bd.recorded_bzimage(_k))
        # the previous step's kernel, or obj/'s last build, when nothing make reads has changed
        # since, or only comments and whitespace that leave the code in place (neutral.py)
        same_as = None if rebuild else next(
            ((bz, lbl, why) for lbl, c, bz in _built_kernels(bd, repo, prev, built_from)
             if (why := same_kernel(repo, c, commit, config_text)) is not None), None)
        if same_as is not None:
            prev = reuse(*same_as)
            last_ok = prev[2] if commit == steps[-1][1] else last_ok
            continue
        cold = not bzimage_path(bd.obj).is_file()
        expected: int | None = None
        if cold:
            expected = bd.full_object_count() or expected_full
        elif tick is not None:   # only a progress bar needs it
            # built_from may have been pruned from the repository since: then the worktree's commit
            known = built_from if built_from and Repo(repo).ref_value(built_from + "^{commit}") else None
            expected = expected_objects(bd.obj, changed_paths(repo, known or Worktree.at(bd.src).head(), commit))
        # --rebuild trusts nothing: no mtime kept either
        since, keep = move_worktree(bd, repo, commit, config_text=None if rebuild else config_text, jobs=jobs)
        if keep is not None and keep.why_not:
            say(f"{label}: comment lines moved code lines, compiled again: {keep.why_not}")
        obj_kernel = bd.passing_kernel(repo, since) if keep is not None and keep.all_neutral and \
            since is not None and since == built_from else None
        if keep is not None and obj_kernel is not None:
            # what changed since obj/ was built is invisible to the compiler: that kernel, no make
            why = f"only comments or whitespace changed: {short(keep.neutral)}" + \
                (f"; code lines moved, {len(keep.units)} object(s) checked: no __LINE__ reaches them"
                 if keep.moved else "")
            prev = reuse(obj_kernel, str(since)[:12], why)
            last_ok = prev[2] if commit == steps[-1][1] else last_ok
            bd.save_built_state(commit)   # obj/ is up to date for it: make would compile nothing
            continue
        bd.save_built_state(commit)   # before make: an interrupted make leaves obj/ on its way to this commit
        say(f"building {label} ({commit[:12]})")
        on_object = (lambda n, what, _l=label, _e=expected: tick(_l, n, _e, what)) if tick else None
        if tick:
            tick(label, 0, expected, "make")
        step = build_kernel(bd.src, bd.obj, log=bd.logs / f"build-{index:02d}-{commit[:12]}.log", jobs=jobs,
                            progress=_step_progress(say, label), tc=tc, on_object=on_object)
        keys = {d.key for d in step.warnings}
        if index == 0:
            base_keys |= keys
            bd.save_base_warnings(base_keys)
            new: list[str] = []
        else:
            new = [str(d) for d in step.warnings if d.key not in base_keys]
        item = {"index": index, "commit": commit, "status": "pass" if step.ok else "fail",
                "duration_s": round(step.duration_s, 3), "new_warnings": new,
                "errors": step.error_lines, "rebuilt": len(step.compiled), "log": str(step.log), "cached": False,
                "built_from": built_from}
        if step.blocked:
            item["sandbox_blocked"] = step.blocked
        items.append(item)
        prev = None
        if step.ok:
            if cold:
                bd.save_full_object_count(len(step.compiled))
            bd.record(key, item)
            prev = (label, commit, bd.recorded_bzimage(key))
            if commit == steps[-1][1]:
                last_ok = bzimage_path(bd.obj)
        if tick:
            tick(label, len(step.compiled), len(step.compiled), "ok" if step.ok else "FAILED")
        say(f"{label}: {'ok' if step.ok else 'FAILED'} in {step.duration_s:.1f}s"
            + (f", {len(new)} new warning(s)" if new else ""))
    if steps and Worktree.at(bd.src).head() != Repo(repo).rev_parse(steps[-1][1]):
        # the suites are built from the last commit's tree
        built_from = bd.built_state()
        since, keep = move_worktree(bd, repo, steps[-1][1], config_text=None if rebuild else _read(bd.obj / ".config"),
                                    jobs=jobs, prove=False)
        if keep is not None and not keep.real and since is not None and since == built_from:
            bd.save_built_state(steps[-1][1])   # nothing make reads changed but comments: obj/ is up to date for it

    stage = build_verdict(items)
    stage.duration_s, stage.log = time.monotonic() - start, str(bd.logs)
    stage.extra = {"config": str(fragment), "not_set": not_set, "build_dir": str(bd.root), "toolchain": tc.to_json()}
    return SeriesBuild(stage=stage, bzimage=last_ok, not_set=not_set)


def build_verdict(items: list[dict[str, Any]]) -> StageResult:
    """The build stage's status, summary and counts from its items (base = index 0,
    then patches); `series ci --merge` recomputes it from the shards' items."""
    items = sorted(items, key=lambda i: int(i["index"]))
    patch_items = [i for i in items if i["index"] > 0]
    status: Status
    if items and items[0]["index"] == 0 and items[0]["status"] == "fail":
        status = Status.FAIL
        summary = "the base does not build"
    elif any(i["status"] == "fail" for i in patch_items):
        bad = [str(i["index"]) for i in patch_items if i["status"] == "fail"]
        status, summary = Status.FAIL, f"build fails at patch {', '.join(bad)}"
    elif any(i["new_warnings"] for i in patch_items):
        warned = [str(i["index"]) for i in patch_items if i["new_warnings"]]
        status, summary = Status.WARN, f"new warnings at patch {', '.join(warned)}"
    else:
        status, summary = Status.PASS, f"{len(patch_items)} patch build(s) ok"
    stopped = next((i for i in items if i["status"] == "fail" and i.get("sandbox_blocked")), None)
    if stopped is not None:     # the sandbox's refusal, in one line: the first step it stopped
        what = "the base" if stopped["index"] == 0 else f"patch {stopped['index']}"
        summary = explain(f"build of {what}", str(stopped["sandbox_blocked"])) + \
            ("" if summary == f"build fails at patch {stopped['index']}" or stopped["index"] == 0 else f" ({summary})")
    cached = sum(bool(i.get("cached")) for i in items)
    if cached:
        summary += f" ({cached} of {len(items)} cached)"
    return StageResult(name="build", status=status, summary=summary, items=items,
                       counts={"pass": sum(i["status"] == "pass" for i in items),
                               "fail": sum(i["status"] == "fail" for i in items), "cached": cached},
                       cached=bool(items) and cached == len(items))


def _step_progress(say: Progress, label: str) -> Progress:
    def f(line: str) -> None:
        m = _KBUILD_STEP_RE.match(line)
        if m:
            say(f"building {label}: {m.group(1)} {m.group(2)}")
    return f


# -- test suites ------------------------------------------------------------------
HEADER_INPUTS = ("include/uapi", "arch/x86/include/uapi", "arch/x86/entry/syscalls", "scripts", "Makefile")


def install_headers(src: Path, obj: Path, *, log: Path, tc: Toolchain | None = None) -> Path:
    """`make headers` into obj/usr/include; skipped when the headers there were
    installed from the same inputs (the uapi directories, the syscall tables,
    the scripts and the top Makefile of src's HEAD)."""
    tc = tc or Toolchain()
    hdr = obj / "usr" / "include"
    stamp = obj / "usr" / ".series-headers"
    g = Repo(src)
    key = ",".join(g.ref_value(f"HEAD:{p}") or "-" for p in HEADER_INPUTS) + "," + tc.ident
    if hdr.is_dir() and stamp.is_file() and stamp.read_text() == key:
        return hdr
    rw = (src, obj)
    with make_guard(obj):
        rc, out = _run_logged(["make", "-C", str(src), f"O={obj}", *tc.make_vars, f"-j{default_jobs()}",
                               "headers"], cwd=src, log=log, env=tc.environ, sandbox=tc.sandbox, writable=rw)
    if rc != 0:
        why = tc.blocked(rc, out, rw)
        raise InfraError(explain("make headers", why) + f" ({log})" if why else f"make headers failed: see {log}")
    stamp.write_text(key)
    return hdr


def build_suite(suite: Suite, src: Path, obj: Path, hdr: Path, out_dir: Path, *, log: Path,
                tc: Toolchain | None = None) -> BuiltSuite:
    """Build one suite as its file says, against the tree under test's headers,
    in tc's sandbox: it writes in its output directory and the worktree only."""
    tc = tc or Toolchain()
    d = suite.source_dir(src)
    for f in suite.require:
        if not (d / f).is_file():
            where = f"this tree has no {suite.source_path}/{f}" if suite.source_kind == "tree" else f"{d / f} is missing"
            return BuiltSuite(suite, "skip", reason=where)
    for f, text, why in suite.require_text:
        try:
            if text not in (d / f).read_text(errors="replace"):
                return BuiltSuite(suite, "skip", reason=why)
        except OSError:
            return BuiltSuite(suite, "skip", reason=f"{suite.source_path}/{f} cannot be read")
    out = out_dir / suite.name
    out.mkdir(parents=True, exist_ok=True)
    values = {"src": str(src), "obj": str(obj), "headers": str(hdr), "suite_dir": str(d), "out": str(out)}
    cmd = expand(suite.command, values, [s for s in suite.sources if (d / s).is_file()])
    rw, ro = (src, out), (d, obj)
    # a suite built by make builds its programs in parallel, as the kernel is
    rc, output = _run_logged(cmd, cwd=d, log=log, sandbox=tc.sandbox, writable=rw, readable=ro,
                             env={"MAKEFLAGS": f"-j{default_jobs()}"})
    command = " ".join(cmd)
    if rc != 0:
        stopped = tc.blocked(rc, output, rw)
        errs = ([explain("the suite's build", stopped)] if stopped else []) + first_errors(output, parse_diags(output, src, d))
        return BuiltSuite(suite, "fail", reason="; ".join(errs[:3]) or f"{cmd[0]} exited {rc}", log=log, command=command)
    programs = list(suite.programs)
    if suite.programs_from:
        lcmd = expand(suite.programs_from, values, [])
        rc, listed = _run_logged(lcmd, cwd=d, log=log.with_suffix(".programs.log"), sandbox=tc.sandbox,
                                 writable=rw, readable=ro)
        names = listed.split() if rc == 0 else []
        if rc != 0 or not names:
            return BuiltSuite(suite, "fail", reason=f"cannot list the programs ({' '.join(lcmd)} exited {rc})",
                              log=log, command=command)
        programs = [Program(n) for n in names]
    built = []
    for p in programs:
        path = out / p.name
        if not path.is_file():
            return BuiltSuite(suite, "fail", reason=f"the build made no {p.name}", log=log, command=command)
        built.append(BuiltProgram(suite.name, p.name, path, p.args))
    return BuiltSuite(suite, "built", programs=built, log=log, command=command)


def build_suites(src: Path, obj: Path, out_dir: Path, suites: tuple[Suite, ...], *, log_dir: Path,
                 tc: Toolchain | None = None, record_dir: Path | None = None,
                 rebuild: bool = False) -> list[BuiltSuite]:
    """`make headers` into obj, then every suite, each static against those headers.

    With `record_dir`, a suite already built from the same tree (src's HEAD),
    suite file, bundled sources and toolchain is copied from its record instead
    (no `make headers`, no compile); new builds are recorded there."""
    if not suites:
        return []
    tc = tc or Toolchain()
    keys: dict[str, str] = {}
    if record_dir is not None:
        keys = {s.name: k for s in suites if (k := suite_key(s, src, tc)) is not None}
    reused = {s.name: b for s in suites if not rebuild and s.name in keys and record_dir is not None
              and (b := _recorded_suite(s, record_dir / keys[s.name], out_dir)) is not None}
    if len(reused) == len(suites):
        return [reused[s.name] for s in suites]
    hdr = install_headers(src, obj, log=log_dir / "headers.log", tc=tc)
    out = []
    for s in suites:
        if s.name in reused:
            out.append(reused[s.name])
            continue
        b = build_suite(s, src, obj, hdr, out_dir, log=log_dir / f"{s.name}.log", tc=tc)
        if record_dir is not None and s.name in keys and b.status != "fail":
            _record_suite(b, record_dir / keys[s.name])
        out.append(b)
    return out


_SOURCE_SUFFIXES = {".c", ".h", ".S", ".sh", ".mk", ".lds"}
# What a bundled suite takes from the tree: the exported headers (`make headers`:
# the uapi directories, the syscall tables, the install script) and the
# selftests' and tools' own headers.
BUNDLED_TREE_DEPS = (*HEADER_INPUTS, "tools/include", "tools/testing/selftests/kselftest_harness.h",
                     "tools/testing/selftests/kselftest.h", "tools/testing/selftests/lib.mk")


def suite_key(suite: Suite, src: Path, tc: Toolchain) -> str | None:
    """What a suite's build depends on: the tree at src's HEAD (all of it for a
    suite whose sources are in the tree; the headers and the selftests' headers
    for a bundled one), the suite file, a bundled suite's sources, the toolchain.
    None when src has no HEAD."""
    g = Repo(src)
    tree: str | None
    if suite.source_kind == "tree":
        tree = g.ref_value("HEAD^{tree}")
    else:
        parts = [g.ref_value(f"HEAD:{p}") or "-" for p in BUNDLED_TREE_DEPS]
        tree = ",".join(parts) if any(x != "-" for x in parts) else None
    if tree is None:
        return None
    h = hashlib.sha256(f"{tree}\0{tc.ident}\0".encode())
    h.update(suite.file.read_bytes() if suite.file.is_file() else suite.name.encode())
    if suite.source_kind != "tree":
        d = suite.source_dir(src)
        for f in sorted(d.rglob("*")) if d.is_dir() else []:
            if f.is_file() and (f.suffix in _SOURCE_SUFFIXES or f.name == "Makefile"):
                h.update(str(f.relative_to(d)).encode() + b"\0" + f.read_bytes())
    return f"{suite.name}-{h.hexdigest()[:16]}"


def _record_suite(b: BuiltSuite, d: Path) -> None:
    import json
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for p in b.programs:
        shutil.copy2(p.path, tmp / p.name)
    if b.log is not None and b.log.is_file():
        shutil.copyfile(b.log, tmp / "build.log")
    (tmp / "suite.json").write_text(json.dumps({
        "status": b.status, "reason": b.reason, "command": b.command,
        "programs": [{"name": p.name, "args": list(p.args)} for p in b.programs]}))
    shutil.rmtree(d, ignore_errors=True)
    os.replace(tmp, d)


def _recorded_suite(suite: Suite, d: Path, out_dir: Path) -> BuiltSuite | None:
    import json
    try:
        rec = json.loads((d / "suite.json").read_text())
    except (OSError, ValueError):
        return None
    out = out_dir / suite.name
    out.mkdir(parents=True, exist_ok=True)
    progs = []
    for p in rec.get("programs", []):
        if not (d / p["name"]).is_file():
            return None
        shutil.copy2(d / p["name"], out / p["name"])
        progs.append(BuiltProgram(suite.name, p["name"], out / p["name"], tuple(p.get("args", ()))))
    log = None
    if (d / "build.log").is_file():
        log = out_dir / f"{suite.name}.log"
        shutil.copyfile(d / "build.log", log)
    return BuiltSuite(suite, str(rec.get("status")), programs=progs, reason=str(rec.get("reason") or ""),
                      log=log, command=str(rec.get("command") or ""), cached=True)
