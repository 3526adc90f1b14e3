"""Every benchmark and harness runs on a newcomer's machine: no AWS_* variables and no ~/.aws (HOME is an empty
directory). Each script's smallest case runs in such an environment, all of them started together (most of their
time is waiting); each must exit 0 without a traceback. Scripts that talk to an embedded AWS bring their own
throwaway credentials (`consumer.aws.embedded.use_emulator_credentials`), as `f5-worker local` does."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.paths import REPO

ROOT = REPO
TIMEOUT_S = 240

# Each script's smallest case: few messages/characters, one round, the tiny model on the CPU, a fake engine
# where the script has one. gpu_ready's `--allow-cpu --size tiny` is its own documented script check.
CASES: dict[str, str] = {
    "benchmarks/longform.py": "benchmarks/longform.py --chars 200 --device cpu",
    "benchmarks/api.py": "benchmarks/api.py --jobs 1 --concurrent 2",
    "benchmarks/streaming.py": "benchmarks/streaming.py --jobs 1 --chars 500 --chunk-ms 50",
    "benchmarks/first_chunk.py": "benchmarks/first_chunk.py --lengths 10 60 --repeats 1 --nfe 2 4",
    "benchmarks/cli_startup.py": "benchmarks/cli_startup.py --runs 1",
    "benchmarks/consumer.py": "benchmarks/consumer.py --messages 5",
    "benchmarks/pipeline.py": "benchmarks/pipeline.py --messages 2 --device-ms 10 --latency-ms 0 --in-flight 1 "
    "--low-load 0",
    "benchmarks/engine.py": "benchmarks/engine.py --device cpu --messages 1 --nfe 2 --rounds 0 --overhead-calls 1",
    "benchmarks/throughput.py": "benchmarks/throughput.py --device cpu --messages 2 --batch 2 --nfe 2",
    "benchmarks/gpu_ready.py": "benchmarks/gpu_ready.py --allow-cpu --size tiny --device cpu --jobs 1 --nfe 2",
    "tests.harness.faults": "-m tests.harness.faults --jobs 2 --rate 0",
    "tests.harness.soak": "-m tests.harness.soak --messages 10 --warmup 2",
    "tests.harness.chaos": "-m tests.harness.chaos --workers 1 --jobs 2 --kills 0 --pauses 0 --work-s 0.1",
}

# Not AWS settings, and nothing else from this machine's environment reaches the scripts. One thread per
# process: eleven at once on a small machine, and torch's thread pools would fight over its cores. The workers'
# long poll (default 20 s) ends their burst runs in 1 s: seconds per case instead of a minute.
ALL_ENV = {"OMP_NUM_THREADS": "1"}
EXTRA_ENV: dict[str, dict[str, str]] = {
    "benchmarks/api.py": {"F5_WORKER_WAIT_TIME_S": "1"},
    "benchmarks/pipeline.py": {"F5_WORKER_WAIT_TIME_S": "1"},
}


@dataclass
class Outcome:
    returncode: int | None  # None: still running at the deadline (killed, with its children)
    output: str


def bare_env(home: Path) -> dict[str, str]:
    """A newcomer's environment: PATH and an empty HOME, no AWS_* variables at all."""
    return {"PATH": os.environ["PATH"], "HOME": str(home)}


def _start(name: str, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    home = workdir / "home"
    home.mkdir(parents=True)
    log = workdir / "output.txt"
    with log.open("wb") as sink:  # a file, not a pipe: no child blocks on a full pipe while others are read
        proc = subprocess.Popen(
            [sys.executable, *shlex.split(CASES[name])],
            cwd=ROOT,
            env=bare_env(home) | ALL_ENV | EXTRA_ENV.get(name, {}),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group: a timeout kills the children it started too
        )
    return proc, log


def _finish(proc: subprocess.Popen[bytes], log: Path, deadline: float) -> Outcome:
    try:
        returncode: int | None = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its moto server, API or workers too
        proc.wait()
        returncode = None
    return Outcome(returncode, log.read_text(errors="replace"))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """All cases started together, each in its own empty HOME, and waited for."""
    deadline = time.monotonic() + TIMEOUT_S
    running = {name: _start(name, tmp_path_factory.mktemp(name.replace("/", "_"))) for name in CASES}
    return {name: _finish(proc, log, deadline) for name, (proc, log) in running.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_the_smallest_case_runs_without_aws_credentials(outcomes: dict[str, Outcome], name: str) -> None:
    outcome = outcomes[name]
    tail = outcome.output[-3000:]
    assert "NoCredentialsError" not in outcome.output, tail
    assert "Traceback" not in outcome.output, tail
    assert outcome.returncode == 0, f"exit {outcome.returncode} (None: over {TIMEOUT_S} s)\n{tail}"
