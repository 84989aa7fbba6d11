"""Kernel trees: an adopted checkout (`--path`) or a repository made from
Debian's linux-source-X.Y tarball (`--debian X.Y`).

The registry is `$SERIES_CACHE/trees.toml`: NAME -> {kind, path}.

Work never happens in a user's repository.  Every tree has a *work repository*
of ours, `$SERIES_CACHE/trees/<NAME>.git` (bare):
- for a Debian tree it *is* the tree (one root commit per release, tagged
  `debian/<VERSION.PATCHLEVEL.SUBLEVEL>`);
- for a `--path` tree it borrows the user's objects through
  `objects/info/alternates`, so our branches, worktrees and rerere cache live
  in our repository and the user's refs, config and worktree are never written.

Tarball import streams the archive (xz -dc | tarfile "r|") into `git fast-import`:
blobs plus one parentless commit, honouring exec bits and symlinks.  `.gitignore`
is not consulted at all, so Debian's `/*` ignore cannot drop files.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import tomli_w

from .cache import Cache
from .errors import GitError, InfraError, UserError
from .fsutil import atomic_write_text, exclusive_lock
from .git import Git, Oid, Repo, Worktree
from .workspace import Workspace

TREE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEBIAN_VERSION_RE = re.compile(r"^\d+\.\d+$")
DEBIAN_COMMITTER = "Debian linux-source <debian-kernel@lists.debian.org>"


@dataclass
class Tree:
    name: str
    kind: str            # "path" | "debian"
    path: Path           # the user's checkout (path) or our bare repository (debian)
    repo: Path | None = None  # our work repository (bare); == path for debian trees
    cache: Cache | None = None  # the cache whose registry names this tree

    @property
    def git(self) -> Git:
        """Read-side git: the user's repository or our Debian repository."""
        return Git(self.path)

    @property
    def work_repo(self) -> Path:
        return self.repo or self.path

    @property
    def work_git(self) -> Repo:
        """Our repository: branches, worktrees, commits and rerere live here."""
        return Repo(self.work_repo)

    def tags(self) -> list[str]:
        out = self.git.run("tag", "--list", "--sort=version:refname")
        return [t for t in out.splitlines() if t]

    def to_json(self) -> dict[str, object]:
        # A --path tree whose checkout was moved or deleted is still listed, and said so.
        present = self.path.is_dir()
        d: dict[str, object] = {"name": self.name, "kind": self.kind, "path": str(self.path),
                                "work_repo": str(self.work_repo), "tags": self.tags() if present else []}
        if not present:
            d["missing"] = f"{self.path} no longer exists"
        return d


# -- registry ---------------------------------------------------------------
def registry_path(ws: Workspace) -> Path:
    return ws.cache.trees_registry


def _load_registry(ws: Workspace) -> dict[str, dict[str, str]]:
    p = registry_path(ws)
    if not p.is_file():
        return {}
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{p}: malformed TOML: {e}") from None
    except (UnicodeDecodeError, OSError) as e:
        raise UserError(f"{p}: cannot read the tree registry: {e}") from None
    trees = data.get("trees", {})
    if not isinstance(trees, dict):
        raise UserError(f"{p}: [trees] must be a table")
    return {k: dict(v) for k, v in trees.items() if isinstance(v, dict) and isinstance(v.get("path"), str)}


def _save_registry(ws: Workspace, reg: dict[str, dict[str, str]]) -> None:
    atomic_write_text(registry_path(ws), tomli_w.dumps({"trees": reg}))


def _register(ws: Workspace, tree: Tree) -> None:
    with exclusive_lock(ws.cache.lock("trees-registry"), "the tree registry"):
        reg = _load_registry(ws)
        entry = {"kind": tree.kind, "path": str(tree.path)}
        if tree.repo and tree.repo != tree.path:
            entry["repo"] = str(tree.repo)
        reg[tree.name] = entry
        _save_registry(ws, reg)


