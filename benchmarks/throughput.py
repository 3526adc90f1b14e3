"""Throughput of cross-message batching: batch size 1 versus K, in one run, on the same weights, reference,
texts and seeds. Engine level: `BatchingEngine` over one loaded `F5Engine`, called from K threads at once as
the worker's K lifecycle threads call it (max_in_flight = K); SQS/S3/events are not in the loop.

    .venv/bin/python benchmarks/throughput.py                         # tiny random model, CPU, K=4, 8 messages
    .venv/bin/python benchmarks/throughput.py --size base --device cuda --nfe 32 16

Prints, per NFE and batch size: wall time, messages/s, audio-seconds per wall-second, mean per-message latency
and RTF (latency / audio length, queueing included), the distribution of batch sizes the batcher formed, the
K-vs-1 throughput ratio, and the largest difference between the two configurations' audio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumer.audio.reference import decode_reference
from consumer.core.logs import configure
from consumer.engine import SynthesisJob
from consumer.engine.batching import BatchingEngine
from consumer.engine.model_spec import load_model_dir, wheel_example_path
from contracts.requests import SynthesisOptions

REF_FILE = "infer/examples/basic/basic_ref_en.wav"
REF_TEXT = "Some call me nature, others call me mother nature."
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "I don't really care what you call me.",
    "Respect me and I'll nurture you; ignore me and you shall face the consequences.",
    "The rivers carve the valleys, and the winds shape the mountains.",
    "Every forest you walk through was here long before you.",
    "Batching several messages into one forward pass.",
    "But always remember, I am mighty and enduring.",
    "Seasons turn whether anyone is watching or not.",
]


def run(engine: BatchingEngine, jobs: list[SynthesisJob], callers: int) -> tuple[float, list[float], list[np.ndarray]]:
    """All jobs through `engine` from `callers` threads; wall time, per-job latency, audio."""

    def one(job: SynthesisJob) -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        samples = engine.synthesize(job).samples
        return time.perf_counter() - started, samples

    started = time.perf_counter()
    with ThreadPoolExecutor(callers, thread_name_prefix="job") as pool:
        out = list(pool.map(one, jobs))
    return time.perf_counter() - started, [o[0] for o in out], [o[1] for o in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "base"], default="tiny", help="random model size")
    parser.add_argument("--model-dir", type=Path, help="a prepared model directory instead of a random one")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--nfe", type=int, nargs="+", default=None, help="default: 32 16 on CUDA, 16 on CPU")
    parser.add_argument("--batch", type=int, default=4, help="K: batch size compared with 1 (and callers)")
    parser.add_argument("--messages", type=int, default=8)
    parser.add_argument("--window-ms", type=float, default=20.0)
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "f5-worker")
    args = parser.parse_args()
    configure("WARNING", json_lines=False)

    import contextlib
    import io

    import torch

    from consumer.engine.f5 import F5Engine
    from consumer.engine.random_model import ensure_random_model

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
    cuda = args.device.startswith("cuda")
    nfes = args.nfe or ([32, 16] if cuda else [16])
    model_dir = args.model_dir or ensure_random_model(args.cache_dir, args.size)
    engine = F5Engine(load_model_dir(model_dir), device=args.device, dtype=args.dtype)
    with contextlib.redirect_stderr(io.StringIO()):  # upstream's loader chatter
        engine.load()
    hardware = torch.cuda.get_device_name(torch.device(args.device)) if cuda else f"{torch.get_num_threads()} threads"
    print(
        f"model {engine.model_id} ({model_dir}), device {args.device} ({hardware}), dtype "
        f"{str(engine.dtype).removeprefix('torch.')}, {args.messages} messages, K={args.batch}, "
        f"window {args.window_ms:g} ms; engine level (BatchingEngine + F5Engine, no AWS)"
    )

    reference = decode_reference(wheel_example_path(REF_FILE).read_bytes(), REF_TEXT, cache_key="bench/ref")
    single = BatchingEngine(engine, max_batch=1, window_s=0.0)
    batched = BatchingEngine(engine, max_batch=args.batch, window_s=args.window_ms / 1000)
    configs = [(1, single), (args.batch, batched)]
    for nfe in nfes:
        options = SynthesisOptions(nfe_steps=nfe)
        jobs = [SynthesisJob(TEXTS[i % len(TEXTS)], reference, options, seed=100 + i) for i in range(args.messages)]
        for _, batcher in configs:  # warm-up: kernels for these shapes, the reference mel cache
            run(batcher, jobs[: args.batch], args.batch)
        print(f"\nNFE {nfe}")
        print(f"{'batch':>5} {'wall_s':>7} {'msg/s':>7} {'audio_s/s':>9} {'latency_s':>9} {'RTF/msg':>7}  batches")
        throughput: dict[int, float] = {}
        audio: dict[int, list[np.ndarray]] = {}
        for size, batcher in configs:
            before = batcher.batch_sizes
            wall, latencies, outputs = run(batcher, jobs, args.batch)
            formed = batcher.batch_sizes - before
            seconds = [len(o) / engine.sample_rate for o in outputs]
            rtfs = [lat / s for lat, s in zip(latencies, seconds, strict=True)]
            throughput[size], audio[size] = len(jobs) / wall, outputs
            shown = ", ".join(f"{n}x{k}" for k, n in sorted(formed.items()))
            print(
                f"{size:>5} {wall:>7.2f} {len(jobs) / wall:>7.3f} {sum(seconds) / wall:>9.2f} "
                f"{statistics.mean(latencies):>9.2f} {statistics.mean(rtfs):>7.3f}  {shown}"
            )
        diff = max(float(np.abs(a - b).max()) for a, b in zip(audio[1], audio[args.batch], strict=True))
        print(
            f"throughput ratio K={args.batch} / 1: {throughput[args.batch] / throughput[1]:.2f}x; "
            f"max |audio difference| between them: {diff:.2e}"
        )
    batched.close()
    single.close()


if __name__ == "__main__":
    main()
