"""Run the tree's scripts/checkpatch.pl on patches as posted, and parse its findings.

The normal (non-terse) output with `--show-types` is parsed: each report is a
block ending with an empty line,

    WARNING:NEW_TYPEDEFS: do not add new typedefs
    #76: FILE: tools/testing/selftests/mm/uffd-common.h:97:
    +typedef struct uffd_test_case_ops uffd_test_case_ops_t;

and the `total: E errors, W warnings[, C checks], L lines checked` line is kept
so the parsed counts can be verified against checkpatch's own.

Results are cached under $SERIES_CACHE/check/ by sha256 of (patch bytes,
checkpatch.pl bytes, flags): a re-run of the same revision costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...fsutil import atomic_write_json

BASE_FLAGS = ["--no-tree", "--show-types", "--color=never"]
CACHE_VERSION = 1

_HEAD = re.compile(r"^(ERROR|WARNING|CHECK):([A-Za-z0-9_]+): ?(.*)$")
_WHERE_FILE = re.compile(r"^#(\d+): FILE: (.*):(\d+):\s*$")
_WHERE = re.compile(r"^#(\d+):\s*$")
_TOTAL = re.compile(r"^total: (\d+) errors, (\d+) warnings, (?:(\d+) checks, )?(\d+) lines checked")


@dataclass
class Finding:
    level: str            # ERROR | WARNING | CHECK
    type: str             # the --show-types name, e.g. NEW_TYPEDEFS
    file: str | None      # the file in the diff; None for the commit message
    line: int | None      # the line in that file (or the patch line for the commit message)
    message: str

    def key(self) -> tuple[str, str, str | None, str]:
        """Identity across revisions: line numbers shift, the rest does not."""
        return (self.level, self.type, self.file, self.message)

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "type": self.type, "file": self.file, "line": self.line,
                "message": self.message}


@dataclass
class CheckpatchRun:
    patch: str
    command: list[str]
    returncode: int
    findings: list[Finding] = field(default_factory=list)
    totals: dict[str, int] | None = None     # checkpatch's own "total:" line
    error: str | None = None                  # checkpatch could not run / output unparseable
    duration_s: float = 0.0
    cached: bool = False

    def count(self, level: str) -> int:
        return sum(1 for f in self.findings if f.level == level)

    @property
    def counts(self) -> dict[str, int]:
        return {"errors": self.count("ERROR"), "warnings": self.count("WARNING"), "checks": self.count("CHECK")}

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        if self.count("ERROR"):
            return "fail"
        if self.count("WARNING") or self.count("CHECK"):
            return "warn"
        return "pass"

    def to_json(self) -> dict[str, Any]:
        return {**self.counts, "findings": [f.to_json() for f in self.findings]}


def flags_for(strict: bool) -> list[str]:
    return BASE_FLAGS + (["--strict"] if strict else [])


def command(scripts_root: Path, patch: Path, flags: list[str]) -> list[str]:
    return ["perl", str(scripts_root / "scripts" / "checkpatch.pl"), *flags, str(patch)]


def command_line(scripts_root: Path, flags: list[str], patch: str = "PATCH") -> str:
    """The line a user runs to reproduce a finding (cwd: the scripts' root)."""
    return shlex.join(["perl", str(scripts_root / "scripts" / "checkpatch.pl"), *flags]) + f" {patch}"


def parse_output(text: str) -> tuple[list[Finding], dict[str, int] | None]:
    findings: list[Finding] = []
    totals: dict[str, int] | None = None
    cur: dict[str, Any] | None = None
    located = False

    def close() -> None:
        nonlocal cur
        if cur is not None:
            findings.append(Finding(cur["level"], cur["type"], cur["file"], cur["line"],
                                    " ".join(m.strip() for m in cur["msg"] if m.strip())))
        cur = None

    for line in text.splitlines():
        m = _HEAD.match(line)
        if m:
            close()
            cur = {"level": m.group(1), "type": m.group(2), "file": None, "line": None, "msg": [m.group(3)]}
            located = False
            continue
        t = _TOTAL.match(line)
        if t:
            close()
            totals = {"errors": int(t.group(1)), "warnings": int(t.group(2)),
                      "checks": int(t.group(3) or 0), "lines": int(t.group(4))}
            continue
        if cur is None:
            continue
        if not line.strip():
            close()
            continue
        if located:
            continue  # the quoted source lines
        w = _WHERE_FILE.match(line)
        if w:
            cur["file"], cur["line"], located = w.group(2), int(w.group(3)), True
            continue
        w = _WHERE.match(line)
        if w:
            cur["line"], located = int(w.group(1)), True
            continue
        cur["msg"].append(line)
    close()
    return findings, totals


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_key(patch: Path, script: Path, flags: list[str]) -> str:
    h = hashlib.sha256()
    for part in (str(CACHE_VERSION), _sha256(patch), _sha256(script), "\0".join(flags)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def run_one(scripts_root: Path, patch: Path, flags: list[str], *, cache_dir: Path | None = None,
            timeout: float = 600) -> CheckpatchRun:
    script = scripts_root / "scripts" / "checkpatch.pl"
    cmd = command(scripts_root, patch, flags)
    cpath: Path | None = None
    if cache_dir is not None:
        cpath = cache_dir / f"{cache_key(patch, script, flags)}.json"
        if cpath.is_file():
            try:
                d = json.loads(cpath.read_text())
                return CheckpatchRun(patch=str(patch), command=cmd, returncode=int(d["returncode"]),
                                     findings=[Finding(**f) for f in d["findings"]], totals=d.get("totals"),
                                     duration_s=0.0, cached=True)
            except (ValueError, KeyError, TypeError):
                pass  # a damaged cache entry: run again
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=scripts_root, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return CheckpatchRun(patch=str(patch), command=cmd, returncode=-1, error=f"checkpatch did not run: {e}",
                             duration_s=time.monotonic() - start)
    dur = time.monotonic() - start
    out = proc.stdout.decode("utf-8", "replace")
    findings, totals = parse_output(out)
    run = CheckpatchRun(patch=str(patch), command=cmd, returncode=proc.returncode, findings=findings, totals=totals,
                        duration_s=dur)
    if totals is None:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        run.error = f"checkpatch exited {proc.returncode} without a summary: {err[-1] if err else out[-200:]!r}"
    elif (totals["errors"], totals["warnings"], totals["checks"]) != (
            run.count("ERROR"), run.count("WARNING"), run.count("CHECK")):
        run.error = f"parsed findings {run.counts} differ from checkpatch's totals {totals}"
    if cpath is not None and run.error is None:
        atomic_write_json(cpath, {"returncode": run.returncode, "totals": totals,
                                  "findings": [asdict(f) for f in findings]})
    return run
