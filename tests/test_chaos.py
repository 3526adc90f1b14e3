"""CI subset of the chaos harness (the long form: `python -m tests.harness.chaos --jobs 500 --kills 150`)."""

from __future__ import annotations

from tests.harness.chaos import run_chaos


def test_killed_workers_lose_nothing_and_duplicate_nothing(summary_line):
    report = run_chaos(workers=3, jobs=30, kills=10, seed=7)
    summary_line(report.summary())
    assert sum(report.kills.values()) >= 10
    assert report.lost == [] and report.duplicated == [] and report.mismatched == []
    assert report.stuck == 0 and report.dead_lettered == 0
    assert len(report.latencies) == 30
