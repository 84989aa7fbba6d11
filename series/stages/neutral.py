"""Changes the compiler cannot see: comments and whitespace in C sources and headers.

A respin often only rewords a comment (kerneldoc after review, a typo), and a
documentation patch to a uapi header is common.  make cannot tell: the file is
newer, so every object that includes it is compiled again (87 objects for
include/uapi/linux/userfaultfd.h in the minimal config), and ccache in depend
mode hashes the text, comments included.  This module decides, exactly, when
such a change cannot change an object, so the build keeps the file's old
mtime (make compiles nothing for it) or reuses the kernel already built.

`compare(old, new)` reads both texts as the preprocessor does (comments,
string and character literals, line splices, directives):

- `SAME`: the same code on the same lines and columns (comments masked by
  blanks of the same width, so a token keeps its column); directives may move
  only where their line cannot matter (`#define`, `#undef`, `#ifdef`,
  `#ifndef`, `#else`, `#endif`, `#include`, and `#if`/`#elif` that test only
  `defined`).  The token stream and every code token's line and column are
  unchanged: the compiler's input is the same.  Proven from the text alone.
- `MOVED`: the same tokens, but code lines moved (a comment that gained
  lines).  An object can differ only where a moved line's number is used:
  `__LINE__` or `__builtin_LINE()` in the file's code, or a macro whose
  expansion reaches them (WARN_ON in a header's inline function).
  `Keep.settle` proves it cannot: each object that depends on the file is
  preprocessed directives only (its own kbuild command with
  `-E -fdirectives-only`: every #define it sees, 0.1 s), and no identifier of
  the file's code may name a macro that reaches `__LINE__`, `__builtin_LINE`
  or a `##` paste (a paste may make any name; counted as reaching them).
  The other files are the same before and after, and the file's own
  directives are the same tokens: one side is enough.
- `CHANGED`: anything else (a directive whose own line matters, such as
  `#if __LINE__`, `#line` or `#pragma`, moved), or a text the reader does
  not trust itself to read (an unterminated literal, a splice in a `//` comment or in code, a
  comment inside `#include`): rebuilt as before.

Never neutral (`config_allows`): a config that embeds the raw headers
(IKHEADERS), and for MOVED, one whose objects record line or column
positions without `__LINE__` (DEBUG_INFO, UBSAN, GCOV).
"""

from __future__ import annotations

import enum
import os
import re
import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..sandbox import Sandbox

C_SUFFIXES = (".c", ".h")


class Verdict(enum.Enum):
    SAME = "same"
    MOVED = "moved"
    CHANGED = "changed"


# -- reading C as the preprocessor does -------------------------------------------
_LEX_RE = re.compile(r"""/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|/\*|["']""", re.S)


def _mask(text: str) -> tuple[str, list[bool]] | None:
    """The text with each comment's characters replaced by blanks (newlines kept),
    and for each line whether its newline is inside a block comment; None for a
    text this reader will not vouch for (an unterminated literal or comment, an
    apostrophe in #error or #if 0 text, a splice in a literal or a // comment)."""
    out: list[str] = []
    in_comment_eol = [False] * (text.count("\n") + 1)
    pos, line = 0, 0
    for m in _LEX_RE.finditer(text):
        tok = m.group()
        out.append(text[pos:m.start()])
        line += text.count("\n", pos, m.start())
        pos = m.end()
        if tok.startswith("/*") and len(tok) >= 4 and tok.endswith("*/"):
            for k in range(tok.count("\n")):
                in_comment_eol[line + k] = True
            line += tok.count("\n")
            out.append(re.sub(r"[^\n]", " ", tok))
        elif tok.startswith("//"):
            if tok.rstrip("\r").endswith("\\"):
                return None
            out.append(" " * len(tok))
        elif len(tok) >= 2 and tok[0] == tok[-1] and tok[0] in "\"'":
            if "\\\n" in tok:
                return None
            out.append(tok)
        else:
            return None        # a quote or a comment that does not end
    out.append(text[pos:])
    return "".join(out), in_comment_eol


def _collapse(s: str) -> str:
    """Whitespace runs outside literals as one blank (literals as they are)."""
    out: list[str] = []
    for part in re.split(r"(\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*')", s):
        if part.startswith(("\"", "'")):
            out.append(part)
        else:
            out.append(re.sub(r"\s+", " ", part))
    return "".join(out).strip()


