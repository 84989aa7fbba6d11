"""Scan a guest's serial console for kernel problems.

Kinds: panic, oops, bug, warning, lockup, hung, no-init (and timeout, which the
boot runner adds: it is not visible in the text).  Each problem carries an
excerpt: the matching line and the report that follows it, up to its
`---[ end ... ]---` marker or a bounded number of lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INIT_MARKER = "SERIES-INIT-START"
MAX_EXCERPT_LINES = 30
MAX_PROBLEMS = 20

# printk prefix: "[    1.234567] " and/or "<4>" levels.  A kernel message may also
# start in the middle of a line, after user-space output without a newline
# ("Testing move on anon... [    1.0] Kernel panic"): then its timestamp marks it.
_PFX = r"(?:^(?:<\d>)?(?:\[\s*\d+\.\d+\]\s*)?|\[\s*\d+\.\d+\]\s*)(?:\[\s*[TC]\d+\]\s*)?"

# Order matters: the first pattern that matches a line decides its kind
# ("watchdog: BUG: soft lockup" is a lockup, not a bug).
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("lockup", re.compile(_PFX + r"(?:watchdog: |NMI watchdog: )?(?:BUG: soft lockup|Watchdog detected hard LOCKUP"
                          r"|BUG: workqueue lockup)")),
    ("lockup", re.compile(_PFX + r"rcu: INFO: rcu_\w+ (?:self-)?detected (?:stalls|stall)")),
    ("hung", re.compile(_PFX + r"INFO: task \S.* blocked for more than \d+ seconds")),
    ("panic", re.compile(_PFX + r"Kernel panic - not syncing")),
    ("oops", re.compile(_PFX + r"Oops(?:: | - )")),
    ("bug", re.compile(_PFX + r"(?:kernel BUG at |BUG: )")),
    ("warning", re.compile(_PFX + r"WARNING: (?:CPU: \d+ PID: \d+|.* at )")),
]
# lines that end a report (kept in the excerpt)
_END_RE = re.compile(r"---\[ end (?:trace|Kernel panic)")
# lines that start an unrelated report, or our own markers (not kept)
_STOP_RE = re.compile(r"SERIES-(?:TEST-BEGIN|TEST-END|DONE|INIT-START)")
# init never started
_NO_INIT_RE = re.compile(r"No working init found|Unable to mount root fs|Failed to execute /init|"
                         r"Run /init as init process")


@dataclass
class Problem:
    kind: str
    excerpt: str
    line: int = 0      # 1-based line number in the console log; 0 when not from a line

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "excerpt": self.excerpt, "line": self.line}


def scan_console(text: str, *, expect_init: bool = True) -> list[Problem]:
    """Problems in `text`, in console order.  A line already inside an earlier
    problem's excerpt of the same kind does not start a new problem; different
    kinds (an Oops and the panic it caused) are each reported."""
    lines = text.splitlines()
    problems: list[Problem] = []
    covered: dict[str, int] = {}   # kind -> last line index covered by its excerpt
    for i, line in enumerate(lines):
        kind = _classify(line)
        if kind is None or covered.get(kind, -1) >= i:
            continue
        end = _excerpt_end(lines, i)
        covered[kind] = end
        problems.append(Problem(kind=kind, excerpt="\n".join(lines[i:end + 1]).strip("\n"), line=i + 1))
        if len(problems) >= MAX_PROBLEMS:
            break
    if expect_init and INIT_MARKER not in text:
        tail = [ln for ln in lines if ln.strip()][-15:]
        hint = next((ln for ln in lines if _NO_INIT_RE.search(ln) and "Run /init" not in ln), None)
        excerpt = "\n".join(([hint, "..."] if hint and hint not in tail else []) + tail) or "(empty console)"
        problems.append(Problem(kind="no-init", excerpt=excerpt, line=0))
    return problems


def _classify(line: str) -> str | None:
    for kind, rx in _PATTERNS:
        if rx.search(line):
            return kind
    return None


def _excerpt_end(lines: list[str], start: int) -> int:
    last = min(len(lines) - 1, start + MAX_EXCERPT_LINES - 1)
    for j in range(start + 1, last + 1):
        if _END_RE.search(lines[j]):
            return j
        if _STOP_RE.search(lines[j]):
            return j - 1
    return last
