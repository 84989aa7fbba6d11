"""The progress display of a run: a rich status line on a terminal, plain step
lines otherwise, nothing with --json or --quiet."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator

from ..context import Context

# kbuild's per-object lines and uffd-unit-tests' per-case lines: shown on the
# status line only, never printed one after another.
_FINE_RE = re.compile(r"^(building [^:]+: [A-Z][A-Z0-9_]* |Testing )")


@contextlib.contextmanager
def progress(ctx: Context) -> Iterator[Callable[[str], None]]:
    if ctx.interactive:
        from rich.console import Console
        console = Console(stderr=True)
        with console.status("starting") as status:
            def say(msg: str) -> None:
                status.update(msg)
                if not _FINE_RE.match(msg):
                    console.print(f"[dim]{msg}[/dim]")
            yield say
    else:
        def say_plain(msg: str) -> None:
            if not _FINE_RE.match(msg):
                ctx.info(msg)
        yield say_plain
