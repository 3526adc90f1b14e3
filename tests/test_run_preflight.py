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


def _run(env: dict[str, str], tmp_path) -> tuple[subprocess.CompletedProcess[str], float]:
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
        [sys.executable, "-m", "consumer.cli", "run"],
        env=clean | base | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - started


@pytest.fixture
def aws_env(stack) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "F5_WORKER_AWS_ENDPOINT_URL": stack.endpoint_url,
        "F5_WORKER_QUEUE_URL": stack.resources.queue_url,
        "F5_WORKER_BUCKET": stack.resources.bucket,
        "F5_WORKER_MODEL_DIR": "/nonexistent/model",  # never loaded: every case fails before
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
            "/nonexistent/model",
        ],
        env=clean | env | {"AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "flagged does not exist" in result.stderr, result.stderr
