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
