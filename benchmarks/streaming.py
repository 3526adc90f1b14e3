"""Speak while it thinks, measured side by side in one run: `/v1/audio/speech` streamed and not, alternated job by
job, on the same text (2,000 characters), the same worker and the same latency.

- The API runs as `f5-worker api` in a child process, moto in another; every AWS call of both the API and the
  worker goes through a proxy here that adds L ms (`--latency-ms`) to each request.
- The worker runs here on a fake engine that spends T ms (`--chunk-ms`) on every chunk, the short first one
  included (T_first = T), and yields each chunk's block as it is made.

Printed per path: time to the first audio byte at the client, time to the last, chunks, and AWS requests per
job (the API's `f5_api_aws_requests_total` plus the worker's `f5_worker_aws_requests_total`). Goals: first
byte <= T_first + 4*L + 150 ms; streaming adds <= 10 % to the time to the last byte and <= 2 AWS requests per
block. `--engine tiny` measures once more with the tiny F5 model (random weights) on this machine's CPU.

    .venv/bin/python benchmarks/streaming.py [--jobs 5] [--chunk-ms 300] [--latency-ms 20] [--engine fake|tiny]

Last line: `streaming: ttfb_ms=F full_ms=W chunks=N requests_per_job=R` (the streamed path's medians).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._moto import moto_server
from benchmarks.api import wait_until_up
from consumer.aws.clients import make_clients
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.logs import configure
from consumer.core.settings import Settings
from consumer.engine.fake import FakeEngine
from consumer.producer.voice_library import VoiceLibrary

# About one F5 chunk (a reference of ~7 s leaves ~220 characters a chunk): the fake engine's chunk is a sentence.
SENTENCE = (
    "The reader hears this sentence while the worker is still making the next one, and the one after that, "
    "because every block goes to the bucket as soon as it is made and the gateway fetches it from there at once. "
)


def text_of(chars: int) -> str:
    return (SENTENCE * (chars // len(SENTENCE) + 1))[:chars].rsplit(" ", 1)[0] + "."


class LatencyProxy:
    """A TCP proxy to `upstream` that holds every request for `latency_s` before passing it on (its later bytes
    and the answers flow at once): one added round trip per AWS call, whichever process makes it."""

    def __init__(self, upstream: str, latency_s: float) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self._upstream = (host, int(port))
        self._latency_s = latency_s
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", self.port))
        ready.set()
        self._loop.run_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        answered = asyncio.Event()  # a request's first bytes after an answer (or the first) start a new request
        answered.set()

        async def requests() -> None:
            try:
                while data := await reader.read(1 << 16):
                    if answered.is_set():
                        answered.clear()
                        await asyncio.sleep(self._latency_s)
                    up_writer.write(data)
                    await up_writer.drain()
            except OSError:
                pass
            finally:
                up_writer.close()

        async def answers() -> None:
            try:
                while data := await up_reader.read(1 << 16):
                    answered.set()
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        await asyncio.gather(requests(), answers())


def worker_requests(registry) -> Counter:
    return Counter(
        {
            f"worker {s.labels['operation']}": s.value
            for metric in registry.collect()
            if metric.name == "f5_worker_aws_requests"
            for s in metric.samples
            if s.name.endswith("_total")
        }
    )


def api_requests(url: str) -> Counter:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.findall(r'^f5_api_aws_requests_total\{operation="([^"]*)"\} (\S+)$', text, re.MULTILINE)
    return Counter({f"api {op}": float(v) for op, v in found})


def speak(http: httpx.Client, text: str, stream: bool) -> tuple[float, float, int]:
    """(first byte s, last byte s, bytes) of one `/v1/audio/speech`."""
    body = {"model": "tts-1", "voice": "basic-en", "input": text, "response_format": "pcm", "stream": stream}
    started = time.perf_counter()
    first = None
    size = 0
    with http.stream("POST", "/v1/audio/speech", json=body) as reply:
        if reply.status_code != 200:
            sys.exit(f"speech answered {reply.status_code}: {reply.read()[:300]!r}")
        for chunk in reply.iter_bytes():
            if chunk and first is None:
                first = time.perf_counter() - started
            size += len(chunk)
    return first or 0.0, time.perf_counter() - started, size


def start_api(endpoint: str, res, port: int) -> subprocess.Popen:
    env = os.environ | {
        "F5_WORKER_AWS_ENDPOINT_URL": endpoint,
        "F5_WORKER_QUEUE_URL": res.queue_url,
        "F5_WORKER_BUCKET": res.bucket,
        "F5_WORKER_API_PORT": str(port),
        "F5_WORKER_API_RATE_PER_MINUTE": "100000",
        "F5_WORKER_API_SPEECH_WAIT_S": "600",
        "F5_WORKER_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "consumer.cli", "api"], env=env)


def run(engine, label: str, args: argparse.Namespace, text: str) -> dict[str, float]:
    from consumer.worker.loop import Worker
    from consumer.worker.services import build_services

    with moto_server() as moto:
        proxy = LatencyProxy(moto, args.latency_ms / 1000)
        admin = make_clients(Settings(aws_endpoint_url=moto))
        res = bootstrap(admin, ResourceSpec(name=f"bench-{label}", bucket=f"bench-{label}-audio"))
        VoiceLibrary(admin.s3, res.bucket).add_example("basic-en")
        settings = Settings(
            aws_endpoint_url=proxy.url,
            queue_url=res.queue_url,
            bucket=res.bucket,
            topic_arn=res.topic_arn,
            wait_time_s=1,
            log_level="WARNING",
        )
        services = build_services(settings, engine)
        worker = Worker(services)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        api = start_api(proxy.url, res, port)
        url = f"http://127.0.0.1:{port}"
        rows: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
        breakdown: dict[bool, Counter] = {}
        puts: dict[bool, list[float]] = {True: [], False: []}
        try:
            wait_until_up(url)
            with httpx.Client(base_url=url, timeout=600) as http:
                speak(http, "Warm up.", True)
                for _ in range(args.jobs):
                    for stream in (True, False):  # alternated: both paths see the same machine state
                        time.sleep(1.5)  # the worker's index flush and liveness writes are not counted in a job
                        before = api_requests(url) + worker_requests(services.metrics.registry)
                        ttfb, full, _size = speak(http, text, stream)
                        time.sleep(0.5)  # the worker's cleanup after the answer's end
                        used = api_requests(url) + worker_requests(services.metrics.registry)
                        used.subtract(before)
                        rows[stream].append((ttfb, full, sum(used.values())))
                        puts[stream].append(used["worker PutObject"])
                        breakdown[stream] = +used
        finally:
            api.terminate()
            api.wait(timeout=30)
            worker.stop()
            thread.join(timeout=60)
    out: dict[str, float] = {}
    for stream, name in ((True, "stream"), (False, "whole")):
        ttfbs, fulls, reqs = zip(*rows[stream], strict=True)
        out[f"{name}_ttfb_ms"] = statistics.median(ttfbs) * 1000
        out[f"{name}_full_ms"] = statistics.median(fulls) * 1000
        out[f"{name}_requests"] = statistics.median(reqs)
        print(f"{name}: requests of the last job by operation: {dict(sorted(breakdown[stream].items()))}")
    out["blocks"] = statistics.median(puts[True]) - statistics.median(puts[False])  # the streamed job's block PUTs
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5, help="jobs per path (alternated)")
    parser.add_argument("--chunk-ms", type=float, default=300.0, help="T: the fake engine's time per chunk")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="L: added to every AWS request")
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--engine", choices=("fake", "tiny"), default="fake")
    args = parser.parse_args()
    configure("WARNING", json_lines=False)
    text = text_of(args.chars)
    if args.engine == "tiny":
        from benchmarks.pipeline import load_real_engine

        engine = load_real_engine("tiny", "cpu")
        what = "the tiny F5 model (random weights) on CPU"
    else:
        engine = FakeEngine(chunk_s=args.chunk_ms / 1000)
        what = f"a fake engine, T={args.chunk_ms:g} ms per chunk"
    print(f"{len(text)} characters, {what}, L={args.latency_ms:g} ms per AWS request, {args.jobs} jobs per path")
    r = run(engine, args.engine, args, text)
    print("| path | first byte | last byte | AWS requests per job |")
    print("|---|---|---|---|")
    for name in ("stream", "whole"):
        print(
            f"| {name} | {r[f'{name}_ttfb_ms']:.0f} ms | {r[f'{name}_full_ms']:.0f} ms | {r[f'{name}_requests']:.1f} |"
        )
    added = r["stream_full_ms"] / r["whole_full_ms"] - 1
    blocks = int(r["blocks"])
    per_block = (r["stream_requests"] - r["whole_requests"]) / max(1, blocks)
    if args.engine == "fake":
        goal = args.chunk_ms + 4 * args.latency_ms + 150
        print(
            f"first byte {r['stream_ttfb_ms']:.0f} ms (goal <= T_first + 4L + 150 = {goal:.0f} ms: "
            f"{'met' if r['stream_ttfb_ms'] <= goal else 'MISSED'})"
        )
    print(
        f"streaming adds {added * 100:+.1f} % to the last byte (goal <= 10 %: {'met' if added <= 0.10 else 'MISSED'})"
    )
    print(
        f"streaming adds {per_block:.2f} AWS requests per block over {blocks} blocks (goal <= 2: "
        f"{'met' if per_block <= 2 else 'MISSED'})"
    )
    print(
        f"streaming: ttfb_ms={r['stream_ttfb_ms']:.0f} full_ms={r['stream_full_ms']:.0f} chunks={blocks} "
        f"requests_per_job={r['stream_requests']:.1f}"
    )


if __name__ == "__main__":
    main()
