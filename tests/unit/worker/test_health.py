"""The container's health endpoints: alive while the model loads, ready once it is loaded, and alive after that
only while the queue is polled, counting from ready until the first poll (a worker between `worker_ready` and
its first poll is not dead); loopback by default, a bearer token for /metrics beyond it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from consumer.cli import app
from consumer.core.errors import ConfigurationError
from consumer.core.metrics import Metrics
from consumer.core.settings import WorkerSettings, is_loopback, load_role
from consumer.worker.health import HealthServer


def _server(max_poll_age_s: float) -> tuple[HealthServer, Metrics]:
    metrics = Metrics()
    return HealthServer(metrics, max_poll_age_s, port=0, host="127.0.0.1"), metrics


def test_alive_while_starting_and_not_ready_until_marked() -> None:
    server, _ = _server(0.2)
    assert server.respond("/healthz")[0] == 200
    assert server.respond("/readyz")[:2] == (503, b"starting\n")
    server.mark_ready()
    assert server.respond("/readyz")[:2] == (200, b"ready\n")


def test_between_ready_and_the_first_poll_the_worker_is_alive_until_that_poll_is_overdue() -> None:
    server, metrics = _server(0.2)
    server.mark_ready()
    assert server.respond("/healthz")[0] == 200  # no poll yet, just ready
    time.sleep(0.3)
    assert server.respond("/healthz")[0] == 503  # the first poll is overdue
    metrics.poll_succeeded()
    assert server.respond("/healthz")[0] == 200
    time.sleep(0.3)
    assert server.respond("/healthz")[0] == 503  # polls stopped


def _get(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _other_address() -> str | None:
    """This machine's address on a non-loopback interface, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_by_default_it_listens_on_loopback_only() -> None:
    server = HealthServer(Metrics(), 60, port=0).start()
    try:
        assert _get(f"http://127.0.0.1:{server.port}/metrics") == 200
        other = _other_address()
        if other is not None:  # the port is not open on the machine's other addresses
            with pytest.raises(OSError):
                socket.create_connection((other, server.port), timeout=2).close()
    finally:
        server.close()


def test_with_a_token_metrics_need_it_and_the_probes_stay_open() -> None:
    server = HealthServer(Metrics(), 60, port=0, host="0.0.0.0", token="s3cret-token").start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert _get(f"{base}/metrics") == 401
        assert _get(f"{base}/metrics", "wrong-token") == 401
        assert _get(f"{base}/metrics", "s3cret-token") == 200
        assert _get(f"{base}/healthz") == 200 and _get(f"{base}/readyz") == 503  # open, no header needed
        status, body, _ = server.respond("/metrics", "Basic s3cret-token")  # another scheme is no bearer
        assert status == 401 and b"s3cret" not in body
        assert _get(f"{base}/other") == 401 and _get(f"{base}/other", "s3cret-token") == 404  # beyond probes: token
    finally:
        server.close()


def test_a_health_host_beyond_loopback_needs_a_token_and_the_token_stays_secret() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_role(WorkerSettings, health_host="0.0.0.0")
    assert "F5_WORKER_HEALTH_TOKEN" in refused.value.fix and "/metrics" in str(refused.value)
    settings = WorkerSettings(health_host="0.0.0.0", health_token="s3cret-token")
    assert "s3cret-token" not in repr(settings) and "s3cret-token" not in str(settings.model_dump())
    assert WorkerSettings(health_host="::1").health_token is None  # loopback needs none
    with pytest.raises(ConfigurationError):  # an empty token is no token
        load_role(WorkerSettings, health_host="0.0.0.0", health_token=" ")


def test_check_reaches_a_worker_listening_on_every_address(monkeypatch) -> None:
    server = HealthServer(Metrics(), 60, port=0, host="0.0.0.0", token="t").start()
    server.mark_ready()
    server.metrics.poll_succeeded()
    try:
        runner = CliRunner()
        ok = runner.invoke(app, ["check", "--port", str(server.port), "--host", "0.0.0.0"])
        assert ok.exit_code == 0, ok.output
        monkeypatch.setenv("F5_WORKER_HEALTH_HOST", "127.0.0.1")
        assert runner.invoke(app, ["check", "--port", str(server.port)]).exit_code == 0
    finally:
        server.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.1.2.3", False),
        ("worker.example", False),
    ],
)
def test_only_loopback_addresses_go_without_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("F5_WORKER_", "AWS_"))}
    command = [sys.executable, "-m", "consumer", "run"]
    return subprocess.run(command, env=base | env, capture_output=True, text=True, timeout=60)


def test_run_beyond_loopback_without_a_token_stops_in_two_lines_and_never_shows_a_token() -> None:
    refused = _run({"F5_WORKER_HEALTH_HOST": "0.0.0.0", "F5_WORKER_HEALTH_PORT": "8080"})
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 2, refused.stderr
    assert "F5_WORKER_HEALTH_HOST=0.0.0.0" in lines[0] and "/metrics" in lines[0]
    assert lines[1].startswith("  fix: ") and "F5_WORKER_HEALTH_TOKEN" in lines[1]
    # With the token and another mistake, the message names the mistake and never the token.
    other = _run(
        {"F5_WORKER_HEALTH_HOST": "0.0.0.0", "F5_WORKER_HEALTH_TOKEN": "s3cret-token", "F5_WORKER_HEALTH_PORT": "http"}
    )
    assert other.returncode == 2 and "F5_WORKER_HEALTH_PORT" in other.stderr, other.stderr
    assert "s3cret-token" not in other.stderr + other.stdout


def test_check_sends_the_token_and_a_wrong_one_is_refused(monkeypatch, caplog, capfd) -> None:
    server = HealthServer(Metrics(), 60, port=0, host="0.0.0.0", token="s3cret-token").start()
    server.mark_ready()
    server.metrics.poll_succeeded()
    runner = CliRunner()
    metrics = ["check", "--port", str(server.port), "--path", "/metrics"]
    try:
        monkeypatch.delenv("F5_WORKER_HEALTH_TOKEN", raising=False)
        without = runner.invoke(app, metrics)
        assert without.exit_code == 1 and "answered 401" in without.output, without.output
        monkeypatch.setenv("F5_WORKER_HEALTH_TOKEN", "wrong-token")
        wrong = runner.invoke(app, metrics)
        assert wrong.exit_code == 1 and "wrong-token" not in wrong.output
        assert runner.invoke(app, ["check", "--port", str(server.port)]).exit_code == 0  # probes: open anyway
        monkeypatch.setenv("F5_WORKER_HEALTH_TOKEN", "s3cret-token")
        assert runner.invoke(app, metrics).exit_code == 0
    finally:
        server.close()
    logged = caplog.text + "".join(capfd.readouterr())
    assert "s3cret-token" not in logged and "wrong-token" not in logged
