"""Start-up time of producer commands (no torch import), side by side with a bare interpreter.

.venv/bin/python benchmarks/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "f5-worker --help": [sys.executable, "-m", "consumer", "--help"],
    "f5-worker voices list --help": [sys.executable, "-m", "consumer", "voices", "list", "--help"],
    "import contracts": [sys.executable, "-c", "import contracts"],
    "import consumer.producer.client": [sys.executable, "-c", "import consumer.producer.client"],
    "import torch (for scale)": [sys.executable, "-c", "import torch"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    floor = None
    for name, cmd in COMMANDS.items():
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        floor = floor or median
        print(f"{name:32s} median {median * 1000:7.0f} ms  ({median / floor:4.1f}x the bare interpreter)")


if __name__ == "__main__":
    main()
