"""`f5-worker api` through the real entry point: it refuses an unreachable AWS endpoint and a port in use (one
line each, exit 2, before `api_started`), and SIGTERM stops it gracefully with exit 0, as it stops the worker."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import httpx

from tests.unit.cli.test_commands import F5_WORKER, assert_users_mistake, f5_worker, stack_env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(process: subprocess.Popen[str], url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_api_exits_0_after_a_graceful_stop_on_sigterm(stack, tmp_path):
    port = _free_port()
    process = subprocess.Popen(
        [F5_WORKER, "api", "--port", str(port)],
        env=stack_env(stack, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_serving(process, f"http://127.0.0.1:{port}/")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert "api_started" in stderr and "Traceback" not in stderr


def test_api_refuses_a_port_in_use_before_it_starts(stack, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = f5_worker("api", "--port", str(port), env=stack_env(stack, tmp_path))
    assert_users_mistake(result, f"cannot listen on 127.0.0.1:{port}: Address already in use", "--port")
    assert "api_started" not in result.stdout + result.stderr


def test_api_refuses_an_aws_endpoint_that_does_not_answer(stack, tmp_path):
    env = stack_env(stack, tmp_path, F5_WORKER_AWS_ENDPOINT_URL="http://127.0.0.1:9")
    result = f5_worker("api", "--port", str(_free_port()), env=env)
    assert_users_mistake(result, "cannot reach http://127.0.0.1:9", "start it")
    assert "api_started" not in result.stdout + result.stderr


def test_api_refuses_a_bucket_that_does_not_exist(stack, tmp_path):
    env = stack_env(stack, tmp_path, F5_WORKER_BUCKET="no-such-bucket-here")
    result = f5_worker("api", "--port", str(_free_port()), env=env)
    assert_users_mistake(result, "bucket no-such-bucket-here does not exist", "F5_WORKER_BUCKET")


def test_api_help_says_a_bare_api_starts_the_server(tmp_path):
    result = f5_worker("api", "--help", env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0
    assert "A bare `f5-worker api` starts the server" in " ".join(result.stdout.split())