def _tree_from_entry(name: str, e: dict[str, str], cache: Cache) -> Tree:
    repo = Path(e["repo"]) if e.get("repo") else None
    return Tree(name=name, kind=e.get("kind", "path"), path=Path(e["path"]), repo=repo, cache=cache)


def list_trees(ws: Workspace) -> list[Tree]:
    return [_tree_from_entry(n, e, ws.cache) for n, e in sorted(_load_registry(ws).items())]


def load_tree(ws: Workspace, name: str | None = None) -> Tree:
    """The named tree; None -> [ci] tree from series.toml, else the only registered tree."""
    if name is not None and not name.strip():
        raise UserError("--tree needs a name (it is empty)")
    reg = _load_registry(ws)
    if name is None:
        default = ws.config.get("ci", {}).get("tree")
        if default and default not in reg:
            known = ", ".join(sorted(reg)) or "none"
            raise UserError(f"[ci] tree = {default!r} in series.toml is not a registered tree (registered: {known}); "
                            f"run series tree add {default} ..., or name another in series.toml")
        if default:
            name = default
        elif len(reg) == 1:
            name = next(iter(reg))
        elif not reg:
            raise UserError("no kernel tree registered; run series tree add NAME --debian 6.12 (or --path DIR)")
        else:
            raise UserError(f"several kernel trees are registered ({', '.join(sorted(reg))}); choose one with --tree NAME")
    if name not in reg:
        known = ", ".join(sorted(reg)) or "none"
        raise UserError(f"unknown kernel tree {name!r} (registered: {known}); run series tree add {name} ...")
    tree = _tree_from_entry(name, reg[name], ws.cache)
    if not tree.path.exists():
        raise UserError(f"kernel tree {name!r} points at {tree.path}, which no longer exists")
    return tree


def check_tree_name(name: str) -> None:
    if not TREE_NAME_RE.match(name):
        raise UserError(f"invalid tree name {name!r}: use letters, digits, '.', '_' and '-'")


# -- adopting a checkout ----------------------------------------------------
def add_path(ws: Workspace, name: str, path: Path) -> Tree:
    """Adopt an existing checkout, read-only.  Our work repository borrows its objects."""
    check_tree_name(name)
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise UserError(f"{path}: no such directory")
    g = Git(path)
    if not g.is_repo():
        raise UserError(f"{path} is not a git repository")
    reg = _load_registry(ws)
    if name in reg and reg[name].get("kind") != "path":
        raise UserError(f"tree {name!r} already exists as a {reg[name].get('kind')} tree")
    if name in reg and Path(reg[name].get("path", "")).resolve() not in (path, path / ".git"):
        raise UserError(f"tree {name!r} already points at {reg[name].get('path')}; choose another name")
    common = Path(g.run("rev-parse", "--path-format=absolute", "--git-common-dir"))
    objects = common / "objects"
    repo = ws.cache.tree_repo(name)
    _init_bare(repo)
    alt = repo / "objects" / "info" / "alternates"
    alt.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(alt, f"{objects}\n")
    top = Path(g.run("rev-parse", "--show-toplevel")) if g.run("rev-parse", "--is-bare-repository") == "false" else common
    tree = Tree(name=name, kind="path", path=top, repo=repo, cache=ws.cache)
    _register(ws, tree)
    return tree


def _init_bare(repo: Path) -> None:
    if (repo / "HEAD").is_file():
        return
    repo.parent.mkdir(parents=True, exist_ok=True)
    Git(repo.parent).run("init", "--quiet", "--bare", str(repo))
    g = Git(repo)
    for k, v in (("rerere.enabled", "true"), ("rerere.autoupdate", "true"), ("gc.auto", "0"),
                 ("core.logAllRefUpdates", "true"), ("user.name", "series"), ("user.email", "series@localhost")):
        g.run("config", k, v)


