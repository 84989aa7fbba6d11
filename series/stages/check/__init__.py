"""The check stage: checkpatch.pl from the tree, series hygiene, and the delta
against the previous revision.  See runner.run_check for the JSON contract."""

from .runner import resolve_tools, run_check, stage_results, strict_default

__all__ = ["resolve_tools", "run_check", "stage_results", "strict_default"]
