"""Category accuracy on the real crash logs in ../shared/data/crashlogs (skipped when absent)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
CORPUS = ROOT.parent / "shared" / "data" / "crashlogs"


def test_crashlog_accuracy_at_least_90_percent():
    if not CORPUS.is_dir():
        pytest.skip(f"no crash-log corpus at {CORPUS}")
    spec = importlib.util.spec_from_file_location("crashlog_accuracy", ROOT / "benchmarks" / "crashlog_accuracy.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    accuracy, per_category, misses = bench.measure(CORPUS)
    assert sum(total for _, total in per_category.values()) >= 50
    assert accuracy >= 0.9, misses
