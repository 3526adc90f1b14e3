"""CI subset of the fault-injection harness (long form: `python -m tests.harness.faults --jobs 500`)."""

from __future__ import annotations

from tests.harness.faults import run_faults


def test_injected_aws_faults_lose_nothing_and_duplicate_no_audio(summary_line):
    report = run_faults(jobs=40, rate=0.5, seed=3)
    summary_line(report.summary())
    assert sum(report.injected.values()) > 40
    assert report.lost == [] and report.duplicated == []
