"""`series ci --emit github-actions|gitlab` (validated offline against the
official schemas, which check-jsonschema ships) and `series ci --merge` of
shards: a merge equals a single-machine run of the same revision, stage by
stage (durations, paths and cache flags aside).  Stages that need no kernel
here; the per-patch build shards on the demo stack are in the e2e test below."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import git, run_series, user_tree
from mailfactory import series_mails, write_mbox

REPO = Path(__file__).resolve().parent.parent
VOLATILE = {"duration_s", "log", "run_dir", "started", "finished", "reproduce", "cached", "cached_from", "rebuilt",
            "built_from", "build_logs", "boot_duration_s", "shards", "logs",
            "qemu"}   # the command line, with the paths of the machine that booted (a shard's)


def normalized(v: Any, run_dir: str) -> Any:
    """A result without what differs between two equal runs: times, the run
    directory's path, whether a step came from the cache."""
    if isinstance(v, dict):
        return {k: normalized(x, run_dir) for k, x in v.items() if k not in VOLATILE}   # counts["cached"] too
    if isinstance(v, list):
        return [normalized(x, run_dir) for x in v]
    if isinstance(v, str):
        v = re.sub(r"^cached probe verdict \((.*)\)$", r"\1", v)    # the KVM probe: run first, or its verdict reused
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


def _expand(text: str, env: dict[str, str], matrix: dict[str, Any], workspace: Path) -> str:
    """The GitHub expressions the emitted workflow uses: matrix values, inputs
    with their defaults (`inputs.x || 'd'`: a push has no inputs), env, the workspace."""
    def one(m: re.Match[str]) -> str:
        e = m.group(1).strip()
        if e.startswith("matrix."):
            return str(matrix[e[len("matrix."):]])
        if e.startswith("env."):
            return env[e[len("env."):]]
        if e == "github.workspace":
            return str(workspace)
        if e == "github.sha":
            return "local"
        d = re.fullmatch(r"inputs\.\w+ \|\| '([^']*)'", e)
        if d:
            return d.group(1)
        raise AssertionError(f"an expression this runner does not know: {e}")
    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def _run_workflow_here(wf: dict[str, Any], checkout: Path, jobs_dir: Path, cache: Path) -> Path:
    """Each job of the emitted GitHub workflow, in `needs` order, every matrix
    entry in a fresh copy of the checkout, its `run:` steps run by bash as a
    runner would.  What a runner provides is emulated: `actions/cache` is one
    store every job sees (the session's cache), artifacts are copied between
    jobs; the set-up steps (tools/setup, the AppArmor sysctl) are what this
    machine did already.  Returns the merge job's checkout."""
    store = jobs_dir / "artifacts"
    store.mkdir(parents=True)
    order = ["checks", "build", "test", "merge"]
    assert list(wf["jobs"]) == order
    last = checkout
    for name in order:
        job = wf["jobs"][name]
        axes = (job.get("strategy") or {}).get("matrix") or {}
        entries = [dict(zip(axes, vals)) for vals in itertools.product(*axes.values())] or [{}]
        for matrix in entries:
            home = jobs_dir / "-".join([name, *map(str, matrix.values())])
            shutil.copytree(checkout, home, symlinks=True)
            (home / ".series-cache").symlink_to(cache)
            env = {k: _expand(str(v), {}, {}, home) for k, v in wf["env"].items()}
            for step in job["steps"]:
                uses, run = step.get("uses", ""), step.get("run")
                w = {k: _expand(str(v), env, matrix, home) for k, v in (step.get("with") or {}).items()}
                if uses.startswith("actions/upload-artifact@"):
                    shutil.copytree(home / w["path"], store / w["name"])
                elif uses.startswith("actions/download-artifact@"):
                    for a in sorted(store.glob(w["pattern"])):
                        shutil.copytree(a, home / w["path"] / a.name)
                elif run is not None and run not in ("tools/setup",) and "sysctl" not in run:
                    p = subprocess.run(["bash", "-e", "-c", _expand(str(run), env, matrix, home)], cwd=home,
                                       env={**os.environ, **env}, capture_output=True, text=True, timeout=3600)
                    assert p.returncode in (0, 2), f"{home.name}: {run}: exit {p.returncode}: {p.stderr[-2000:]}"
                else:
                    assert run is not None or uses.startswith(("actions/checkout@", "actions/cache")), uses
            last = home
    return last


@pytest.mark.e2e
def test_the_emitted_workflow_runs_here_and_merges_to_one_run(debian_trees, session_cache: Path,  # noqa: ANN001
                                                              tmp_path: Path) -> None:
    """The GitHub Actions workflow `series ci --emit` writes for the demo stack,
    its jobs' own commands run here (every build and test shard, then the
    merge): the merged run equals a single-machine `series ci` of the same
    revision.  It caught the import step failing on a revision that was never
    posted (now `fetch --missing`)."""
    ws = tmp_path / "ws"
    shutil.copytree(REPO / "patches" / "uffd-move-selftests", ws / "patches" / "uffd-move-selftests")
    shutil.copy(REPO / "series.toml", ws / "series.toml")
    (ws / ".venv").symlink_to(REPO / ".venv")
    r = run_series("-C", str(ws), "ci", "--emit", "github-actions", "-o", str(tmp_path / "wf.yml"))
    assert r.rc == 0, r.err
    from ruamel.yaml import YAML
    wf = YAML(typ="safe").load((tmp_path / "wf.yml").read_text())
    merge_job = _run_workflow_here(wf, ws, tmp_path / "jobs", session_cache)
    r = run_series("-C", str(ws), "ci", "-o", str(tmp_path / "one"))
    assert r.rc in (0, 2), r.err
    merged = json.loads((merge_job / "merged" / "results.json").read_text())
    assert {s["name"] for s in merged["stages"]} == {"apply", "checkpatch", "hygiene", "build", "test", "mail"}
    same_run(tmp_path / "one", merge_job / "merged")
    # each test shard's console is kept (both were console.log), the first suite's first
    test = next(s for s in merged["stages"] if s["name"] == "test")
    consoles = [Path(p) for p in test["extra"]["logs"]]
    assert len(set(consoles)) == 2 and all(p.is_file() and p.is_relative_to(merge_job / "merged") for p in consoles)
    assert [b["name"] for b in test["extra"]["selftests"]] == ["uffd-unit-tests", "uffd-move-tests"]
    assert "uffd-unit-tests" in consoles[0].read_text() and "uffd-move" in consoles[1].read_text()
