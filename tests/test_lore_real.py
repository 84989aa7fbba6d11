"""Integration: the six real uffd-move revisions from ../shared/lore, and b4 against a local 'lore'."""

from __future__ import annotations

import gzip
import http.server
import re
import shutil
import threading
import urllib.parse
from pathlib import Path

import pytest

from mailfactory import LoreHandler
from conftest import REPO, run_series

pytestmark = pytest.mark.integration

# What FACTS.md says: per revision, the patches the mirror has and the subjects as posted.
SUBJECTS = {
    1: ["userfaultfd: UFFDIO_REMAP: rmap preparation", "userfaultfd: UFFDIO_REMAP uABI",
        "selftests/mm: add UFFDIO_REMAP ioctl test"],
    2: ["userfaultfd: UFFDIO_REMAP: rmap preparation", "userfaultfd: UFFDIO_REMAP uABI",
        "selftests/mm: add UFFDIO_REMAP ioctl test"],
    3: ["mm/rmap: support move to different root anon_vma in folio_move_anon_rmap()",
        "userfaultfd: UFFDIO_MOVE uABI", "selftests/mm: add UFFDIO_MOVE ioctl test"],
}
V4_ON = ["mm/rmap: support move to different root anon_vma in folio_move_anon_rmap()",
         "userfaultfd: UFFDIO_MOVE uABI",
         "selftests/mm: call uffd_test_ctx_clear at the end of the test",
         "selftests/mm: add uffd_test_case_ops to allow test case-specific operations",
         "selftests/mm: add UFFDIO_MOVE ioctl test"]
for v in (4, 5, 6):
    SUBJECTS[v] = V4_ON
PRESENT = {1: [1, 3], 2: [1, 2, 3], 3: [1, 3], 4: [1, 3, 4, 5], 5: [1, 3, 4, 5], 6: [1, 3, 4, 5]}