# -- Debian tarballs ----------------------------------------------------------
def debian_tarball(version: str) -> Path:
    return Path(os.environ.get("SERIES_DEBIAN_SRC", "/usr/src")) / f"linux-source-{version}.tar.xz"


def debian_tags(tree: Tree, version: str) -> list[str]:
    out = tree.git.run("tag", "--list", f"debian/{version}.*", "--sort=version:refname")
    return [t for t in out.splitlines() if re.fullmatch(rf"debian/{re.escape(version)}\.\d+", t)]


def add_debian(ws: Workspace, name: str, version: str, *, log: Callable[[str], None] | None = None) -> Tree:
    """Import /usr/src/linux-source-<version>.tar.xz as a root commit tagged
    debian/<VERSION.PATCHLEVEL.SUBLEVEL>, in $SERIES_CACHE/trees/<name>.git."""
    check_tree_name(name)
    if not DEBIAN_VERSION_RE.match(version):
        raise UserError(f"not a Debian kernel series: {version!r} (expected e.g. 6.12)")
    tarball = debian_tarball(version)
    if not tarball.is_file():
        raise UserError(f"{tarball} is missing: apt-get install linux-source-{version}")
    reg = _load_registry(ws)
    if name in reg and reg[name].get("kind") != "debian":
        raise UserError(f"tree {name!r} already exists as a {reg[name].get('kind')} tree")
    repo = ws.cache.tree_repo(name)
    with exclusive_lock(ws.cache.lock(f"tree-{name}"), f"kernel tree {name}"):
        _init_bare(repo)
        tree = Tree(name=name, kind="debian", path=repo, repo=repo, cache=ws.cache)
        if not debian_tags(tree, version):
            start = time.monotonic()
            tag = import_tarball(repo, tarball, version)
            if log:
                log(f"imported {tarball.name} as {tag} in {time.monotonic() - start:.1f}s")
        elif log:
            log(f"{name} already has {debian_tags(tree, version)[-1]}")
        _register(ws, tree)
    return tree


def ensure_debian_tree(ws: Workspace, name: str, version: str) -> Tree:
    """Idempotent: register/import only what is absent."""
    reg = _load_registry(ws)
    if name in reg:
        tree = _tree_from_entry(name, reg[name], ws.cache)
        if tree.kind == "debian" and (tree.path / "HEAD").is_file() and debian_tags(tree, version):
            return tree
    return add_debian(ws, name, version)


def _makefile_version(data: bytes) -> str:
    vals: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines()[:20]:
        m = re.match(r"^(VERSION|PATCHLEVEL|SUBLEVEL)\s*=\s*(\d*)\s*$", line)
        if m:
            vals[m.group(1)] = m.group(2) or "0"
    if "VERSION" not in vals or "PATCHLEVEL" not in vals:
        raise InfraError("the tarball's Makefile has no VERSION/PATCHLEVEL")
    return f"{vals['VERSION']}.{vals['PATCHLEVEL']}.{vals.get('SUBLEVEL', '0')}"


def _open_tar_stream(tarball: Path) -> tuple[IO[bytes], subprocess.Popen[bytes] | None]:
    xz = shutil.which("xz")
    if xz:
        proc = subprocess.Popen([xz, "-dc", str(tarball)], stdout=subprocess.PIPE, bufsize=1 << 20)
        assert proc.stdout is not None
        return proc.stdout, proc
    import lzma
    return lzma.open(tarball, "rb"), None


