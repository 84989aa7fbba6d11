"""The mutation run: apply and build the revision (the pipeline's apply and
build stages, warm build directory), find the functions it touches, make the
mutants, and for each one in a stable seeded order:

  1. write the mutant into the build directory's worktree (series owns it; the
     user's tree is never touched), the original kept beside it
     (`mutating.json` in the build directory: an interrupted run is undone by
     the next one, before anything else);
  2. `make <file>.o`: a mutant that does not compile is `skipped` (build), one
     whose object disassembles (`objdump -d`) like the unmutated one is
     `skipped` (unchanged object: nothing a test could see);
  3. `make bzImage` (incremental), restore the source (always: finally);
  4. boot it once per selected suite (`boot_and_test`) and judge each suite
     against the unmutated kernel's boot (judge.py).

Every verdict is written at once to the revision's state in the cache
(Cache.mutants_state); a re-run with the same revision, base, config, suites
and seed resumes where the last one stopped.  The run directory gets a copy
(mutants.json) and mutants.html, the survivors' diffs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InfraError, StageFailed, UserError
from ..fsutil import atomic_write_json, atomic_write_text
from ..patch import FileChange, Patch
from .cfuncs import by_name, touched_functions
from .judge import judge
from .operators import OPERATORS, Mutant, mutants_of, order

if TYPE_CHECKING:
    from ..cache import Cache
    from ..git import Git
    from ..stages.build import BuildDir
    from ..suites import BuiltSuite

SCHEMA = 1
MIN_BOOT_LIMIT_S = 30.0     # a mutant's boot limit: 4x the baseline's boot, at least this
Say = Callable[[str], None]


@dataclass
class Target:
    file: str
    functions: list[str]


def revision_changes(patch_files: Sequence[Path]) -> dict[str, list[FileChange]]:
    """The C files (path -> their file changes) of the revision's patches."""
    out: dict[str, list[FileChange]] = {}
    for pf in patch_files:
        for fc in Patch.load(pf).text_files:
            if fc.target_path and fc.target_path.endswith(".c") and fc.hunks:
                out.setdefault(fc.target_path, []).append(fc)
    return out


def find_targets(src: Path, changes: dict[str, list[FileChange]], only: Sequence[str] | None) -> list[Target]:
    """The functions of each touched C file (as the file is in `src`) that the
    hunks touch.  With `only`, the named functions instead: `name` is looked
    for in the touched files, `path:name` in that file of the tree (for a
    revision whose patch that touched it is missing)."""
    want: dict[str, list[str]] = {}
    if only is not None:
        for spec in only:
            if ":" in spec:
                path, name = spec.rsplit(":", 1)
                if not path.endswith(".c") or not (src / path).is_file():
                    raise UserError(f"--functions {spec}: no C file {path} in the tree")
                want.setdefault(path, []).append(name)
    targets: list[Target] = []
    found: set[str] = set()
    for path in sorted(set(changes) | set(want)):
        f = src / path
        if not f.is_file():
            continue
        text = f.read_text(errors="surrogateescape")
        if only is None:
            names = touched_functions(text, changes[path])
        else:
            asked = want.get(path, []) + ([n for n in only if ":" not in n] if path in changes else [])
            defined = {fn.name for fn in by_name(text, asked)}
            names = [n for n in dict.fromkeys(asked) if n in defined]
            found.update(f"{path}:{n}" for n in names)
        found.update(names)
        if names:
            targets.append(Target(path, names))
    if only is not None:
        missing = [n for n in only if n not in found]
        if missing:
            raise UserError(f"--functions: {', '.join(missing)} not defined in the files the revision touches "
                            f"({', '.join(sorted(changes)) or 'none'}); name another file's as FILE:FUNCTION")
    return targets


def generate(src: Path, targets: Sequence[Target], operators: Sequence[str] = OPERATORS) -> list[Mutant]:
    out: list[Mutant] = []
    for t in targets:
        text = (src / t.file).read_text(errors="surrogateescape")
        out += mutants_of(t.file, text, by_name(text, t.functions), operators)
    return out