@pytest.fixture(scope="module")
def fetched(lore_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("lore-ws")
    shutil.copytree(REPO / "patches" / "uffd-move", ws / "patches" / "uffd-move",
                    ignore=shutil.ignore_patterns("v[0-9]*"))
    shutil.copy(REPO / "series.toml", ws / "series.toml")
    r = run_series("-C", str(ws), "fetch", "uffd-move", "--mirror", str(lore_dir), "--json")
    assert r.rc == 0, r.err
    return ws


def test_every_revision_present_and_missing(fetched: Path) -> None:
    data = run_series("-C", str(fetched), "show", "uffd-move", "--json").json
    assert data["name"] == "uffd-move" and data["derived_from"] == "uffd-remap"
    revs = {r["version"]: r for r in data["revisions"]}
    assert sorted(revs) == [1, 2, 3, 4, 5, 6]
    for v, rev in revs.items():
        assert rev["present"] == PRESENT[v], v
        expected = list(range(1, len(SUBJECTS[v]) + 1))
        assert rev["missing"] == [i for i in expected if i not in PRESENT[v]], v
        assert rev["complete"] == (v == 2)
        assert [p["subject"] for p in rev["patches"]] == SUBJECTS[v]
        for p in rev["patches"]:
            assert p["imported"] == (p["index"] in PRESENT[v])
            assert (p["patch_id"] is not None) == p["imported"]
            want = "Andrea Arcangeli" if "rmap" in p["subject"] or "uABI" in p["subject"] else "Suren Baghdasaryan"
            assert p["author"].startswith(want), p
    # The in-body From is honoured: Suren sent it, Andrea is the author.
    assert revs[2]["patches"][1]["author"] == "Andrea Arcangeli <aarcange@redhat.com>"
    assert revs[6]["cover_message_id"] == "20231206103702.3873743-1-surenb@google.com"


def test_refetch_changes_nothing(fetched: Path, lore_dir: Path) -> None:
    r = run_series("-C", str(fetched), "fetch", "uffd-move", "--mirror", str(lore_dir), "--json")
    assert r.rc == 0
    assert {x["import"]["status"] for x in r.json["revisions"]} == {"unchanged"}


def test_pairing_across_rename_and_growth(fetched: Path) -> None:
    d = run_series("-C", str(fetched), "diff", "uffd-move", "v2", "v3", "--json").json
    pairs = {(p["old"], p["new"]): p for p in d["pairs"]}
    assert set(pairs) == {(1, 1), (2, 2), (3, 3)}
    assert pairs[(1, 1)]["status"] == "changed" and pairs[(3, 3)]["status"] == "changed"
    assert pairs[(2, 2)]["status"] == "missing"   # v3 2/3 is not in the mirror: never "removed"
    assert pairs[(3, 3)]["similarity"] > 0.6
    d = run_series("-C", str(fetched), "diff", "uffd-move", "3", "4", "--json").json
    got = {(p["old"], p["new"], p["status"]) for p in d["pairs"]}
    assert got == {(1, 1, "changed"), (2, 2, "missing"), (None, 3, "added"), (None, 4, "added"), (3, 5, "changed")}
    d = run_series("-C", str(fetched), "diff", "uffd-move", "5", "6", "--json").json
    got = {(p["old"], p["new"], p["status"]) for p in d["pairs"]}
    assert got == {(1, 1, "same"), (2, 2, "missing"), (3, 3, "same"), (4, 4, "same"), (5, 5, "changed")}
    assert not any(p["status"] == "removed" for p in d["pairs"])


def test_range_diff_text(fetched: Path) -> None:
    r = run_series("-C", str(fetched), "diff", "uffd-move", "2", "3")
    assert r.rc == 0
    lines = r.out.splitlines()
    assert re.match(r"^3: [0-9a-f]{8} ! 3: [0-9a-f]{8} selftests/mm: add UFFDIO_MOVE ioctl test", 
                    next(l for l in lines if l.startswith("3:")))
    assert any("not imported" in l for l in lines if l.startswith("2:"))
    assert any(l.startswith("    -") and "REMAP" in l for l in lines)




def test_fetch_through_b4_from_a_local_lore(lore_dir: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(REPO / "patches" / "uffd-move", ws / "patches" / "uffd-move", ignore=shutil.ignore_patterns("v[0-9]*"))
    (ws / "series.toml").write_text("[workspace]\n")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LoreHandler)
    srv.boxes = {"20230923013148.1390521-1-surenb@google.com": lore_dir / "uffd-move" / "v2.mbox"}  # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        r = run_series("-C", str(ws), "fetch", "uffd-move", "--revision", "2", "--json", env={"SERIES_LORE_URL": url})
        assert r.rc == 0, r.err
        assert r.json["revisions"][0]["import"]["present"] == [1, 2, 3]
        # A revision lore does not have: an infrastructure error (exit 3), one line.
        r = run_series("-C", str(ws), "fetch", "uffd-move", "--revision", "3", env={"SERIES_LORE_URL": url})
        assert r.rc == 3 and len(r.err.strip().splitlines()) == 1, r.err
    finally:
        srv.shutdown()
    assert any("20230923013148.1390521-1-surenb" in urllib.parse.unquote(h) for h in LoreHandler.hits)


def test_fetch_missing_skips_what_is_stored(lore_dir: Path, tmp_path: Path) -> None:
    """`fetch --missing` (the emitted CI jobs' import step): a revision with
    imported patches is reported skipped and left as it is, the others are
    fetched.  Without it, a stored revision that was never posted (the demo
    stack's, made by `series record`) is an error: every CI job failed on it."""
    ws = tmp_path / "ws"
    shutil.copytree(REPO / "patches" / "uffd-move", ws / "patches" / "uffd-move", ignore=shutil.ignore_patterns("v[0-9]*"))
    shutil.copytree(REPO / "patches" / "uffd-move-selftests", ws / "patches" / "uffd-move-selftests")
    (ws / "series.toml").write_text("[workspace]\n")
    r = run_series("-C", str(ws), "fetch", "uffd-move", "--revision", "2", "--mirror", str(lore_dir))
    assert r.rc == 0, r.err
    before = {p: p.stat().st_mtime_ns for p in (ws / "patches" / "uffd-move" / "v2").iterdir()}
    r = run_series("-C", str(ws), "fetch", "uffd-move", "--missing", "--mirror", str(lore_dir), "--json")
    assert r.rc == 0, r.err
    got = {o["version"]: o for o in r.json["revisions"]}
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert got[2]["skipped"] == "already imported (3 of 3 patches)" and "import" not in got[2]
    assert all(got[v]["import"]["present"] == PRESENT[v] for v in (1, 3, 4, 5, 6))
    assert {p: p.stat().st_mtime_ns for p in (ws / "patches" / "uffd-move" / "v2").iterdir()} == before
    demo = ("-C", str(ws), "fetch", "uffd-move-selftests", "--revision", "3")
    r = run_series(*demo)
    assert r.rc == 1 and "no Message-ID" in r.err, r.err
    r = run_series(*demo, "--missing", "--json")
    assert r.rc == 0 and r.json["revisions"][0]["skipped"].startswith("already imported"), r.err
