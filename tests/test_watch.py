"""`series watch`: a mirror directory into which new revisions are dropped (our
own mails), imported and verified once each, and the patchwork checks posted
to a local HTTP server that speaks patchwork's checks API.  Stages that need no
kernel build (apply, hygiene) on a small repository of ours."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import git, run_series, user_tree
from mailfactory import cover_mail, patch_mail, series_mails, write_mbox

TOKEN = "s3cret-token"


@pytest.fixture
def watched(workspace: Path, tmp_path: Path) -> tuple[Path, str, Path]:
    """Stack `demo` with v1 imported from the mirror; a tree to apply onto."""
    user = user_tree(tmp_path / "linux")
    (user / "scripts").mkdir()
    # a checkpatch of our own: no finding on any patch, in checkpatch's summary format
    (user / "scripts" / "checkpatch.pl").write_text(
        '#!/usr/bin/perl\nmy $n = 0; while (<>) { $n++ }\n'
        'print "total: 0 errors, 0 warnings, $n lines checked\\n";\nexit 0;\n')
    (user / "MAINTAINERS").write_text("DEMO\nM:\tAda Lovelace <ada@example.org>\nF:\tmm/\n")
    git(user, "add", ".")
    git(user, "commit", "-qm", "base")
    tree = "watch-" + hashlib.sha1(str(tmp_path).encode()).hexdigest()[:10]
    assert run_series("tree", "add", tree, "--path", str(user), cwd=workspace).rc == 0
    mirror = tmp_path / "mirror"
    (mirror / "demo").mkdir(parents=True)
    write_mbox(mirror / "demo" / "v1.mbox", series_mails(2, version=1))
    r = run_series("-C", str(workspace), "import", "demo", "--create", "--mbox", str(mirror / "demo" / "v1.mbox"))
    assert r.rc == 0, r.err
    return workspace, tree, mirror


def _watch(ws: Path, tree: str, mirror: Path, out: Path, *extra: str) -> Any:
    return run_series("-C", str(ws), "watch", "--mirror", str(mirror), "--once", "--stages", "apply,checkpatch,hygiene",
                      "--tree", tree, "--onto", "main", "-o", str(out), *extra)


def test_watch_picks_up_a_dropped_revision_once(watched: tuple[Path, str, Path], tmp_path: Path) -> None:
    ws, tree, mirror = watched
    out = tmp_path / "runs"
    r = _watch(ws, tree, mirror, out, "--json")
    assert r.rc == 0, r.err
    assert r.json["found"] == [] and r.json["runs"] == []        # v1 is imported already
    write_mbox(mirror / "demo" / "v2.mbox", series_mails(2, version=2))
    r = _watch(ws, tree, mirror, out, "--json")
    assert r.rc == 0, r.err
    assert [(f["stack"], f["version"]) for f in r.json["found"]] == [("demo", 2)]
    (run,) = r.json["runs"]
    assert run["revision"] == 2 and run["status"] == "pass" and run["posted"] is None
    res = json.loads((out / "demo" / "v2" / "results.json").read_text())
    assert res["revision"] == 2 and [s["name"] for s in res["stages"]] == ["apply", "checkpatch", "hygiene"]
    checks = json.loads((out / "demo" / "v2" / "patchwork-checks.json").read_text())
    assert {c["message_id"] for c in checks} == {"v2-1-demo@example.org", "v2-2-demo@example.org"}
    assert run["checks"] == len(checks) > 0
    show = run_series("-C", str(ws), "show", "demo", "v2", "--json")
    assert show.rc == 0, show.err
    # a second scan finds nothing: the revision is imported now
    r = _watch(ws, tree, mirror, out)
    assert r.rc == 0, r.err
    assert "nothing new" in r.out


def test_watch_matches_a_loose_mailbox_by_lineage(watched: tuple[Path, str, Path], tmp_path: Path) -> None:
    """A mailbox at the top of the mirror: v3 with the stack's subjects is the
    stack's; a mailbox of an unrelated series is ignored with the reason."""
    ws, tree, mirror = watched
    write_mbox(mirror / "incoming.mbox", series_mails(2, version=3))
    write_mbox(mirror / "other.mbox", [cover_mail(1, title="net: something else", msgid="o0@x"),
                                       patch_mail(1, 1, subject="net: unrelated fix", msgid="o1@x")])
    r = _watch(ws, tree, mirror, tmp_path / "runs", "--json")
    assert r.rc == 0, r.err
    (f,) = r.json["found"]
    assert f["version"] == 3 and f["matched_by"].startswith("subject lineage (2 of 2")
    assert r.json["runs"][0]["status"] == "pass"
    assert [i["reason"] for i in r.json["ignored"]] == ["v1: matches no stack of the workspace"]


def test_watch_matches_by_change_id(watched: tuple[Path, str, Path], tmp_path: Path) -> None:
    """Subjects all reworded, but the cover carries the stack's change-id (b4's trailer)."""
    ws, tree, mirror = watched
    import tomllib

    import tomli_w
    manifest = ws / "patches" / "demo" / "stack.toml"
    data = tomllib.loads(manifest.read_text())
    cid = "20240101-demo-0123456789ab"      # as `series record` writes it
    data["revisions"][0]["change_id"] = cid
    manifest.write_text(tomli_w.dumps(data))
    cover = cover_mail(2, version=2, title="reworded")
    body = cover.get_content() + f"\n---\nbase-commit: abc\nchange-id: {cid}\n"
    cover.set_content(body)
    mails = [cover] + [patch_mail(i, 2, version=2, subject=f"demo: renamed helper {i}") for i in (1, 2)]
    write_mbox(mirror / "reworded.mbox", mails)
    r = _watch(ws, tree, mirror, tmp_path / "runs", "--json")
    assert r.rc == 0, r.err
    (f,) = r.json["found"]
    assert f["matched_by"] == f"change-id {cid}" and f["version"] == 2


