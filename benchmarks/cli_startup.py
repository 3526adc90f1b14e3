"""Start-up time of producer commands (no torch import), side by side with a bare interpreter, and how long
`f5-worker run` takes to refuse a wrong queue URL (exit 2, before any model is loaded; goal: under 3 s).

.venv/bin/python benchmarks/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

if not __package__:  # run as a script: the repository root, for `benchmarks._moto`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._moto import moto_server

COMMANDS = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "f5-worker --help": [sys.executable, "-m", "consumer", "--help"],
    "f5-worker voices list --help": [sys.executable, "-m", "consumer", "voices", "list", "--help"],
    "import contracts": [sys.executable, "-c", "import contracts"],
    "import consumer.producer.client": [sys.executable, "-c", "import consumer.producer.client"],
    "import torch (for scale)": [sys.executable, "-c", "import torch"],
}


def _wrong_queue_env(endpoint: str) -> dict[str, str]:
    """Settings naming a queue that does not exist on the live server at `endpoint`."""
    return dict(
        os.environ,
        F5_WORKER_AWS_ENDPOINT_URL=endpoint,
        F5_WORKER_QUEUE_URL=f"{endpoint}/000000000000/no-such-queue",
        F5_WORKER_BUCKET="no-such-bucket",
        F5_WORKER_MODEL_DIR="/never/loaded",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with moto_server() as endpoint:
        measure(_wrong_queue_env(endpoint), args.runs)


def measure(env: dict[str, str], runs: int) -> None:
    commands = {**COMMANDS, "f5-worker run, wrong queue (exit 2)": [sys.executable, "-m", "consumer", "run"]}
    floor = None
    for name, cmd in commands.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            result = subprocess.run(cmd, capture_output=True, env=env)
            times.append(time.perf_counter() - started)
            expected = 2 if cmd[-1] == "run" else 0
            assert result.returncode == expected, (name, result.returncode, result.stderr[-300:])
        median = statistics.median(times)
        floor = floor or median
        print(f"{name:36s} median {median * 1000:7.0f} ms  ({median / floor:4.1f}x the bare interpreter)")


if __name__ == "__main__":
    main()
