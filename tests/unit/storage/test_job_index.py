"""The jobs index (`consumer/storage/job_index.py`) on a moto server: a worker's entries go out in segments (full,
timed, idle, at close, split at the hour), listings read the newest state of each job, stop early at a limit,
and count finished jobs from the keys alone."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from consumer.storage.job_index import IndexWriter, JobIndex


@pytest.fixture
def index(stack) -> JobIndex:
    return JobIndex(stack.clients.s3, stack.resources.bucket, "jobs-index")


def _calls(client) -> list[str]:
    calls: list[str] = []
    client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name), unique_id="count")
    return calls


def test_a_worker_writes_one_segment_per_hundred_entries_and_the_rest_at_close(stack, index):
    writer = IndexWriter(index, "gpu-1/a", flush_s=60)
    now = datetime.now(UTC)
    for n in range(125):
        writer.note(f"j{n}", "INPROGRESS", now)
    for n in range(125):
        writer.note(f"j{n}", "COMPLETED" if n % 5 else "FAILED", now, None if n % 5 else "timeout")
    assert writer.segments_written == 2  # 250 entries: two full segments, 50 still waiting
    writer.close()
    keys = stack.objects("jobs-index/")
    assert len(keys) == 3 and writer.segments_written == 3
    # the key says how many jobs each segment saw finish: 100 claims; 25 claims and 75 outcomes; 50 outcomes
    assert sorted(int(k.rsplit("-", 1)[-1].removesuffix(".json")) for k in keys) == [0, 50, 75]
    assert index.finished(now - timedelta(minutes=1), datetime.now(UTC) + timedelta(seconds=1)) == 125
    newest = index.entries(now - timedelta(minutes=1))
    assert len(newest) == 125 and {e.status for e in newest} == {"COMPLETED", "FAILED"}


def test_entries_wait_at_most_the_flush_interval_or_go_at_once_when_the_worker_is_idle(stack, index):
    timed = IndexWriter(index, "gpu-1", flush_s=0.3)
    timed.note("t1", "COMPLETED", datetime.now(UTC))
    deadline = time.monotonic() + 5
    while not stack.objects("jobs-index/") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(stack.objects("jobs-index/")) == 1  # without close or a full batch
    timed.close()
    idle = IndexWriter(index, "gpu-2", flush_s=60)
    idle.note("i1", "COMPLETED", datetime.now(UTC))
    started = time.monotonic()
    idle.flush_soon()
    while len(stack.objects("jobs-index/")) < 2 and time.monotonic() - started < 5:
        time.sleep(0.02)
    assert len(stack.objects("jobs-index/")) == 2 and time.monotonic() - started < 2
    idle.close()


def test_a_batch_across_the_hour_becomes_a_segment_per_hour(stack, index):
    writer = IndexWriter(index, "gpu-1", flush_s=60)
    writer.note("late", "COMPLETED", datetime(2030, 1, 1, 10, 59, 59, tzinfo=UTC))
    writer.note("early", "COMPLETED", datetime(2030, 1, 1, 11, 0, 1, tzinfo=UTC))
    writer.close()
    keys = stack.objects("jobs-index/")
    assert [k.split("/")[2] for k in keys] == ["10", "11"]
    window = index.entries(datetime(2030, 1, 1, 10, 59, tzinfo=UTC), datetime(2030, 1, 1, 11, 1, tzinfo=UTC))
    assert [e.job_id for e in window] == ["early", "late"]


def test_a_listing_keeps_each_jobs_newest_state_filters_and_stops_at_its_limit(stack, index):
    base = datetime.now(UTC) - timedelta(minutes=30)
    for n in range(12):  # a segment a minute, each with the claim of one job and the outcome of the one before
        at = base + timedelta(minutes=n)
        entries = [{"job_id": f"j{n}", "status": "INPROGRESS", "at": at.isoformat(), "error_code": None}]
        if n:
            done = (at + timedelta(seconds=1)).isoformat()
            entries.append({"job_id": f"j{n - 1}", "status": "COMPLETED", "at": done, "error_code": None})
        index.write(entries, at + timedelta(seconds=1), "w", n)
    since = base - timedelta(minutes=1)
    everything = index.entries(since)
    assert [e.job_id for e in everything][:2] == ["j10", "j11"]  # j10 finished after j11 was claimed
    assert [e.status for e in everything if e.job_id == "j11"] == ["INPROGRESS"]
    assert len(index.entries(since, status="COMPLETED")) == 11
    assert [e.job_id for e in index.entries(since, job_prefix="j1")] == ["j10", "j11", "j1"]
    calls = _calls(stack.clients.s3)
    newest_two = index.entries(since, limit=2)
    assert [e.job_id for e in newest_two] == ["j10", "j11"]
    # the newest segments only (and those within the clock skew allowed), not all twelve
    assert calls.count("GetObject") <= 2
    stack.clients.s3.meta.events.unregister("before-call.s3", unique_id="count")


def test_counting_finished_jobs_reads_no_segment(stack, index):
    now = datetime.now(UTC)
    for n in range(5):
        entries = [{"job_id": f"c{n}-{i}", "status": "COMPLETED", "at": now.isoformat()} for i in range(10)]
        index.write(entries, now, "w", n)
    calls = _calls(stack.clients.s3)
    assert index.finished(now - timedelta(seconds=30), datetime.now(UTC) + timedelta(seconds=1)) == 50
    stack.clients.s3.meta.events.unregister("before-call.s3", unique_id="count")
    assert calls == ["ListObjectsV2"]
