"""Jobs you can see: progress in the record, cancel (queued and mid-synthesis), the hourly index, status,
DLQ reasons and voice versions — on the embedded AWS, through the CLI where a user would use it."""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from consumer.cli import app
from consumer.core.errors import JobTimeoutError
from consumer.engine.fake import FakeEngine
from consumer.producer.client import Client
from consumer.producer.progress_view import PhaseReporter, describe
from consumer.storage.job_index import JobIndex
from consumer.storage.job_record import parse_record
from consumer.storage.jobs import CancelResult, JobStore
from contracts.events import ErrorCode, SynthesisCompleted, SynthesisFailed, event_id_for

runner = CliRunner()
THREE_SENTENCES = "One sentence here. Then a second one. And a third to finish."


def _client(stack) -> Client:
    return Client(stack.clients, stack.resources.queue_url, stack.resources.bucket)


def _request(job_id: str, text: str = THREE_SENTENCES, voice: str = "basic-en") -> str:
    return json.dumps({"job_id": job_id, "text": text, "voice": {"voice_id": voice}})


def _record(stack, job_id: str) -> dict | None:
    """The record as stored (raw JSON), None if none."""
    record = JobStore(stack.clients.s3, stack.resources.bucket, "jobs").read(job_id)[0]
    return record.model_dump(mode="json") if record else None