@dataclass
class Selection:
    targets: list[Target]          # the functions mutated, per file the kernel build compiles
    outside: list[str]             # touched files it does not compile (not mutated)
    generated: list[Mutant]        # every mutant, in the seeded order
    chosen: list[Mutant]           # the first --max of them (of the --only ids, when given)


def select(src: Path, changes: dict[str, list[FileChange]], functions: Sequence[str] | None,
           operators: Sequence[str], seed: int, max_n: int | None,
           compiled: Callable[[str], bool] | None, only: Sequence[str] | None = None) -> Selection:
    """The mutants a run tries, in its order: one code path for `series mutate`,
    its `--list` and bench/mutants' evaluation set.  `compiled(file)` says
    whether the kernel build compiles a file (None: not known, all kept).
    `only`: just the mutants with these ids (in the seeded order); an id that
    is not among the generated mutants is a UserError."""
    found = find_targets(src, changes, functions)
    targets = [t for t in found if compiled is None or compiled(t.file)]
    generated = order(generate(src, targets, operators), seed)
    pool = generated
    if only is not None:
        missing = sorted(set(only) - {m.id for m in generated})
        if missing:
            raise UserError(f"--only: no mutant {', '.join(missing)} among the {len(generated)} generated "
                            "(same --functions and --operators as the run that listed it?)")
        pool = [m for m in generated if m.id in set(only)]
    return Selection(targets, [t.file for t in found if t not in targets], generated,
                     pool[:max_n] if max_n is not None else pool)


def sources_at(git: "Git", commit: str, paths: Iterable[str], dest: Path) -> None:
    """Write each path's content at `commit` (git show) under dest, byte for byte
    (a path absent there is left out): generation without a worktree."""
    for p in sorted(set(paths)):
        proc = git.run_proc("show", f"{commit}:{p}")
        if proc.returncode == 0:
            (dest / p).parent.mkdir(parents=True, exist_ok=True)
            (dest / p).write_bytes(proc.stdout)


# -- the source is always restored ---------------------------------------------------
def _marker(build_root: Path) -> Path:
    return build_root / "mutating.json"


def _saved(build_root: Path, k: int) -> Path:
    return build_root / f"mutating.orig.{k}"


def undo_stale(build_root: Path, src: Path) -> str | None:
    """Put back the files an interrupted run left mutated; their names, or None."""
    marker = _marker(build_root)
    if not marker.is_file():
        return None
    d = json.loads(marker.read_text())
    # {"files": [...]} with mutating.orig.<k>; a marker of an older series: {"file": F}, mutating.orig
    pairs = ([(str(f), _saved(build_root, k)) for k, f in enumerate(d["files"])] if "files" in d
             else [(str(d["file"]), build_root / "mutating.orig")])
    for f, saved in pairs:
        if saved.is_file():
            shutil.copyfile(saved, src / f)
            saved.unlink()
    marker.unlink()
    return ", ".join(f for f, _ in pairs)


@contextlib.contextmanager
def mutated_files(build_root: Path, src: Path, mid: str, texts: dict[str, str],
                  originals: dict[str, str] | None = None) -> Iterator[None]:
    """`texts` (file -> mutated text) written into src for the duration of the
    block, the originals back afterwards, whatever happens (Ctrl-C included); a
    marker and a copy of each original let the next run undo a mutation a
    killed process left."""
    files = sorted(texts)
    orig = {f: (originals or {}).get(f) or (src / f).read_text(errors="surrogateescape") for f in files}
    for k, f in enumerate(files):
        _saved(build_root, k).write_text(orig[f], errors="surrogateescape")
    atomic_write_json(_marker(build_root), {"files": files, "mutant": mid})
    try:
        for f in files:
            (src / f).write_text(texts[f], errors="surrogateescape")
        yield
    finally:
        for k, f in enumerate(files):
            (src / f).write_text(orig[f], errors="surrogateescape")
            _saved(build_root, k).unlink(missing_ok=True)
        _marker(build_root).unlink(missing_ok=True)


