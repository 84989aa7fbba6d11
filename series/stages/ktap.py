"""Parsers for test output: KTAP/TAP, and the summary lines of the kernel's
`tools/testing/selftests/mm/uffd-unit-tests`.

Both return `TestCase`s with character offsets into the text they parsed, so
the caller (boot) can turn offsets into durations from the times at which the
console bytes arrived.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# `ok 1 - name # SKIP reason`, `not ok 2 name`, optionally indented (KTAP subtests)
_RESULT_RE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<not>not )?ok[ \t]+(?P<num>\d+)(?:[ \t]+-)?[ \t]*(?P<name>[^#\n]*?)"
    r"[ \t]*(?:#[ \t]*(?P<directive>SKIP|TODO|XFAIL|XPASS|TIMEOUT|ERROR)\b[ \t]*(?P<reason>[^\n]*))?[ \t]*$",
    re.MULTILINE | re.IGNORECASE,
)
_PLAN_RE = re.compile(r"^[ \t]*1\.\.(\d+)", re.MULTILINE)
_BAIL_RE = re.compile(r"^[ \t]*Bail out!(.*)$", re.MULTILINE)
# kselftest's "nothing to run": `1..0 # SKIP reason`
_SKIP_ALL_RE = re.compile(r"^[ \t]*1\.\.0[ \t]*#[ \t]*SKIP\b[ \t]*(?P<reason>[^\n]*?)[ \t]*$", re.MULTILINE | re.IGNORECASE)
_VERSION_RE = re.compile(r"^[ \t]*(KTAP|TAP) version \d+", re.MULTILINE)
# kselftest_harness.h: `#  RUN           fixture.variant.test ...` before each test
_HARNESS_RUN_RE = re.compile(r"^[ \t]*#[ \t]+RUN[ \t]+(\S+)[ \t]+\.\.\.[ \t]*$", re.MULTILINE)
# ... and its bookkeeping, which says nothing about why a test failed:
# `#  OK  name`, `#  FAIL  name`, `# name: Test failed`, `# name: Test terminated by assertion`
_HARNESS_NOISE_RE = re.compile(r"^(?:(?:RUN|OK|FAIL)[ \t]+\S+(?:[ \t]+\.\.\.)?"
                               r"|\S+: Test (?:failed(?: at step #\d+)?|terminated by assertion))$")


@dataclass
class TestCase:
    name: str
    status: str                      # pass | fail | skip
    reason: str = ""
    start: int = 0                   # offset of the first character that belongs to the case
    end: int = 0                     # offset just after its result
    duration_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status,
                "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
                "reason": self.reason}


@dataclass
class Parsed:
    cases: list[TestCase]
    planned: int | None = None       # top-level plan, when one was printed
    bail_out: str | None = None
    summary: dict[str, int] | None = None
    skip_all: str | None = None      # the reason of a `1..0 # SKIP reason` plan

    @property
    def complete(self) -> bool:
        top = [c for c in self.cases if not c.extra.get("parent")]
        return self.bail_out is None and (self.planned is None or len(top) >= self.planned)


def looks_like_ktap(text: str) -> bool:
    return bool(_VERSION_RE.search(text) or _RESULT_RE.search(text))


def parse_ktap(text: str, prefix: str = "") -> Parsed:
    """KTAP (and TAP 13/14): every `ok`/`not ok` line is a case.  A result at a
    deeper indent than the one that follows it is a subtest; it is named
    `parent/child` and marked with extra["parent"].  `# SKIP` -> skip,
    `# TODO`/`# XFAIL` -> skip with the directive as reason."""
    cases: list[TestCase] = []
    matches = list(_RESULT_RE.finditer(text))
    pending: list[tuple[int, TestCase]] = []   # subtests waiting for their parent
    last_end = 0
    min_indent: int | None = None
    for k, m in enumerate(matches):
        indent = len(m.group("indent").expandtabs(4))
        min_indent = indent if min_indent is None else min(min_indent, indent)
        # an older kselftest_harness.h (6.1's) prints a skip as `ok N # SKIP reason`:
        # the name is the one of the `#  RUN  name ...` line just before it
        name = m.group("name").strip() or _harness_run_name(text, last_end, m.start()) or f"test {m.group('num')}"
        directive = (m.group("directive") or "").upper()
        reason = (m.group("reason") or "").strip()
        if directive in ("SKIP", "TODO", "XFAIL"):
            status = "skip"
            reason = reason or directive.lower()
            if directive != "SKIP":
                reason = f"{directive.lower()}: {reason}" if reason != directive.lower() else reason
        elif m.group("not"):
            status = "fail"
            nxt = matches[k + 1].start() if k + 1 < len(matches) else len(text)
            reason = reason or _last_diagnostic(text, last_end, m.start()) or _first_diagnostic(text, m.end(), nxt)
        else:
            status = "pass"
        case = TestCase(name=name, status=status, reason=reason, start=last_end, end=m.end())
        last_end = m.end() + 1
        # children are the pending results that are more indented than this one
        children = [c for (ind, c) in pending if ind > indent]
        pending = [(ind, c) for (ind, c) in pending if ind <= indent]
        if children:
            case.start = min(c.start for c in children)
        for c in children:
            if not c.extra.get("parent"):
                c.extra["parent"] = name
                c.name = f"{name}/{c.name}"
        pending.append((indent, case))
        cases.append(case)
    planned = None
    for pm in _PLAN_RE.finditer(text):
        # the outermost plan: the least indented
        if min_indent is None or len(pm.group(0)) - len(pm.group(0).lstrip()) <= (min_indent or 0):
            planned = int(pm.group(1))
            break
    bail = _BAIL_RE.search(text)
    if prefix:
        for c in cases:
            c.name = f"{prefix}/{c.name}"
    skip_all = _SKIP_ALL_RE.search(text)
    return Parsed(cases=cases, planned=planned, bail_out=bail.group(1).strip() if bail else None,
                  skip_all=(skip_all.group("reason") or "skipped") if skip_all else None)


def _harness_run_name(text: str, start: int, end: int) -> str:
    runs = _HARNESS_RUN_RE.findall(text, start, end)
    return str(runs[-1]) if runs else ""


def _last_diagnostic(text: str, start: int, end: int) -> str:
    """The last `# ...` diagnostic line between two results: the usual failure
    reason (kselftest_harness.h's bookkeeping lines are passed over)."""
    diags = [ln.strip()[1:].strip() for ln in text[start:end].splitlines() if ln.strip().startswith("#")]
    diags = [d for d in diags if d and not d.upper().startswith(("SKIP", "TODO")) and not _HARNESS_NOISE_RE.match(d)]
    return diags[-1] if diags else ""


def _first_diagnostic(text: str, start: int, end: int) -> str:
    """The first `# ...` line right after a failed result (some tests print the reason there)."""
    for ln in text[start:end].splitlines():
        s = ln.strip()
        if s.startswith("#") and s[1:].strip():
            return s[1:].strip()
        if s and not s.startswith("#"):
            break
    return ""


# -- uffd-unit-tests --------------------------------------------------------
# "Testing move on anon... done" / "... skipped [reason: X]" / "... failed [reason: X]"
_UFFD_START_RE = re.compile(r"Testing (?P<test>\S.*?) on (?P<mem>\S+?)\.\.\. ")
_UFFD_OUTCOME_RE = re.compile(r"(?P<done>\bdone\b)|skipped \[reason: (?P<skip>.*?)\]|failed \[reason: (?P<fail>.*?)\]",
                              re.DOTALL)
_UFFD_SUMMARY_RE = re.compile(
    r"Userfaults unit tests: pass=(?P<pass>\d+), skip=(?P<skip>\d+), fail=(?P<fail>\d+) \(total=(?P<total>\d+)\)")


def parse_uffd_unit(text: str, prefix: str = "uffd-unit-tests") -> Parsed:
    """Cases of `uffd-unit-tests`, one per test and memory type:
    `<prefix>/<test>/<mem>`.  A case whose outcome never printed (the program
    died, or the guest did) is a failure with that reason."""
    starts = list(_UFFD_START_RE.finditer(text))
    summary_m = _UFFD_SUMMARY_RE.search(text)
    cases: list[TestCase] = []
    for i, m in enumerate(starts):
        seg_end = starts[i + 1].start() if i + 1 < len(starts) else (summary_m.start() if summary_m and summary_m.start() > m.end() else len(text))
        seg = text[m.end():seg_end]
        name = f"{prefix}/{m.group('test')}/{m.group('mem')}" if prefix else f"{m.group('test')}/{m.group('mem')}"
        o = _UFFD_OUTCOME_RE.search(seg)
        if o is None:
            tail = [ln.strip() for ln in seg.splitlines() if ln.strip()]
            reason = "no result printed" + (f" (last output: {tail[-1][:200]})" if tail else "")
            cases.append(TestCase(name=name, status="fail", reason=reason, start=m.start(), end=seg_end))
            continue
        end = m.end() + o.end()
        if o.group("done"):
            cases.append(TestCase(name=name, status="pass", start=m.start(), end=end))
        elif o.group("skip") is not None:
            cases.append(TestCase(name=name, status="skip", reason=o.group("skip").strip(), start=m.start(), end=end))
        else:
            cases.append(TestCase(name=name, status="fail", reason=o.group("fail").strip(), start=m.start(), end=end))
    summary = None
    if summary_m:
        summary = {k: int(v) for k, v in summary_m.groupdict().items()}
    return Parsed(cases=cases, planned=summary["total"] if summary else None, summary=summary)
