"""Workspace (series.toml + patches/) and cache ($SERIES_CACHE) resolution."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import Cache
from .errors import UserError

STACK_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEFAULT_LORE_URL = "https://lore.kernel.org"


def default_cache() -> Cache:
    """$SERIES_CACHE, else $XDG_CACHE_HOME/series, else ~/.cache/series.  A cache
    path that exists but is not a directory (or lies below a file) is refused
    here, naming the variable, before any command looks inside it."""
    cache = Cache.default()
    probe = cache.root      # it, or the nearest of its parents that exists, is a directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        var = "SERIES_CACHE" if os.environ.get("SERIES_CACHE") else "the cache directory"
        raise UserError(f"{var} {cache.root} is not a directory (a file is in its place): point SERIES_CACHE "
                        "to a directory, or remove that file")
    return cache


@dataclass
class Workspace:
    root: Path
    cache: Cache
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.cache, Cache):  # a bare cache root (older callers, tests)
            self.cache = Cache(Path(self.cache))

    @property
    def patches(self) -> Path:
        return self.root / "patches"

    def stack_dir(self, name: str) -> Path:
        check_stack_name(name)
        return self.patches / name

    @property
    def lore_url(self) -> str:
        return str(os.environ.get("SERIES_LORE_URL") or self.config.get("lore", {}).get("url") or DEFAULT_LORE_URL)

    @property
    def runs(self) -> Path:
        return self.cache.runs

    @property
    def locks(self) -> Path:
        return self.cache.locks


def check_stack_name(name: str) -> None:
    if not STACK_NAME_RE.match(name):
        raise UserError(f"invalid stack name {name!r}: use lower-case letters, digits, '.', '_' and '-'")


def find_workspace(explicit: str | None = None, *, create: bool = False) -> Workspace:
    """--workspace DIR, else $SERIES_WORKSPACE, else the nearest parent holding series.toml."""
    cand = explicit or os.environ.get("SERIES_WORKSPACE")
    root: Path | None = None
    if cand:
        root = Path(cand).expanduser().resolve()
        if not (root / "series.toml").is_file():
            if create:
                root.mkdir(parents=True, exist_ok=True)
                (root / "series.toml").write_text("[workspace]\n")
                (root / "patches").mkdir(exist_ok=True)
            else:
                raise UserError(f"{root} is not a series workspace (no series.toml)")
    else:
        here = Path.cwd().resolve()
        for d in (here, *here.parents):
            if (d / "series.toml").is_file():
                root = d
                break
        if root is None:
            raise UserError("not inside a series workspace (no series.toml here or above); use --workspace DIR")
    try:
        config = tomllib.loads((root / "series.toml").read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{root / 'series.toml'}: {e}") from None
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(f"{root / 'series.toml'}: cannot read it as UTF-8 text: {e}") from None
    for section, value in config.items():
        if section in ("workspace", "lore", "ci", "mail") and not isinstance(value, dict):
            raise UserError(f"{root / 'series.toml'}: [{section}] must be a table, not {value!r}")
    for section, keys in (("ci", ("stack", "tree", "onto")), ("lore", ("url", "mirror")), ("mail", ("from", "smtp", "domain", "signature"))):
        for key in keys:
            value = config.get(section, {}).get(key)
            if value is not None and not isinstance(value, str):
                raise UserError(f"{root / 'series.toml'}: [{section}] {key} must be a string, not {value!r}")
    return Workspace(root=root, cache=default_cache(), config=config)
