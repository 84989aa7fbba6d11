"""The HTML page of a run (jinja2, autoescaped: subjects and logs are untrusted text).

Log paths become links: relative to the run directory when the log lies in it
(the page and its logs can be copied together), else `file://` links."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2

from .markdown import build_sandbox


def to_html(results: dict[str, Any], *, run_dir: Path | None = None) -> str:
    env = jinja2.Environment(loader=jinja2.PackageLoader("series", "templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True))
    patch_stages = [st for st in results.get("stages", []) if any("index" in i for i in st.get("items", []))]
    base = run_dir or (Path(results["run_dir"]) if results.get("run_dir") else None)

    def cell(st: dict[str, Any], index: int) -> dict[str, Any] | None:
        return next((i for i in st.get("items", []) if i.get("index") == index), None)

    sandbox = build_sandbox(results)
    return env.get_template("dashboard.html.j2").render(r=_Obj(results), patch_stages=[_Obj(s) for s in patch_stages],
                                                        sandbox=" ".join(sandbox or ()),
                                                        cell=lambda st, i: _maybe(cell(st._d, i)),
                                                        link=lambda p: log_link(p, base))


def log_link(path: object, run_dir: Path | None) -> str:
    """A link to a log: relative when it lies under the run directory, else file://."""
    p = Path(str(path))
    if run_dir is not None and p.is_absolute():
        try:
            rel = p.relative_to(run_dir)
        except ValueError:
            pass
        else:
            return rel.as_posix() or "."
    if not p.is_absolute():
        return p.as_posix()
    return p.as_uri()


class _Obj:
    """Attribute access over dicts for the template (missing keys are None)."""

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def __getattr__(self, k: str) -> Any:
        v = self._d.get(k)
        if isinstance(v, dict):
            return _Obj(v)
        if isinstance(v, list):
            return [_Obj(x) if isinstance(x, dict) else x for x in v]
        return v

    def __iter__(self) -> "Iterator[str]":
        return iter(self._d)

    def __bool__(self) -> bool:
        return bool(self._d)


def _maybe(d: dict[str, Any] | None) -> _Obj | None:
    return _Obj(d) if d is not None else None
