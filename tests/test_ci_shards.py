"""`series ci --emit github-actions|gitlab` (validated offline against the
official schemas, which check-jsonschema ships) and `series ci --merge` of
shards: a merge equals a single-machine run of the same revision, stage by
stage (durations, paths and cache flags aside).  Stages that need no kernel
here; the per-patch build shards on the demo stack are in the e2e test below."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import git, run_series, user_tree
from mailfactory import series_mails, write_mbox

REPO = Path(__file__).resolve().parent.parent
VOLATILE = {"duration_s", "log", "run_dir", "started", "finished", "reproduce", "cached", "cached_from", "rebuilt",
            "built_from", "build_logs", "boot_duration_s", "shards", "logs"}


def normalized(v: Any, run_dir: str) -> Any:
    """A result without what differs between two equal runs: times, the run
    directory's path, whether a step came from the cache."""
    if isinstance(v, dict):
        return {k: normalized(x, run_dir) for k, x in v.items() if k not in VOLATILE}   # counts["cached"] too
    if isinstance(v, list):
        return [normalized(x, run_dir) for x in v]
    if isinstance(v, str):
        return re.sub(r" \(\d+ of \d+ cached\)$", "", v.replace(run_dir, "<run>"))
    return v


def same_run(a: Path, b: Path) -> None:
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    na, nb = normalized(ra, ra["run_dir"]), normalized(rb, rb["run_dir"])
    assert [s["name"] for s in na["stages"]] == [s["name"] for s in nb["stages"]]
    for sa, sb in zip(na["stages"], nb["stages"]):
        assert sa == sb, sa["name"]
    assert na == nb
    ca, cb = (json.loads((d / "patchwork-checks.json").read_text()) for d in (a, b))
    assert normalized(ca, str(a)) == normalized(cb, str(b)) and ca
    ja, jb = ((d / "junit.xml").read_text().replace(str(d), "<run>") for d in (a, b))
    strip = (lambda t: re.sub(r'time="[^"]*"|timestamp="[^"]*"', "", t))
    assert strip(ja) == strip(jb)


@pytest.fixture
def demo(workspace: Path, tmp_path: Path) -> tuple[Path, str]:
    user = user_tree(tmp_path / "linux")
    (user / "MAINTAINERS").write_text("DEMO\nM:\tAda Lovelace <ada@example.org>\nF:\tmm/\n")
    (user / "scripts").mkdir()
    (user / "scripts" / "checkpatch.pl").write_text(      # ours: one warning per patch
        '#!/usr/bin/perl\nmy $n = 0; while (<>) { $n++ }\n'
        'print "WARNING:DEMO: a demo warning\\n#1: FILE: mm/demo.c:1:\\n\\n";\n'
        'print "total: 0 errors, 1 warnings, $n lines checked\\n";\nexit 0;\n')
    git(user, "add", ".")
    git(user, "commit", "-qm", "base")
    tree = "shards-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    assert run_series("tree", "add", tree, "--path", str(user), cwd=workspace).rc == 0
    mb = write_mbox(tmp_path / "v1.mbox", series_mails(3, version=1))
    r = run_series("-C", str(workspace), "import", "demo", "--create", "--mbox", str(mb))
    assert r.rc == 0, r.err
    return workspace, tree


def _ci(ws: Path, tree: str, stages: str, out: Path, *extra: str) -> None:
    r = run_series("-C", str(ws), "ci", "demo", "v1", "--tree", tree, "--onto", "main", "--stages", stages,
                   "-o", str(out), *extra)
    assert r.rc in (0, 2), r.err
    assert (out / "results.json").is_file()


def test_merge_of_shards_equals_one_run(demo: tuple[Path, str], tmp_path: Path) -> None:
    ws, tree = demo
    _ci(ws, tree, "apply,checkpatch,hygiene", tmp_path / "one")
    _ci(ws, tree, "apply,checkpatch", tmp_path / "A")
    _ci(ws, tree, "hygiene", tmp_path / "B")
    r = run_series("-C", str(ws), "ci", "--merge", str(tmp_path / "A"), str(tmp_path / "B"),
                   "-o", str(tmp_path / "merged"), "--json")
    assert r.rc in (0, 2), r.err
    assert [s["name"] for s in r.json["stages"]] == ["apply", "checkpatch", "hygiene"]
    same_run(tmp_path / "one", tmp_path / "merged")
    # the page and the summary of the merged run are derived like any run's
    assert (tmp_path / "merged" / "index.html").is_file() and (tmp_path / "merged" / "summary.md").is_file()
    # the shard's logs came along, and the merged results point at the copies
    res = json.loads((tmp_path / "merged" / "results.json").read_text())
    logs = [s["log"] for s in res["stages"] if s.get("log")]
    assert logs and all(str(tmp_path / "merged") in lg for lg in logs)


def test_merge_refuses_shards_of_two_runs(demo: tuple[Path, str], tmp_path: Path) -> None:
    ws, tree = demo
    _ci(ws, tree, "apply", tmp_path / "A")
    other = json.loads((tmp_path / "A" / "results.json").read_text())
    (tmp_path / "B").mkdir()
    other["onto"] = "elsewhere"
    (tmp_path / "B" / "results.json").write_text(json.dumps(other))
    r = run_series("-C", str(ws), "ci", "--merge", str(tmp_path / "A"), str(tmp_path / "B"), "-o", str(tmp_path / "M"))
    assert r.rc == 1 and "onto differs" in r.err
    r = run_series("-C", str(ws), "ci", "--merge", str(tmp_path / "A"))
    assert r.rc == 1 and "needs -o" in r.err
    r = run_series("-C", str(ws), "ci", "--merge", str(tmp_path / "nothing"), "-o", str(tmp_path / "M"))
    assert r.rc == 1 and "no results.json" in r.err