def import_tarball(repo: Path, tarball: Path, series_version: str) -> str:
    """Stream `tarball` into `git fast-import` in `repo`; return the tag made.

    fast-import writes the commit on a scratch ref of ours; the tag is then
    created and the scratch ref deleted, both compare-and-swap."""
    r = Repo(repo)
    stream, xzproc = _open_tar_stream(tarball)
    tmp_ref = f"refs/series-import/{series_version}-{os.getpid()}"
    entries: list[tuple[str, str, int]] = []  # (mode, path, mark)
    marks_by_path: dict[str, int] = {}
    makefile: bytes | None = None
    mtime = 0
    mark = 0
    try:
        with r.fast_import("--depth=0", config={"pack.compression": "1", "core.compression": "1"}) as out:
            with tarfile.open(fileobj=stream, mode="r|") as tf:
                for m in tf:
                    parts = m.name.split("/", 1)
                    if len(parts) < 2 or not parts[1]:
                        mtime = max(mtime, int(m.mtime))
                        continue
                    path = parts[1].rstrip("/")
                    if m.isdir():
                        continue
                    if m.issym():
                        data, mode = m.linkname.encode(), "120000"
                    elif m.islnk():
                        target = m.linkname.split("/", 1)[1] if "/" in m.linkname else m.linkname
                        if target in marks_by_path:
                            mode = next(md for md, p, _ in entries if p == target)
                            entries.append((mode, path, marks_by_path[target]))
                            marks_by_path[path] = marks_by_path[target]
                        continue
                    elif m.isfile():
                        f = tf.extractfile(m)
                        data = f.read() if f else b""
                        mode = "100755" if m.mode & 0o111 else "100644"
                        if path == "Makefile":
                            makefile = data
                    else:
                        continue
                    mark += 1
                    out.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)))
                    out.write(data)
                    out.write(b"\n")
                    entries.append((mode, path, mark))
                    marks_by_path[path] = mark
            if makefile is None:
                raise InfraError(f"{tarball}: no top-level Makefile; not a kernel source tarball")
            full = _makefile_version(makefile)
            if not full.startswith(series_version + ".") and full != series_version:
                raise InfraError(f"{tarball}: Makefile says {full}, expected {series_version}.*")
            tag = f"debian/{full}"
            msg = (f"Debian linux-source-{series_version} ({full})\n\nImported by series from {tarball.name}; "
                   f"the tarball has no history.\n").encode()
            who = f"{DEBIAN_COMMITTER} {mtime or 0} +0000".encode()
            out.write(b"commit %s\nauthor %s\ncommitter %s\ndata %d\n%s\n" % (tmp_ref.encode(), who, who, len(msg), msg))
            for mode, path, mk in entries:
                out.write(b'M %s :%d "%s"\n' % (mode.encode(), mk, _quote(path).encode()))
            out.write(b"\ndone\n")
        sha = r.ref_value(tmp_ref)
        if sha is None:
            raise InfraError(f"git fast-import of {tarball.name} made no commit")
        r.update_ref(f"refs/tags/{tag}", sha, None, f"series: import {tarball.name}")
        r.delete_ref(tmp_ref, sha, f"series: import {tarball.name} done")
        return tag
    finally:
        if xzproc is not None:
            with contextlib.suppress(Exception):
                xzproc.kill()
                xzproc.wait()


def _quote(path: str) -> str:
    return path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# -- refs ----------------------------------------------------------------------
def resolve_ref(tree: Tree, ref: str) -> Oid:
    """A full ref or sha, or `debian/X.Y` meaning the newest tag debian/X.Y.* -> sha."""
    ref = ref.strip()
    if not ref or ref.startswith("-"):
        raise UserError(f"invalid ref {ref!r}")
    m = re.fullmatch(r"debian/(\d+\.\d+)", ref)
    if m:
        tags = debian_tags(tree, m.group(1))
        if tags:
            ref = tags[-1]
    for g in (tree.git, tree.work_git):
        sha = g.try_rev_parse(ref)
        if sha:
            return sha
    if MAINLINE_REF_RE.fullmatch(ref):
        raise UserError(f"no {ref} in tree {tree.name}; it has {what_the_tree_has(tree, ref)}")
    raise UserError(f"unknown ref {ref!r} in kernel tree {tree.name}")


