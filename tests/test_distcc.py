"""Spreading compiles with distcc (`series build --cc 'distcc gcc'`): the
toolchain series builds with hands make `CC=distcc gcc`, or, behind ccache,
`CC=ccache gcc` with CCACHE_PREFIX=distcc.  A distcc daemon of our own on
127.0.0.1 compiles a small C project built with that toolchain, and its log
shows the compiles (distcc would otherwise fall back to compiling locally,
silently: DISTCC_FALLBACK=0 forbids it too)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from series.cache import Cache
from series.stages.build import toolchain


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def distccd() -> Iterator[tuple[str, Path]]:
    exe = shutil.which("distccd")
    assert exe, "distccd is not installed (tools/setup installs Debian's distcc)"
    # distccd run as root drops to the distcc user: its log lives where that user can write
    d = Path(tempfile.mkdtemp(prefix="series-distccd-"))
    d.chmod(0o755)
    log = d / "distccd.log"
    log.touch()
    log.chmod(0o666)
    port = _free_port()
    proc = subprocess.Popen([exe, "--no-detach", "--daemon", "--allow", "127.0.0.1", "--listen", "127.0.0.1",
                             "--port", str(port), "--log-file", str(log), "--log-level", "info", "--jobs", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if "listening on" in log.read_text():
                break
            time.sleep(0.05)
        yield f"127.0.0.1:{port}/2", log
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


def _project(root: Path) -> Path:
    root.mkdir(parents=True)
    for name, body in (("one.c", "int one(void) { return 1; }\n"), ("two.c", "int two(void) { return 2; }\n"),
                       ("main.c", "int one(void); int two(void);\nint main(void) { return one() + two() - 3; }\n")):
        (root / name).write_text(body)
    (root / "Makefile").write_text("prog: one.o two.o main.o\n\t$(CC) -o $@ $^\n")
    return root


def _make(root: Path, tc_vars: list[str], env: dict[str, str], hosts: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "distcc-client").mkdir(exist_ok=True)
    full = {**os.environ, **env, "DISTCC_HOSTS": hosts, "DISTCC_FALLBACK": "0", "DISTCC_DIR": str(tmp / "distcc-client")}
    return subprocess.run(["make", "-C", str(root), *tc_vars], capture_output=True, text=True, env=full, timeout=300)


def test_distcc_compiles_for_the_toolchain(distccd: tuple[str, Path], tmp_path: Path) -> None:
    hosts, log = distccd
    tc = toolchain(Cache(tmp_path / "cache"), use_ccache=False, compiler="distcc gcc")
    assert tc.make_vars == ["CC=distcc gcc"]
    root = _project(tmp_path / "proj")
    p = _make(root, tc.make_vars, tc.environ, hosts, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (root / "prog").is_file()
    text = log.read_text()
    for src in ("one.c", "two.c", "main.c"):
        assert "COMPILE_OK exit:0 sig:0 core:0 ret:0" in text and f"gcc {src}" in text, text


def test_ccache_in_front_of_distcc(distccd: tuple[str, Path], tmp_path: Path) -> None:
    """ccache hashes locally and sends a miss to distcc (CCACHE_PREFIX); a second
    build of the same sources is all hits: distccd sees no new compile."""
    hosts, log = distccd
    assert shutil.which("ccache"), "ccache is not installed (tools/setup installs it)"
    tc = toolchain(Cache(tmp_path / "cache"), compiler="distcc gcc")
    assert tc.make_vars == ["CC=ccache gcc"] and dict(tc.env)["CCACHE_PREFIX"] == "distcc"
    root = _project(tmp_path / "proj")
    p = _make(root, tc.make_vars, tc.environ, hosts, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    first = log.read_text().count("COMPILE_OK")
    assert first == 3, log.read_text()
    for f in root.glob("*.o"):
        f.unlink()
    (root / "prog").unlink()
    p = _make(root, tc.make_vars, tc.environ, hosts, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert log.read_text().count("COMPILE_OK") == first     # ccache hits, nothing sent
