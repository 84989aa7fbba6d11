"""The status vocabulary, and its one mapping onto JUnit and patchwork.

Every stage and every item of a stage reports one `Status`.  Order, best to
worst: pass < skip < warn < fail < error (a skip never hides a failure, and a
run is no better than its worst stage that ran).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _ORDER[self]

    @property
    def failed(self) -> bool:
        """A stage in this state gives its dependants nothing to work on."""
        return self in (Status.FAIL, Status.ERROR, Status.SKIP)

    @property
    def junit(self) -> str | None:
        """The JUnit element of a testcase in this state (None: a passing case)."""
        return _JUNIT[self]

    @property
    def patchwork(self) -> str:
        """The patchwork check state (success, warning, fail, pending)."""
        return _PATCHWORK[self]

    @property
    def exit_code(self) -> int:
        """What the CLI returns for a run that ended in this state."""
        return {Status.FAIL: 2, Status.ERROR: 2}.get(self, 0)


_ORDER = {Status.PASS: 0, Status.SKIP: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}
_JUNIT: dict[Status, str | None] = {Status.PASS: None, Status.WARN: None, Status.FAIL: "failure",
                                    Status.ERROR: "error", Status.SKIP: "skipped"}
_PATCHWORK = {Status.PASS: "success", Status.WARN: "warning", Status.FAIL: "fail", Status.ERROR: "fail",
              Status.SKIP: "pending"}

# What `series apply` found for one patch, as a status.
APPLY_OUTCOME = {"applied": Status.PASS, "fuzz": Status.WARN, "already-present": Status.WARN,
                 "conflict": Status.FAIL, "missing": Status.SKIP, "not-attempted": Status.SKIP}


def status_of(value: str | Status) -> Status:
    """A status from text, including the item vocabularies of stages (apply
    outcomes, "missing").  Unknown words are errors, never passes."""
    if isinstance(value, Status):
        return value
    try:
        return Status(value)
    except ValueError:
        return APPLY_OUTCOME.get(value, Status.ERROR)


def worst(statuses: Iterable[str | Status]) -> Status:
    """The worst of several statuses; pass when there are none."""
    return max((status_of(s) for s in statuses), key=lambda s: s.rank, default=Status.PASS)


def overall(statuses: Iterable[str | Status]) -> Status:
    """A run's status: the worst of the stages that ran (skips do not count,
    unless every stage was skipped)."""
    ss = [status_of(s) for s in statuses]
    ran = [s for s in ss if s is not Status.SKIP]
    if not ran:
        return Status.SKIP if ss else Status.PASS
    return worst(ran)
