"""Every command speaks one language: typer throughout (`-h`, completion), and a user's mistake ends in a line
naming the cause and a line naming the fix, through the real `f5-worker` entry point: `init` (its example voice, an
unreachable AWS), the voice check of `say` and `enqueue`, an empty voice library, `check` outside the image."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
from botocore.exceptions import EndpointConnectionError

from consumer.aws.failures import explain_aws_failure
from consumer.aws.resources import ResourceSpec
from consumer.cli import app
from consumer.core.settings import Settings
from consumer.ops import cli as ops_cli
from consumer.ops.infra import DEFAULT_OUTPUT
from consumer.ops.init import _parser as hook_parser

F5_WORKER = str(Path(sys.executable).with_name("f5-worker"))


def bare_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No F5_WORKER_* or AWS_* from the caller's shell, no ~/.aws, no instance metadata: only `extra`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("F5_WORKER_", "AWS_", "_F5_WORKER"))}
    return clean | {
        "HOME": str(tmp_path),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "F5_WORKER_CACHE_DIR": str(tmp_path / "cache"),
        **extra,
    }


def stack_env(stack, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The producer commands pointed at this test's stack."""
    settings = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "F5_WORKER_AWS_ENDPOINT_URL": stack.endpoint_url,
        "F5_WORKER_QUEUE_URL": stack.resources.queue_url,
        "F5_WORKER_BUCKET": stack.resources.bucket,
    }
    return bare_env(tmp_path, **(settings | extra))


