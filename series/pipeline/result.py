"""StageResult: what every stage returns.  JSON only at the edge (`to_dict`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .status import Status, status_of

JSON = Any  # the payload of an item or of `extra`: JSON-serialisable values only


@dataclass
class StageResult:
    name: str
    status: Status
    duration_s: float = 0.0
    summary: str = ""
    items: list[dict[str, JSON]] = field(default_factory=list)
    log: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    extra: dict[str, JSON] = field(default_factory=dict)
    cached: bool = False     # the result of an earlier identical run, not recomputed

    def __post_init__(self) -> None:
        self.status = status_of(self.status)
        for it in self.items:
            if "status" in it:
                it["status"] = str(it["status"])

    def to_dict(self) -> dict[str, JSON]:
        return {"name": self.name, "status": str(self.status), "duration_s": round(self.duration_s, 3),
                "summary": self.summary, "items": self.items, "log": self.log, "counts": self.counts,
                "extra": self.extra, "cached": self.cached}

    @classmethod
    def from_dict(cls, d: dict[str, JSON]) -> "StageResult":
        return cls(name=str(d["name"]), status=status_of(str(d["status"])), duration_s=float(d.get("duration_s") or 0),
                   summary=str(d.get("summary") or ""), items=list(d.get("items") or []), log=d.get("log"),
                   counts=dict(d.get("counts") or {}), extra=dict(d.get("extra") or {}),
                   cached=bool(d.get("cached")))

    @classmethod
    def skip(cls, name: str, reason: str) -> "StageResult":
        return cls(name=name, status=Status.SKIP, summary=reason)


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.monotonic()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self.start
