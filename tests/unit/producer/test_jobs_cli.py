"""`f5-worker jobs ...`: the summary of each record status, `--since` parsing, and the commands (show, list,
wait, download, cancel, redeliver) through typer's CliRunner against this test's stack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from consumer.cli import app
from consumer.producer.jobs_cli import parse_since, summary
from consumer.storage.job_index import JobIndex
from consumer.storage.job_record import (
    CancelRequest,
    ChunkProgress,
    Completed,
    Delivery,
    DeliveryState,
    Failed,
    Failure,
    InProgress,
    Release,
    Released,
)
from consumer.storage.jobs import JobStore
from contracts.codes import ErrorCode
from contracts.events import AudioOutput, SynthesisCompleted, SynthesisFailed, Timings, event_id_for
from contracts.tasks import DELIVER_KIND, KIND_ATTRIBUTE

runner = CliRunner()
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _completed_event(job_id: str, bucket: str = "b", key: str | None = None) -> SynthesisCompleted:
    key = key or f"out/{job_id}.wav"
    return SynthesisCompleted(
        event_id=event_id_for(job_id, "completed"),
        job_id=job_id,
        attempt=1,
        worker_id="gpu-1/aa",
        occurred_at=NOW,
        output=AudioOutput(
            uri=f"s3://{bucket}/{key}",
            bucket=bucket,
            key=key,
            format="wav",
            content_type="audio/wav",
            sample_rate=24000,
            duration_s=2.5,
            bytes=4,
            sha256="0" * 64,
        ),
        timings=Timings(queue_wait_s=0.1, synthesis_s=1.25, total_s=1.5, real_time_factor=0.5),
        model_id="m",
        seed=1,
        text_chars=5,
    )


def _failed_event(job_id: str) -> SynthesisFailed:
    return SynthesisFailed(
        event_id=event_id_for(job_id, "failed:1"),
        job_id=job_id,
        attempt=2,
        worker_id="gpu-1/aa",
        occurred_at=NOW,
        error_code=ErrorCode.UNKNOWN_VOICE,
        error_message="voice 'nobody' is not in the library",
        retryable=False,
    )


# --- summary ---------------------------------------------------------------------------------------------------
def test_summary_of_a_running_job_names_its_phase_and_claim():
    record = InProgress(
        job_id="j",
        generation=2,
        worker_id="gpu-1/aa",
        started_at="2026-03-04T05:00:00",
        expires_at=NOW,
        progress=ChunkProgress(chunk=1, chunks=3),
    )
    assert summary(record) == (
        "job j: INPROGRESS (generation 2)\n"
        "  chunk 2/3 on gpu-1; since 2026-03-04T05:00:00; claim until 2026-03-04T05:06:07+00:00"
    )


def test_summary_of_a_released_job_says_why_and_who():
    released = Released(
        job_id="j", released=Release(reason="shutting down", error_code="lease_lost", by="gpu-2/bb", at="t1")
    )
    assert summary(released).splitlines()[1] == (
        "  released by gpu-2 at t1: shutting down (lease_lost); queued for another attempt"
    )
    no_code = Released(job_id="j", released=Release(reason="shutdown", at="t1"))
    assert "(no error)" in summary(no_code) and "released by ?" in summary(no_code)


def test_summary_of_a_job_no_worker_started_but_cancelled():
    record = Released(job_id="j", cancel=CancelRequest(by="ana", at="t2"))
    assert summary(record) == (
        "job j: RELEASED (generation 1)\n  no worker has started it yet\n  cancel requested by ana at t2"
    )


def test_summary_of_a_completed_job_with_its_webhook_delivery():
    record = Completed(
        job_id="j",
        event=_completed_event("j"),
        worker_id="gpu-1/aa",
        finished_at="t3",
        webhook_url="https://hooks.example/x",
        delivery=Delivery(state=DeliveryState.DELIVERED, count=2),
    )
    assert summary(record).splitlines()[1:] == [
        "  s3://b/out/j.wav (2.50 s audio, 1.25 s synthesis) by gpu-1 at t3",
        "  webhook: delivered after 2 attempt(s)",
    ]


def test_summary_of_a_failed_job_without_a_webhook_has_no_delivery_line():
    record = Failed(
        job_id="j",
        event=_failed_event("j"),
        failure=Failure(error_code="unknown_voice", error_message="no voice", attempt=2),
        finished_at="t4",
        delivery=Delivery(state=DeliveryState.PENDING),
    )
    assert summary(record) == "job j: FAILED (generation 1)\n  unknown_voice: no voice (attempt 2, at t4)"


# --- parse_since -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "ago"), [("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)), ("1d", timedelta(days=1))]
)
def test_since_as_a_duration_ago(text, ago):
    assert abs(datetime.now(UTC) - ago - parse_since(text)) < timedelta(seconds=5)


def test_since_as_an_iso_time_is_utc_unless_it_says_otherwise():
    assert parse_since("2026-12-02T14:00") == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    with_zone = parse_since("2026-12-02T14:00+02:00")
    assert with_zone.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("text", ["", "yesterday", "5w", "m"])
def test_since_that_is_neither_is_a_bad_parameter(text):
    with pytest.raises(typer.BadParameter, match="give 30m, 2h, 1d or an ISO time"):
        parse_since(text)


# --- the commands ----------------------------------------------------------------------------------------------
def _jobs(stack) -> JobStore:
    return JobStore(
        stack.clients.s3,
        stack.resources.bucket,
        "jobs",
        index=JobIndex(stack.clients.s3, stack.resources.bucket, "jobs-index"),
    )


def _fail(stack, job_id: str) -> None:
    jobs = _jobs(stack)
    jobs.fail(jobs.claim(job_id, "gpu-1/aa", 60, "m-1", 2), _failed_event(job_id))


def _complete(stack, job_id: str, audio: bytes = b"RIFF") -> None:
    key = f"out/{job_id}.wav"
    stack.clients.s3.put_object(Bucket=stack.resources.bucket, Key=key, Body=audio)
    jobs = _jobs(stack)
    jobs.complete(jobs.claim(job_id, "gpu-1/aa", 60, "m-1"), _completed_event(job_id, stack.resources.bucket, key))


def test_show_prints_the_summary_or_the_record_as_json(cli_env):
    _fail(cli_env, "shown")
    text = runner.invoke(app, ["jobs", "show", "shown"])
    assert text.exit_code == 0, text.output
    assert text.output.startswith("job shown: FAILED (generation 1)\n  unknown_voice: voice 'nobody'")
    as_json = runner.invoke(app, ["jobs", "show", "shown", "--json"])
    record = json.loads(as_json.output)
    assert record["status"] == "FAILED" and record["failure"]["attempt"] == 2


def test_show_of_an_unknown_job_exits_1(cli_env):
    result = runner.invoke(app, ["jobs", "show", "never-sent"])
    assert result.exit_code == 1 and "has no record" in result.output


def test_list_filters_by_state_and_says_when_there_is_nothing(cli_env):
    empty = runner.invoke(app, ["jobs", "list", "--since", "10m"])
    assert empty.exit_code == 0 and empty.output.strip() == "no jobs since 10m"
    _fail(cli_env, "listed-bad")
    _complete(cli_env, "listed-ok")
    listed = runner.invoke(app, ["jobs", "list", "--json"])
    rows = {row["job_id"]: row for row in json.loads(listed.output)}
    assert (rows["listed-ok"]["status"], rows["listed-bad"]["status"]) == ("COMPLETED", "FAILED")
    assert rows["listed-bad"]["error_code"] == "unknown_voice"
    failed = runner.invoke(app, ["jobs", "list", "--state", "Failed"])
    lines = failed.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("FAILED      listed-bad  unknown_voice")
    limited = runner.invoke(app, ["jobs", "list", "--limit", "1", "--json"])
    assert len(json.loads(limited.output)) == 1


def test_list_refuses_an_unknown_state_and_a_bad_window(cli_env):
    state = runner.invoke(app, ["jobs", "list", "--state", "done"])
    assert state.exit_code == 2 and "one of INPROGRESS, RELEASED, COMPLETED, FAILED" in state.output
    since = runner.invoke(app, ["jobs", "list", "--since", "last week"])
    assert since.exit_code == 2 and "ISO time" in since.output


def test_wait_prints_the_outcome_and_exits_by_it(cli_env):
    _complete(cli_env, "waited-ok")
    _fail(cli_env, "waited-bad")
    ok = runner.invoke(app, ["jobs", "wait", "waited-ok", "--timeout", "5"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["type"] == "synthesis.completed.v1"
    bad = runner.invoke(app, ["jobs", "wait", "waited-bad", "--timeout", "5"])
    assert bad.exit_code == 1 and json.loads(bad.stdout)["error_code"] == "unknown_voice"


def test_wait_for_a_job_that_does_not_finish_exits_1_after_the_timeout(cli_env):
    result = runner.invoke(app, ["jobs", "wait", "still-queued", "--timeout", "0.3"])
    assert result.exit_code == 1
    assert "queued" in result.stderr and "did not finish" in result.stderr


def test_download_saves_a_completed_jobs_audio(cli_env, tmp_path):
    _complete(cli_env, "fetched", audio=b"RIFF-audio-bytes")
    out = tmp_path / "fetched.wav"
    result = runner.invoke(app, ["jobs", "download", "fetched", "--out", str(out)])
    assert result.exit_code == 0 and f"saved {out} (2.50 s audio)" in result.output
    assert out.read_bytes() == b"RIFF-audio-bytes"


def test_download_without_audio_exits_1_saying_why(cli_env):
    _fail(cli_env, "no-audio")
    failed = runner.invoke(app, ["jobs", "download", "no-audio"])
    assert failed.exit_code == 1 and "has no audio: failed" in failed.output
    unknown = runner.invoke(app, ["jobs", "download", "never-sent"])
    assert unknown.exit_code == 1 and "not completed" in unknown.output


def test_cancel_of_a_queued_job_and_of_a_finished_one(cli_env):
    queued = runner.invoke(app, ["jobs", "cancel", "to-cancel", "--reason", "typo", "--json"])
    assert queued.exit_code == 0 and json.loads(queued.output) == {"job_id": "to-cancel", "result": "queued"}
    record, _ = _jobs(cli_env).read("to-cancel")
    assert record is not None and record.cancel is not None and record.cancel.reason == "typo"
    _complete(cli_env, "done-already")
    finished = runner.invoke(app, ["jobs", "cancel", "done-already"])
    assert finished.exit_code == 1 and "already finished" in finished.output


def test_cancel_of_a_running_job_says_it_stops_at_its_next_step(cli_env):
    _jobs(cli_env).claim("running", "gpu-1/aa", 60, "m-1")
    result = runner.invoke(app, ["jobs", "cancel", "running"])
    assert result.exit_code == 0 and "stops at its next step" in result.output


def test_redeliver_of_a_job_without_an_outcome_exits_1(cli_env):
    result = runner.invoke(app, ["jobs", "redeliver", "never-sent"])
    assert result.exit_code == 1 and "never-sent" in result.output


def test_redeliver_of_a_finished_job_queues_a_delivery_task_with_its_event(cli_env):
    _fail(cli_env, "redelivered")
    result = runner.invoke(app, ["jobs", "redeliver", "redelivered", "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed == {
        "job_id": "redelivered",
        "event_id": event_id_for("redelivered", "failed:1"),
        "type": "synthesis.failed.v1",
    }
    messages = cli_env.clients.sqs.receive_message(
        QueueUrl=cli_env.resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 1
    task = json.loads(messages[0]["Body"])
    assert task["job_id"] == "redelivered" and task["manual"] is True
    assert messages[0]["MessageAttributes"][KIND_ATTRIBUTE]["StringValue"] == DELIVER_KIND
