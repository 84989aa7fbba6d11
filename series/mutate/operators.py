"""The mutation operators.  Each mutant changes one place of one function's
body and is recorded as a unified diff; line numbers are kept (a deleted
statement becomes `;`, a dropped term keeps its newlines), so `__LINE__` in
a WARN or BUG elsewhere does not change the object by itself.

  delete-stmt   a call statement or an assignment becomes `;`
                (assertions - WARN*, BUG*, VM_WARN*, lockdep_* - are left alone:
                deleting a check that never fires cannot be seen)
  negate-cond   `if (C)` / `while (C)` becomes `if (!(C))`
  drop-term     one term of a condition's top-level `&&` / `||` chain goes
  errno         a `-EXXX` becomes another one (-EINVAL, or -EFAULT for -EINVAL)
  drop-flag     one operand of a bitwise `A | B` goes; `& ~F` (clearing F) goes
  swap-andor    one `&&` becomes `||`, or the reverse
  off-by-one    `+ 1` becomes `- 1`, or the reverse

Everything is found in the masked text (cfuncs.mask): nothing in a comment
or a string is mutated.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .cfuncs import Function, mask

OPERATORS = ("delete-stmt", "negate-cond", "drop-term", "errno", "drop-flag", "swap-andor", "off-by-one")

_ASSERT = re.compile(r"^(VM_)?(WARN|BUG)|^lockdep_|^BUILD_BUG|^might_sleep|^mmap_assert|^pr_|^printk|^trace_")
_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "do", "else", "case", "goto", "break",
             "continue", "default"}
_CALL_STMT = re.compile(r"([A-Za-z_][\w]*(?:(?:->|\.)[A-Za-z_]\w*)*)\s*\(")
_ASSIGN_STMT = re.compile(r"(\*?[A-Za-z_][\w\.\[\]>\-]*)\s*(=|\+=|-=|\|=|&=|\^=|<<=|>>=)(?!=)")
_INCDEC_STMT = re.compile(r"(?:\+\+|--)?[A-Za-z_][\w\.\[\]>\-]*(?:\+\+|--)?\s*;")
_COND = re.compile(r"\b(if|while)\s*\(")
_ERRNO = re.compile(r"-(E[A-Z0-9]+)\b")
_OPERAND = r"[A-Za-z_]\w*(?:\([^()]*\))?"
_OR_FLAG = re.compile(rf"({_OPERAND})(\s*\|\s*)({_OPERAND})")
_CLEAR_FLAG = re.compile(rf"\s*&\s*~\s*({_OPERAND}|\([^()]*\))")
_ANDOR = re.compile(r"&&|\|\|")
_OFF1 = re.compile(r"(?<=[\w)\]])(\s+)([+-])(\s+)1\b(?![\w.])")


@dataclass(frozen=True)
class Mutant:
    file: str
    function: str
    operator: str
    start: int          # the span of the original text replaced
    end: int
    replacement: str
    diff: str = ""

    @property
    def id(self) -> str:
        """Stable across runs: what is changed, not where the scan found it."""
        return hashlib.sha256(f"{self.file}\0{self.diff}".encode()).hexdigest()[:12]

    def apply(self, text: str) -> str:
        return text[:self.start] + self.replacement + text[self.end:]


def _match_paren(m: str, open_at: int) -> int:
    """The offset of the `)` matching the `(` at `open_at` in masked text, or -1."""
    depth = 0
    for i in range(open_at, len(m)):
        if m[i] == "(":
            depth += 1
        elif m[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def _statement_end(m: str, i: int, limit: int) -> int:
    """The offset just after the `;` ending the statement that starts at i (parens balanced), or -1."""
    depth = 0
    for k in range(i, limit):
        c = m[k]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c in "{}" and depth == 0:
            return -1
        elif c == ";" and depth == 0:
            return k + 1
    return -1


def _keep_newlines(s: str) -> str:
    return "\n" * s.count("\n")


def _statements(m: str, f: Function) -> Iterator[tuple[int, int]]:
    """Call and assignment statements of the body: (start, end) spans."""
    body_start = f.open + 1
    i = body_start
    while i < f.end - 1:
        # a statement begins after `;`, `{`, `}`, `)` (of an if) or `else`, at a line's first token
        ls = m.rfind("\n", 0, i) + 1
        if m[ls:i].strip() == "" and m[i] not in " \t\n":
            prev = m[body_start:ls].rstrip()
            if not prev or prev[-1] in ";{}):" or prev.endswith("else"):
                word = re.match(r"[A-Za-z_]\w*", m[i:])
                if word and word.group(0) not in _KEYWORDS and not _ASSERT.match(word.group(0)):
                    end = _statement_end(m, i, f.end - 1)
                    head = m[i:end] if end > 0 else ""
                    c = _CALL_STMT.match(head)
                    a = _ASSIGN_STMT.match(head)
                    ok = False
                    if c and (c.group(1).split("->")[-1].split(".")[-1] not in _KEYWORDS):
                        close = _match_paren(head, c.end() - 1)
                        ok = close >= 0 and head[close + 1:].strip() == ";"
                    if a or _INCDEC_STMT.fullmatch(head.strip()) and ("++" in head or "--" in head):
                        ok = True
                    if ok and end > 0:
                        yield i, end
                        i = end
                        continue
        i += 1


def _cond_spans(m: str, f: Function) -> Iterator[tuple[int, int]]:
    """(start, end) of each `if`/`while` condition's inside."""
    for c in _COND.finditer(m, f.open, f.end):
        close = _match_paren(m, c.end() - 1)
        if close > 0:
            yield c.end(), close


