"""Bounded soak: many messages through one in-process worker, with RSS, open file descriptors and temp-dir
size sampled as it goes; prints their slopes (no growth trend expected). A warm-up batch runs first, unsampled,
so caches, pools and kernels have filled before the slope is measured (measured: over 400 messages without one,
the second half still rose by 30-40 MB per 1,000 while caches filled; 1,200 messages then settled at 2.5).

The engine is a recorded one: real F5-TTS output (the tiny random checkpoint) synthesized once per distinct
text and replayed, so everything but the sampling loop runs for every message. moto runs in its own
process, so its growing object store does not count against the worker's memory.

    .venv/bin/python -m tests.harness.soak --messages 2000
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consumer.aws.clients import make_clients
from consumer.aws.embedded import use_emulator_credentials
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.logs import configure
from consumer.core.settings import Settings
from consumer.engine import Engine, SynthesisJob, SynthesizedAudio
from consumer.producer.voice_library import VoiceLibrary
from consumer.worker.loop import Worker
from consumer.worker.services import build_services

TEXTS = [f"Soak test sentence number {i}, spoken at a steady pace." for i in range(5)]


class RecordedEngine:
    """Replays what a real engine produced for each (text, seed), recording on first use."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.model_id = f"recorded:{engine.model_id}"
        self.device = engine.device
        self.sample_rate = engine.sample_rate
        self._recorded: dict[str, SynthesizedAudio] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        self._engine.load()

    def warm_up(self) -> None: ...

    def close(self) -> None:
        self._engine.close()

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        with self._lock:
            if job.text not in self._recorded:
                self._recorded[job.text] = self._engine.synthesize(job)
            audio = self._recorded[job.text]
        return SynthesizedAudio(audio.samples.copy(), audio.sample_rate, job.seed)


def _trim() -> None:
    """Hand freed heap back to the OS before sampling (glibc keeps freed arenas mapped: RSS would then measure
    the allocator's high-water mark, not what is still alive)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _rss_mb() -> float:
    _trim()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _tmp_bytes(root_dir: Path) -> int:
    total = 0
    for root, _, files in os.walk(root_dir):
        for name in files:
            with contextlib.suppress(OSError):  # files come and go while we walk
                total += (Path(root) / name).stat().st_size
    return total


@dataclass
class SoakReport:
    messages: int
    done: float
    rss_slope_mb_per_1k: float
    fd_slope_per_1k: float
    tmp_slope_mb_per_1k: float
    rss_start_mb: float
    rss_end_mb: float
    elapsed_s: float

    def summary(self) -> str:
        return (
            f"soak: messages={self.messages} done={self.done:.0f} "
            f"rss={self.rss_start_mb:.0f}->{self.rss_end_mb:.0f} MB "
            f"rss_slope_mb_per_1k={self.rss_slope_mb_per_1k:.2f} fd_slope_per_1k={self.fd_slope_per_1k:.2f} "
            f"tmp_slope_mb_per_1k={self.tmp_slope_mb_per_1k:.2f} elapsed_s={self.elapsed_s:.1f} "
            f"msg_per_s={self.done / self.elapsed_s:.1f}"
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope over the measured run (the warm-up ran before it)."""
    if len(xs) < 3:
        return float("nan")
    return float(np.polyfit(xs, ys, 1)[0])


def _enqueue(admin, queue_url: str, first: int, count: int) -> None:
    for start in range(first, first + count, 10):
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps(
                    {
                        "job_id": f"soak-{start + i:05d}",
                        "text": TEXTS[(start + i) % len(TEXTS)],
                        "voice": {"voice_id": "basic-en"},
                        "output": {"format": ["wav", "flac", "mp3", "opus"][(start + i) % 4]},
                    }
                ),
            }
            for i in range(min(10, first + count - start))
        ]
        admin.sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)


def run_soak(messages: int = 300, model_dir: Path | None = None, warmup: int = 200) -> SoakReport:
    configure("ERROR")
    from consumer.engine.f5 import F5Engine
    from consumer.engine.model_spec import load_model_dir
    from consumer.engine.random_model import ensure_random_model

    model_dir = model_dir or ensure_random_model(Path(tempfile.gettempdir()) / "f5-worker-models", "tiny")
    engine = RecordedEngine(F5Engine(load_model_dir(model_dir), device="cpu"))
    engine.load()
    port = _free_port()
    use_emulator_credentials()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    # The worker's temp files go to a directory of this run's own, so that only they are measured (other
    # processes, e.g. tests running alongside, write to the system's temp directory too).
    scratch = Path(tempfile.mkdtemp(prefix="f5-soak-"))
    system_tmp, tempfile.tempdir = tempfile.tempdir, str(scratch)
    try:
        base = Settings(aws_endpoint_url=endpoint)
        for _ in range(100):
            try:
                admin = make_clients(base)
                res = bootstrap(admin, ResourceSpec(name="soak", bucket="soak-audio", events_queue=False))
                break
            except Exception:
                time.sleep(0.1)
        VoiceLibrary(admin.s3, res.bucket).add_example("basic-en")
        settings = Settings(
            aws_endpoint_url=endpoint,
            **res.settings_fields(),
            wait_time_s=1,
            burst=True,
            max_in_flight=4,
            log_level="ERROR",
            scratch_dir=scratch,
        )
        services = build_services(settings, engine, clients=make_clients(settings))
        _enqueue(admin, res.queue_url, 0, warmup)
        Worker(services).run()  # warm-up: not sampled
        warmed = services.metrics.count("done")
        _enqueue(admin, res.queue_url, warmup, messages)
        samples: list[tuple[float, float, float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                samples.append(
                    (
                        services.metrics.count("done") - warmed,
                        _rss_mb(),
                        len(list(Path("/proc/self/fd").iterdir())),
                        _tmp_bytes(scratch) / 2**20,
                    )
                )

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.monotonic()
        sampler.start()
        Worker(services).run()
        stop.set()
        sampler.join()
        elapsed = time.monotonic() - started
        done, rss, fds, tmp = (list(col) for col in zip(*samples, strict=True))
        per_k = [d / 1000 for d in done]
        return SoakReport(
            messages,
            services.metrics.count("done") - warmed,
            _slope(per_k, rss),
            _slope(per_k, fds),
            _slope(per_k, tmp),
            rss[0],
            rss[-1],
            elapsed,
        )
    finally:
        tempfile.tempdir = system_tmp
        shutil.rmtree(scratch, ignore_errors=True)
        moto.terminate()
        moto.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200, help="messages processed before sampling starts")
    args = parser.parse_args()
    report = run_soak(args.messages, warmup=args.warmup)
    print(report.summary())
    return 0 if report.done == args.messages else 1


if __name__ == "__main__":
    raise SystemExit(main())
