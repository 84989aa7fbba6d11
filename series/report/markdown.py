"""A Markdown summary of a run (for a PR comment or a mail to the author)."""

from __future__ import annotations

from typing import Any

ICON = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP", "error": "ERROR"}


def to_markdown(results: dict[str, Any]) -> str:
    out = [f"# series CI: {results.get('stack')} v{results.get('revision')} — {ICON.get(results.get('status', ''), results.get('status'))}",
           "", f"- tree: `{results.get('tree')}` onto `{results.get('onto')}` (`{(results.get('base_commit') or '')[:12]}`)",
           f"- reproduce: `{results.get('reproduce', '')}`", ""]
    sandbox = build_sandbox(results)
    if sandbox:
        what, detail = sandbox
        out[-1:-1] = [f"- build: {what if what == 'sandboxed' else f'**{what}**'} {detail}"]
    if results.get("missing"):
        out.append(f"- **missing patches** (not imported): {', '.join(map(str, results['missing']))}")
        out.append("")
    out += ["| stage | status | time | summary |", "|---|---|---|---|"]
    for st in results.get("stages", []):
        out.append(f"| {st['name']} | {ICON.get(st['status'], st['status'])} | {st.get('duration_s', 0):.1f}s | "
                   f"{str(st.get('summary', '')).replace('|', '/')} |")
    return "\n".join(out) + "\n"


def build_sandbox(results: dict[str, Any]) -> tuple[str, str] | None:
    """How the run's build ran, from its build stage's toolchain (docs/results.md):
    ("sandboxed" or "not sandboxed", the details in parentheses); None when no build ran."""
    build = next((st for st in results.get("stages", []) if st.get("name") == "build"), None)
    tc = ((build or {}).get("extra") or {}).get("toolchain")
    if not isinstance(tc, dict):
        return None
    sb = tc.get("sandbox")
    if not sb:
        return "not sandboxed", "(--no-sandbox)"
    return "sandboxed", f"({sb.get('tool', '?')}; network {'shared' if sb.get('network') else 'none'})"
