"""Fuzzing of what series reads from outside (issue 11): mail parsing, import and
the manifest loader, with hypothesis.  The properties live here; tests/test_fuzz.py
runs a short round of each, bench/fuzz a long one (10,000 cases) and prints how
many were tried and how many failed.

The properties (a failure is anything else):
- mail parsing: any bytes (an mbox, a single mail, gzip, damaged) give messages or
  a UserError, and never more messages than the limit;
- import: mailboxes made of our own mails, then damaged in ways lists damage them
  (truncated, headers lost or garbled, re-encoded, byte flips, duplicates) give
  either a UserError that left the workspace byte-identical, or a stack that loads,
  whose every present patch file exists and parses, and that a second import of
  the same mailbox leaves unchanged;
- manifest loader: any TOML document (and any text) as stack.toml gives a stack
  or a UserError, never a revision over the limits; a stack that loads is saved
  and loads again to the same revisions, with the document's comments kept.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import tempfile
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailfactory import diff_for
from safety import tree_hash

# ---------------------------------------------------------------------------- mails

_WORDS = st.sampled_from(["mm", "uffd", "fix", "add", "helper", "move", "the", "Zoë", "naïve", "—", "\t", "[", "]",
                          "PATCH", "RFC", "v2", "0/3", "1/3", "Re:", "𝔘", "\\", "\"", "'"])
_TEXT = st.lists(_WORDS, max_size=12).map(" ".join)


@st.composite
def a_subject(draw: st.DrawFn) -> str:
    n = draw(st.integers(0, 6))
    i = draw(st.integers(0, 6)) if draw(st.integers(0, 4)) == 0 else draw(st.integers(0, max(n, 1)))
    v = draw(st.sampled_from([None, None, 2, 2, 3, 0, 1, 12, 99999]))
    pre = draw(st.sampled_from(["PATCH", "PATCH", "PATCH", "RFC PATCH", "PATCH net-next", "patch", ""]))
    tag = f" v{v}" if v is not None else ""
    head = draw(st.sampled_from([f"[{pre}{tag} {i}/{n}]"] * 6 + [
        f"[{pre}{tag}]", f"[{pre}{tag} {i}/{n}", "Re: [PATCH 1/2]", f"[{pre}{tag} {i:03d}/{n:03d}]", ""]))
    return f"{head} {draw(_TEXT)}".strip()


@st.composite
def a_diff(draw: st.DrawFn, i: int) -> str:
    d = diff_for(i, draw(st.integers(1, 3)), lines=draw(st.integers(1, 8)))
    how = draw(st.sampled_from(["whole"] * 8 + ["cut", "extra", "junk", "none", "crlf"]))
    lines = d.splitlines(keepends=True)
    if how == "cut":
        d = "".join(lines[: draw(st.integers(0, len(lines)))])
    elif how == "extra":
        d += draw(st.sampled_from(["+int extra;\n", "-gone\n", " ctx\n", "\\ No newline at end of file\n",
                                   "@@ -1,2 +1,2 @@\n", "diff --git a/x b/x\n"]))
    elif how == "junk":
        k = draw(st.integers(0, len(lines)))
        d = "".join(lines[:k]) + draw(_TEXT) + "\n" + "".join(lines[k:])
    elif how == "none":
        d = ""
    elif how == "crlf":
        d = d.replace("\n", "\r\n")
    return d


@st.composite
def a_mail(draw: st.DrawFn, k: int) -> bytes:
    """One mail as bytes.  Headers go in raw (the email package would refuse to
    build some of them, and lists carry them anyway)."""
    m = EmailMessage()
    body = f"{draw(_TEXT)}\n\nSigned-off-by: Ada <ada@example.org>\n---\n{draw(a_diff(k + 1))}-- \n2.43.0\n"
    cte = draw(st.sampled_from([None, "quoted-printable", "base64", "8bit"]))
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1"])) if cte else "utf-8"
    try:
        m.set_content(body, charset=charset, cte=cte)
    except (UnicodeError, ValueError):
        m.set_content(body)
    headers: list[str] = []
    if draw(st.integers(0, 9)):
        headers.append(f"Subject: {draw(a_subject())}")
    if draw(st.integers(0, 19)):
        headers.append("From: " + draw(st.sampled_from(["Ada <ada@example.org>"] * 12 + ["ada@example.org", "<>",
                                                          "=?utf-8?q?Zo=C3=AB?= <zoe@example.org>", "not an address",
                                                          "\"Q, R\" <q@example.org>", "Zoë <zoe@example.org>"])))
    if draw(st.integers(0, 19)):
        headers.append("Date: " + draw(st.sampled_from(["Mon, 01 Jan 2024 10:00:00 +0000"] * 12 + ["yesterday",
                                                          "Mon, 31 Feb 2024 99:99:99 +9999", ""])))
    mid = draw(st.sampled_from([f"<m{k}@example.org>"] * 12 + ["<same@example.org>", "", "<<x>>", "<no-at-sign>", "<>",
                                "<a@b> <c@d>", "@", "<.@.>"]))
    if mid:
        headers.append(f"Message-ID: {mid}")
    if draw(st.integers(0, 4)) == 0:
        headers.append("In-Reply-To: " + draw(st.sampled_from(["<m0@example.org>", "<same@example.org>", "garbage",
                                                                 "<<x>>"])))
    raw = m.as_bytes(policy=m.policy.clone(linesep="\n"))
    return ("\n".join(headers) + ("\n" if headers else "")).encode("utf-8") + raw


def _mbox_bytes(msgs: list[bytes]) -> bytes:
    out = []
    for raw in msgs:
        out.append(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n" + raw.replace(b"\nFrom ", b"\n>From ")
                   + (b"" if raw.endswith(b"\n") else b"\n") + b"\n")
    return b"".join(out)


@st.composite
def a_mailbox(draw: st.DrawFn) -> bytes:
    msgs = draw(st.lists(st.integers(0, 5).flatmap(lambda k: a_mail(k)), min_size=0, max_size=7))
    data = _mbox_bytes(msgs)
    damage = draw(st.sampled_from(["none"] * 8 + ["cut", "flip", "gzip", "gzip-cut", "dup", "crlf"]))
    if damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "flip" and data:
        pos = draw(st.integers(0, len(data) - 1))
        data = data[:pos] + bytes([data[pos] ^ draw(st.integers(1, 255))]) + data[pos + 1:]
    elif damage == "gzip":
        data = gzip.compress(data)
    elif damage == "gzip-cut":
        z = gzip.compress(data)
        data = z[: draw(st.integers(0, len(z)))]
    elif damage == "dup":
        data = data + data
    elif damage == "crlf":
        data = data.replace(b"\n", b"\r\n")
    return data


# ---------------------------------------------------------------------------- properties


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="series-fuzz-") as d:
        root = Path(d)
        (root / "ws" / "patches").mkdir(parents=True)
        (root / "ws" / "series.toml").write_text("[workspace]\n")
        yield root


def _ws(root: Path):  # noqa: ANN202
    from series.workspace import Workspace
    return Workspace(root=root / "ws", cache=root / "cache", config={})


def prop_mail_parsing(data: bytes) -> None:
    from series.errors import UserError
    from series.stacks.mailbox import MAX_MESSAGES, load_mails
    with _scratch() as root:
        f = root / "in.mbox"
        f.write_bytes(data)
        try:
            mails, bad = load_mails(f)
        except UserError:
            return
        assert len(mails) + bad <= MAX_MESSAGES
        for m in mails:
            assert isinstance(m.raw, bytes)
            m.lmsg.subject, m.lmsg.msgid  # noqa: B018 - b4 has parsed it


def prop_import(data: bytes, create_first: bool) -> None:
    from series.errors import UserError
    from series.patch import Patch
    from series.stacks.importer import import_mailbox
    from series.stacks.store import load_stack, revision_json
    with _scratch() as root:
        ws = _ws(root)
        box = root / "in.mbox"
        box.write_bytes(data)
        if create_first:
            (root / "ws" / "patches" / "fz").mkdir()
            (root / "ws" / "patches" / "fz" / "stack.toml").write_text("# kept\nname = \"fz\"\n")
        before = tree_hash(root / "ws")
        try:
            reports = import_mailbox(ws, "fz", box, create=True)
        except UserError:
            assert tree_hash(root / "ws") == before, "a refused import changed the workspace"
            return
        stack = load_stack(ws, "fz")
        for rev in stack.revisions:
            revision_json(rev)
            for p in rev.imported_patches():
                assert p.file is not None and Path(p.file).is_file()
                Patch.load(p.file)          # a stored patch parses (a corrupt one is never stored)
        if create_first:
            assert (root / "ws" / "patches" / "fz" / "stack.toml").read_text().startswith("# kept\n")
        assert not [p.name for p in (root / "ws" / "patches" / "fz").iterdir() if p.name.startswith(".v")]
        again = import_mailbox(ws, "fz", box)
        assert [r.status for r in again] == ["unchanged"] * len(reports), [r.line() for r in again]


_KEYS = ["name", "title", "upstream", "description", "derived_from", "revisions", "version", "expected", "first_index",
         "posted_total", "patches", "index", "subject", "author", "message_id", "base", "merged", "prefixes",
         "changelog", "date", "lore", "x"]
_SCALARS = st.one_of(st.integers(-3, 10**9), st.text(max_size=8), st.booleans(), st.none(),
                     st.floats(allow_nan=False, width=32))
_TOMLISH: st.SearchStrategy[Any] = st.recursive(
    _SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                      st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5)), max_leaves=20)


@st.composite
def a_manifest(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["doc", "doc", "doc", "text"]))
    if kind == "text":
        return draw(st.text(max_size=200))
    rev = st.fixed_dictionaries({"version": st.integers(-1, 12000)},
                                optional={"expected": st.integers(-1, 10**8), "first_index": st.integers(-1, 10**4),
                                          "posted_total": st.integers(-1, 10**6),
                                          "patches": st.lists(st.fixed_dictionaries(
                                              {"index": st.integers(-1, 30)},
                                              optional={"subject": st.text(max_size=5), "x": _TOMLISH}), max_size=4),
                                          "base": _TOMLISH, "merged": _TOMLISH, "prefixes": _TOMLISH,
                                          "changelog": _TOMLISH, "title": _TOMLISH})
    doc = draw(st.fixed_dictionaries({"name": st.just("fz")},
                                     optional={"title": _TOMLISH, "revisions": st.one_of(st.lists(rev, max_size=4),
                                                                                         _TOMLISH),
                                               "upstream": _TOMLISH, "extra": _TOMLISH}))

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [clean(x) for x in v if x is not None]
        return v
    try:
        text = tomli_w.dumps(clean(doc))
    except (TypeError, ValueError):
        assume(False)
        raise AssertionError("unreachable")  # pragma: no cover
    return "# a comment of the author\n" + text


def prop_manifest(text: str) -> None:
    from series.errors import UserError
    from series.stacks.model import MAX_PATCHES
    from series.stacks.store import load_stack, stack_json
    with _scratch() as root:
        ws = _ws(root)
        d = root / "ws" / "patches" / "fz"
        d.mkdir()
        (d / "stack.toml").write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            stack = load_stack(ws, "fz")
        except UserError:
            return
        for rev in stack.revisions:
            assert rev.expected <= MAX_PATCHES and rev.first_index <= MAX_PATCHES
        first = stack_json(stack)
        try:
            stack.save()
        except UserError:
            return          # refused before writing: the file is as it was
        again = load_stack(ws, "fz")
        assert stack_json(again) == first
        if text.startswith("# a comment of the author\n"):
            assert (d / "stack.toml").read_text().startswith("# a comment of the author\n")


# ---------------------------------------------------------------------------- running

TARGETS: dict[str, tuple[Callable[..., None], tuple[st.SearchStrategy[Any], ...]]] = {
    "mail-parsing": (prop_mail_parsing, (st.one_of(a_mailbox(), st.binary(max_size=400)),)),
    "import": (prop_import, (a_mailbox(), st.booleans())),
    "manifest": (prop_manifest, (a_manifest(),)),
}


def run(target: str, examples: int, *, seed: int | None = None) -> tuple[int, int, str]:
    """Run one target for `examples` cases: (tried, failed, the failing example or "")."""
    fn, strategies = TARGETS[target]
    tried = 0

    def counted(args: tuple[Any, ...]) -> None:
        nonlocal tried
        tried += 1
        fn(*args)

    test = settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
                    suppress_health_check=list(HealthCheck), print_blob=False)(given(st.tuples(*strategies))(counted))
    if seed is not None:
        from hypothesis import seed as seed_dec
        test = seed_dec(seed)(test)
    try:
        test()
    except Exception as e:  # noqa: BLE001 - a failure of the property, reported by the caller
        return tried, 1, f"{type(e).__name__}: {e}"
    return tried, 0, ""

