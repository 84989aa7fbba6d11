"""JUnit XML from results.json: a testsuite per stage, a testcase per item."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from ..pipeline.status import status_of


def item_name(item: dict[str, Any]) -> str:
    if "index" in item:
        subj = item.get("subject") or ""
        return f"patch {item['index']}: {subj}".rstrip(": ")
    return str(item.get("name") or item.get("check") or "item")


def to_junit(results: dict[str, Any]) -> str:
    suites = ET.Element("testsuites", name=f"series {results.get('stack', '')} v{results.get('revision', '')}")
    total = failures = errors = skipped = 0
    for st in results.get("stages", []):
        items = st.get("items") or [{"name": st["name"], "status": st["status"], "summary": st.get("summary", "")}]
        kinds = [status_of(str(i.get("status"))).junit for i in items]
        s_fail, s_err, s_skip = kinds.count("failure"), kinds.count("error"), kinds.count("skipped")
        suite = ET.SubElement(suites, "testsuite", name=st["name"], tests=str(len(items)), failures=str(s_fail),
                              errors=str(s_err), skipped=str(s_skip), time=f"{st.get('duration_s', 0):.3f}")
        for it, kind in zip(items, kinds):
            tc = ET.SubElement(suite, "testcase", classname=f"series.{st['name']}", name=item_name(it),
                               time=f"{float(it.get('duration_s') or 0):.3f}")
            msg = str(it.get("summary") or it.get("reason") or it.get("message") or "")
            if kind in ("failure", "error"):
                ET.SubElement(tc, kind, message=msg[:500]).text = _details(it)
            elif kind == "skipped":
                ET.SubElement(tc, "skipped", message=msg[:500] or str(it.get("status")))
            elif msg:
                ET.SubElement(tc, "system-out").text = msg
        total += len(items)
        failures += s_fail
        errors += s_err
        skipped += s_skip
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    suites.set("skipped", str(skipped))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _details(it: dict[str, Any]) -> str:
    lines = []
    for key in ("errors", "findings", "excerpt", "new_warnings", "details"):
        v = it.get(key)
        if isinstance(v, list):
            lines += [str(x) if not isinstance(x, dict) else " ".join(f"{k}={x[k]}" for k in x) for x in v]
        elif v:
            lines.append(str(v))
    return "\n".join(lines)