class _Patchwork(BaseHTTPRequestHandler):
    patches: dict[str, int] = {}
    posted: list[tuple[int, dict[str, Any]]] = []

    def log_message(self, *a: object) -> None:
        pass

    def _reply(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        u = urlparse(self.path)
        if u.path != "/api/patches/":
            return self._reply(404, {"detail": "not found"})
        mid = parse_qs(u.query).get("msgid", [""])[0]
        pid = self.patches.get(mid)
        self._reply(200, [{"id": pid, "msgid": f"<{mid}>"}] if pid else [])

    def do_POST(self) -> None:
        if self.headers.get("Authorization") != f"Token {TOKEN}":
            return self._reply(403, {"detail": "Invalid token."})
        parts = self.path.strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["api", "patches"] or parts[3] != "checks":
            return self._reply(404, {"detail": "not found"})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.posted.append((int(parts[2]), body))
        self._reply(201, {"id": len(self.posted), **body})


@pytest.fixture
def patchwork() -> Iterator[tuple[str, type[_Patchwork]]]:
    class H(_Patchwork):
        patches = {"v2-1-demo@example.org": 101}   # patch 2 is not in this patchwork
        posted: list[tuple[int, dict[str, Any]]] = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", H
    finally:
        srv.shutdown()
        srv.server_close()


def test_watch_posts_checks_to_patchwork(watched: tuple[Path, str, Path], tmp_path: Path,
                                         patchwork: tuple[str, type[_Patchwork]]) -> None:
    ws, tree, mirror = watched
    url, pw = patchwork
    tok = tmp_path / "token"
    tok.write_text(TOKEN + "\n")
    write_mbox(mirror / "demo" / "v2.mbox", series_mails(2, version=2))
    r = _watch(ws, tree, mirror, tmp_path / "runs", "--post-checks", url, "--token-file", str(tok), "--json")
    assert r.rc == 0, r.err
    checks = json.loads((tmp_path / "runs" / "demo" / "v2" / "patchwork-checks.json").read_text())
    mine = [c for c in checks if c["message_id"] == "v2-1-demo@example.org"]
    assert mine and [pid for pid, _ in pw.posted] == [101] * len(mine)
    assert sorted(b["context"] for _, b in pw.posted) == sorted(c["context"] for c in mine)
    for _, b in pw.posted:
        assert b["state"] in ("success", "warning", "fail", "pending") and "target_url" not in b
    (run,) = r.json["runs"]
    assert run["posted"] == len(mine)
    assert run["not_posted"] and all("patchwork has no patch <v2-2-demo@example.org>" in n for n in run["not_posted"])


def test_watch_refused_token_is_an_infra_error(watched: tuple[Path, str, Path], tmp_path: Path,
                                                patchwork: tuple[str, type[_Patchwork]]) -> None:
    ws, tree, mirror = watched
    url, pw = patchwork
    tok = tmp_path / "token"
    tok.write_text("wrong\n")
    write_mbox(mirror / "demo" / "v2.mbox", series_mails(2, version=2))
    r = _watch(ws, tree, mirror, tmp_path / "runs", "--post-checks", url, "--token-file", str(tok))
    assert r.rc == 3, (r.out, r.err)
    assert "refused the token (403" in r.out and pw.posted == []
    # the run itself was done and written
    assert (tmp_path / "runs" / "demo" / "v2" / "patchwork-checks.json").is_file()


def test_watch_usage_errors(watched: tuple[Path, str, Path], tmp_path: Path) -> None:
    ws, tree, mirror = watched
    r = run_series("-C", str(ws), "watch", "--mirror", str(mirror), "--once", "--post-checks", "http://x")
    assert r.rc == 1 and "go together" in r.err
    r = run_series("-C", str(ws), "watch", "--mirror", str(tmp_path / "nope"), "--once")
    assert r.rc == 1 and "not a directory" in r.err


def test_watch_lore_searches_by_change_id_and_subjects(watched: tuple[Path, str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """--lore: liblore (b4's library) is asked for the stack's change-id or its
    newest subjects, after its date; what the search returns is matched and
    imported like a mirror's mailbox (a stand-in node here: no network)."""
    import liblore

    ws, tree, _mirror = watched
    box = tmp_path / "found.mbox"
    write_mbox(box, series_mails(2, version=2) + [patch_mail(1, 1, subject="net: unrelated fix", msgid="o1@x")])
    asked: list[str] = []

    class Node:
        def get_mbox_by_query(self, q: str, **kw: object) -> bytes:
            asked.append(q)
            return box.read_bytes()

    monkeypatch.setattr(liblore.LoreNode, "from_git_config", classmethod(lambda cls, url, **kw: Node()))
    r = run_series("-C", str(ws), "watch", "--lore", "--once", "--stages", "apply", "--tree", tree, "--onto", "main",
                   "-o", str(tmp_path / "runs"), "--json")
    assert r.rc == 0, r.err
    (q,) = asked
    assert 'nq:"change-id: ' in q and 's:"demo: add helper number 1"' in q and "AND d:20240101.." in q
    assert [(f["version"], f["matched_by"].split(" (")[0]) for f in r.json["found"]] == [(2, "subject lineage")]
    assert r.json["runs"][0]["status"] == "pass"
    assert [i["reason"] for i in r.json["ignored"]] == ["v1: matches no stack of the workspace"]
