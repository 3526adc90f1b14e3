"""CI subset of the soak harness (long form: `python -m tests.harness.soak --messages 2000`)."""

from __future__ import annotations

from tests.harness.soak import run_soak


def test_no_growth_in_memory_descriptors_or_temp_files_over_a_soak(summary_line):
    report = run_soak(messages=1000, warmup=200)  # RSS noise is a few MB: only a long window measures a slope
    summary_line(report.summary())
    assert report.done == 1000
    assert report.rss_slope_mb_per_1k < 25, "RSS grows with messages"
    assert report.fd_slope_per_1k < 5, "file descriptors leak"
    assert report.tmp_slope_mb_per_1k < 1, "temp files accumulate"
