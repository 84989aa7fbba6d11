"""`series report`: the dashboard across stored runs, from results.json files we
write ourselves (three revisions of a stack, a second stack, untrusted text),
and the per-run page's log links.  The browser test (headless Chromium) is in
test_dashboard_browser.py."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import run_series
from series.report.dashboard import find_runs, history_of_tests, views
from series.report.html import log_link, to_html

EVIL = "<script>alert('x')</script>"


def _stage(name: str, status: str, items: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    return {"name": name, "status": status, "duration_s": 1.0, "summary": kw.pop("summary", f"{name} {status}"),
            "items": items or [], "log": kw.pop("log", None), "counts": {}, "extra": kw.pop("extra", {}),
            "cached": kw.pop("cached", False)}


def make_run(runs: Path, name: str, *, stack: str, rev: int, started: str, stages: list[dict[str, Any]],
             subjects: list[str] | None = None, command: str = "ci") -> Path:
    d = runs / name
    d.mkdir(parents=True)
    subjects = subjects or ["a: one", "b: two"]
    for st in stages:   # every log a stage names exists in the run directory (a stage's may be a directory)
        for p in [*[i.get("log") for i in st["items"]], st.get("log")]:
            if p and not Path(p).is_dir():
                Path(p).parent.mkdir(parents=True, exist_ok=True)
                Path(p).write_text(f"log of {st['name']} in {name}\n")
    statuses = [s["status"] for s in stages if s["status"] != "skip"]
    order = ["pass", "warn", "fail", "error"]
    status = max(statuses, key=order.index) if statuses else "skip"
    r = {"schema": 1, "tool": "series", "tool_version": "0", "command": command, "stack": stack, "title": f"{stack} {EVIL}",
         "revision": rev, "tree": "t", "onto": "base", "base_commit": "0" * 40, "started": started,
         "finished": started, "reproduce": f"series ci {stack} v{rev}", "expected": len(subjects), "missing": [],
         "patches": [{"index": i, "subject": s, "message_id": f"{i}@x", "imported": True}
                     for i, s in enumerate(subjects, 1)],
         "selected": [s["name"] for s in stages], "run_dir": str(d), "status": status, "error": None, "stages": stages}
    (d / "results.json").write_text(json.dumps(r))
    return d


def demo_runs(runs: Path) -> dict[str, Path]:
    """v1: all pass; v2: a checkpatch finding, a new build warning, a test fails;
    v3: the finding fixed, the test fixed, another test fails; and an older v3 run."""
    def full(name: str, rev: int, started: str, *, finding: bool, warn: bool, failing: str | None,
             cached: bool = False) -> Path:
        d = runs / name
        cp_items = [{"index": 1, "status": "pass", "findings": []},
                    {"index": 2, "status": "warn" if finding else "pass",
                     "findings": [{"level": "WARNING", "type": "LONG_LINE", "file": "mm/x.c", "line": 3,
                                   "message": f"line too long {EVIL}"}] if finding else []}]
        b_items = [{"index": 0, "status": "pass", "rebuilt": 800, "new_warnings": [], "errors": [],
                    "log": str(d / "build" / "b0.log"), "cached": cached},
                   {"index": 1, "status": "pass", "rebuilt": 3, "new_warnings": [], "errors": [],
                    "log": str(d / "build" / "b1.log"), "cached": cached},
                   {"index": 2, "status": "warn" if warn else "pass", "rebuilt": 2, "errors": [],
                    "new_warnings": ["mm/x.c:10:5: warning: unused variable 'v'"] if warn else [],
                    "log": str(d / "build" / "b2.log")}]
        tests = [{"name": f"suite-a/{t}", "status": "fail" if t == failing else "pass", "duration_s": 0.1}
                 for t in ("t1", "t2")]
        tests += [{"name": "suite-b/k1", "status": "fail" if failing == "k1" else "pass", "duration_s": 0.1}]
        return make_run(runs, name, stack="demo", rev=rev, started=started, stages=[
            _stage("apply", "pass", [{"index": 1, "status": "pass"}, {"index": 2, "status": "pass"}],
                   log=str(d / "apply" / "apply.log")),
            _stage("checkpatch", "warn" if finding else "pass", cp_items),
            _stage("hygiene", "pass", [{"index": 1, "status": "pass"}]),
            _stage("build", "warn" if warn else "pass", b_items, log=str(d / "build")),
            _stage("test", "fail" if failing else "pass", tests, log=str(d / "console.log")),
            _stage("mail", "pass", [{"name": "[PATCH 1/2]", "status": "pass"}]),
        ])
    return {
        "v1": full("20260101-000000-000000-ci-demo-v1", 1, "2026-01-01T00:00:00+00:00", finding=False, warn=False,
                   failing=None),
        "v2": full("20260102-000000-000000-ci-demo-v2", 2, "2026-01-02T00:00:00+00:00", finding=True, warn=True,
                   failing="t2"),
        "v3-old": full("20260103-000000-000000-ci-demo-v3", 3, "2026-01-03T00:00:00+00:00", finding=False,
                       warn=False, failing="t2"),
        "v3": full("20260104-000000-000000-ci-demo-v3", 3, "2026-01-04T00:00:00+00:00", finding=False, warn=False,
                   failing="k1", cached=True),
        "other": make_run(runs, "20260105-000000-000000-ci-other-v1", stack="other", rev=1,
                          started="2026-01-05T00:00:00+00:00",
                          stages=[_stage("apply", "skip", summary="incomplete import: patch 2 of 2 missing"),
                                  _stage("build", "skip", summary="incomplete import: patch 2 of 2 missing")],
                          subjects=[f"x: {EVIL}", "y"]),
    }


class _Grid(HTMLParser):
    """The grid cells: (stack, revision, column) -> (status, href)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = ""
        self.rev = ""
        self.cells: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._cell: tuple[str, str, str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and "grid" in (a.get("class") or ""):
            self.stack = a.get("data-stack") or ""
        elif tag == "tr" and a.get("data-revision"):
            self.rev = a["data-revision"] or ""
        elif tag == "td" and a.get("data-col") and self.stack:
            self._cell = (self.stack, self.rev, a["data-col"] or "", a.get("data-status") or "")
        elif tag == "a" and self._cell is not None:
            s, r, c, st = self._cell
            self.cells[(s, r, c)] = (st, a.get("href") or "")
            self._cell = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.stack = ""


@pytest.fixture
def report(tmp_path: Path, workspace: Path) -> tuple[Path, dict[str, Path], str]:
    cache = tmp_path / "cache"
    paths = demo_runs(cache / "runs")
    (cache / "runs" / "broken").mkdir()
    (cache / "runs" / "broken" / "results.json").write_text("{not json")
    out = tmp_path / "dash"
    r = run_series("-C", str(workspace), "report", "-o", str(out), "--json", env={"SERIES_CACHE": str(cache)})
    assert r.rc == 0, r.err
    assert r.json["runs"] == 5 and r.json["stacks"] == ["demo", "other"]
    assert any("broken" in p for p in r.json["problems"])
    return out, paths, (out / "index.html").read_text()


def test_grid_cells_agree_with_results(report: tuple[Path, dict[str, Path], str]) -> None:
    out, paths, html = report
    g = _Grid()
    g.feed(html)
    # one row per revision: v3 shows its latest run, not the older one
    assert {(s, r) for s, r, _ in g.cells} == {("demo", "1"), ("demo", "2"), ("demo", "3"), ("other", "1")}
    for key in ("v1", "v2", "v3"):
        res = json.loads((paths[key] / "results.json").read_text())
        rev = str(res["revision"])
        by = {s["name"]: s for s in res["stages"]}
        for name in ("apply", "checkpatch", "hygiene", "mail"):
            st, href = g.cells[("demo", rev, name)]
            assert st == by[name]["status"], (key, name)
            assert href == f"runs/{paths[key].name}/index.html#stage-{name}"
        for it in by["build"]["items"]:
            assert g.cells[("demo", rev, f"build:{it['index']}")][0] == it["status"]
        for suite in ("suite-a", "suite-b"):
            want = "fail" if any(i["status"] == "fail" for i in by["test"]["items"]
                                 if i["name"].startswith(suite + "/")) else "pass"
            assert g.cells[("demo", rev, f"suite:{suite}")][0] == want, (key, suite)
    assert g.cells[("other", "1", "apply")][0] == "skip"
    # every link in the dashboard is relative and leads to a file in the output directory
    for href in re.findall(r'href="([^"#]+)', html):
        assert not href.startswith(("/", "file:", "http")), href
        assert (out / href).exists(), href


def test_changes_between_revisions(report: tuple[Path, dict[str, Path], str]) -> None:
    out, paths, html = report
    v12 = html.split('id="change-demo-v1-v2"')[1].split("<h4")[0]
    assert "new: <code>patch 2: WARNING:LONG_LINE" in v12
    assert "newly failing: <code>suite-a/t2</code>" in v12
    assert "new: <code>mm/x.c: warning: unused variable" in v12       # line numbers dropped (patches move lines)
    v23 = html.split('id="change-demo-v2-v3"')[1].split("<h3")[0]
    assert "fixed: <code>patch 2: WARNING:LONG_LINE" in v23
    assert "fixed: <code>suite-a/t2</code>" in v23 and "newly failing: <code>suite-b/k1</code>" in v23
    assert "fixed: <code>mm/x.c: warning" in v23
    assert "pairing unavailable" in v12          # the stack is not in this workspace


def test_untrusted_text_is_escaped(report: tuple[Path, dict[str, Path], str]) -> None:
    out, paths, html = report
    assert EVIL not in html and "&lt;script&gt;" in html
    for page in (out / "runs").glob("*/index.html"):
        assert EVIL not in page.read_text()


def test_runs_are_copied_with_their_logs(report: tuple[Path, dict[str, Path], str]) -> None:
    out, paths, html = report
    page = out / "runs" / paths["v2"].name / "index.html"
    text = page.read_text()
    links = re.findall(r'class="log" href="([^"]+)"', text)
    assert "build/b2.log" in links and "console.log" in links and "apply/apply.log" in links
    for href in links:
        assert (page.parent / href).exists(), href
    assert (page.parent / "build" / "b2.log").read_text().startswith("log of build")


def test_history_says_where_a_test_started_failing(tmp_path: Path) -> None:
    paths = demo_runs(tmp_path / "runs")
    runs, _ = find_runs([tmp_path / "runs"])
    hist = {t["name"]: t for t in history_of_tests([r for r in runs if r.stack == "demo"])}
    assert hist["suite-b/k1"]["since"].startswith("failing since v3 (2026-01-04")
    assert hist["suite-b/k1"]["since_href"] == f"runs/{paths['v3'].name}/index.html"
    # t2 failed in v2 and in the first v3 run, and passes in the latest: fixed there
    assert hist["suite-a/t2"]["since"].startswith("fixed in v3 (2026-01-04")
    assert hist["suite-a/t1"]["since"] == ""
    assert [s for _, s in hist["suite-a/t2"]["cells"]] == ["pass", "fail", "fail", "pass"]


def test_pairing_from_the_workspace(tmp_path: Path, workspace: Path) -> None:
    """With the stack in the workspace, the change section has the range-diff pairing:
    v2 keeps patch 1 and changes patch 2."""
    from mailfactory import diff_for, patch_mail, series_mails, write_mbox
    v1 = write_mbox(tmp_path / "v1.mbox", series_mails(2, version=1))
    v2 = write_mbox(tmp_path / "v2.mbox", [patch_mail(1, 2, version=2, diff=diff_for(1, 1)),
                                           patch_mail(2, 2, version=2, diff=diff_for(2, 1, lines=8))])
    cache = tmp_path / "cache"
    env = {"SERIES_CACHE": str(cache)}
    assert run_series("-C", str(workspace), "import", "demo", "--mbox", str(v1), "--create", env=env).rc == 0
    r = run_series("-C", str(workspace), "import", "demo", "--mbox", str(v2), env=env)
    assert r.rc == 0, r.err
    paths = demo_runs(cache / "runs")
    out = tmp_path / "dash"
    r = run_series("-C", str(workspace), "report", "-o", str(out), env=env)
    assert r.rc == 0, r.err
    html = (out / "index.html").read_text()
    v12 = html.split('id="change-demo-v1-v2"')[1].split("<h4")[0]
    rows = re.findall(r"<tr><td>(\d*)</td><td>(\d*)</td>\s*<td class=\"\w+\">(\w+)", v12)
    assert rows == [("1", "1", "same"), ("2", "2", "changed")], v12
    assert paths["v1"].name in html


def test_views_one_row_per_revision_latest_run(tmp_path: Path) -> None:
    paths = demo_runs(tmp_path / "runs")
    runs, _ = find_runs([tmp_path / "runs"])
    (demo,) = [v for v in views(runs, None) if v.name == "demo"]
    assert [r["run"].dir for r in demo.rows] == [paths["v1"], paths["v2"], paths["v3"]]
    assert [c.key for c in demo.columns] == ["apply", "checkpatch", "hygiene", "build:0", "build:1", "build:2",
                                            "suite:suite-a", "suite:suite-b", "mail"]
    assert len(demo.runs) == 4


def test_run_page_links_logs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert log_link(str(run_dir / "build" / "x.log"), run_dir) == "build/x.log"
    assert log_link("/elsewhere/x.log", run_dir) == "file:///elsewhere/x.log"
    r = {"stack": "s", "revision": 1, "run_dir": str(run_dir), "status": "pass", "patches": [],
         "stages": [_stage("build", "pass", [{"index": 0, "status": "pass", "log": str(run_dir / "build" / "0.log"),
                                              "cached": True}], log=str(run_dir / "build"))]}
    html = to_html(r)
    assert 'href="build/0.log"' in html and 'href="build"' in html and "(cached)" in html
