"""`python -m consumer` is the `f5-worker` command."""

from __future__ import annotations

import subprocess
import sys


def test_python_dash_m_consumer_prints_the_help_and_exits_0(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "-h"], cwd=repo_root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "F5-TTS behind SQS" in result.stdout
    for command in ("run", "enqueue", "jobs", "status", "infra"):
        assert command in result.stdout


def test_python_dash_m_consumer_with_an_unknown_command_exits_2(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "consumer", "no-such-command"], cwd=repo_root, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "no-such-command" in result.stderr
