"""CI subset of the soak harness (long form: `python -m tests.harness.soak --messages 2000`)."""

from __future__ import annotations

from tests.harness.soak import run_soak


def test_no_growth_in_memory_descriptors_or_temp_files_over_a_soak(summary_line):
    report = run_soak(messages=300, warmup=200)  # the slope is taken after a 200-message warm-up
    summary_line(report.summary())
    assert report.done == 300
    assert report.rss_slope_mb_per_1k < 25, "RSS grows with messages"
    assert report.fd_slope_per_1k < 5, "file descriptors leak"
    assert report.tmp_slope_mb_per_1k < 1, "temp files accumulate"
