"""Test suites and kernel config fragments, declared as data.

A suite is a TOML file (`series/suites/<name>.toml`, shipped with series, or
`<workspace>/suites/<name>.toml`, which wins): where its source is, how to
build it against the tree under test, which programs to run in the guest and
how to read their output.  A config fragment is `<name>.config` in
`series/configs/` or `<workspace>/configs/`.  `series.toml` picks the suites
(and extra fragments) for a stack:

    [test]
    suites = ["uffd-unit-tests", "uffd-move-tests"]
    config = []                          # extra fragments, by name or path
    [test.stacks.<stack>]                # optional: per stack, replaces the above
    suites = ["uffd-move-tests"]

The kernel is configured as tinyconfig + `base` + every fragment the selected
suites name + the workspace's extra fragments.  Keys of a suite file are
documented in docs/suites.md.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UserError

PARSERS = ("ktap", "uffd-unit")
PLACEHOLDERS = ("src", "obj", "headers", "suite_dir", "out", "sources")
_PH_RE = re.compile(r"\{([A-Za-z_]+)\}")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BASE_CONFIG = "base"


def package_dir(kind: str) -> Path:
    """`series/suites` or `series/configs`, as installed (package data)."""
    return Path(str(resources.files("series"))) / kind


@dataclass(frozen=True)
class Program:
    name: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suite:
    name: str
    file: Path
    description: str = ""
    config: tuple[str, ...] = ()
    source_kind: str = "tree"                 # tree | bundled
    source_path: str = "."
    require: tuple[str, ...] = ()
    require_text: tuple[tuple[str, str, str], ...] = ()
    sources: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    programs: tuple[Program, ...] = ()
    programs_from: tuple[str, ...] = ()
    parser: str = "ktap"
    expect: tuple[str, ...] = ()

    def source_dir(self, src: Path) -> Path:
        """Where the suite's sources are: in the tree under test, or beside the suite file."""
        if self.source_kind == "tree":
            return src / self.source_path
        return (self.file.parent / self.source_path).resolve()


def _strs(v: Any, what: str, file: Path) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise UserError(f"{file}: {what} must be a list of strings")
    return tuple(v)


def _check_placeholders(words: tuple[str, ...], file: Path) -> None:
    for w in words:
        for m in _PH_RE.finditer(w):
            if m.group(1) not in PLACEHOLDERS:
                raise UserError(f"{file}: unknown placeholder {{{m.group(1)}}} "
                                f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})")


def parse_suite(file: Path) -> Suite:
    """A suite from its TOML file; any mistake is a one-line UserError naming the file."""
    try:
        d = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{file}: not a valid suite file: {e}") from None
    except OSError as e:
        raise UserError(f"{file}: cannot read it: {e.strerror}") from None
    name = d.get("name", file.stem)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserError(f"{file}: invalid suite name {name!r}")
    src = d.get("source", {})
    build = d.get("build", {})
    run = d.get("run", {})
    for key, val in (("source", src), ("build", build), ("run", run)):
        if not isinstance(val, dict):
            raise UserError(f"{file}: [{key}] must be a table")
    kind = src.get("kind", "tree")
    if kind not in ("tree", "bundled"):
        raise UserError(f"{file}: source.kind must be 'tree' or 'bundled', not {kind!r}")
    path = src.get("path", ".")
    if not isinstance(path, str) or Path(path).is_absolute() or ".." in Path(path).parts:
        raise UserError(f"{file}: source.path must be a relative path inside the {kind} directory")
    rt = src.get("require_text", [])
    if not isinstance(rt, list) or not all(isinstance(x, list) and len(x) == 3 and all(isinstance(y, str) for y in x)
                                           for x in rt):
        raise UserError(f"{file}: source.require_text must be a list of [file, text, reason]")
    progs_raw = d.get("program", [])
    if not isinstance(progs_raw, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str)
                                                  for p in progs_raw):
        raise UserError(f"{file}: each [[program]] needs a name")
    programs = tuple(Program(p["name"], _strs(p.get("args"), "program.args", file)) for p in progs_raw)
    for p in programs:
        if not _NAME_RE.match(p.name):
            raise UserError(f"{file}: invalid program name {p.name!r}")
    command = _strs(build.get("command"), "build.command", file)
    programs_from = _strs(build.get("programs_from"), "build.programs_from", file)
    if not command:
        raise UserError(f"{file}: build.command is missing")
    if not programs and not programs_from:
        raise UserError(f"{file}: name the programs ([[program]]) or how to list them (build.programs_from)")
    _check_placeholders(command + programs_from, file)
    parser = run.get("parser", "ktap")
    if parser not in PARSERS:
        raise UserError(f"{file}: run.parser must be one of {', '.join(PARSERS)}, not {parser!r}")
    return Suite(name=name, file=file, description=str(d.get("description", "")),
                 config=_strs(d.get("config"), "config", file), source_kind=kind, source_path=path,
                 require=_strs(src.get("require"), "source.require", file),
                 require_text=tuple((a, b, c) for a, b, c in rt),
                 sources=_strs(build.get("sources"), "build.sources", file), command=command,
                 programs=programs, programs_from=programs_from, parser=parser,
                 expect=_strs(run.get("expect"), "run.expect", file))


