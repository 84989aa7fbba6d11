"""A short round of the fuzzing properties (tests/fuzzing.py); bench/fuzz runs 10,000 cases."""

from __future__ import annotations

import pytest

import fuzzing

ROUNDS = {"mail-parsing": 200, "import": 80, "manifest": 200}


@pytest.mark.parametrize("target", sorted(fuzzing.TARGETS))
def test_fuzz(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERIES_DEBUG", raising=False)
    tried, failed, example = fuzzing.run(target, ROUNDS[target])
    assert failed == 0, f"{target}: {example}"
    assert tried >= ROUNDS[target] // 2, tried
