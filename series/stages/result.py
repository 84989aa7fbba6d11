"""StageResult: what every stage returns, and the atomic results.json."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..fsutil import atomic_write_json

Status = Literal["pass", "warn", "fail", "skip", "error"]
STATUS_ORDER: dict[str, int] = {"pass": 0, "skip": 1, "warn": 2, "fail": 3, "error": 4}


@dataclass
class StageResult:
    name: str
    status: Status
    duration_s: float = 0.0
    summary: str = ""
    items: list[dict[str, Any]] = field(default_factory=list)
    log: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration_s"] = round(self.duration_s, 3)
        return d

    @classmethod
    def skip(cls, name: str, reason: str) -> "StageResult":
        return cls(name=name, status="skip", summary=reason)


def worst(statuses: list[str]) -> str:
    """The worst of several statuses (pass < skip < warn < fail < error)."""
    return max(statuses, key=lambda s: STATUS_ORDER.get(s, 4), default="pass")


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.monotonic()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self.start


def write_results(path: Path, meta: dict[str, Any], stages: list[StageResult]) -> None:
    """results.json, written atomically (temp file + os.replace)."""
    atomic_write_json(path, {**meta, "status": worst([s.status for s in stages]) if stages else "pass",
                             "stages": [s.to_dict() for s in stages]})
