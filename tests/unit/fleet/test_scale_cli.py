"""`f5-worker scale` from the command line: a policy that cannot work stops it with one line and exit 2, a
missing queue is named, and --dry-run prints each decision with its inputs and changes nothing (no lease, no
worker)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.paths import REPO
from tests.runpod_standin import RunPodStandIn
from tests.unit.cli.test_commands import assert_users_mistake, bare_env, f5_worker


def _stack_env(stack, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A bare environment pointing `scale` at the test's queue and bucket on the embedded AWS."""
    return bare_env(
        tmp_path,
        F5_WORKER_AWS_ENDPOINT_URL=stack.endpoint_url,
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        F5_WORKER_QUEUE_URL=stack.resources.queue_url,
        F5_WORKER_BUCKET=stack.resources.bucket,
        **extra,
    )


def test_a_minimum_above_the_maximum_is_refused_in_one_line(tmp_path: Path) -> None:
    result = f5_worker("scale", "--min-pods", "5", "--max-pods", "4", env=bare_env(tmp_path))
    assert_users_mistake(result, "minimum cannot exceed its maximum", "F5_WORKER_FLEET_MIN_PODS")


def test_a_zero_rate_and_a_negative_cooldown_are_refused(tmp_path: Path) -> None:
    rate = f5_worker("scale", env=bare_env(tmp_path, F5_WORKER_FLEET_FALLBACK_RATE="0"))
    assert rate.returncode == 2 and "F5_WORKER_FLEET_FALLBACK_RATE" in rate.stderr and "Traceback" not in rate.stderr
    cooldown = f5_worker("scale", env=bare_env(tmp_path, F5_WORKER_FLEET_COOLDOWN_S="-5"))
    assert cooldown.returncode == 2 and "F5_WORKER_FLEET_COOLDOWN_S" in cooldown.stderr


def test_without_a_queue_it_says_which_variable(tmp_path: Path) -> None:
    result = f5_worker("scale", "--dry-run", "--once", env=bare_env(tmp_path))
    assert_users_mistake(result, "F5_WORKER_QUEUE_URL is not set", "set F5_WORKER_QUEUE_URL")


def test_dry_run_prints_the_decision_and_its_inputs_and_changes_nothing(stack, tmp_path: Path) -> None:
    for i in range(45):
        stack.send(json.dumps({"job_id": f"dry-{i}", "text": "Hi.", "voice": {"voice_id": "basic-en"}}))
    env = _stack_env(stack, tmp_path, F5_WORKER_FLEET_NAME_PREFIX="dry-run-test")
    result = f5_worker("scale", "--dry-run", "--once", "--max-pods", "3", "--target-drain-s", "300", env=env)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    # 45 waiting at the fallback 0.1 job/s per worker drain in 300 s with 2 workers
    assert line.startswith("visible 45 in flight 0 delayed 0 oldest ? workers 0 | up   0 -> 2"), line
    assert "needed 2 at 0.1 jobs/s per worker" in line
    assert stack.objects("fleet/") == []  # no lease taken


def test_an_expired_runpod_key_stops_scale_with_one_line_and_leaves_the_fleet(stack, tmp_path: Path) -> None:
    standin = RunPodStandIn("the-right-key")
    try:
        standin.add_pod("cli-fleet-aaaa1111")  # a running pod of this fleet: left as it is
        env = _stack_env(
            stack,
            tmp_path,
            F5_WORKER_FLEET_PROVIDER="runpod",
            F5_WORKER_FLEET_NAME_PREFIX="cli-fleet",
            F5_WORKER_FLEET_RUNPOD_API_KEY="an-expired-key-0123456789",
            F5_WORKER_FLEET_RUNPOD_TEMPLATE=str(REPO / "deploy" / "runpod" / "pod.json"),
            F5_WORKER_FLEET_RUNPOD_API_URL=standin.url,
        )
        result = f5_worker("scale", "--once", env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 2 and "F5_WORKER_FLEET_RUNPOD_API_KEY" in result.stderr, lines
        assert "an-expired-key-0123456789" not in result.stderr + result.stdout
        assert standin.deployed() == [] and standin.stopped() == []
    finally:
        standin.close()