@contextlib.contextmanager
def mutated(build_root: Path, src: Path, m: Mutant, original: str) -> Iterator[None]:
    """One generated mutant written into src for the block (mutated_files)."""
    with mutated_files(build_root, src, m.id, {m.file: m.apply(original)}, {m.file: original}):
        yield


def objdump(obj: Path) -> str | None:
    if not obj.is_file():
        return None
    p = subprocess.run(["objdump", "-d", str(obj)], capture_output=True, text=True, errors="replace")
    if p.returncode != 0:
        raise InfraError(f"objdump -d {obj} failed: {p.stderr.strip()[:200]}")
    return p.stdout


# -- mutants.json -----------------------------------------------------------------------
@dataclass
class State:
    path: Path
    key: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, key: dict[str, Any]) -> "State":
        """The recorded verdicts, when they were made with the same key (base,
        config, suites, seed); else a fresh state."""
        st = cls(path, key)
        if path.is_file():
            try:
                d = json.loads(path.read_text())
            except ValueError:
                return st
            if d.get("schema") == SCHEMA and d.get("key") == key:
                st.records = {r["id"]: r for r in d.get("mutants", [])}
                st.baseline = d.get("baseline", {})
        return st

    def save(self, extra: dict[str, Any]) -> None:
        atomic_write_json(self.path, {"schema": SCHEMA, "key": self.key, "baseline": self.baseline,
                                      **extra, "mutants": list(self.records.values())})


def summarise(records: Sequence[dict[str, Any]], suites: Sequence[str]) -> dict[str, Any]:
    """Counts, the kill rate of each suite and of all together (over the mutants
    that ran), survivors grouped by function and by operator."""
    ran = [r for r in records if r["status"] in ("killed", "survived")]
    equivalent = [r["id"] for r in records if r["status"] == "equivalent"]
    skipped: dict[str, int] = {}
    for r in records:
        if r["status"] == "skipped":
            skipped[r["reason_kind"]] = skipped.get(r["reason_kind"], 0) + 1
    per_suite = {s: sum(bool(r["suites"].get(s, {}).get("killed")) for r in ran) for s in suites}
    survivors = [r for r in records if r["status"] == "survived"]
    by_fn: dict[str, list[str]] = {}
    by_op: dict[str, list[str]] = {}
    for r in survivors:
        by_fn.setdefault(f"{r['file']}:{r['function']}", []).append(r["id"])
        by_op.setdefault(r["operator"], []).append(r["id"])
    return {"total": len(records), "ran": len(ran), "killed": sum(r["status"] == "killed" for r in ran),
            "survived": len(survivors), "skipped": skipped, "equivalent": equivalent, "killed_by_suite": per_suite,
            "survivors_by_function": by_fn, "survivors_by_operator": by_op}


def _pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:.0f}%" if n else "-"


def text_report(summary: dict[str, Any], records: Sequence[dict[str, Any]], suites: Sequence[str]) -> str:
    n = summary["ran"]
    lines = [f"mutants: {summary['total']} considered, {n} ran, {summary['killed']} killed, "
             f"{summary['survived']} survived, {len(summary['equivalent'])} equivalent (listed); skipped: "
             + (", ".join(f"{v} {k}" for k, v in sorted(summary["skipped"].items())) or "none")]
    rates = [f"{s} {summary['killed_by_suite'][s]}/{n} ({_pct(summary['killed_by_suite'][s], n)})" for s in suites]
    lines.append("kill rate: " + "   ".join(rates + [f"all {summary['killed']}/{n} ({_pct(summary['killed'], n)})"]))
    for r in records:
        why = "; ".join(f"{s}: {'KILLED ' + ', '.join(v['why'][:2]) if v['killed'] else 'survived'}"
                        for s, v in r.get("suites", {}).items())
        lines.append(f"  {r['id']} {r['status']:8} {r['function']:28} {r['operator']:11} "
                     f"{' '.join(str(r.get('reason', '')).split())[:120] or why}")
    if summary["survivors_by_function"]:
        lines.append("survivors by function:")
        lines += [f"  {fn}: {len(ids)}" for fn, ids in sorted(summary["survivors_by_function"].items())]
        lines.append("survivors by operator:")
        lines += [f"  {op}: {len(ids)}" for op, ids in sorted(summary["survivors_by_operator"].items())]
    return "\n".join(lines)


