"""CI subset of the chaos harness (long form: `python -m tests.harness.chaos --jobs 500 --kills 150 --pauses 60`)."""

from __future__ import annotations

from tests.harness.chaos import run_chaos


def test_killed_and_paused_workers_lose_nothing_duplicate_nothing_contradict_nothing(summary_line):
    report = run_chaos(workers=3, jobs=30, kills=10, pauses=5, seed=7)
    summary_line(report.summary())
    assert sum(report.kills.values()) >= 10 and report.pauses == 5
    assert report.webhook_refusals > 0  # the webhook did fail a third of its requests
    assert report.lost == [] and report.duplicated == [] and report.mismatched == []
    assert report.contradictory == [] and report.webhook_missing == []
    assert report.stuck == 0 and report.dead_lettered == 0
    assert len(report.latencies) == 30