def _terms(m: str, a: int, b: int) -> list[tuple[int, int]]:
    """The top-level `&&`/`||` terms of masked m[a:b], as spans (empty: one term)."""
    spans = []
    depth, start = 0, a
    i = a
    while i < b:
        c = m[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and m.startswith(("&&", "||"), i):
            spans.append((start, i))
            start = i + 2
            i += 2
            continue
        i += 1
    spans.append((start, b))
    return spans if len(spans) > 1 else []


def _raw(text: str, m: str, f: Function) -> Iterator[tuple[str, int, int, str]]:
    """(operator, start, end, replacement) for every place of the function."""
    for s, e in _statements(m, f):
        yield "delete-stmt", s, e, ";" + _keep_newlines(text[s:e])
    for a, b in _cond_spans(m, f):
        inner = text[a:b]
        yield "negate-cond", a, b, f"!({inner})"
        terms = _terms(m, a, b)
        for k, (ts, te) in enumerate(terms):
            if k == 0:
                ds, de = ts, terms[1][0]          # the term and the operator after it
            else:
                ds, de = terms[k - 1][1], te      # the operator before it and the term
            yield "drop-term", ds, de, _keep_newlines(text[ds:de])
    body = (f.open + 1, f.end - 1)
    for er in _ERRNO.finditer(m, *body):
        other = "EFAULT" if er.group(1) == "EINVAL" else "EINVAL"
        yield "errno", er.start(1), er.end(1), other
    for o in _OR_FLAG.finditer(m, *body):
        if m[o.start(2):o.end(2)].strip() != "|" or m[o.end(2) - 1:o.end(2) + 1] == "||" or \
                m[o.start():o.end()].find("||") >= 0:
            continue
        yield "drop-flag", o.start(2), o.end(3), ""
        yield "drop-flag", o.start(1), o.start(3), ""
    for c in _CLEAR_FLAG.finditer(m, *body):
        if m[c.start():c.end()].lstrip().startswith("&&"):
            continue
        yield "drop-flag", c.start(), c.end(), ""
    for x in _ANDOR.finditer(m, *body):
        yield "swap-andor", x.start(), x.end(), "||" if x.group(0) == "&&" else "&&"
    for o in _OFF1.finditer(m, *body):
        if m[o.start() - 1:o.start() + 1].strip() in ("+", "-"):
            continue
        yield "off-by-one", o.start(2), o.end(2), "-" if o.group(2) == "+" else "+"


def unified_diff(path: str, text: str, start: int, end: int, replacement: str, context: int = 3) -> str:
    """A one-hunk unified diff of replacing text[start:end] (git's a/ b/ names)."""
    lines = text.split("\n")
    first = text.count("\n", 0, start)            # 0-based line of the change
    last = text.count("\n", 0, end)
    new_text = text[:start] + replacement + text[end:]
    new_lines = new_text.split("\n")
    grown = len(new_lines) - len(lines)
    lo = max(0, first - context)
    hi_old = min(len(lines), last + 1 + context)
    hi_new = min(len(new_lines), last + 1 + grown + context)
    old_part, new_part = lines[lo:hi_old], new_lines[lo:hi_new]
    # trim the common tail and head beyond the context
    out = [f"--- a/{path}", f"+++ b/{path}",
           f"@@ -{lo + 1},{len(old_part)} +{lo + 1},{len(new_part)} @@"]
    import difflib
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old_part, new_part, autojunk=False).get_opcodes():
        if tag == "equal":
            out += [" " + x for x in old_part[i1:i2]]
        else:
            out += ["-" + x for x in old_part[i1:i2]]
            out += ["+" + x for x in new_part[j1:j2]]
    return "\n".join(out) + "\n"


def mutants_of(path: str, text: str, funcs: Sequence[Function], operators: Sequence[str] = OPERATORS) -> list[Mutant]:
    """Every mutant of the given functions of one file, de-duplicated by diff."""
    m = mask(text)
    seen: set[str] = set()
    out: list[Mutant] = []
    for f in funcs:
        for op, s, e, rep in _raw(text, m, f):
            if op not in operators or text[s:e] == rep:
                continue
            diff = unified_diff(path, text, s, e, rep)
            if diff in seen:
                continue
            seen.add(diff)
            out.append(Mutant(path, f.name, op, s, e, rep, diff))
    return out


def order(mutants: Sequence[Mutant], seed: int) -> list[Mutant]:
    """A stable, seeded order: sorted by id, then shuffled by `seed`, so `--max N`
    samples every function and operator, and the same seed gives the same run."""
    out = sorted(mutants, key=lambda x: x.id)
    random.Random(seed).shuffle(out)
    return out