def _lookup(ws_root: Path | None, kind: str, name: str, suffix: str) -> Path | None:
    dirs = ([ws_root / kind] if ws_root else []) + [package_dir(kind)]
    for d in dirs:
        p = d / f"{name}{suffix}"
        if p.is_file():
            return p
    return None


def available(ws_root: Path | None, kind: str = "suites", suffix: str = ".toml") -> list[str]:
    names: set[str] = set()
    for d in ([ws_root / kind] if ws_root else []) + [package_dir(kind)]:
        if d.is_dir():
            names |= {p.name[: -len(suffix)] for p in d.glob(f"*{suffix}") if p.is_file()}
    return sorted(names)


def load_suite(ws_root: Path | None, name: str) -> Suite:
    if not _NAME_RE.match(name):
        raise UserError(f"invalid suite name {name!r}")
    f = _lookup(ws_root, "suites", name, ".toml")
    if f is None:
        raise UserError(f"unknown test suite {name!r} (available: {', '.join(available(ws_root)) or 'none'})")
    return parse_suite(f)


def config_fragment(ws_root: Path | None, ref: str) -> Path:
    """A fragment by name (`uffd` -> configs/uffd.config) or by path."""
    if "/" in ref or ref.endswith(".config"):
        p = Path(ref).expanduser()
        if not p.is_absolute() and ws_root is not None:
            p = ws_root / p
        if not p.is_file():
            raise UserError(f"config fragment {p} not found")
        return p.resolve()
    f = _lookup(ws_root, "configs", ref, ".config")
    if f is None:
        names = available(ws_root, "configs", ".config")
        raise UserError(f"unknown config fragment {ref!r} (available: {', '.join(names) or 'none'})")
    return f


@dataclass(frozen=True)
class TestPlan:
    """What a stack is tested with: its suites and the kernel config they need."""

    suites: tuple[Suite, ...]
    fragments: tuple[Path, ...]
    reason: str = ""           # why there are no suites, when there are none

    @property
    def config_text(self) -> str:
        """The merged fragment: every fragment in order, each under its name."""
        return "".join(f"# ---- {p.name}\n{p.read_text(encoding='utf-8')}\n" for p in self.fragments)

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(self.config_text.encode()).hexdigest()[:8]


def _selection(config: dict[str, Any], stack: str) -> dict[str, Any]:
    test = config.get("test", {})
    if not isinstance(test, dict):
        raise UserError("series.toml: [test] must be a table")
    per = test.get("stacks", {})
    if not isinstance(per, dict):
        raise UserError("series.toml: [test.stacks] must be a table")
    own = per.get(stack)
    if own is not None and not isinstance(own, dict):
        raise UserError(f"series.toml: [test.stacks.{stack}] must be a table")
    return {**{k: v for k, v in test.items() if k != "stacks"}, **(own or {})}


def _strings(sel: dict[str, Any], what: str) -> list[str]:
    v = sel.get(what, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise UserError(f"series.toml: [test] {what} must be a list of strings")
    return v


def suite_order(config: dict[str, Any], stack: str) -> list[str]:
    """The suites series.toml selects for `stack`, in the order a run tests them."""
    return _strings(_selection(config, stack), "suites")


def plan_for(ws_root: Path | None, config: dict[str, Any], stack: str, *,
             suites: list[str] | None = None, fragments: list[str] | None = None) -> TestPlan:
    """The suites and config of `stack`: explicit arguments win over series.toml."""
    sel = _selection(config, stack)
    names = suites if suites is not None else _strings(sel, "suites")
    extra = fragments if fragments is not None else _strings(sel, "config")
    loaded = tuple(load_suite(ws_root, n) for n in dict.fromkeys(names))
    frag_names: list[str] = [BASE_CONFIG]
    for s in loaded:
        frag_names += list(s.config)
    frag_names += list(extra)
    paths = tuple(dict.fromkeys(config_fragment(ws_root, n) for n in frag_names))
    reason = "" if loaded else ("no test suite selected for this stack: set [test] suites in series.toml "
                                f"(available: {', '.join(available(ws_root)) or 'none'})")
    return TestPlan(suites=loaded, fragments=paths, reason=reason)


def expand(words: tuple[str, ...], values: dict[str, str], sources: list[str]) -> list[str]:
    """Substitute {placeholders}; a word that is exactly {sources} becomes the list."""
    out: list[str] = []
    for w in words:
        if w == "{sources}":
            out += sources
            continue
        out.append(_PH_RE.sub(lambda m: values.get(m.group(1), m.group(0)), w))
    return out


@dataclass
class BuiltProgram:
    suite: str
    name: str
    path: Path
    args: tuple[str, ...] = ()


@dataclass
class BuiltSuite:
    """A suite after its build: `built`, `skip` (cannot be built here, with the
    reason) or `fail` (the build broke)."""

    suite: Suite
    status: str
    programs: list[BuiltProgram] = field(default_factory=list)
    reason: str = ""
    log: Path | None = None
    command: str = ""
    cached: bool = False       # copied from an earlier build of the same tree, suite and toolchain

    @property
    def name(self) -> str:
        return self.suite.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "reason": self.reason, "command": self.command,
                "programs": [p.name for p in self.programs], "log": str(self.log) if self.log else None,
                "cached": self.cached}
