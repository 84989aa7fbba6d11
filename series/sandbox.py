"""The build sandbox: bubblewrap (`bwrap`) around every `make` of a kernel
build and every compile of a test suite.

Patches come from public lists, and a patch can change a Makefile: whatever
its recipes do runs when the revision is built.  In the sandbox

- the whole filesystem is read-only (`--ro-bind / /`, a fresh `/dev` and
  `/proc`), with a private, empty `/tmp` (`--tmpfs /tmp`);
- writable are only the paths a step names: the build's output directory
  (`O=`), the worktree being built, ccache's store; nothing else (not HOME,
  not the workspace, not the rest of the cache);
- there is no network (`--unshare-net`: a loopback of its own, so even a
  server on the host's 127.0.0.1 is out of reach), and its own PID, IPC and
  UTS namespaces;
- the sandbox dies with series (`--die-with-parent`).

A compiler that compiles over the network (`--cc 'distcc gcc'`, `icecc`)
needs it: then the network is shared (`--share-net`) and the rest stays as
it is; distcc keeps its locks and state in the private /tmp.

`series build/test/ci/mutate --no-sandbox` runs without it.  With the sandbox
asked for, bwrap missing or unable to make its namespaces is an InfraError
naming `--no-sandbox`: never a silent unsandboxed build.

`blocked()` reads a failed step's output for the sandbox's own refusals (a
write to a read-only path, no network), so the build's reason says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import InfraError

# compilers that send compiles over the network (a first or second word of --cc)
NETWORK_COMPILERS = ("distcc", "icecc")
PRIVATE_TMP = Path("/tmp")
DISTCC_DIR = "/tmp/distcc"      # distcc's locks and state, inside the sandbox
HINT = "the build runs sandboxed, see --no-sandbox"


def needs_network(compiler: str) -> bool:
    """Whether make's CC compiles over the network (distcc, icecc), e.g. 'distcc gcc'."""
    words = compiler.split()
    return any(Path(w).name in NETWORK_COMPILERS for w in words[:2])


def _inside(p: Path, roots: Sequence[Path]) -> bool:
    return any(p == r or r in p.parents for r in roots)


def _real(p: Path | str) -> Path:
    return Path(os.path.realpath(p))


@dataclass(frozen=True)
class Sandbox:
    """How a step runs in bwrap: the executable, whether the network is shared,
    and paths that must stay visible (read-only) although the private /tmp
    hides them (a cache under /tmp, as in the tests)."""

    exe: str = "bwrap"
    share_net: bool = False
    see: tuple[Path, ...] = ()
    extra_writable: tuple[Path, ...] = ()   # writable in every step (ccache's store)

    def writable(self, paths: Sequence[Path]) -> list[Path]:
        """The paths a step may write: its own and the sandbox's, resolved, without repeats or nesting."""
        out: list[Path] = []
        for p in sorted({_real(x) for x in (*paths, *self.extra_writable)}, key=lambda q: len(q.parts)):
            if not _inside(p, out):
                out.append(p)
        return out

    def wrap(self, argv: Sequence[str], *, writable: Sequence[Path], cwd: Path,
             readable: Sequence[Path] = (), env: Mapping[str, str] | None = None) -> list[str]:
        """`argv` run in the sandbox: read-only everything, `writable` (and
        extra_writable) read-write, `readable` and `see` visible even under /tmp."""
        env = os.environ if env is None else env
        rw = self.writable(writable)
        cmd = [self.exe, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
               "--share-net" if self.share_net else "--unshare-net",
               "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", str(PRIVATE_TMP),
               "--setenv", "TMPDIR", str(PRIVATE_TMP),
               # newer ccache puts its temporary files in $XDG_RUNTIME_DIR (read-only here): the private /tmp
               "--setenv", "CCACHE_TEMPDIR", f"{PRIVATE_TMP}/ccache-tmp"]
        # what the private /tmp hides but the step reads: bound again, read-only
        shown: list[Path] = []
        for p in sorted({_real(x) for x in (*self.see, *readable)}, key=lambda q: len(q.parts)):
            if _inside(p, [PRIVATE_TMP]) and p != PRIVATE_TMP and not _inside(p, shown + rw) and p.exists():
                shown.append(p)
                cmd += ["--ro-bind", str(p), str(p)]
        for p in rw:
            cmd += ["--bind", str(p), str(p)]
        if self.share_net:
            cmd += self._distcc(env)
        return cmd + ["--chdir", str(_real(cwd)), "--", *argv]

    def _distcc(self, env: Mapping[str, str]) -> list[str]:
        """distcc writes locks and state under DISTCC_DIR (~/.distcc): a private
        one in /tmp, with the user's hosts file in it when DISTCC_HOSTS is unset."""
        out = ["--dir", DISTCC_DIR, "--setenv", "DISTCC_DIR", DISTCC_DIR]
        if "DISTCC_HOSTS" not in env:
            top = Path(env.get("DISTCC_DIR") or Path(env.get("HOME", "/")) / ".distcc")
            if (top / "hosts").is_file():
                out += ["--ro-bind", str(_real(top / "hosts")), f"{DISTCC_DIR}/hosts"]
        return out

    def describe(self, writable: Sequence[Path]) -> str:
        """One line for a build log: what the step may write and whether it has a network."""
        net = "shared (the compiler compiles over the network)" if self.share_net else "none"
        return (f"sandboxed (bwrap): read-only but for {', '.join(map(str, self.writable(writable)))} "
                f"and a private /tmp; network: {net}")

    def to_json(self) -> dict[str, object]:
        return {"tool": "bwrap", "network": self.share_net}


