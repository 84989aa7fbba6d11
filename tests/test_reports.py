"""Reports derived from results.json: JUnit, patchwork checks, Markdown, HTML."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

import pytest

from series.report.html import to_html
from series.report.junit import to_junit
from series.report.markdown import to_markdown
from series.report.patchwork import to_checks

RESULTS = {
    "stack": "demo", "revision": 2, "title": "demo <b>series</b>", "tree": "debian", "onto": "debian/6.12",
    "base_commit": "fd3d78284d1c" + "0" * 28, "status": "fail", "reproduce": "series ci demo v2",
    "started": "2026-11-25T00:00:00+00:00", "finished": "2026-11-25T00:10:00+00:00", "missing": [3],
    "patches": [{"index": 1, "subject": "a: one", "message_id": "m1@x", "imported": True},
                {"index": 2, "subject": "b: <script>alert(1)</script>", "message_id": "m2@x", "imported": True},
                {"index": 3, "subject": "c: three", "message_id": "m3@x", "imported": False}],
    "stages": [
        {"name": "apply", "status": "warn", "duration_s": 1.0, "summary": "2 applied", "log": None, "counts": {}, "extra": {},
         "items": [{"index": 1, "status": "pass", "summary": "applied"}, {"index": 2, "status": "warn", "summary": "fuzz"},
                   {"index": 3, "status": "skip", "summary": "missing"}]},
        {"name": "build", "status": "fail", "duration_s": 9.5, "summary": "build fails at patch 2", "log": "/x", "counts": {}, "extra": {},
         "items": [{"index": 0, "status": "pass", "duration_s": 200.0, "new_warnings": [], "errors": []},
                   {"index": 1, "status": "pass", "duration_s": 6.0, "new_warnings": [], "errors": []},
                   {"index": 2, "status": "fail", "duration_s": 3.5, "new_warnings": [],
                    "errors": ["mm/userfaultfd.c:10:1: error: expected ';'"]}]},
        {"name": "test", "status": "skip", "duration_s": 0.0, "summary": "build failed", "log": None, "counts": {},
         "extra": {"accel": "tcg", "kernel_problems": [{"kind": "panic", "excerpt": "Kernel panic - not syncing"}]},
         "items": [{"name": "uffd-unit-tests/move/anon", "status": "pass", "duration_s": 0.4, "reason": None}]},
    ],
}


def test_junit_counts_and_failure_text() -> None:
    root = ET.fromstring(to_junit(RESULTS).split("\n", 1)[1])
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"apply", "build", "test"}
    assert suites["build"].get("failures") == "1" and suites["build"].get("tests") == "3"
    assert suites["apply"].get("skipped") == "1"
    fail = suites["build"].find("testcase[failure]")
    assert fail is not None and "expected ';'" in (fail.find("failure").text or "")
    assert root.get("tests") == "7" and root.get("failures") == "1"


def test_patchwork_checks_per_patch_and_stage() -> None:
    checks = to_checks(RESULTS, target_url="http://ci/1")
    got = {(c["patch_index"], c["context"]): c["state"] for c in checks}
    assert got[(1, "series-apply")] == "success"
    assert got[(2, "series-apply")] == "warning"
    assert got[(3, "series-apply")] == "pending"
    assert got[(2, "series-build")] == "fail"
    assert all(c["message_id"] for c in checks if c["patch_index"] in (1, 2, 3))
    assert (0, "series-build") in got           # the base build is reported, not tied to a patch
    json.dumps(checks)


def test_markdown_and_html() -> None:
    md = to_markdown(RESULTS)
    assert "| build | FAIL |" in md and "missing patches" in md
    assert "- build:" not in md                   # no toolchain recorded: nothing claimed
    html = to_html(RESULTS)
    assert "<script>alert(1)</script>" not in html          # subjects are escaped
    assert "&lt;script&gt;" in html
    assert "Kernel panic - not syncing" in html and "uffd-unit-tests/move/anon" in html
    assert html.count("<tr>") >= 3 + 3


@pytest.mark.parametrize("sandbox,says", [({"tool": "bwrap", "network": False}, "sandboxed (bwrap; network none)"),
                                          ({"tool": "bwrap", "network": True}, "sandboxed (bwrap; network shared)"),
                                          (None, "**not sandboxed** (--no-sandbox)")])
def test_markdown_says_whether_the_build_was_sandboxed(sandbox: dict[str, object] | None, says: str) -> None:
    r = copy.deepcopy(RESULTS)
    build = next(st for st in r["stages"] if st["name"] == "build")
    build["extra"]["toolchain"] = {"cc": "ccache gcc", "ident": "x", "ccache": True, "sandbox": sandbox}
    assert f"- build: {says}\n" in to_markdown(r)
    assert f'<li id="build-sandbox">build: {says.replace("**", "")}</li>' in to_html(r)
