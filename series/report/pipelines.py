"""`series ci --emit github-actions|gitlab`: a pipeline for a CI engine that
spreads one revision's `series ci` over machines.

- `checks`: apply, checkpatch, hygiene and mail (no kernel build);
- `build`: a matrix, one job per patch: the base and that patch, built
  incrementally (`--build-patch N`); the build directory and ccache store are
  the engine's cache, keyed by tree, base and patch, so a job starts from the
  nearest earlier build;
- `test`: one job per suite, booting the top patch's kernel (restored from the
  top build job's cache);
- `merge`: `series ci --merge` of every shard's run directory: one results.json,
  JUnit, patchwork checks and page, equal to a single-machine run.

The stack, revision, tree and base (`--onto`) are the pipeline's parameters
(workflow_dispatch inputs; GitLab pipeline variables); the matrix lists the
revision's patches and the suites as they are when the file is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import Cache

CHECK_STAGES = "apply,checkpatch,hygiene,mail"
# The engine's cache: the build directories, the ccache store and the kernel trees with
# their registry, named by the one cache layout (the jobs set SERIES_CACHE=.series-cache).
_CACHE = Cache(Path(".series-cache"))
CACHE_PATHS = [str(p) for p in (_CACHE.builds, _CACHE.ccache, _CACHE.trees, _CACHE.trees_registry)]


@dataclass
class PipelineSpec:
    stack: str
    revision: int
    tree: str
    onto: str
    patches: list[int]
    suites: list[str]


def _ci(stages: str, out: str, extra: str = "") -> str:
    return (f'.venv/bin/series ci "$STACK" "v$REVISION" --tree "$TREE" --onto "$ONTO" --stages {stages}'
            f'{extra} -o {out}')


_FETCH = '.venv/bin/series fetch "$STACK" --revision "$REVISION" --missing'


# -- GitHub Actions -------------------------------------------------------------------
SETUP_STEP: dict[str, Any] = {"name": "set up series (apt packages, .venv)", "run": "tools/setup"}


def github_actions(spec: PipelineSpec) -> dict[str, Any]:
    top = max(spec.patches)
    key = "series-build-${{ env.TREE }}-${{ env.ONTO }}-"
    setup: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4"},
        # The builds run under bubblewrap (series/sandbox.py); Ubuntu 24.04's AppArmor
        # forbids unprivileged user namespaces unless this is turned off.
        {"name": "let the build sandbox (bubblewrap) make user namespaces",
         "run": "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 || true"},
        SETUP_STEP,
        {"name": "import the revision", "run": _FETCH},
    ]

    def upload(name: str, path: str) -> dict[str, Any]:
        return {"uses": "actions/upload-artifact@v4", "if": "${{ !cancelled() }}",
                "with": {"name": name, "path": path}}

    inputs = {
        "stack": {"description": "the stack (patches/<stack>/stack.toml)", "type": "string", "default": spec.stack},
        "revision": {"description": "the revision number N of vN", "type": "string", "default": str(spec.revision)},
        "tree": {"description": "the kernel tree (a Debian one is made on first use)", "type": "string",
                 "default": spec.tree},
        "onto": {"description": "the base to apply onto (--onto)", "type": "string", "default": spec.onto},
    }
    env = {k.upper(): f"${{{{ inputs.{k} || '{v['default']}' }}}}" for k, v in inputs.items()}
    env["SERIES_CACHE"] = "${{ github.workspace }}/.series-cache"
    return {
        "name": f"series ci {spec.stack}",
        "on": {"workflow_dispatch": {"inputs": inputs},
               "push": {"paths": [f"patches/{spec.stack}/**"]}},
        "env": env,
        "jobs": {
            "checks": {
                "name": "apply, checkpatch, hygiene, mail", "runs-on": "ubuntu-latest",
                "steps": setup + [{"name": "series ci (checks)", "run": _ci(CHECK_STAGES, "shards/checks")},
                                  upload("shard-checks", "shards/checks")],
            },
            "build": {
                "name": "build patch ${{ matrix.patch }}", "runs-on": "ubuntu-latest",
                "strategy": {"fail-fast": False, "matrix": {"patch": spec.patches}},
                "steps": setup + [
                    {"name": "build directories (cache)", "uses": "actions/cache@v4",
                     "with": {"path": "\n".join(CACHE_PATHS), "key": key + "${{ matrix.patch }}-${{ github.sha }}",
                              "restore-keys": key}},
                    {"name": "series ci (build the base and this patch)",
                     "run": _ci("build", "shards/build-${{ matrix.patch }}", " --build-patch ${{ matrix.patch }}")},
                    upload("shard-build-${{ matrix.patch }}", "shards/build-${{ matrix.patch }}")],
            },
            "test": {
                "name": "boot and test ${{ matrix.suite }}", "runs-on": "ubuntu-latest", "needs": "build",
                "if": "${{ !cancelled() }}",
                "strategy": {"fail-fast": False, "matrix": {"suite": spec.suites}},
                "steps": setup + [
                    {"name": "the top patch's build directory (cache)", "uses": "actions/cache/restore@v4",
                     "with": {"path": "\n".join(CACHE_PATHS), "key": key + f"{top}-${{{{ github.sha }}}}",
                              "restore-keys": key + f"{top}-"}},
                    {"name": "series ci (boot and test this suite)",
                     "run": _ci("test", "shards/test-${{ matrix.suite }}",
                                f" --build-patch {top} --suites ${{{{ matrix.suite }}}}")},
                    upload("shard-test-${{ matrix.suite }}", "shards/test-${{ matrix.suite }}")],
            },
            "merge": {
                "name": "merge the shards into one run", "runs-on": "ubuntu-latest",
                "needs": ["checks", "build", "test"], "if": "${{ !cancelled() }}",
                "steps": [{"uses": "actions/checkout@v4"}, SETUP_STEP] + [
                    {"uses": "actions/download-artifact@v4", "with": {"pattern": "shard-*", "path": "shards"}},
                    {"name": "series ci --merge", "run": ".venv/bin/series ci --merge shards/* -o merged"},
                    {"uses": "actions/upload-artifact@v4", "if": "${{ !cancelled() }}",
                     "with": {"name": "series-ci", "path": "merged"}}],
            },
        },
    }


# -- GitLab CI ------------------------------------------------------------------------
def gitlab(spec: PipelineSpec) -> dict[str, Any]:
    top = max(spec.patches)
    variables: dict[str, Any] = {
        "STACK": {"value": spec.stack, "description": "the stack (patches/<stack>/stack.toml)"},
        "REVISION": {"value": str(spec.revision), "description": "the revision number N of vN"},
        "TREE": {"value": spec.tree, "description": "the kernel tree (a Debian one is made on first use)"},
        "ONTO": {"value": spec.onto, "description": "the base to apply onto (--onto)"},
        "SERIES_CACHE": "$CI_PROJECT_DIR/.series-cache",
    }

    def artifacts(path: str) -> dict[str, Any]:
        return {"when": "always", "paths": [path]}

    return {
        "variables": variables,
        "stages": ["build", "test", "merge"],
        "default": {"image": "debian:bookworm", "before_script": ["tools/setup", _FETCH]},
        "checks": {"stage": "build", "script": [_ci(CHECK_STAGES, "shards/checks")],
                   "artifacts": artifacts("shards/checks")},
        "build": {"stage": "build", "parallel": {"matrix": [{"PATCH": [str(p) for p in spec.patches]}]},
                  "cache": {"key": "series-build-$TREE-$PATCH", "paths": CACHE_PATHS},
                  "script": [_ci("build", "shards/build-$PATCH", " --build-patch $PATCH")],
                  "artifacts": artifacts("shards/build-$PATCH")},
        "test": {"stage": "test", "parallel": {"matrix": [{"SUITE": spec.suites}]},
                 "cache": {"key": f"series-build-$TREE-{top}", "paths": CACHE_PATHS, "policy": "pull"},
                 "script": [_ci("test", "shards/test-$SUITE", f" --build-patch {top} --suites $SUITE")],
                 "artifacts": artifacts("shards/test-$SUITE"), "when": "always"},
        "merge": {"stage": "merge", "when": "always", "before_script": ["tools/setup"],
                  "script": [".venv/bin/series ci --merge shards/* -o merged"],
                  "artifacts": {"when": "always", "paths": ["merged"], "reports": {"junit": "merged/junit.xml"}}},
    }


# -- a small YAML writer (block style; the values are plain data) -----------------------
_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./ -]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _RESERVED and not re.fullmatch(r"[\d.]+", s) and not s.endswith(" "):
        return s
    if '"' in s and "'" not in s and "\n" not in s:
        return f"'{s}'"          # a command line reads better without escapes
    return json.dumps(s)


def _key(k: str) -> str:
    return k if _PLAIN.match(k) and k.lower() not in _RESERVED - {"on"} else json.dumps(k)


def to_yaml(v: Any, indent: int = 0) -> str:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(v, dict):
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                lines.append(f"{pad}{_key(k)}:")
                lines.append(to_yaml(x, indent + 2))
            elif isinstance(x, str) and ("\n" in x or '"' in x) and x == x.strip():
                lines.append(f"{pad}{_key(k)}: |-")
                lines += [f"{pad}  {ln}" for ln in x.splitlines()]
            else:
                lines.append(f"{pad}{_key(k)}: {_empty(x) if isinstance(x, (dict, list)) else _scalar(x)}")
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, (dict, list)) and x:
                body = to_yaml(x, indent + 2)
                lines.append(f"{pad}- {body.lstrip()}")
            else:
                lines.append(f"{pad}- {_empty(x) if isinstance(x, (dict, list)) else _scalar(x)}")
    return "\n".join(lines)


def _empty(x: dict[str, Any] | list[Any]) -> str:
    return "{}" if isinstance(x, dict) else "[]"


def emit(kind: str, spec: PipelineSpec) -> str:
    data = github_actions(spec) if kind == "github-actions" else gitlab(spec)
    head = (f"# Written by `series ci {spec.stack} v{spec.revision} --emit {kind}`: one revision's CI spread over\n"
            f"# machines (checks; one build job per patch; one boot-and-test job per suite; a merge).\n"
            f"# The matrix lists v{spec.revision}'s patches {spec.patches[0]}-{spec.patches[-1]} and the suites: "
            f"write it again for another revision.\n")
    return head + to_yaml(data) + "\n"