def html_report(summary: dict[str, Any], records: Sequence[dict[str, Any]], suites: Sequence[str], title: str) -> str:
    """mutants.html: the counts, and each survivor's diff grouped by function."""
    import html
    e = html.escape
    n = summary["ran"]
    rows = "".join(f"<tr><td>{e(s)}</td><td>{summary['killed_by_suite'][s]}/{n}</td>"
                   f"<td>{_pct(summary['killed_by_suite'][s], n)}</td></tr>" for s in suites)
    parts = [f"<!doctype html><meta charset=utf-8><title>{e(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:.5em}"
             "td,th{padding:2px 8px;text-align:left}</style>",
             f"<h1>{e(title)}</h1>",
             f"<p>{summary['total']} mutants considered, {n} ran, {summary['killed']} killed, "
             f"{summary['survived']} survived; skipped: "
             + e(", ".join(f"{v} {k}" for k, v in sorted(summary["skipped"].items())) or "none") + "</p>",
             f"<table><tr><th>suite</th><th>killed</th><th>rate</th></tr>{rows}"
             f"<tr><td>all</td><td>{summary['killed']}/{n}</td><td>{_pct(summary['killed'], n)}</td></tr></table>",
             "<h2>Survivors</h2>"]
    by_id = {r["id"]: r for r in records}
    if not summary["survivors_by_function"]:
        parts.append("<p>none</p>")
    for fn, ids in sorted(summary["survivors_by_function"].items()):
        parts.append(f"<h3>{e(fn)} ({len(ids)})</h3>")
        for i in ids:
            r = by_id[i]
            parts.append(f"<p id=m-{e(i)}><code>{e(i)}</code> {e(r['operator'])}</p><pre>{e(r['diff'])}</pre>")
    return "\n".join(parts) + "\n"


@dataclass
class Options:
    functions: list[str] | None = None
    max: int | None = None
    only: list[str] | None = None          # --only: these mutant ids
    seed: int = 0
    jobs: int | None = None
    test_timeout_s: int = 30
    boot_timeout_s: float = 420.0
    accel: str | None = None
    operators: tuple[str, ...] = OPERATORS
    equivalent: dict[str, str] = field(default_factory=dict)     # mutant id -> why no test can kill it


def load_equivalent(path: Path) -> dict[str, str]:
    """`[[equivalent]]` entries (id, reason; file, function, what for the reader)
    of a file like bench/mutants-equivalent.toml: mutant id -> reason."""
    import tomllib
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"--equivalent {path}: {e}") from None
    out: dict[str, str] = {}
    for k, ent in enumerate(data.get("equivalent", []), 1):
        if not isinstance(ent, dict) or not isinstance(ent.get("id"), str) or not str(ent.get("reason", "")).strip():
            raise UserError(f"--equivalent {path}: entry {k} needs an id and a reason")
        out[ent["id"]] = str(ent["reason"])
    return out


# -- one mutant tried against the unmutated kernel (series mutate and bench/mutants) ----
def object_of(path: str) -> str:
    """The object file make builds from a C file (mm/x.c -> mm/x.o)."""
    return path[:-2] + ".o"


@dataclass
class Bed:
    """The unmutated kernel mutants are tried against: the build directory (its
    worktree is written, its obj/ rebuilt; the caller holds its lock), the
    suites as built, per suite what its boot of the unmutated kernel passed
    (`baseline[suite]`: pass, fail, boot_s), and the unmutated objects'
    disassembly (`base_objects`)."""
    bd: "BuildDir"
    built: dict[str, "BuiltSuite"]
    cache: "Cache"
    opts: Options
    say: Say
    baseline: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_objs: dict[str, str | None] = field(default_factory=dict)
    accel: str | None = None

    @property
    def suites(self) -> list[str]:
        return list(self.built)