MAINLINE_REF_RE = re.compile(r"v(\d+)\.(\d+)(?:\.(\d+))?(?:-rc\d+)?")
_VERSION_IN_TAG = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def what_the_tree_has(tree: Tree, wanted: str, limit: int = 5) -> str:
    """The tags of `tree` a user who typed a mainline-style `wanted` (v6.12) may
    mean: those of the same X.Y, else the nearest releases; each with the Linux
    version it carries ("debian/6.12.117 (Linux 6.12.117)")."""
    m = MAINLINE_REF_RE.fullmatch(wanted)
    want = (int(m.group(1)), int(m.group(2))) if m else None
    versioned: list[tuple[tuple[int, int, int], str]] = []
    for t in tree.tags():
        v = _VERSION_IN_TAG.search(t)
        if v:
            versioned.append(((int(v.group(1)), int(v.group(2)), int(v.group(3) or 0)), t))
    if not versioned:
        return "no release tags" if not tree.tags() else ", ".join(tree.tags()[:limit])
    same = [(v, t) for v, t in versioned if want and v[:2] == want]
    pick = same or sorted(versioned, key=lambda vt: (abs((vt[0][0] * 1000 + vt[0][1]) - (want[0] * 1000 + want[1]))
                                                     if want else 0, vt[0]))[:limit]

    def label(v: tuple[int, int, int], t: str) -> str:
        text = f"{v[0]}.{v[1]}" + (f".{v[2]}" if v[2] else "")
        return t if t.lstrip("v") == text else f"{t} (Linux {text})"
    return ", ".join(label(v, t) for v, t in sorted(pick)[-limit:])


def describe_ref(tree: Tree, sha: str) -> str:
    """A tag pointing at sha, or the short sha."""
    out = tree.git.run_proc("tag", "--points-at", sha).stdout.decode().split()
    return out[-1] if out else sha[:12]


# -- worktrees -----------------------------------------------------------------
@contextlib.contextmanager
def worktree(tree: Tree, path: Path, commit: str, *, sparse: list[str] | None = None) -> Iterator[Path]:
    """A detached worktree of our work repository at `commit`, removed afterwards
    (see git.Worktree)."""
    with Worktree.add(tree.work_git, path, commit, sparse=sparse) as wt:
        yield wt.path


# -- materialising parts of a commit -------------------------------------------
def materialize(tree: Tree, ref: str, paths: list[str], *, cache: Cache | None = None) -> Path:
    """Extract `paths` of the commit into $SERIES_CACHE/materialized/<sha>/ once
    (each path extracted to a temp dir, then renamed into place).  `cache`
    defaults to the cache the tree was loaded from."""
    cache = cache or tree.cache
    if cache is None:
        raise InfraError(f"kernel tree {tree.name}: no cache to materialize {', '.join(paths)} in")
    sha = resolve_ref(tree, ref)
    base = cache.materialized_root
    dest = cache.materialized(sha)
    dest.mkdir(parents=True, exist_ok=True)
    for p in paths:
        p = p.strip("/")
        if (dest / p).exists():
            continue
        tmp = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=base))
        try:
            arch = tree.work_git.run_proc("archive", "--format=tar", sha, "--", p)
            if arch.returncode != 0:
                raise UserError(f"{p} is not in {sha[:12]} of kernel tree {tree.name}")
            subprocess.run(["tar", "-x", "-C", str(tmp)], input=arch.stdout, check=True)
            target = dest / p
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError, OSError):
                os.rename(tmp / p, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def script_path(tree: Tree, ref: str, script: str = "scripts/checkpatch.pl") -> Path:
    """A runnable copy of a tree script (with scripts/ and the files it reads)."""
    root = materialize(tree, ref, ["scripts", "MAINTAINERS"])
    p = root / script
    if not p.is_file():
        raise UserError(f"{script} is not in kernel tree {tree.name} at {ref}")
    return p


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]