# -- detection ----------------------------------------------------------------------
_PROBED: dict[str, str | None] = {}


def _probe(exe: str) -> str | None:
    """None when bwrap can make the sandbox here, else why not (one line)."""
    if exe not in _PROBED:
        try:
            p = subprocess.run([exe, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                                "--die-with-parent", "--", "true"],
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            err = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
            _PROBED[exe] = None if p.returncode == 0 else f"bwrap cannot create its namespaces here ({err})"
        except (OSError, subprocess.SubprocessError) as e:
            _PROBED[exe] = f"bwrap does not run ({e})"
    return _PROBED[exe]


def sandbox(*, compiler: str = "gcc", see: Sequence[Path] = (), writable: Sequence[Path] = (),
            exe: str = "bwrap") -> Sandbox:
    """The sandbox of a build with this compiler; InfraError (one line, naming
    --no-sandbox) when bwrap is missing or cannot make its namespaces."""
    path = shutil.which(exe)
    if path is None:
        raise InfraError(f"cannot sandbox the build: {exe} is not installed (Debian package bubblewrap; "
                         f"tools/setup installs it), or build without the sandbox with --no-sandbox")
    why = _probe(path)
    if why is not None:
        raise InfraError(f"cannot sandbox the build: {why}; build without the sandbox with --no-sandbox")
    return Sandbox(exe=path, share_net=needs_network(compiler), see=tuple(see), extra_writable=tuple(writable))


# -- what stopped a build ------------------------------------------------------------
_ROFS = "Read-only file system"
_EACCES = "Permission denied"
_NET = ("Network is unreachable", "Temporary failure in name resolution", "Name or service not known",
        "Could not resolve host", "unable to resolve host", "No route to host", "Connection refused",
        "Couldn't connect to server", "Cannot assign requested address")
_QUOTES = "'\"`\u2018\u2019"
_AFTER_RE = re.compile(r"\s*:\s*['\"`\u2018]?(/[^\s'\"`\u2019]+)")


def _subject(line: str, message: str) -> str | None:
    """The path an error line is about: the word just before `message`
    ("touch: cannot touch '/x': Read-only file system"), else the path just
    after it ("OSError: [Errno 30] Read-only file system: '/x'")."""
    i = line.find(message)
    before = line[:i].rstrip().rstrip(":").split()
    word = before[-1].strip(_QUOTES) if before else ""
    if word.startswith("/") or word.startswith("."):
        return os.path.normpath(word) if word.startswith("/") else word
    m = _AFTER_RE.match(line[i + len(message):])
    return os.path.normpath(m.group(1)) if m else None


def _short(line: str, limit: int = 120) -> str:
    line = " ".join(line.split())
    return line if len(line) <= limit else line[:limit - 3] + "..."


def blocked(output: str, writable: Sequence[Path], *, share_net: bool = False) -> str | None:
    """Why the sandbox stopped a step, from its output: it wrote outside
    `writable`, or reached for the network (not with `share_net`).  None when
    nothing in the output says the sandbox did it."""
    rw = [_real(p) for p in writable]
    for line in output.splitlines():
        for message in (_ROFS, _EACCES):
            if message not in line:
                continue
            path = _subject(line, message)
            absolute = path is not None and path.startswith("/")
            if message == _EACCES and not (absolute and not _inside(_real(str(path)), rw)
                                           and not _inside(Path(str(path)), [PRIVATE_TMP])):
                continue        # a permission of the tree's own files, or not about a path: not the sandbox
            where = f"{path}: {message}" if absolute else _short(line)
            return f"it tried to write outside its build directories ({where})"
        if not share_net and any(n in line for n in _NET):
            return f"it tried to reach the network, which the sandbox does not have ({_short(line)})"
    return None


def explain(what: str, reason: str) -> str:
    """`build of patch 2 failed: <reason>; the build runs sandboxed, see --no-sandbox`."""
    return f"{what} failed: {reason}; {HINT}"
