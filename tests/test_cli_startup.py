"""The CLI's start-up and the tests' in-process runner.

`run_series` calls `series.cli.main` in this process; these tests pin that it
sees what a user of the real process sees, and that starting the CLI imports
no command's heavy libraries (each command imports them in its `run`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_series


@pytest.mark.parametrize("args", [
    ["--version"], ["--help"], [], ["no-such-command"], ["show"], ["list", "--json"],
    ["diff", "demo", "v1", "vX"], ["-C", "/nonexistent", "list"],
], ids=lambda a: " ".join(a) or "no-args")
def test_in_process_matches_the_process(args: list[str], workspace: Path) -> None:
    (workspace / "patches" / "demo").mkdir()
    (workspace / "patches" / "demo" / "stack.toml").write_text('name = "demo"\ntitle = "t"\n[[revisions]]\nversion = 1\n')
    inproc = run_series(*args, cwd=workspace)
    proc = run_series(*args, cwd=workspace, subprocess=True)
    assert (inproc.rc, inproc.out, inproc.err) == (proc.rc, proc.out, proc.err)
    assert "Traceback" not in proc.err


def test_in_process_overlays_env_and_cwd_and_restores_them(workspace: Path, tmp_path: Path) -> None:
    import os
    before = (dict(os.environ), os.getcwd(), sys.stdout, sys.stderr)
    other = tmp_path / "not-a-workspace"
    other.mkdir()
    r = run_series("list", cwd=other, env={"SERIES_WORKSPACE": str(workspace)})
    assert r.rc == 0 and r.out == "no stacks\n", r.err
    assert run_series("list", cwd=other).rc == 1   # the overlay is gone: no workspace here
    assert (dict(os.environ), os.getcwd(), sys.stdout, sys.stderr) == before


_PROBE = r"""
import importlib, json, pkgutil, sys
before = set(sys.modules)
from series import cli, commands
loaded = {}
names = ["series.cli"] + [f"series.commands.{m.name}" for m in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name)]
seen = set(before)
for name in names:
    importlib.import_module(name)
    new = set(sys.modules) - seen
    seen |= new
    loaded[name] = sorted(new)
cli.build_parser()
loaded["build_parser"] = sorted(set(sys.modules) - seen)
print(json.dumps(loaded))
"""

# What a command module may import at its top level, besides the standard library.
_LIGHT = {"series", "series.cli", "series.context", "series.errors", "series.commands"}


def test_start_up_imports_no_command_library() -> None:
    """`series --version` builds the parser from every command module; none of
    them may pull in b4, jinja2, rich, ... or series' own stages at import time."""
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, check=True).stdout
    heavy = {}
    for who, mods in json.loads(out).items():
        bad = {m if m.startswith("series.") else m.split(".")[0] for m in mods
               if not (m in _LIGHT or m.startswith("series.commands.") or
                       m.split(".")[0] in sys.stdlib_module_names or m.startswith("_"))}
        if bad:
            heavy[who] = sorted(bad)
    assert not heavy, f"imported at start-up (move these imports into run()): {heavy}"


def test_a_ctrl_c_python_cannot_raise_is_still_an_interruption() -> None:
    """A KeyboardInterrupt inside a weakref callback (where CI's early Ctrl-C
    sweep once caught one, in importlib's module locks) is "unraisable": without
    series' hook Python prints "Exception ignored" and the run goes on."""
    import subprocess
    import sys
    code = ("import sys, weakref, time\nfrom series import cli\nsys.unraisablehook = cli._unraisable\n"
            "class A: pass\na = A()\ndef cb(r): raise KeyboardInterrupt\nr = weakref.ref(a, cb)\n"
            "try:\n    del a\n    for _ in range(100): time.sleep(0.01)\n    print('went on')\n"
            "finally:\n    print('cleaned up')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and p.stdout == "cleaned up\n" and "KeyboardInterrupt" in p.stderr
    plain = subprocess.run([sys.executable, "-c", code.replace("sys.unraisablehook = cli._unraisable\n", "")],
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and "Exception ignored" in plain.stderr and plain.stdout == "went on\ncleaned up\n"
