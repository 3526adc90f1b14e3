"""The local provider: workers are processes found through /proc by the id in their environment (so another
controller adopts them), one GPU each where there are GPUs, stopped with SIGTERM."""

from __future__ import annotations

import os
import sys
import time
import uuid

import pytest

from consumer.core.errors import ProviderError
from consumer.fleet.providers.local import POD_ENV, LocalProvider, _environ

# Stands in for `f5-worker run`: lives until SIGTERM, never answers /readyz (so it stays "starting").
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _gone(provider: LocalProvider, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while provider.pods() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not provider.pods()


@pytest.fixture
def prefix() -> str:
    return f"unit-{uuid.uuid4().hex[:6]}"


def test_the_fleet_is_found_in_proc_and_adopted_by_another_provider(prefix: str) -> None:
    first = LocalProvider(prefix, SLEEPER, env=dict(os.environ), gpus=[])
    try:
        started = first.start(2)
        successor = LocalProvider(prefix, SLEEPER, env=dict(os.environ), gpus=[])
        assert sorted(p.pod_id for p in successor.pods()) == sorted(p.pod_id for p in started)
        assert {p.state for p in successor.pods()} == {"starting"}  # not ready: no /readyz answers
        assert LocalProvider(f"other-{prefix}", SLEEPER, env={}, gpus=[]).pods() == []
        successor.stop([started[0].pod_id])
        deadline = time.monotonic() + 10
        while len(first.pods()) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p.pod_id for p in first.pods()] == [started[1].pod_id]
    finally:
        first.close(stop_workers=True)
        assert _gone(first)


def test_each_worker_gets_its_own_gpu_its_own_id_and_health_port(prefix: str) -> None:
    provider = LocalProvider(prefix, SLEEPER, env=dict(os.environ), gpus=["0", "1"])
    try:
        started = provider.start(3)  # two GPUs: two workers
        assert len(started) == 2
        envs = [_environ(pid) for pid, _ in provider._find().values()]
        assert sorted(e["CUDA_VISIBLE_DEVICES"] for e in envs) == ["0", "1"]
        assert {e[POD_ENV] for e in envs} == {e["F5_WORKER_WORKER_ID"] for e in envs} == {p.pod_id for p in started}
        assert len({e["F5_WORKER_HEALTH_PORT"] for e in envs}) == 2
        with pytest.raises(ProviderError, match="no free GPU among 0, 1"):
            provider.start(1)
    finally:
        provider.close(stop_workers=True)
        assert _gone(provider)


def test_a_command_that_cannot_start_is_a_configuration_error(prefix: str) -> None:
    provider = LocalProvider(prefix, ["/nonexistent/f5-worker", "run"], env={}, gpus=[])
    with pytest.raises(ProviderError, match="F5_WORKER_FLEET_LOCAL_COMMAND") as caught:
        provider.start(1)
    assert caught.value.config
