"""`f5-worker run` checks settings, model and AWS before loading the model: a user's mistake ends in a line naming
the cause and a line naming the fix, exit code 2, in seconds, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from consumer.core.errors import ConfigurationError
from consumer.core.settings import Settings
from consumer.worker.preflight import check_aws, check_model, check_settings


def _run(env: dict[str, str], tmp_path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("F5_WORKER_", "AWS_"))}
    base = {
        "HOME": str(tmp_path),  # no ~/.aws, no model cache
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "F5_WORKER_CACHE_DIR": str(tmp_path / "cache"),
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "consumer.cli", *(args or ("run",))],
        env=clean | base | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - started


def _prepared_model_dir(tmp_path) -> str:
    """What the preflight checks of a model directory (the loader checks the rest, after the preflight)."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "model.json").write_text("{}")
    return str(model)


@pytest.fixture
def aws_env(stack, tmp_path) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "F5_WORKER_AWS_ENDPOINT_URL": stack.endpoint_url,
        "F5_WORKER_QUEUE_URL": stack.resources.queue_url,
        "F5_WORKER_BUCKET": stack.resources.bucket,
        "F5_WORKER_MODEL_DIR": _prepared_model_dir(tmp_path),  # never loaded: every case fails before
    }


@pytest.mark.parametrize(
    ("change", "cause", "fix"),
    [
        ({"F5_WORKER_QUEUE_URL": "{endpoint}/000000000000/no-such-queue"}, "does not exist", "f5-worker init"),
        ({"F5_WORKER_BUCKET": "no-such-bucket-here"}, "bucket no-such-bucket-here does not exist", "F5_WORKER_BUCKET"),
        ({"F5_WORKER_AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "cannot reach http://127.0.0.1:9", "start it"),
        ({"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}, "no AWS credentials", "AWS_ACCESS_KEY_ID"),
        ({"F5_WORKER_QUEUE_URL": None}, "F5_WORKER_QUEUE_URL not set", "f5-worker init"),
        ({"F5_WORKER_MODEL_DIR": None}, "no model configured", "F5_WORKER_MODEL_DIR"),
        (
            {"F5_WORKER_MODEL_DIR": "/nonexistent/model"},
            "F5_WORKER_MODEL_DIR=/nonexistent/model does not exist",
            "point F5_WORKER_MODEL_DIR at a prepared model directory",
        ),
        (
            {"F5_WORKER_VISIBILITY_TIMEOUT_S": "abc"},
            "F5_WORKER_VISIBILITY_TIMEOUT_S='abc' is not valid: it takes a whole number from 2 to 43200",
            "set F5_WORKER_VISIBILITY_TIMEOUT_S to a whole number",
        ),
    ],
)
def test_run_names_the_cause_and_the_fix_and_exits_2_before_loading_the_model(
    aws_env, stack, tmp_path, change, cause, fix
):
    env = dict(aws_env)
    for key, value in change.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value.format(endpoint=stack.endpoint_url)
    result, elapsed = _run(env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert cause in result.stderr and "fix: " in result.stderr and fix in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "model_loaded" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) <= 3, result.stderr
    assert elapsed < 20


def test_the_model_hint_names_the_generated_tiny_model_when_there_is_one(tmp_path):
    (tmp_path / "random-tiny").mkdir()
    (tmp_path / "random-tiny" / "model.json").write_text("{}")
    with pytest.raises(ConfigurationError) as err:
        check_model(Settings(cache_dir=tmp_path))
    assert f"F5_WORKER_MODEL_DIR={tmp_path / 'random-tiny'}" in err.value.fix
    check_model(Settings(cache_dir=tmp_path, model_dir=tmp_path / "random-tiny"))  # configured: no complaint
    check_model(Settings(checkpoint="hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors"))  # on purpose


def test_checks_pass_on_a_working_stack(stack):
    settings = stack.settings()
    check_settings(settings)
    check_aws(settings)


def test_run_flags_override_the_environment(aws_env, stack, tmp_path):
    env = {k: v for k, v in aws_env.items() if k not in ("F5_WORKER_QUEUE_URL", "F5_WORKER_BUCKET")}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("F5_WORKER_", "AWS_"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "consumer.cli",
            "run",
            "--queue-url",
            f"{stack.endpoint_url}/000000000000/flagged",
            "--bucket",
            stack.resources.bucket,
            "--model-dir",
            _prepared_model_dir(tmp_path),
        ],
        env=clean | env | {"AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "flagged does not exist" in result.stderr, result.stderr


SENTINEL_SECRETS = {"F5_WORKER_WEBHOOK_SECRET": "whsec_SENTINEL", "F5_WORKER_API_KEY_HASHES": "a:SENTINEL"}


@pytest.mark.parametrize(
    ("command", "env", "cause"),
    [
        (("run",), {"F5_WORKER_VISIBILITY_TIMEOUT_S": "abc"}, "F5_WORKER_VISIBILITY_TIMEOUT_S='abc' is not valid"),
        (("run",), {"F5_WORKER_MODEL_DIR": "/nonexistent/model"}, "F5_WORKER_MODEL_DIR=/nonexistent/model"),
        (("run", "--max-in-flight", "0"), {}, "F5_WORKER_MAX_IN_FLIGHT='0' is not valid"),
        (("jobs", "list"), {"F5_WORKER_MAX_IN_FLIGHT": "-1"}, "F5_WORKER_MAX_IN_FLIGHT='-1' is not valid"),
        (("api",), {"F5_WORKER_API_PORT": "http"}, "F5_WORKER_API_PORT='http' is not valid"),
        (("api", "--port", "70000"), {}, "F5_WORKER_API_PORT='70000' is not valid"),
    ],
)
def test_a_bad_setting_is_a_cause_line_and_a_fix_line_and_exit_2(tmp_path, command, env, cause):
    """Through the real CLI: no traceback, no pydantic dump, no other setting's value."""
    result, _ = _run(SENTINEL_SECRETS | {"F5_WORKER_QUEUE_URL": "q", "F5_WORKER_BUCKET": "b"} | env, tmp_path, *command)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("f5-worker: ") and lines[1].startswith("  fix: "), result.stderr
    assert cause in lines[0]
    assert "Traceback" not in result.stderr + result.stdout and "pydantic" not in result.stderr
    assert "SENTINEL" not in result.stderr + result.stdout


def test_a_model_dir_without_model_json_is_refused_before_loading(tmp_path):
    with pytest.raises(ConfigurationError, match=f"F5_WORKER_MODEL_DIR={tmp_path} holds no model.json"):
        check_model(Settings(model_dir=tmp_path))
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigurationError, match="is not a directory"):
        check_model(Settings(model_dir=tmp_path / "file"))
    check_model(Settings(model_dir=tmp_path / "missing", engine="fake"))  # the fake engine loads no model


def test_a_bucket_the_policy_cannot_head_passes_but_a_missing_one_does_not(monkeypatch):
    """The generated policies grant s3:ListBucket per prefix only, so HeadBucket answers 403 on real AWS for a
    bucket the worker may use: the preflight must not refuse to start for that. A missing bucket (404) still does."""
    import boto3
    from botocore.stub import Stubber

    from consumer.aws import probe

    settings = Settings(queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q", bucket="audio")
    keys = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "y"}
    sqs, s3 = boto3.client("sqs", **keys), boto3.client("s3", **keys)
    monkeypatch.setattr(probe, "_quick_clients", lambda _settings: (sqs, s3))
    with Stubber(sqs) as queue, Stubber(s3) as bucket:
        for status in (403, 404):
            queue.add_response("get_queue_attributes", {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:1:q"}})
            bucket.add_client_error("head_bucket", str(status), http_status_code=status)
        probe.check_aws(settings)
        with pytest.raises(ConfigurationError):
            probe.check_aws(settings)