def boot_baseline(bed: Bed, bz: Path, suite: str, work_dir: Path) -> dict[str, Any]:
    """Boot the unmutated kernel with one suite: what passes and fails, and how
    long the boot took.  A kernel problem there makes every verdict meaningless."""
    from ..stages.boot import boot_and_test
    bed.say(f"baseline: booting the unmutated kernel with {suite}")
    br = boot_and_test(bz, [bed.built[suite]], work_dir=_fresh(work_dir), cache=bed.cache, accel=bed.accel,
                       test_timeout_s=bed.opts.test_timeout_s, boot_timeout_s=bed.opts.boot_timeout_s)
    bed.accel = br.accel
    if br.problems:
        raise StageFailed(f"the unmutated kernel has a problem under {suite}: "
                          f"{', '.join(p.kind for p in br.problems)} ({br.log})")
    return {"pass": sorted(t.name for t in br.tests if t.status == "pass"),
            "fail": sorted(t.name for t in br.tests if t.status == "fail"),
            "boot_s": round(br.stage.duration_s, 1)}


def base_objects(bed: Bed, files: Iterable[str], log_dir: Path) -> None:
    """Compile the unmutated objects of `files` now (an interrupted run may have
    left a mutant's in obj/) and keep their disassembly; a file whose object
    the kernel build does not make is recorded as None (its mutants: `not built`)."""
    from ..stages.build import build_kernel
    bd = bed.bd
    for f in sorted(set(files) - set(bed.base_objs)):
        if not (bd.obj / object_of(f)).is_file():
            bed.base_objs[f] = None
            continue
        step = build_kernel(bd.src, bd.obj, log=log_dir / ("object-" + f.replace("/", "-") + ".log"),
                            jobs=bed.opts.jobs, target=object_of(f), tc=bd.toolchain)
        if not step.ok:
            raise StageFailed(f"the unmutated {f} does not compile: {'; '.join(step.error_lines[:2])}")
        bed.base_objs[f] = objdump(bd.obj / object_of(f))


def try_mutant(bed: Bed, mid: str, texts: dict[str, str], logs: Path) -> dict[str, Any]:
    """One mutant (`texts`: file -> mutated text) written into the worktree;
    `make FILE.o` for each file: not compiling, or the same `objdump -d` as
    unmutated, is a skip; else `make bzImage`, the source restored at once, and
    one boot per suite judged against that suite's baseline.  Returns the
    verdict: status (killed|survived|skipped), reason_kind and reason of a
    skip, build_s, and per suite the judge's verdict and the boot's log."""
    from ..stages.boot import boot_and_test
    from ..stages.build import build_kernel, bzimage_path
    bd, opts = bed.bd, bed.opts
    files = sorted(texts)
    missing = [f for f in files if bed.base_objs.get(f) is None]
    if missing:
        return {"status": "skipped", "reason_kind": "not built",
                "reason": ", ".join(object_of(f) for f in missing) + " not in this config"}
    logs.mkdir(parents=True, exist_ok=True)
    rec: dict[str, Any] = {}
    t0 = time.monotonic()
    with mutated_files(bd.root, bd.src, mid, texts):
        for f in files:
            name = "object.log" if len(files) == 1 else "object-" + f.replace("/", "-") + ".log"
            step = build_kernel(bd.src, bd.obj, log=logs / name, jobs=opts.jobs, target=object_of(f),
                                tc=bd.toolchain)
            if not step.ok:
                rec.update(status="skipped", reason_kind="does not compile", reason="; ".join(step.error_lines[:2]))
                break
        if not rec and all(objdump(bd.obj / object_of(f)) == bed.base_objs[f] for f in files):
            rec.update(status="skipped", reason_kind="object unchanged", reason="objdump -d equal")
        elif not rec:
            step = build_kernel(bd.src, bd.obj, log=logs / "build.log", jobs=opts.jobs, tc=bd.toolchain)
            if not step.ok:
                rec.update(status="skipped", reason_kind="does not build", reason="; ".join(step.error_lines[:2]))
            else:
                shutil.copy2(bzimage_path(bd.obj), logs / "bzImage")
    rec["build_s"] = round(time.monotonic() - t0, 1)
    if "status" in rec:
        bed.say(f"    skipped: {rec['reason_kind']}")
        return rec
    rec["suites"] = {}
    for s in bed.suites:
        # a mutant that hangs a test costs its whole boot: bound the boot by the
        # baseline's (x4, at least 30 s), within --boot-timeout; the guest timing out is a kill.
        # (x6 and 60 s cost 11 of the 33 minutes of a --max 60 run of uffd-move v6, in 11 boots.)
        limit = min(opts.boot_timeout_s, max(MIN_BOOT_LIMIT_S, 4 * float(bed.baseline[s]["boot_s"])))
        br = boot_and_test(logs / "bzImage", [bed.built[s]], work_dir=_fresh(logs / s), cache=bed.cache,
                           accel=bed.accel, test_timeout_s=opts.test_timeout_s, boot_timeout_s=limit)
        bed.accel = br.accel
        v = judge(br, s, bed.baseline[s]["pass"])
        rec["suites"][s] = {**v.to_json(), "log": str(br.log)}
        bed.say(f"    {s}: {v.text()}")
    killed = [s for s, v in rec["suites"].items() if v["killed"]]
    rec["status"] = "killed" if killed else "survived"
    rec["killed_by"] = killed
    (logs / "bzImage").unlink(missing_ok=True)
    return rec