def f5_worker(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([F5_WORKER, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)


def assert_users_mistake(result: subprocess.CompletedProcess[str], cause: str, fix: str) -> None:
    """Exit 2, the cause and the fix in two lines, no traceback."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and cause in lines[0] and lines[1].startswith("  fix: ") and fix in lines[1], lines
    assert "Traceback" not in result.stderr


def _env_file(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


# --- init -------------------------------------------------------------------------------------------------------
def _init(aws_endpoint: str, tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    name = f"c{uuid.uuid4().hex[:10]}"
    result = f5_worker("init", "--endpoint-url", aws_endpoint, "--name", name, *options, env=bare_env(tmp_path))
    assert result.returncode == 0, result.stderr
    return result, bare_env(tmp_path) | _env_file(result.stdout)


def test_init_stores_the_example_voice_that_say_uses_by_default(aws_endpoint, tmp_path):
    result, env = _init(aws_endpoint, tmp_path)
    assert "voice basic-en added" in result.stderr
    listed = f5_worker("voices", "list", env=env)
    assert listed.returncode == 0 and listed.stdout.startswith("basic-en\t"), listed.stderr


def test_the_localstack_hooks_python_creates_the_resources_without_the_example_voice(aws_endpoint, tmp_path):
    # LocalStack's own Python has boto3 and pydantic, no numpy: `python -m consumer.ops.init` still succeeds
    hook = "import runpy, sys; sys.modules['numpy'] = None; runpy.run_module('consumer.ops.init', run_name='__main__')"
    args = [sys.executable, "-c", hook, "--endpoint-url", aws_endpoint, "--name", f"k{uuid.uuid4().hex[:10]}"]
    result = subprocess.run(args, env=bare_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "F5_WORKER_QUEUE_URL=" in result.stdout, result.stderr
    assert result.stderr.startswith("f5-worker init: example voice basic-en not added: ") and "numpy" in result.stderr
    assert result.stderr.count("\n") == 1


def test_an_empty_library_says_how_to_add_a_voice_and_say_refuses_its_missing_default(aws_endpoint, tmp_path):
    _, env = _init(aws_endpoint, tmp_path, "--no-example-voice")
    listed = f5_worker("voices", "list", env=env)
    assert listed.returncode == 0 and listed.stdout == ""
    assert listed.stderr.count("\n") == 1 and "f5-worker voices add ID CLIP --transcript" in listed.stderr
    said = f5_worker("say", "Hello.", env=env)
    assert_users_mistake(said, "unknown voice 'basic-en'", "`f5-worker init` adds basic-en")
    assert "f5-worker voices list" in said.stderr


def test_enqueue_refuses_an_unknown_voice_before_queueing(stack, tmp_path):
    requests = [
        {"job_id": "known-1", "text": "Hello.", "voice": {"voice_id": "basic-en"}},
        {"job_id": "typo-1", "text": "Hello.", "voice": {"voice_id": "basic-eng"}},
    ]
    result = f5_worker("enqueue", "-", env=stack_env(stack, tmp_path), stdin=json.dumps(requests))
    assert_users_mistake(result, "unknown voice 'basic-eng'", "f5-worker voices add")
    assert stack.queue_counts() == (0, 0)  # nothing queued, not even the request with a known voice
    queued = f5_worker("enqueue", "-", env=stack_env(stack, tmp_path), stdin=json.dumps(requests[0]))
    assert queued.returncode == 0 and queued.stdout.strip() == "queued known-1", queued.stderr


def test_init_against_an_unreachable_aws_names_the_network_not_an_emulator(tmp_path):
    # AWS itself (no --endpoint-url), out of reach: botocore's own endpoint variable sends SQS to a closed port
    env = bare_env(
        tmp_path, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y", AWS_ENDPOINT_URL_SQS="http://127.0.0.1:9"
    )
    result = f5_worker("init", env=env)
    assert_users_mistake(result, "cannot reach AWS (us-east-1)", "check the network connection")
    assert "start it" not in result.stderr


def test_an_unreachable_endpoint_is_explained_by_who_runs_it():
    exc = EndpointConnectionError(endpoint_url="https://sqs.eu-west-1.amazonaws.com/")
    aws = explain_aws_failure(exc, Settings(aws_region="eu-west-1"))
    assert str(aws) == "cannot reach AWS (eu-west-1) at https://sqs.eu-west-1.amazonaws.com/"
    assert "network" in aws.fix and "F5_WORKER_AWS_REGION" in aws.fix and "start" not in aws.fix
    emulator = explain_aws_failure(exc, Settings(aws_endpoint_url="http://127.0.0.1:4566"))
    assert str(emulator) == "cannot reach http://127.0.0.1:4566" and emulator.fix.startswith("start it")


def _typer_options(command: str) -> set[str]:
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {name for param in click_command.params for name in (*param.opts, *param.secondary_opts)}


def test_init_and_the_localstack_hook_entry_take_the_same_options():
    parser: argparse.ArgumentParser = hook_parser()
    hook = {name for action in parser._actions for name in action.option_strings}
    assert _typer_options("init") == hook - {"-h", "--help"}  # click adds its help option to the context
    assert {"--endpoint-url", "--no-events-queue", "--example-voice", "--no-example-voice"} <= hook


def test_the_defaults_restated_for_help_are_the_real_ones():
    assert ResourceSpec().name == ops_cli.DEFAULT_NAME
    assert ops_cli.DEFAULT_TEMPLATE == DEFAULT_OUTPUT


# --- help and completion ----------------------------------------------------------------------------------------
def test_dash_h_is_help_through_the_entry_point(tmp_path):
    for command in (["init"], ["infra"], ["voices", "add"], ["api"], ["api", "keys", "create"]):
        result = f5_worker(*command, "-h", env=bare_env(tmp_path))
        assert result.returncode == 0 and result.stdout.startswith("Usage: f5-worker"), (command, result.stderr)


def test_shell_completion_is_offered_and_completes_init_options(tmp_path):
    script = f5_worker("--show-completion", "bash", env=bare_env(tmp_path))
    assert script.returncode == 0 and "_F5_WORKER_COMPLETE=complete_bash" in script.stdout
    completing = bare_env(tmp_path, _F5_WORKER_COMPLETE="complete_bash", COMP_WORDS="f5-worker init --", COMP_CWORD="2")
    words = f5_worker(env=completing).stdout.split()
    assert {"--endpoint-url", "--no-events-queue", "--no-example-voice"} <= set(words), words


# --- check --------------------------------------------------------------------------------------------------------
@pytest.fixture
def health_server() -> Iterator[tuple[int, dict[str, tuple[int, bytes]]]]:
    """A stand-in for the worker's health port: path -> (status, body), set by the test."""
    answers: dict[str, tuple[int, bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers.get(self.path, (404, b"not found\n"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], answers
    server.shutdown()
    server.server_close()


def test_check_says_what_it_checked_and_why_it_failed(tmp_path, health_server):
    port, answers = health_server
    answers["/readyz"] = (503, b"starting\n")
    answers["/healthz"] = (200, b"poll_age_s=None\n")  # alive while loading: a liveness probe waits
    starting = f5_worker("check", "--port", str(port), env=bare_env(tmp_path))
    ready_url, alive_url = f"http://127.0.0.1:{port}/readyz", f"http://127.0.0.1:{port}/healthz"
    assert starting.returncode == 1 and starting.stderr == f"f5-worker check: {ready_url}: answered 503: starting\n"
    alive = f5_worker("check", "--port", str(port), "--path", "/healthz", env=bare_env(tmp_path))
    assert alive.returncode == 0 and alive.stderr == ""
    answers["/readyz"] = (200, b"ready\n")
    answers["/healthz"] = (200, b"poll_age_s=1.0\n")
    healthy = f5_worker("check", "--port", str(port), env=bare_env(tmp_path))
    assert healthy.returncode == 0 and healthy.stderr == ""
    answers["/healthz"] = (503, b"poll_age_s=93.1\n")
    stale = f5_worker("check", "--port", str(port), env=bare_env(tmp_path))
    assert stale.returncode == 1 and stale.stderr == f"f5-worker check: {alive_url}: answered 503: poll_age_s=93.1\n"


def test_check_without_a_worker_says_so_in_one_line(tmp_path):
    closed = f5_worker("check", env=bare_env(tmp_path, F5_WORKER_HEALTH_PORT="9"))
    assert closed.returncode == 1 and closed.stderr.count("\n") == 1, closed.stderr
    assert closed.stderr.startswith("f5-worker check: http://127.0.0.1:9/readyz: no answer (")
    assert "no `f5-worker run` on this machine" in closed.stderr and "F5_WORKER_HEALTH_PORT" in closed.stderr
