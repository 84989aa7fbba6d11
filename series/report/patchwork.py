"""Patchwork checks (the /api/patches/<id>/checks/ payloads), one per patch and stage."""

from __future__ import annotations

from typing import Any

from ..pipeline.status import status_of



def to_checks(results: dict[str, Any], target_url: str = "") -> list[dict[str, Any]]:
    msgids = {p["index"]: p.get("message_id") for p in results.get("patches", [])}
    checks: list[dict[str, Any]] = []
    for st in results.get("stages", []):
        per_patch = [i for i in st.get("items", []) if "index" in i]
        if not per_patch:
            continue
        for it in per_patch:
            checks.append({
                "patch_index": it["index"],
                "message_id": msgids.get(it["index"]),
                "context": f"series-{st['name']}",
                "state": status_of(str(it.get("status"))).patchwork,
                "description": str(it.get("summary") or it.get("status"))[:255],
                "target_url": target_url,
            })
    return checks


# -- posting to a patchwork instance -------------------------------------------------
def api_root(url: str) -> str:
    """The instance's API root: `https://pw.example.org` or `.../api` or `.../api/1.3`."""
    u = url.rstrip("/")
    return u if "/api" in u.split("://", 1)[-1] else u + "/api"


def post_checks(checks: list[dict[str, Any]], url: str, token: str, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """POST each check to /api/patches/<id>/checks/, the patch found by its
    Message-ID (GET /api/patches/?msgid=<id>).  Returns one outcome per check:
    {message_id, context, patch_id, posted, error}.  A patch patchwork does not
    know is reported, not fatal; a refused token or an unreachable instance is
    an InfraError."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    from ..errors import InfraError
    root = api_root(url)
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(root + path, data=data, method=method,
                                     headers={**headers, **({"Content-Type": "application/json"} if data else {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise InfraError(f"patchwork at {root} refused the token ({e.code} on {method} {path})") from None
            raise InfraError(f"patchwork at {root}: {method} {path}: HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise InfraError(f"patchwork at {root} is not reachable: {e}") from None

    ids: dict[str, int | None] = {}
    out: list[dict[str, Any]] = []
    for c in checks:
        mid = (c.get("message_id") or "").strip("<>")
        outcome: dict[str, Any] = {"message_id": mid, "context": c["context"], "patch_id": None, "posted": False,
                                   "error": None}
        if not mid:
            outcome["error"] = "no Message-ID"
            out.append(outcome)
            continue
        if mid not in ids:
            found = call("GET", "/patches/?" + urllib.parse.urlencode({"msgid": mid}))
            ids[mid] = int(found[0]["id"]) if isinstance(found, list) and found else None
        pid = ids[mid]
        outcome["patch_id"] = pid
        if pid is None:
            outcome["error"] = f"patchwork has no patch <{mid}>"
        else:
            body = {k: c[k] for k in ("state", "context", "description")}
            if str(c.get("target_url") or "").startswith(("http://", "https://")):
                body["target_url"] = c["target_url"]   # patchwork takes a URL, not a local path
            call("POST", f"/patches/{pid}/checks/", body)
            outcome["posted"] = True
        out.append(outcome)
    return out