_DIRECTIVE_RE = re.compile(r"#\s*([A-Za-z_]\w*)?")
_FREE_DIRECTIVES = {"define", "undef", "ifdef", "ifndef", "else", "endif", "include", "include_next"}
_IDENT_RE = re.compile(r"[A-Za-z_]\w*")
_INCLUDE_RE = re.compile(r"\s*#\s*include(?:_next)?\s*<([^>\n]*)>")


def _position_free(text: str) -> bool:
    """Whether a directive's own line number cannot reach the compiler's input."""
    m = _DIRECTIVE_RE.match(text)
    name = (m.group(1) if m else None) or ""
    if name in _FREE_DIRECTIVES:
        return True
    if name in ("if", "elif"):
        expr = text[m.end():] if m else ""
        idents = _IDENT_RE.findall(re.sub(r"\bdefined\s*\(?\s*[A-Za-z_]\w*", "", expr))
        return not idents
    return False


Item = tuple[str, int, str, bool]   # (kind "c"|"d", line, text, whether its line matters)


def shape(text: str) -> list[Item] | None:
    """What the compiler reads of a C file: each code line (masked, column-exact)
    and each directive (normalised) with its line; None when unreadable."""
    masked = _mask(text)
    if masked is None:
        return None
    body, comment_eol = masked
    lines = body.split("\n")
    text_lines = text.split("\n")
    items: list[Item] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("#"):
            start, parts = i, []
            while True:   # a directive runs on over splices and over comments that span a newline
                cur = lines[i].rstrip("\r")
                spliced = cur.endswith("\\")
                parts.append(cur[:-1] if spliced else cur + (" " if i < len(comment_eol) and comment_eol[i] else ""))
                if not (spliced or (i < len(comment_eol) and comment_eol[i])) or i + 1 >= len(lines):
                    break
                i += 1
            d = _collapse("".join(parts))
            m = _INCLUDE_RE.match(text_lines[start])
            if m and ("/*" in m.group(1) or "//" in m.group(1)):
                return None            # a "//" or "/*" in a <header-name> is not a comment: masked wrongly
            items.append(("d", start + 1, d, not _position_free(d)))
        else:
            code = line.rstrip()
            if code.endswith("\\"):
                return None            # a splice in code: not read here
            if code.strip():
                items.append(("c", i + 1, code, True))
        i += 1
    return items


def compare(old: str, new: str) -> Verdict:
    a, b = shape(old), shape(new)
    if a is None or b is None or len(a) != len(b):
        return Verdict.CHANGED
    moved = False
    for x, y in zip(a, b):
        if x[0] != y[0] or x[2] != y[2]:
            return Verdict.CHANGED     # code compares column-exact, a directive as its tokens
        if x[1] != y[1] and x[3]:
            if x[0] == "d":
                return Verdict.CHANGED     # #if __LINE__, #line, #pragma: not proven here
            moved = True
    return Verdict.MOVED if moved else Verdict.SAME


# -- the config -------------------------------------------------------------------
def config_allows(config_text: str, verdict: Verdict) -> bool:
    """Whether objects built with this .config are the same for a change of this kind."""
    on = {m.group(1) for m in re.finditer(r"^(CONFIG_\w+)=[ym]", config_text, re.M)}
    if "CONFIG_IKHEADERS" in on:
        return False           # the headers' raw text is in the kernel
    if verdict is Verdict.MOVED:
        return not on & {"CONFIG_DEBUG_INFO", "CONFIG_UBSAN", "CONFIG_GCOV_KERNEL"}
    return verdict is Verdict.SAME


# -- proving a MOVED change by preprocessing -----------------------------------------
@dataclass(frozen=True)
class Unit:
    target: str            # relative to obj/, e.g. mm/userfaultfd.o
    argv: tuple[str, ...]  # its kbuild compile, turned into a preprocessing to stdout (`-E -o -`)


@dataclass
class Dependents:
    units: list[Unit]          # objects compiled from the file: to preprocess
    installed: list[str]       # `make headers` copies (usr/include/...): to delete, make copies them again
    other: list[str]           # anything else that reads the file: the change cannot be proven neutral


_CMD_RE = re.compile(r"^(?:saved)?cmd_(\S+) := (.*)$")


def _preprocess_argv(command: str) -> tuple[str, ...] | None:
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if any(tok in (";", "&&", "||", "|") or tok.endswith(";") for tok in argv):
        return None
    while argv and argv[0] in ("ccache", "distcc"):
        argv = argv[1:]
    if not argv or argv.count("-o") != 1 or sum(a in ("-c", "-S") for a in argv) != 1:
        return None
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            out.append("-")
            skip = False
        elif a.startswith(("-Wp,-MMD,", "-Wp,-MD,")) or a in ("-MD", "-MMD"):
            continue
        elif a in ("-c", "-S"):
            out.append("-E")
        elif a == "-o":
            out.append(a)
            skip = True
        else:
            out.append(a)
    return tuple(out)


