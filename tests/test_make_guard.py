"""make_guard (series/stages/build.py): what an interrupted make wrote into obj/
is not trusted by the next one.  Seen for real: a build stopped during the
vmlinux.o link left an empty vmlinux.o, and the next make failed in objcopy
("the input file 'vmlinux.o' is empty") instead of linking again."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from series.stages.build import make_guard


def _old(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    past = time.time() - 3600
    os.utime(path, (past, past))
    return path


def test_what_an_interrupted_make_wrote_is_deleted_before_the_next(tmp_path: Path) -> None:
    obj = tmp_path / "obj"
    kept = _old(obj / "mm" / "userfaultfd.o", "built before")
    config = obj / ".config"
    with pytest.raises(KeyboardInterrupt):
        with make_guard(obj):
            (obj / "vmlinux.o").write_text("")                 # the link, cut short
            (obj / "mm" / "memory.o").write_text("trunc")      # a compile, cut short
            config.write_text("CONFIG_64BIT=y\n")              # kconfig replaces it whole
            raise KeyboardInterrupt
    assert (obj / "vmlinux.o").exists()                        # nothing is deleted until a make runs again
    with make_guard(obj):
        assert not (obj / "vmlinux.o").exists() and not (obj / "mm" / "memory.o").exists()
        assert kept.read_text() == "built before" and config.is_file()
        (obj / "vmlinux.o").write_text("linked")
    # that make returned: what it wrote stays for the next one
    with make_guard(obj):
        assert (obj / "vmlinux.o").read_text() == "linked"


def test_a_make_that_returned_leaves_nothing_to_sweep(tmp_path: Path) -> None:
    obj = tmp_path / "obj"
    with make_guard(obj):
        (obj / "vmlinux.o").write_text("linked")
    assert [p.name for p in tmp_path.iterdir()] == ["obj"]     # no mark left behind
    with make_guard(obj):
        assert (obj / "vmlinux.o").read_text() == "linked"
