"""CI subsets of the chaos harness (long forms: `python -m tests.harness.chaos --jobs 500 --kills 150 --pauses 60`
and `python -m tests.harness.chaos --pause-chaos --jobs 60 --kills 0 --pauses 36 --max-receive-count 10 --work-s 2`)."""

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


def test_paused_past_visibility_every_job_ends_with_an_outcome(summary_line):
    """An outside driver's conditions, scaled down: workers SIGSTOPped for 1.25-2.25 times the visibility
    timeout, more often than killed, while jobs keep arriving, on a queue that dead-letters after 4 receives.
    Jobs use their receives up on abandoned and deferred attempts, so a job may end FAILED (retries exhausted);
    but every job ends with an outcome that is recorded and published, a dead-lettered one included, and none is
    synthesized twice. Job records in a DynamoDB table here (the kill chaos above keeps them in S3), so both
    stores run under chaos."""
    report = run_chaos(
        workers=3,
        jobs=20,
        kills=2,
        pauses=14,
        seed=21,
        work_s=2.0,
        visibility_s=4,
        pause_s=(5.0, 9.0),
        max_receive_count=4,
        failures_allowed=True,
        settle_s=15.0,
        spread_jobs=True,
        jobs_table=True,
    )
    summary_line(report.summary())
    histories = "\n".join(report.histories())
    assert report.pauses == 14 and report.receives.outcomes["abandoned"] > 0  # pauses did outlast leases
    assert report.no_outcome == [] and report.dead_unrecorded == [], histories
    assert report.duplicated == [] and report.mismatched == [], histories
    assert report.contradictory == [] and report.stuck == 0, histories


def test_readers_of_streamed_jobs_get_the_whole_audio_or_an_error_through_kills(summary_line):
    """Streamed jobs (`output.stream`), each followed by a `Client.stream` reader from the moment it is sent,
    while workers are killed mid-stream: a reader resumes on the next attempt's blocks, and ends with exactly
    the final object's audio or raises; none returns a truncated file. Nothing lost or duplicated either."""
    report = run_chaos(workers=2, jobs=8, kills=5, seed=11, work_s=2.0, stream=True)
    summary_line(report.summary())
    assert sum(report.kills.values()) >= 5
    assert report.stream_truncated == [], report.stream_truncated
    assert report.streams_whole + len(report.stream_errors) == 8
    assert report.streams_whole >= 6, report.stream_errors  # an error is allowed, the whole audio is the rule
    assert report.lost == [] and report.duplicated == [] and report.mismatched == []
    assert report.stuck == 0 and report.dead_lettered == 0