def dependents(obj: Path, src: Path, paths: Iterable[str], *, excluding: Iterable[str] = (),
               compiled_from: Iterable[str] | None = None) -> Dependents:
    """What in obj/ was made from any of `paths` (kbuild's .cmd files), leaving out
    what also depends on a path in `excluding` (make rebuilds that anyway); its
    units and other readers only of `compiled_from` (default: `paths`), in the same
    one pass over the .cmd files."""
    def needles(ps: Iterable[str]) -> tuple[str, ...]:
        return tuple(f"{src}/{p}{end}" for p in ps for end in (" ", "\n"))
    paths = list(paths)
    want, skip = needles(paths), needles(excluding)
    of = needles(paths if compiled_from is None else compiled_from)
    d = Dependents([], [], [])
    for cmd in sorted(obj.rglob(".*.cmd")):
        try:
            text = cmd.read_text(errors="replace")
        except OSError:
            continue
        if not any(x in text for x in want) or (skip and any(x in text for x in skip)):
            continue
        first = text.split("\n", 1)[0]
        m = _CMD_RE.match(first)
        target = m.group(1) if m else str(cmd.relative_to(obj))
        if target.startswith("usr/include/"):
            d.installed.append(target)
        elif not any(x in text for x in of):
            continue
        elif (argv := _preprocess_argv(m.group(2)) if m else None) is not None:
            d.units.append(Unit(target, argv))
        else:
            d.other.append(target)
    return d


_DEFINE_RE = re.compile(rb"^#define .*$", re.M)
_DEFINE_PARTS_RE = re.compile(r"#define ([A-Za-z_]\w*)(.*)")
_REACHES_LINE_RE = re.compile(r"\b__LINE__\b|\b__builtin_LINE\b|##")


def macro_definitions(units: Sequence[Unit], obj: Path, *, jobs: int, env: Mapping[str, str],
                      sandbox: Sandbox | None, src: Path) -> dict[str, set[str]] | None:
    """Every #define the units see (name -> bodies, all of them: a name redefined
    counts with each body); None when a unit does not preprocess."""
    def one(u: Unit) -> set[bytes] | None:
        argv = [*u.argv, "-fdirectives-only"]
        if sandbox is not None:
            argv = sandbox.wrap(argv, writable=[], cwd=obj, readable=[src, obj], env=env)
        p = subprocess.run(argv, cwd=obj, env=dict(env), capture_output=True)
        return set(_DEFINE_RE.findall(p.stdout)) if p.returncode == 0 else None
    lines: set[bytes] = set()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for got in pool.map(one, units):
            if got is None:
                return None
            lines |= got
    out: dict[str, set[str]] = {}
    for ln in lines:
        m = _DEFINE_PARTS_RE.match(ln.decode("latin-1"))
        if m:
            out.setdefault(m.group(1), set()).add(m.group(2))
    return out


def reaching_line(defs: Mapping[str, set[str]]) -> set[str]:
    """The macro names whose expansion may reach __LINE__, __builtin_LINE or a paste."""
    users: dict[str, set[str]] = {}
    found: set[str] = set()
    for name, bodies in defs.items():
        for body in bodies:
            if _REACHES_LINE_RE.search(body):
                found.add(name)
            for ident in _IDENT_RE.findall(body):
                users.setdefault(ident, set()).add(name)
    todo = list(found)
    while todo:
        for user in users.get(todo.pop(), ()):
            if user not in found:
                found.add(user)
                todo.append(user)
    return found


def code_identifiers(text: str) -> set[str] | None:
    """The identifiers of a C file's code lines (not its directives)."""
    items = shape(text)
    if items is None:
        return None
    return {i for kind, _l, code, _m in items if kind == "c" for i in _IDENT_RE.findall(_strip_literals(code))}


