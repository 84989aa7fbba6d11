"""A mutant's boot judged against the unmutated kernel's boot of the same
suite (shared by `series mutate` and bench/mutants).

A suite kills a mutant when a test of it that passed on the baseline fails or
is not reported any more, or the kernel reports a problem (panic, oops, BUG,
WARN, lockup, hung task, or the guest timed out) during that suite's boot.
A test that already failed on the baseline proves nothing and is ignored.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from ..stages.boot import BootResult


@dataclass
class Verdict:
    killed: bool
    why: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def text(self) -> str:
        if not self.killed:
            return "survived"
        return "KILLED: " + ", ".join(self.why[:3]) + (f" (+{len(self.why) - 3})" if len(self.why) > 3 else "")

    def to_json(self) -> dict[str, object]:
        return {"killed": self.killed, "why": self.why, "boot_s": round(self.duration_s, 1)}


def _in_suite(name: str, suite: str) -> bool:
    return name == suite or name.startswith(suite + "/")


def judge(run: BootResult, suite: str, baseline_pass: Collection[str] | None = None) -> Verdict:
    """A case of a suite is named `<suite>` or `<suite>/<program>[/<test>]`.
    Without `baseline_pass` every failure counts (a baseline checked clean)."""
    why = [f"kernel {p.kind}" for p in run.problems]
    seen = set()
    for t in run.tests:
        if not _in_suite(t.name, suite):
            continue
        seen.add(t.name)
        if t.status == "fail" and (baseline_pass is None or t.name in baseline_pass):
            why.append(t.name[len(suite) + 1:] or t.name)
    if baseline_pass is not None:
        gone = [n for n in baseline_pass if _in_suite(n, suite) and n not in seen]
        why += [f"{n[len(suite) + 1:] or n} not run" for n in sorted(gone)]
    why = list(dict.fromkeys(why))       # de-duplicate, keep order
    return Verdict(killed=bool(why), why=why, duration_s=run.stage.duration_s)
