"""C functions, found by a small scanner (no compiler): comments, string and
character literals are blanked to spaces of the same length (`mask`), so
offsets into the masked text are offsets into the source; a function is a
`{ ... }` block at brace depth 0 whose header (the text since the previous
`;`, `}` or preprocessor line) has the shape `... name(...)` and is not an
initialiser (`=`) nor a struct, union or enum.  Good enough for kernel C, which
is written in one style; a macro-generated function is not found, and that is
fine: we mutate what a patch wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..patch import FileChange

_IDENT_CALL = re.compile(r"([A-Za-z_]\w*)\s*\(")
_NOT_FUNCS = {"if", "for", "while", "switch", "return", "sizeof", "typeof", "__attribute__", "defined",
              "__typeof__", "__section", "__aligned", "alignof", "_Alignof", "__acquires", "__releases",
              "__must_hold", "__printf", "__cold", "__malloc"}


def mask(text: str) -> str:
    """`text` with comments, string and char literals (and preprocessor lines'
    continuations kept as they are) replaced by spaces; newlines are kept."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            blank(i + 1, j - 1)      # keep the quotes: "" is still a literal
            i = j
        else:
            i += 1
    return "".join(out)


def _blank_preprocessor(m: str) -> str:
    """Preprocessor lines (with their continuations) blanked, for the scan of braces."""
    lines = m.split("\n")
    cont = False
    for k, ln in enumerate(lines):
        if cont or ln.lstrip().startswith("#"):
            cont = ln.endswith("\\")
            lines[k] = " " * len(ln)
        else:
            cont = False
    return "\n".join(lines)


@dataclass(frozen=True)
class Function:
    name: str
    start: int          # offset of the header's first character
    open: int           # offset of the body's `{`
    end: int            # offset just after the body's `}`
    first_line: int     # 1-based line of the header
    last_line: int      # 1-based line of the closing brace

    def contains_line(self, line: int) -> bool:
        return self.first_line <= line <= self.last_line


def _header_name(header: str) -> str | None:
    h = header.strip()
    if not h or "=" in h.split("(")[0] or not h.endswith(")") and not re.search(r"\)\s*(__\w+(\(.*\))?\s*)*$", h):
        return None
    if re.match(r"^(typedef\b|struct\b[^(]*$|union\b[^(]*$|enum\b[^(]*$)", h):
        return None
    depth = 0
    for m in _IDENT_CALL.finditer(h):
        before = h[:m.start()]
        depth = before.count("(") - before.count(")")
        if depth == 0 and m.group(1) not in _NOT_FUNCS:
            return m.group(1)
    return None


def functions(text: str) -> list[Function]:
    """The function definitions of a C file, in order."""
    m = _blank_preprocessor(mask(text))
    out: list[Function] = []
    depth = 0
    seg = 0                   # where the current top-level declaration began
    open_at = -1
    header = ""
    for i, c in enumerate(m):
        if c == "{":
            if depth == 0:
                open_at, header = i, m[seg:i]
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                name = _header_name(header)
                if name is not None:
                    start = seg + (len(header) - len(header.lstrip()))
                    out.append(Function(name, start, open_at, i + 1, text.count("\n", 0, start) + 1,
                                        text.count("\n", 0, i) + 1))
                seg = i + 1
            elif depth < 0:
                depth = 0
                seg = i + 1
        elif c == ";" and depth == 0:
            seg = i + 1
    return out


def section_name(section: str) -> str | None:
    """The function named by a hunk header's section text (`static int foo(int a)`)."""
    return _header_name(section.split("{")[0].rstrip() + (")" if "(" in section and ")" not in section else ""))


def _runs(lines: Sequence[tuple[str, str]]) -> list[list[str]]:
    """The maximal runs of added lines of a hunk (stripped)."""
    runs: list[list[str]] = []
    cur: list[str] = []
    for kind, t in lines:
        if kind == "+":
            cur.append(t.strip())
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return runs


def _find_run(stripped: list[str], run: list[str], near: int) -> int | None:
    """The 0-based line where `run` occurs contiguously in `stripped`, the
    occurrence nearest to line `near` (0-based) when there are several."""
    if not run:
        return None
    best: int | None = None
    for i in range(len(stripped) - len(run) + 1):
        if stripped[i] == run[0] and stripped[i:i + len(run)] == run:
            if best is None or abs(i - near) < abs(best - near):
                best = i
    return best


def touched_functions(text: str, changes: Iterable[FileChange]) -> list[str]:
    """The functions of `text` (a file after the revision, or a base that already
    holds it) that the hunks of `changes` touch.  Each run of a hunk's added
    lines is found in `text` by content (the occurrence nearest the hunk's
    target line: later patches may have moved it), and the function holding it
    is touched.  A hunk that only removes lines touches the function its
    header names (`@@ ... @@ static int foo(...)`)."""
    funcs = functions(text)
    stripped = [ln.strip() for ln in text.split("\n")]
    hit: dict[str, None] = {}
    for fc in changes:
        for h in fc.hunks:
            runs = [r for r in _runs(h.lines) if any(x for x in r)]
            if not runs:
                name = section_name(h.section)
                if name and any(f.name == name for f in funcs):
                    hit.setdefault(name)
                continue
            for r in runs:
                at = _find_run(stripped, r, h.target_start - 1)
                if at is None:
                    continue
                lo, hi = at + 1, at + len(r)
                for f in funcs:
                    if f.first_line <= hi and lo <= f.last_line:
                        hit.setdefault(f.name)
    return list(hit)


def by_name(text: str, names: Sequence[str]) -> list[Function]:
    """The definitions of `names` in `text`, in file order: every one of them
    (a function defined under #ifdef and #else has two, only one compiled)."""
    want = set(names)
    return [f for f in functions(text) if f.name in want]
