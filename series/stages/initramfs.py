"""The guest's initramfs: an uncompressed `newc` cpio written directly (no root,
no mknod, no cpio tool), holding static busybox, the init script, the test
binaries and /tests/list (one `NAME COMMAND...` line per test, run in order)."""

from __future__ import annotations

import shutil
from importlib import resources
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import InfraError
from ..fsutil import atomic_write_bytes

INIT_SCRIPT = Path(str(resources.files("series"))) / "data" / "init"
DEFAULT_BUSYBOX = Path("/bin/busybox")


@dataclass
class GuestTest:
    name: str            # e.g. "uffd-unit-tests", or "uffd-move-tests/uffd-move-pte"
    binary: Path         # host path of the static binary
    args: str = ""       # arguments, e.g. "-f move"
    parser: str = "ktap"  # ktap | uffd-unit
    suite: str = ""      # the suite the program belongs to
    expect: tuple[str, ...] = ()   # cases that must be reported

    @property
    def guest_path(self) -> str:
        return f"/tests/{self.suite}/{self.binary.name}" if self.suite else f"/tests/{self.binary.name}"

    @property
    def command(self) -> str:
        return f"{self.guest_path} {self.args}".strip()


class Cpio:
    """A `newc` archive built in memory."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", *, rdev: tuple[int, int] = (0, 0), nlink: int = 1) -> None:
        fields = [self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        self._ino += 1
        hdr = b"070701" + b"".join(f"{v:08X}".encode() for v in fields)
        self._buf += hdr + name.encode() + b"\0"
        self._pad()
        self._buf += data
        self._pad()

    def _pad(self) -> None:
        self._buf += b"\0" * (-len(self._buf) % 4)

    def dir(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o755) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        self._buf += b"\0" * (-len(self._buf) % 512)
        return bytes(self._buf)


def make_initramfs(out: Path, tests: list[GuestTest], *, busybox: Path = DEFAULT_BUSYBOX,
                   init_script: Path = INIT_SCRIPT) -> Path:
    """Write the initramfs to `out` (atomically) and return it."""
    if not busybox.is_file():
        raise InfraError(f"{busybox} not found: install the busybox-static package")
    if not init_script.is_file():
        raise InfraError(f"{init_script} not found")
    c = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "run", "tests", "etc", "mnt"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", busybox.read_bytes())
    c.symlink("bin/sh", "busybox")
    c.file("init", init_script.read_bytes())
    listing = []
    dirs: set[str] = set()
    for t in tests:
        if not t.binary.is_file():
            raise InfraError(f"test binary {t.binary} is missing")
        if t.suite and t.suite not in dirs:
            dirs.add(t.suite)
            c.dir(f"tests/{t.suite}")
        c.file(t.guest_path.lstrip("/"), t.binary.read_bytes())
        listing.append(f"{t.name} {t.command}\n")
    c.file("tests/list", "".join(listing).encode(), 0o644)
    atomic_write_bytes(out, c.finish())
    return out


def have_busybox(busybox: Path = DEFAULT_BUSYBOX) -> bool:
    return busybox.is_file() and shutil.which(str(busybox)) is not None