def _run_in_background(worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def _until(predicate, timeout_s: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- progress --------------------------------------------------------------------------------------------------
def test_a_running_job_shows_worker_and_chunk_i_of_n_and_the_waiter_sees_each_phase(stack, make_worker):
    worker, _ = make_worker(FakeEngine(work_s=3.0), progress_interval_s=0.2)
    stack.send(_request("progress-1"))
    stream = io.StringIO()
    phases = PhaseReporter(stream, tty=False)
    thread = _run_in_background(worker)
    event = _client(stack).wait("progress-1", timeout_s=30, poll_s=0.1, on_record=phases)
    thread.join(timeout=30)

    assert isinstance(event, SynthesisCompleted)
    started = [p for p in phases.phases if p.startswith("started on ")]
    chunks = [p for p in phases.phases if p.startswith("chunk ")]
    assert started and started[0] == f"started on {worker.settings.worker_id}"
    assert [c.split(" on ")[0] for c in chunks] == ["chunk 1/3", "chunk 2/3", "chunk 3/3"]
    assert "about" in chunks[-1], chunks  # an ETA once chunks are done
    # off a terminal: one plain line per phase, nothing else
    assert stream.getvalue().splitlines() == phases.phases
    record = _record(stack, "progress-1")
    assert record["status"] == "COMPLETED" and record["started_at"] <= record["finished_at"]


def test_describe_names_each_phase_from_the_record():
    assert describe(None)[1] == "queued"
    base = {
        "status": "INPROGRESS",
        "job_id": "j",
        "worker_id": "gpu-7/1a2b3c4d",
        "attempt": 2,
        "expires_at": "2030-01-01T00:00:00+00:00",
    }

    def phase(**fields) -> str:
        return describe(parse_record(json.dumps(base | fields)))[1]

    assert phase() == "started on gpu-7, attempt 2"
    assert phase(progress={"chunk": 1, "chunks": 4, "eta_s": 12.4}) == "chunk 2/4 on gpu-7, about 12 s left"
    assert phase(progress={"chunk": 4, "chunks": 4, "eta_s": 0}) == "encoding and uploading on gpu-7"
    released = {"status": "RELEASED", "job_id": "j", "released": {"reason": "retry", "error_code": "engine_error"}}
    assert describe(parse_record(json.dumps(released)))[1] == "queued again (engine_error)"
    assert phase(cancel={"by": "x", "at": "2030-01-01T00:00:00+00:00"}) == "cancel requested"


# --- cancel ----------------------------------------------------------------------------------------------------
def test_a_job_cancelled_while_queued_fails_with_one_cancelled_event_and_no_audio(cli_env, make_worker):
    stack = cli_env
    stack.send(_request("cancel-q"))
    cancelled = runner.invoke(app, ["jobs", "cancel", "cancel-q", "--reason", "changed my mind", "--json"])
    assert cancelled.exit_code == 0 and json.loads(cancelled.output)["result"] == CancelResult.QUEUED
    engine = FakeEngine()
    worker, _ = make_worker(engine)
    worker.run()

    assert engine.calls == 0 and stack.objects("outputs/") == []
    assert stack.queue_counts() == (0, 0)  # the message was deleted
    events = stack.events()
    assert len(events) == 1 and isinstance(events[0], SynthesisFailed)
    assert events[0].error_code == ErrorCode.CANCELLED and "changed my mind" in events[0].error_message
    assert "before it started" in events[0].error_message
    record = _record(stack, "cancel-q")
    assert record["status"] == "FAILED" and record["failure"]["error_code"] == "cancelled"
    # a finished job cannot be cancelled: exit 1, the record untouched
    again = runner.invoke(app, ["jobs", "cancel", "cancel-q"])
    assert again.exit_code == 1 and "already finished" in again.output
    assert _record(stack, "cancel-q") == record


def test_a_job_cancelled_while_synthesizing_stops_at_its_next_step(cli_env, make_worker):
    stack = cli_env
    engine = FakeEngine(work_s=20.0)
    worker, _ = make_worker(engine, progress_interval_s=0.2)
    stack.send(_request("cancel-r"))
    thread = _run_in_background(worker)
    _until(lambda: (_record(stack, "cancel-r") or {}).get("progress"), what="the job to report progress")

    started = time.monotonic()
    cancelled = runner.invoke(app, ["jobs", "cancel", "cancel-r", "--json"])
    assert cancelled.exit_code == 0 and json.loads(cancelled.output)["result"] == CancelResult.RUNNING
    event = _client(stack).wait("cancel-r", timeout_s=15, poll_s=0.1)
    stopped_after = time.monotonic() - started
    thread.join(timeout=30)

    assert isinstance(event, SynthesisFailed) and event.error_code == ErrorCode.CANCELLED
    assert "while synthesizing" in event.error_message
    assert stopped_after < 10, stopped_after  # well short of the 20 s of synthesis (loose: the suite runs 4 at once)
    assert stack.objects("outputs/") == [] and stack.queue_counts() == (0, 0)
    assert [e.event_id for e in stack.events()] == [event_id_for("cancel-r", "failed:1")]
    assert worker.outcomes == {"failed": 1}


def test_a_cancel_that_comes_too_late_is_ignored_by_the_completion(stack):
    jobs = JobStore(stack.clients.s3, stack.resources.bucket, "jobs")
    claim = jobs.claim("late", "w1", ttl_s=60)
    assert jobs.request_cancel("late", by="op") == CancelResult.RUNNING
    renewed = jobs.renew(claim, 60)  # the owner's next write adopts the request instead of losing the job
    assert renewed.cancel is not None and renewed.cancel.by == "op"
    assert _record(stack, "late")["cancel"]["by"] == "op"


def test_wait_without_an_events_queue_returns_a_failure_at_once(stack, make_worker):
    stack.send(_request("no-voice", voice="nobody"))
    worker, _ = make_worker()
    worker.run()
    started = time.monotonic()
    event = _client(stack).wait("no-voice", timeout_s=30)
    assert isinstance(event, SynthesisFailed) and event.error_code == ErrorCode.UNKNOWN_VOICE
    assert time.monotonic() - started < 2
    with pytest.raises(JobTimeoutError):
        _client(stack).wait("never-sent", timeout_s=0.3, poll_s=0.1)


# --- the index ---------------------------------------------------------------------------------------------------
class RequestCounter:
    def __init__(self, s3) -> None:
        self.calls: list[str] = []
        s3.meta.events.register("provide-client-params.s3.*", self._count)

    def _count(self, model, **_) -> None:
        self.calls.append(model.name)


def test_listing_a_window_costs_requests_for_the_jobs_in_it_only(stack, make_worker):
    for n in range(3):
        stack.send(_request(f"recent-{n}", text="Short."))
    worker, _ = make_worker()
    worker.run()
    client = _client(stack)
    since = datetime.now(UTC) - timedelta(minutes=20)

    def listing() -> tuple[list[str], list[str]]:
        counter = RequestCounter(stack.clients.s3)
        ids = [e.job_id for e in client.recent(since)]
        stack.clients.s3.meta.events.unregister("provide-client-params.s3.*", counter._count)
        return ids, counter.calls

    before_ids, before_calls = listing()
    # 60 jobs touched six hours ago: outside the window
    index = JobIndex(stack.clients.s3, stack.resources.bucket, "jobs-index")
    old = datetime.now(UTC) - timedelta(hours=6)
    for n in range(60):
        index.note(f"old-{n}", "COMPLETED", old)
    after_ids, after_calls = listing()

    assert sorted(before_ids) == ["recent-0", "recent-1", "recent-2"] and after_ids == before_ids
    assert after_calls == before_calls
    # one read per segment in the window (the worker wrote its six entries in one or two), not one per job
    segments = stack.objects("jobs-index/")
    assert 1 <= before_calls.count("GetObject") <= 2 and len(segments) == 60 + before_calls.count("GetObject")
    assert set(before_calls) == {"ListObjectsV2", "GetObject"}
    # and the older ones are there for a wider window
    wide = client.recent(datetime.now(UTC) - timedelta(hours=7), status="COMPLETED", limit=100)
    assert len(wide) == 63


def test_jobs_list_and_show_and_download_through_the_cli(cli_env, make_worker, tmp_path):
    stack = cli_env
    stack.send(_request("listed-ok", text="Fine."))
    stack.send(_request("listed-bad", voice="nobody"))
    worker, _ = make_worker()
    worker.run()

    listed = runner.invoke(app, ["jobs", "list", "--since", "10m", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["job_id"]: r for r in json.loads(listed.output)}
    assert rows["listed-ok"]["status"] == "COMPLETED" and rows["listed-bad"]["status"] == "FAILED"
    assert rows["listed-bad"]["error_code"] == "unknown_voice"
    failed_only = runner.invoke(app, ["jobs", "list", "--state", "failed", "--json"])
    assert [r["job_id"] for r in json.loads(failed_only.output)] == ["listed-bad"]
    bad_state = runner.invoke(app, ["jobs", "list", "--state", "nope"])
    assert bad_state.exit_code == 2 and "one of" in bad_state.output

    shown = runner.invoke(app, ["jobs", "show", "listed-bad"])
    assert shown.exit_code == 0 and "FAILED" in shown.output and "unknown_voice" in shown.output
    out = tmp_path / "fine.wav"
    downloaded = runner.invoke(app, ["jobs", "download", "listed-ok", "--out", str(out)])
    assert downloaded.exit_code == 0 and out.read_bytes()[:4] == b"RIFF"
    no_audio = runner.invoke(app, ["jobs", "download", "listed-bad"])
    assert no_audio.exit_code == 1 and "failed" in no_audio.output


# --- status ------------------------------------------------------------------------------------------------------
def _status(runner_env) -> dict:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_status_on_an_empty_a_busy_and_a_failing_queue(cli_env, make_worker):
    stack = cli_env
    empty = _status(stack)
    assert (empty["queue"]["visible"], empty["queue"]["in_flight"], empty["dlq"]["messages"]) == (0, 0, 0)
    assert {k: v for k, v in empty["last_hour"].items() if k != "since"} == {
        "completed": 0,
        "failed": 0,
        "in_progress": 0,
        "top_errors": [],
    }
    assert empty["workers"] == []

    for n in range(4):
        stack.send(_request(f"busy-{n}", text="Busy."))
    assert _status(stack)["queue"]["visible"] == 4

    stack.send(_request("failing-1", voice="nobody"))
    stack.send(_request("failing-2", voice="nobody"))
    worker, _ = make_worker()
    worker.run()
    after = _status(stack)
    assert after["queue"]["visible"] == 0
    assert after["last_hour"]["completed"] == 4 and after["last_hour"]["failed"] == 2
    assert after["last_hour"]["top_errors"] == [{"error_code": "unknown_voice", "count": 2}]
    assert [w["worker_id"] for w in after["workers"]] == [worker.settings.worker_id]
    assert after["workers"][0]["state"] == "stopped"
    table = runner.invoke(app, ["status"])
    assert "failed 2" in table.output and "unknown_voice" in table.output


# --- the DLQ ------------------------------------------------------------------------------------------------------
def _dead_letter(stack, job_id: str, code: ErrorCode) -> None:
    """A job whose retries ran out: its failure recorded, its message in the DLQ."""
    jobs = JobStore(stack.clients.s3, stack.resources.bucket, "jobs")
    claim = jobs.claim(job_id, "w1", ttl_s=60, message_id="m-" + job_id)
    failed = SynthesisFailed(
        event_id=event_id_for(job_id, "failed:1"),
        job_id=job_id,
        attempt=3,
        worker_id="w1",
        occurred_at=datetime.now(UTC),
        error_code=code,
        error_message=f"gave up on {job_id}",
        retryable=False,
    )
    jobs.fail(claim, failed, redrivable=True)
    stack.clients.sqs.send_message(QueueUrl=stack.resources.dlq_url, MessageBody=_request(job_id))


def test_dlq_list_shows_each_jobs_last_error_and_leaves_the_messages_there(cli_env):
    stack = cli_env
    assert runner.invoke(app, ["dlq", "list"]).output.strip() == "DLQ is empty"
    _dead_letter(stack, "dead-a", ErrorCode.RETRIES_EXHAUSTED)
    _dead_letter(stack, "dead-b", ErrorCode.TIMEOUT)
    stack.clients.sqs.send_message(QueueUrl=stack.resources.dlq_url, MessageBody="not json")

    listed = runner.invoke(app, ["dlq", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {r["job_id"]: r for r in json.loads(listed.output)}
    assert (
        rows["dead-a"]["error_code"] == "retries_exhausted" and "gave up on dead-a" in rows["dead-a"]["error_message"]
    )
    assert rows["dead-b"]["error_code"] == "timeout"
    assert rows[None]["error_message"] == "the body names no job id"
    assert stack.queue_counts(stack.resources.dlq_url) == (3, 0)  # all visible again


def test_dlq_redrive_of_chosen_jobs_moves_only_those_and_prints_no_html(cli_env):
    stack = cli_env
    _dead_letter(stack, "dead-c", ErrorCode.RETRIES_EXHAUSTED)
    _dead_letter(stack, "dead-d", ErrorCode.RETRIES_EXHAUSTED)
    moved = runner.invoke(app, ["dlq", "redrive", "--job", "dead-c", "--job", "ghost", "--json"])
    assert moved.exit_code == 1  # ghost was not there
    body = json.loads(moved.stdout)
    assert body == {"method": "copy", "moved": 1, "missing": ["ghost"]}
    queued = stack.clients.sqs.receive_message(QueueUrl=stack.resources.queue_url, WaitTimeSeconds=1)["Messages"]
    assert [json.loads(m["Body"])["job_id"] for m in queued] == ["dead-c"]
    assert stack.queue_counts(stack.resources.dlq_url)[0] == 1  # dead-d stays
    everything = runner.invoke(app, ["dlq", "redrive"])
    assert everything.exit_code == 0, everything.output
    assert "<" not in everything.output and "html" not in everything.output.lower()


# --- voices -------------------------------------------------------------------------------------------------------
def test_voices_add_refuses_to_overwrite_and_events_name_the_voice_version(
    cli_env, make_worker, reference_wav, tmp_path
):
    stack = cli_env
    clip = tmp_path / "clip.wav"
    clip.write_bytes(reference_wav)
    args = ["voices", "add", "narrator", str(clip), "--transcript", "Some call me nature.", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    version = json.loads(first.stdout)["version"]
    assert version.startswith("sha256:")
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "exists" in again.output and "--force" in again.output

    stack.clients.s3.put_bucket_versioning(Bucket=stack.resources.bucket, VersioningConfiguration={"Status": "Enabled"})
    forced = runner.invoke(app, [*args, "--force"])
    assert forced.exit_code == 0, forced.output
    versioned = json.loads(forced.stdout)["version"]
    assert versioned != version and not versioned.startswith("sha256:")  # the S3 VersionId

    stack.send(_request("voiced", text="Hello.", voice="narrator"))
    worker, _ = make_worker(voice_revalidate_s=0)
    worker.run()
    event = _client(stack).result("voiced")
    assert isinstance(event, SynthesisCompleted) and event.voice_version == versioned