def _strip_literals(code: str) -> str:
    return re.sub(r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'", " ", code)


# -- a build step's changes -----------------------------------------------------------
def read_blob(repo: Path, commit: str, path: str) -> str | None:
    """The file at commit, bytes as latin-1 (a one-to-one reading); None when absent."""
    from ..git import Repo
    p = Repo(repo).run_proc("cat-file", "blob", f"{commit}:{path}")
    return p.stdout.decode("latin-1") if p.returncode == 0 else None


def verdicts(repo: Path, a: str, b: str, paths: Iterable[str]) -> dict[str, Verdict]:
    """Each path's change from commit a to commit b, as the compiler sees it."""
    out: dict[str, Verdict] = {}
    for p in paths:
        old = read_blob(repo, a, p) if p.endswith(C_SUFFIXES) else None
        new = read_blob(repo, b, p) if old is not None else None
        out[p] = compare(old, new) if old is not None and new is not None else Verdict.CHANGED
    return out


def short(paths: Sequence[str], n: int = 3) -> str:
    return ", ".join(paths[:n]) + (", ..." if len(paths) > n else "")


@dataclass
class Keep:
    """A build step's changes that the compiler cannot see, found before the
    worktree moves (`plan`) and settled after (`settle`): their files get back
    the mtimes they had, so make compiles nothing for them; a MOVED file whose
    proof fails keeps the checkout's mtime, and make compiles what depends on it."""
    same: list[str]
    moved: list[str]
    real: list[str]                        # the build inputs that changed otherwise
    mtimes: dict[str, tuple[int, int]]
    units: list[Unit]
    installed: list[str]
    proven: bool = False
    why_not: str = ""                      # why a MOVED file was not proven neutral

    @classmethod
    def plan(cls, repo: Path, src: Path, obj: Path, since: str, commit: str, inputs: Sequence[str], *,
             config_text: str, jobs: int, env: Mapping[str, str], sandbox: Sandbox | None,
             prove: bool = True) -> "Keep":
        """`prove` False: a MOVED file counts as changed (no preprocessing)."""
        v = verdicts(repo, since, commit, inputs)
        same = [p for p in inputs if v[p] is Verdict.SAME and config_allows(config_text, Verdict.SAME)]
        moved = [p for p in inputs if prove and v[p] is Verdict.MOVED and config_allows(config_text, Verdict.MOVED)]
        mtimes: dict[str, tuple[int, int]] = {}
        for p in same + moved:
            try:
                st = (src / p).stat()
            except OSError:
                continue
            mtimes[p] = (st.st_atime_ns, st.st_mtime_ns)
        same = [p for p in same if p in mtimes]
        moved = [p for p in moved if p in mtimes]
        real = [p for p in inputs if p not in same and p not in moved]
        units: list[Unit] = []
        installed: list[str] = []
        if same or moved:
            deps = dependents(obj, src, same + moved, excluding=real, compiled_from=moved)
            installed = deps.installed
            if deps.other:
                real, moved = real + moved, []
            else:
                units = deps.units
        return cls(same, moved, real, mtimes, units, installed)

    def settle(self, src: Path, obj: Path, *, jobs: int, env: Mapping[str, str], sandbox: Sandbox | None) -> None:
        """After the checkout: the old mtimes back, the MOVED proof, the installed copies dropped."""
        # an old mtime only once proven: cut short in between, a file keeps the checkout's (make compiles)
        for p in self.same:
            os.utime(src / p, ns=self.mtimes[p])
        if self.moved:
            self.why_not = self._prove(src, obj, jobs=jobs, env=env, sandbox=sandbox)
            self.proven = not self.why_not
            if self.proven:
                for p in self.moved:
                    os.utime(src / p, ns=self.mtimes[p])
            else:
                self.real, self.moved = self.real + self.moved, []
        for t in self.installed:           # `make headers` copies the new text again
            (obj / t).unlink(missing_ok=True)

    def _prove(self, src: Path, obj: Path, *, jobs: int, env: Mapping[str, str], sandbox: Sandbox | None) -> str:
        """Why the MOVED files' line numbers may reach an object ("" when they cannot)."""
        if not self.units:
            return ""                      # nothing compiles it (or what does is compiled anyway)
        idents: set[str] = set()
        for p in self.moved:
            got = code_identifiers((src / p).read_text(encoding="latin-1"))
            if got is None:
                return f"{p}: not read"
            idents |= got
        defs = macro_definitions(self.units, obj, jobs=jobs, env=env, sandbox=sandbox, src=src)
        if defs is None:
            return "an object that depends on it does not preprocess"
        idents &= reaching_line(defs) | {"__LINE__", "__builtin_LINE"}
        return f"its code uses {', '.join(sorted(idents)[:3])}, which may expand __LINE__" if idents else ""

    @property
    def neutral(self) -> list[str]:
        return self.same + self.moved

    @property
    def all_neutral(self) -> bool:
        return bool(self.neutral) and not self.real
