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

The source path is stable, so command lines in obj/**/.*.cmd do not change
between runs and nothing is rebuilt for that reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InfraError
from ..cache import Cache
from ..fsutil import atomic_write_json, atomic_write_text
from ..git import Repo, Worktree
from ..pipeline.result import StageResult
from ..pipeline.status import Status
from ..suites import BuiltProgram, BuiltSuite, Program, Suite, expand

MAX_ERROR_LINES = 8

Progress = Callable[[str], None]

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
                env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `cmd`, output (stdout+stderr) to `log` and returned; each line to `progress`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, errors="replace",
                                    env={**os.environ, **(env or {})})
        except OSError as e:
            raise InfraError(f"cannot run {cmd[0]}: {e}") from None
        assert proc.stdout is not None
        for ln in proc.stdout:
            f.write(ln)
            f.flush()
            lines.append(ln)
            if progress:
                progress(ln.rstrip("\n"))
        rc = proc.wait()
    return rc, "".join(lines)


def _make_env() -> dict[str, str]:
    # reproducible banners: no rebuild of init/version for a changed user/host
    return {"KBUILD_BUILD_USER": "series", "KBUILD_BUILD_HOST": "series", "LC_ALL": "C"}


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


# -- config -----------------------------------------------------------------
def configure(src: Path, obj: Path, fragment: Path, *, log: Path) -> ConfigResult:
    """tinyconfig, merge the fragment with the tree's merge_config.sh, olddefconfig."""
    if shutil.which("make") is None:
        raise InfraError("make not found")
    obj.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    steps = [
        ["make", "-C", str(src), f"O={obj}", "tinyconfig"],
        ["bash", str(src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(obj), str(obj / ".config"), str(fragment)],
        ["make", "-C", str(src), f"O={obj}", "olddefconfig"],
    ]
    texts = []
    for i, cmd in enumerate(steps):
        rc, out = _run_logged(cmd, cwd=src, log=log.with_suffix(f".{i}.log"), env=_make_env())
        texts.append(out)
        if rc != 0:
            raise InfraError(f"kernel config step failed ({' '.join(cmd[:4])}...): see {log.with_suffix(f'.{i}.log')}")
    log.write_text("\n".join(texts))
    return ConfigResult(fragment=fragment, not_set=options_not_set(fragment, obj / ".config"),
                        duration_s=time.monotonic() - start, log=log)


# -- one build --------------------------------------------------------------
def build_kernel(src: Path, obj: Path, *, log: Path, jobs: int | None = None,
                 progress: Progress | None = None, target: str = "bzImage") -> BuildStep:
    """`make O=obj -jN bzImage`; the diagnostics and the kbuild steps it printed."""
    start = time.monotonic()
    cmd = ["make", "-C", str(src), f"O={obj}", f"-j{jobs or default_jobs()}", target]
    rc, out = _run_logged(cmd, cwd=src, log=log, progress=progress, env=_make_env())
    diags = parse_diags(out, src, obj)
    compiled = [m.group(2) for m in map(_KBUILD_STEP_RE.match, out.splitlines()) if m and m.group(1) in ("CC", "AS")]
    return BuildStep(ok=rc == 0, duration_s=time.monotonic() - start, log=log, returncode=rc, diags=diags,
                     compiled=compiled, error_lines=first_errors(out, diags) if rc != 0 else [])


def bzimage_path(obj: Path) -> Path:
    return obj / "arch" / "x86" / "boot" / "bzImage"


# -- the build directory ------------------------------------------------------
@dataclass
class BuildDir:
    root: Path

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

    def ensure_worktree(self, repo: Path, commit: str) -> None:
        """A detached worktree of `repo` at `commit` at the stable path src/: made
        once, then moved by detached checkouts (make rebuilds only what changed)."""
        r = Repo(repo)
        if self.src.exists() and not Worktree(r, self.src).belongs_to_repo():
            shutil.rmtree(self.src)  # not a worktree of ours: a leftover in our build directory
        Worktree.open_or_add(r, self.src, commit, clean=False)

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


# -- the series -----------------------------------------------------------------
@dataclass
class SeriesBuild:
    stage: StageResult
    bzimage: Path | None              # the bzImage of the last commit, when it built
    not_set: list[dict[str, str]]


def build_series(bd: BuildDir, repo: Path, base: str, commits: list[tuple[int, str]], *,
                 fragment: Path, per_patch: bool = True, jobs: int | None = None,
                 progress: Progress | None = None, build_base: bool = True) -> SeriesBuild:
    """Build the base (entry index 0), then each commit (per_patch) or only the
    last one, in the same build directory.  The caller holds bd.lock."""
    start = time.monotonic()
    say = progress or (lambda _m: None)
    bd.root.mkdir(parents=True, exist_ok=True)
    say(f"preparing build worktree at {base[:12]}")
    bd.ensure_worktree(repo, base)
    if bd.configured(fragment):
        not_set = bd.stored_not_set()
    else:
        say("configuring: tinyconfig + " + fragment.name)
        cfg = configure(bd.src, bd.obj, fragment, log=bd.logs / "config.log")
        bd.mark_configured(fragment, cfg)
        not_set = cfg.not_set

    items: list[dict[str, Any]] = []
    base_keys = bd.load_base_warnings()
    last_ok: Path | None = None
    steps = ([(0, base)] if build_base or not commits else []) + (commits if per_patch else commits[-1:])
    for index, commit in steps:
        if index:
            checkout(bd.src, commit)
        label = "base" if index == 0 else f"patch {index}"
        say(f"building {label} ({commit[:12]})")
        step = build_kernel(bd.src, bd.obj, log=bd.logs / f"build-{index:02d}-{commit[:12]}.log", jobs=jobs,
                            progress=_step_progress(say, label))
        keys = {d.key for d in step.warnings}
        if index == 0:
            base_keys |= keys
            bd.save_base_warnings(base_keys)
            new: list[str] = []
        else:
            new = [str(d) for d in step.warnings if d.key not in base_keys]
        items.append({"index": index, "commit": commit, "status": "pass" if step.ok else "fail",
                      "duration_s": round(step.duration_s, 3), "new_warnings": new,
                      "errors": step.error_lines, "rebuilt": len(step.compiled), "log": str(step.log)})
        if step.ok and commit == steps[-1][1]:
            last_ok = bzimage_path(bd.obj)
        say(f"{label}: {'ok' if step.ok else 'FAILED'} in {step.duration_s:.1f}s"
            + (f", {len(new)} new warning(s)" if new else ""))

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
    stage = StageResult(name="build", status=status, duration_s=time.monotonic() - start, summary=summary,
                        items=items, log=str(bd.logs),
                        counts={"pass": sum(i["status"] == "pass" for i in items),
                                "fail": sum(i["status"] == "fail" for i in items)},
                        extra={"config": str(fragment), "not_set": not_set, "build_dir": str(bd.root)})
    return SeriesBuild(stage=stage, bzimage=last_ok, not_set=not_set)


def _step_progress(say: Progress, label: str) -> Progress:
    def f(line: str) -> None:
        m = _KBUILD_STEP_RE.match(line)
        if m:
            say(f"building {label}: {m.group(1)} {m.group(2)}")
    return f


# -- test suites ------------------------------------------------------------------
def install_headers(src: Path, obj: Path, *, log: Path) -> Path:
    rc, _ = _run_logged(["make", "-C", str(src), f"O={obj}", "headers"], cwd=src, log=log, env=_make_env())
    if rc != 0:
        raise InfraError(f"make headers failed: see {log}")
    return obj / "usr" / "include"


def build_suite(suite: Suite, src: Path, obj: Path, hdr: Path, out_dir: Path, *, log: Path) -> BuiltSuite:
    """Build one suite as its file says, against the tree under test's headers."""
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
    rc, output = _run_logged(cmd, cwd=d, log=log)
    command = " ".join(cmd)
    if rc != 0:
        errs = first_errors(output, parse_diags(output, src, d))
        return BuiltSuite(suite, "fail", reason="; ".join(errs[:3]) or f"{cmd[0]} exited {rc}", log=log, command=command)
    programs = list(suite.programs)
    if suite.programs_from:
        lcmd = expand(suite.programs_from, values, [])
        rc, listed = _run_logged(lcmd, cwd=d, log=log.with_suffix(".programs.log"))
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


def build_suites(src: Path, obj: Path, out_dir: Path, suites: tuple[Suite, ...], *, log_dir: Path) -> list[BuiltSuite]:
    """`make headers` into obj, then every suite, each static against those headers."""
    if not suites:
        return []
    hdr = install_headers(src, obj, log=log_dir / "headers.log")
    return [build_suite(s, src, obj, hdr, out_dir, log=log_dir / f"{s.name}.log") for s in suites]
