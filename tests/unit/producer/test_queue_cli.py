"""`f5-worker status` and `f5-worker dlq ...`: the status table from its data, the commands through typer's
CliRunner against this test's stack (no DLQ, listing, redriving chosen jobs with their attributes)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from consumer.cli import app
from consumer.producer.queue_cli import render_status
from contracts.tasks import DELIVER_KIND, KIND_ATTRIBUTE

runner = CliRunner()


def _status_data(**changes) -> dict:
    data = {
        "queue": {"url": "https://q/requests", "visible": 3, "in_flight": 1, "delayed": 0, "oldest_age_s": 42.4},
        "dlq": {"url": "https://q/dlq", "messages": 2},
        "last_hour": {
            "since": "2026-03-04T04:00:00+00:00",
            "completed": 10,
            "failed": 2,
            "in_progress": 1,
            "top_errors": [{"error_code": "unknown_voice", "count": 2}],
        },
        "workers": [
            {
                "worker_id": "gpu-1",
                "state": "polling",
                "model_id": "f5",
                "device": "cuda",
                "in_flight": 1,
                "seen_at": "2026-03-04T05:06:07.123+00:00",
            }
        ],
    }
    return data | changes


def _request(job_id: str) -> str:
    return json.dumps({"job_id": job_id, "text": "Hi.", "voice": {"voice_id": "basic-en"}})


def test_render_status_shows_each_part():
    assert render_status(_status_data()).splitlines() == [
        "queue      https://q/requests",
        "  waiting 3   in flight 1   delayed 0   oldest 42 s",
        "dlq        2",
        "since 04:00Z completed 10   failed 2   in progress 1",
        "      2  unknown_voice",
        "workers    1 seen in the last 5 min",
        "  gpu-1  polling  f5 on cuda  in flight 1  seen 2026-03-04T05:06:07",
    ]


def test_render_status_without_cloudwatch_data_a_dlq_or_workers():
    queue = {"url": "u", "visible": 0, "in_flight": 0, "delayed": 0, "oldest_age_s": None}
    text = render_status(_status_data(queue=queue, dlq=None, workers=[]))
    assert "oldest unknown (no CloudWatch data)" in text
    assert "dlq        none" in text
    assert text.endswith("workers    0 seen in the last 5 min")


def test_status_as_json_on_the_stack(cli_env):
    cli_env.send(_request("waiting"))
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["queue"]["url"] == cli_env.resources.queue_url and data["queue"]["visible"] == 1
    assert data["dlq"] == {"url": cli_env.resources.dlq_url, "messages": 0}
    table = runner.invoke(app, ["status"])
    assert table.exit_code == 0 and "waiting 1" in table.output


def test_dlq_commands_on_a_queue_without_a_dlq_exit_2_with_the_fix(cli_env, monkeypatch):
    plain = cli_env.clients.sqs.create_queue(QueueName=f"{cli_env.spec.name}-plain")["QueueUrl"]
    monkeypatch.setenv("F5_WORKER_QUEUE_URL", plain)
    for args in (["dlq", "list"], ["dlq", "redrive"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "no redrive policy" in result.output and "f5-worker init" in result.output


def test_dlq_list_as_text(cli_env):
    assert runner.invoke(app, ["dlq", "list"]).output.strip() == "DLQ is empty"
    cli_env.clients.sqs.send_message(QueueUrl=cli_env.resources.dlq_url, MessageBody="not json")
    listed = runner.invoke(app, ["dlq", "list"])
    assert listed.exit_code == 0
    assert listed.output.startswith("(no job id)  ?: the body names no job id  (sent ")


def test_redriving_chosen_jobs_copies_them_with_their_attributes_and_leaves_the_rest(cli_env):
    sqs, dlq = cli_env.clients.sqs, cli_env.resources.dlq_url
    sqs.send_message(QueueUrl=dlq, MessageBody=_request("keep"))
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody=_request("task"),
        MessageAttributes={KIND_ATTRIBUTE: {"DataType": "String", "StringValue": DELIVER_KIND}},
    )
    result = runner.invoke(app, ["dlq", "redrive", "--job", "task", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"method": "copy", "moved": 1, "missing": []}
    queued = sqs.receive_message(
        QueueUrl=cli_env.resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
    )["Messages"]
    assert [json.loads(m["Body"])["job_id"] for m in queued] == ["task"]
    assert queued[0]["MessageAttributes"][KIND_ATTRIBUTE]["StringValue"] == DELIVER_KIND
    assert cli_env.queue_counts(dlq) == (1, 0)  # "keep" is visible again, still in the DLQ


def test_redriving_a_job_that_is_not_there_exits_1_naming_it(cli_env):
    result = runner.invoke(app, ["dlq", "redrive", "--job", "ghost"])
    assert result.exit_code == 1
    assert result.stdout.strip() == "moved 0 message(s); not in the DLQ: ghost"