def mark_equivalent(records: Iterable[dict[str, Any]], equivalent: dict[str, str]) -> None:
    """The equivalence list is read each run: a listed survivor is `equivalent`
    (named with the reason, not counted), an unlisted one `survived`."""
    for r in records:
        if r["status"] in ("survived", "equivalent"):
            r["status"] = "equivalent" if r["id"] in equivalent else "survived"
            r["reason"] = equivalent.get(r["id"], "")


def run_mutants(run: Any, opts: Options) -> dict[str, Any]:
    """`run` is a pipeline Run whose apply and build stages passed (the build
    directory is locked by it).  Returns the mutants.json content."""
    from ..stages.build import build_kernel, build_suites
    bd, sb, plan = run.state.build_dir, run.state.build, run.state.plan
    assert bd is not None and sb is not None and plan is not None
    say: Say = run.say
    if sb.bzimage is None:
        raise StageFailed(f"the revision does not build: {sb.stage.summary}")
    if not plan.suites:
        raise UserError(f"no test suite selected: {plan.reason}")
    suites = [s.name for s in plan.suites]
    stale = undo_stale(bd.root, bd.src)
    if stale:
        say(f"undid the mutation of {stale} an interrupted run left")

    files = [p.file for p in run.rev.imported_patches() if p.file is not None]
    # only what the kernel build compiles can be mutated (not tools/, not a file this config leaves out)
    sel = select(bd.src, revision_changes(files), opts.functions, opts.operators, opts.seed, opts.max,
                 compiled=lambda f: (bd.obj / object_of(f)).is_file(), only=opts.only)
    targets, outside, all_mutants, chosen = sel.targets, sel.outside, sel.generated, sel.chosen
    if outside:
        say(f"not in this kernel build (not mutated): {', '.join(outside)}")
    if not targets:
        hint = (f"; patch {', '.join(map(str, run.rev.missing))} is missing: name functions as "
                f"--functions FILE:FUNCTION") if run.rev.missing else ""
        raise UserError(f"{run.stack.name} v{run.rev.version} touches no C function the kernel build compiles"
                        + hint)
    say(f"mutate: {sum(len(t.functions) for t in targets)} function(s) in {len(targets)} file(s), "
        f"{len(all_mutants)} mutants, running {len(chosen)}")

    key = {"base": run.base_commit, "config": plan.config_hash, "suites": suites, "seed": opts.seed,
           "head": sb.stage.items[-1]["commit"] if sb.stage.items else None}
    assert run.tree is not None and run.base_commit is not None
    state_file = run.ws.cache.mutants_state(run.stack.name, run.rev.version, run.tree.name, run.base_commit,
                                            plan.config_hash)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state = State.load(state_file, key)
    info = {"stack": run.stack.name, "revision": run.rev.version, "missing": run.rev.missing,
            "targets": [{"file": t.file, "functions": t.functions} for t in targets], "not_built": outside,
            "generated": len(all_mutants), "max": opts.max, "operators": list(opts.operators),
            "resumed": sum(m.id in state.records for m in chosen), "build_dir": str(bd.root)}

    def save() -> None:
        recs = [state.records[m.id] for m in chosen if m.id in state.records]
        state.save({**info, "summary": summarise(recs, suites)})

    built = {b.name: b for b in build_suites(bd.src, bd.obj, run.path("selftests"), plan.suites,
                                             log_dir=run.path("selftests"), tc=bd.toolchain,
                                             record_dir=bd.suite_results)}
    bad = [f"{n}: {b.reason}" for n, b in built.items() if b.status != "built"]
    if bad:
        raise StageFailed("suite(s) not built: " + "; ".join(bad))
    # the suites as built: when they change (a new test), the survivors are run again;
    # a kill or a skip stands (a kill by a test since removed is the one exception, and rare)
    h = hashlib.sha256()
    for name in suites:
        for prog in sorted(built[name].programs, key=lambda p: p.name):
            h.update(f"{name}/{prog.name}\0".encode() + prog.path.read_bytes())
    digest_suites = h.hexdigest()[:16]
    if state.baseline.get("suites_digest") not in (None, digest_suites):
        again = [i for i, r in state.records.items() if r.get("status") in ("survived", "equivalent")]
        for mid in again:
            del state.records[mid]
        state.baseline = {}
        say(f"the suites changed since the last run: {len(again)} survivor(s) run again")

    # the unmutated kernel: its objects and, per suite, what passes on it
    base_bz = run.path("bzImage.base")
    shutil.copy2(sb.bzimage, base_bz)
    digest = hashlib.sha256(base_bz.read_bytes()).hexdigest()
    bed = Bed(bd=bd, built={s: built[s] for s in suites}, cache=run.ws.cache, opts=opts, say=say, accel=opts.accel)
    if state.baseline.get("bzimage") != digest or state.baseline.get("suites_digest") != digest_suites:
        state.baseline = {"bzimage": digest, "suites_digest": digest_suites, "suites": {}}
    for s in suites:
        if s not in state.baseline["suites"]:
            state.baseline["suites"][s] = boot_baseline(bed, base_bz, s, run.path("baseline", s))
            save()
    bed.baseline = state.baseline["suites"]
    base_objects(bed, [t.file for t in targets], run.path())

    try:
        for i, m in enumerate(chosen, 1):
            if m.id in state.records:
                continue
            say(f"[{i}/{len(chosen)}] {m.id} {m.function} {m.operator}")
            original = (bd.src / m.file).read_text(errors="surrogateescape")
            rec: dict[str, Any] = {"id": m.id, "file": m.file, "function": m.function, "operator": m.operator,
                                   "diff": m.diff}
            rec.update(try_mutant(bed, m.id, {m.file: m.apply(original)}, run.path("mutants", m.id)))
            state.records[m.id] = rec
            save()
    finally:
        # leave the warm directory built for the unmutated source
        build_kernel(bd.src, bd.obj, log=run.path("rebuild-unmutated.log"), jobs=opts.jobs, tc=bd.toolchain)
    recs = [state.records[m.id] for m in chosen if m.id in state.records]
    mark_equivalent(recs, opts.equivalent)
    summary = summarise(recs, suites)
    save()
    shutil.copyfile(state_file, run.path("mutants.json"))
    title = f"series mutate {run.stack.name} v{run.rev.version} onto {run.onto}"
    atomic_write_text(run.path("mutants.html"), html_report(summary, recs, suites, title))
    return {**info, "key": key, "baseline": state.baseline, "summary": summary, "mutants": recs,
            "mutants_json": str(run.path("mutants.json")), "html": str(run.path("mutants.html"))}


def _fresh(d: Path) -> Path:
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d
