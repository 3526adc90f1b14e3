"""`f5-worker local`'s pure parts: the env file `--serve` writes for other terminals, and the banner."""

from __future__ import annotations

from pathlib import Path

from consumer.core.settings import Settings
from consumer.ops.local import _banner, _serve_env


def test_the_serve_env_names_everything_a_second_terminal_needs(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-id")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    settings = Settings(
        aws_endpoint_url="http://127.0.0.1:5000",
        aws_region="eu-west-1",
        queue_url="http://127.0.0.1:5000/123/requests",
        bucket="f5-audio",
        jobs_table="f5-jobs",
        topic_arn="arn:aws:sns:eu-west-1:123:events",
        model_dir=Path("/models/tiny"),
    )
    assert _serve_env(settings, "http://127.0.0.1:5000/123/events") == [
        "F5_WORKER_AWS_ENDPOINT_URL=http://127.0.0.1:5000",
        "AWS_ACCESS_KEY_ID=key-id",
        "AWS_SECRET_ACCESS_KEY=local",  # the emulator takes any value
        "F5_WORKER_AWS_REGION=eu-west-1",
        "F5_WORKER_QUEUE_URL=http://127.0.0.1:5000/123/requests",
        "F5_WORKER_BUCKET=f5-audio",
        "F5_WORKER_JOBS_TABLE=f5-jobs",
        "F5_WORKER_TOPIC_ARN=arn:aws:sns:eu-west-1:123:events",
        "F5_WORKER_EVENTS_QUEUE_URL=http://127.0.0.1:5000/123/events",
        "F5_WORKER_MODEL_DIR=/models/tiny",
    ]


def test_without_a_model_dir_the_serve_env_leaves_it_empty():
    lines = _serve_env(Settings(), None)
    assert "F5_WORKER_MODEL_DIR=" in lines


def test_the_banner_frames_every_line_to_the_longest(capsys):
    _banner(["short", "a longer line"])
    assert capsys.readouterr().err.splitlines() == [
        "!" * 17,
        "! short         !",
        "! a longer line !",
        "!" * 17,
    ]