def _yaml(path: Path) -> Any:
    from ruamel.yaml import YAML
    return YAML(typ="safe").load(path.read_text())


def _check_schema(schema: str, f: Path) -> None:
    exe = Path(sys.executable).parent / "check-jsonschema"
    p = subprocess.run([str(exe), "--builtin-schema", schema, str(f)], capture_output=True, text=True,
                       env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("kind,schema", [("github-actions", "vendor.github-workflows"), ("gitlab", "vendor.gitlab-ci")])
def test_emit_validates_and_lists_the_jobs(demo: tuple[Path, str], tmp_path: Path, kind: str, schema: str) -> None:
    ws, tree = demo
    f = tmp_path / f"{kind}.yml"
    r = run_series("-C", str(ws), "ci", "demo", "v1", "--emit", kind, "--tree", tree, "--onto", "main",
                   "--suites", "uffd-unit-tests,uffd-move-tests", "-o", str(f))
    assert r.rc == 0, r.err
    _check_schema(schema, f)
    y = _yaml(f)
    text = f.read_text()
    if kind == "github-actions":
        jobs = y["jobs"]
        assert set(jobs) == {"checks", "build", "test", "merge"}
        assert jobs["build"]["strategy"]["matrix"]["patch"] == [1, 2, 3]
        assert jobs["test"]["strategy"]["matrix"]["suite"] == ["uffd-unit-tests", "uffd-move-tests"]
        assert jobs["test"]["needs"] == "build" and jobs["merge"]["needs"] == ["checks", "build", "test"]
        inputs = y["on"]["workflow_dispatch"]["inputs"]
        assert {k: v["default"] for k, v in inputs.items()} == {"stack": "demo", "revision": "1", "tree": tree,
                                                                 "onto": "main"}
        assert any(s.get("uses", "").startswith("actions/cache@") for s in jobs["build"]["steps"])
        for name, job in jobs.items():     # every job sets series up before it runs it
            runs = [str(s.get("run", "")) for s in job["steps"]]
            first = next(i for i, r in enumerate(runs) if ".venv/bin/series" in r)
            assert "tools/setup" in runs[:first], name
        for name in ("checks", "build", "test"):   # the build sandbox may make user namespaces
            assert any("apparmor_restrict_unprivileged_userns" in str(s.get("run", "")) for s in jobs[name]["steps"])
    else:
        assert y["build"]["parallel"]["matrix"] == [{"PATCH": ["1", "2", "3"]}]
        assert y["test"]["parallel"]["matrix"] == [{"SUITE": ["uffd-unit-tests", "uffd-move-tests"]}]
        assert y["variables"]["ONTO"]["value"] == "main" and "cache" in y["build"]
        assert y["merge"]["artifacts"]["reports"]["junit"] == "merged/junit.xml"
        for name in ("checks", "build", "test", "merge"):
            assert "tools/setup" in (y[name].get("before_script") or y["default"]["before_script"]), name
    assert "--build-patch" in text and "series ci --merge shards/* -o merged" in text


def test_emit_a_broken_file_fails_the_schema(tmp_path: Path) -> None:
    """The schema check is not vacuous: a job without runs-on is refused."""
    f = tmp_path / "bad.yml"
    f.write_text("on: push\njobs:\n  x:\n    steps:\n      - run: true\n")
    exe = Path(sys.executable).parent / "check-jsonschema"
    p = subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", str(f)], capture_output=True, text=True)
    assert p.returncode != 0


def test_committed_example_is_current() -> None:
    """docs/github-actions-example.yml is what `series ci --emit github-actions` writes for this repository."""
    r = run_series("-C", str(REPO), "ci", "--emit", "github-actions", "--json")
    assert r.rc == 0, r.err
    assert r.json["text"] == (REPO / "docs" / "github-actions-example.yml").read_text()
    _check_schema("vendor.github-workflows", REPO / "docs" / "github-actions-example.yml")


@pytest.mark.e2e
def test_build_shards_merge_equals_one_run(debian_trees, tmp_path: Path) -> None:  # noqa: ANN001
    """The demo stack onto debian/6.12: one run of apply..build against a checks
    shard plus one build shard per patch (`--build-patch N`), merged."""
    import shutil
    ws = tmp_path / "ws"
    shutil.copytree(REPO / "patches" / "uffd-move-selftests", ws / "patches" / "uffd-move-selftests")
    shutil.copy(REPO / "series.toml", ws / "series.toml")
    r = run_series("-C", str(ws), "ci", "--stages", "apply,checkpatch,hygiene,build", "-o", str(tmp_path / "one"))
    assert r.rc in (0, 2), r.err
    res = json.loads((tmp_path / "one" / "results.json").read_text())
    patches = [p["index"] for p in res["patches"]]
    shards = [tmp_path / "checks"]
    r = run_series("-C", str(ws), "ci", "--stages", "apply,checkpatch,hygiene", "-o", str(shards[0]))
    assert r.rc in (0, 2), r.err
    for i in patches:
        shards.append(tmp_path / f"build-{i}")
        r = run_series("-C", str(ws), "ci", "--stages", "build", "--build-patch", str(i), "-o", str(shards[-1]))
        assert r.rc in (0, 2), r.err
        built = json.loads((shards[-1] / "results.json").read_text())
        assert [it["index"] for s in built["stages"] if s["name"] == "build" for it in s["items"]] == [0, i]
    r = run_series("-C", str(ws), "ci", "--merge", *map(str, shards), "-o", str(tmp_path / "merged"))
    assert r.rc in (0, 2), r.err
    same_run(tmp_path / "one", tmp_path / "merged")
