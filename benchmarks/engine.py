"""Engine benchmark: upstream's per-call path (what `f5_tts.api.F5TTS.infer` does per call) versus
`F5Engine.synthesize`, on the same weights, reference, texts and seeds, interleaved message by message.

    .venv/bin/python benchmarks/engine.py                      # tiny random model, CPU, 6 messages
    .venv/bin/python benchmarks/engine.py --size base --device cuda --messages 10
    .venv/bin/python benchmarks/engine.py --memory             # + 200 consecutive syntheses, RSS growth
    .venv/bin/python benchmarks/engine.py --profile            # where one synthesis spends its time, by op
    .venv/bin/python benchmarks/engine.py --compile            # engine side with torch.compile'd DiT (experiment)
    .venv/bin/python benchmarks/engine.py --rounds 7           # more alternating rounds for the median ratios

The upstream path per message, as `F5TTS.infer` + `infer_process` do it: write the reference bytes to a file
(an API worker gets them from S3), `seed_everything`, `preprocess_ref_audio_text(path, text)` (md5-cached
after the first call), load the processed clip, size chunks, `infer_batch_process(...)`. Where
`torchaudio.load` fails (torchcodec built for another CUDA, no FFmpeg), the load is done with soundfile and
the output says so. The engine path per message: `decode_reference(bytes)` (not cached here, to be
conservative: the worker caches it per S3 ETag) + `F5Engine.synthesize`.

After the per-message table (which also warms every message's shapes), `--rounds N` alternating rounds run
all messages through one path, then through the other, the first path alternating from round to round; each
round's ratio is upstream's total wall time over the engine's, for all messages and for the two-chunk ones.
The last line gives the median of those ratios: `engine: ratio_all=X ratio_two_chunk=Y rounds=N`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumer.audio.encoding import encode
from consumer.audio.reference import decode_reference
from consumer.engine import SynthesisJob
from consumer.engine.model_spec import load_model_dir, wheel_example_path
from contracts.requests import AudioFormat, SynthesisOptions

REF_FILE = "infer/examples/basic/basic_ref_en.wav"
REF_TEXT = "Some call me nature, others call me mother nature."
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "I don't really care what you call me. I've been a silent spectator, watching species evolve, "
    "empires rise and fall. But always remember, I am mighty and enduring.",
    "Respect me and I'll nurture you; ignore me and you shall face the consequences. The rivers carve "
    "the valleys, the winds shape the mountains, and the seasons turn whether anyone is watching or not. "
    "Every forest you walk through was here long before you, and will be here long after you are gone.",
]


def rss_mb() -> float:
    with Path("/proc/self/status").open() as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class UpstreamPath:
    """`F5TTS.infer` per call, with the model objects loaded once (as F5TTS.__init__ does)."""

    def __init__(self, model_dir: Path, device: str) -> None:
        from f5_tts.infer import utils_infer
        from f5_tts.model import DiT

        spec = load_model_dir(model_dir)
        self.ui = utils_infer
        self.device = device
        with contextlib.redirect_stdout(io.StringIO()):
            self.model = utils_infer.load_model(
                DiT, spec.arch, spec.checkpoint, spec.mel_spec_type, spec.vocab, "euler", True, device
            )
            self.vocoder = utils_infer.load_vocoder("vocos", True, spec.vocoder, device)
        self.load_note = self._probe_torchaudio()

    def _probe_torchaudio(self) -> str:
        import torchaudio

        try:
            torchaudio.load(str(wheel_example_path(REF_FILE)))
        except Exception as exc:  # torchcodec/FFmpeg problems surface as many exception types
            self._load = self._load_soundfile
            first_line = str(exc).strip().splitlines()[0][:120]
            return f"torchaudio.load fails here ({type(exc).__name__}: {first_line}); replaced by soundfile.read"
        self._load = torchaudio.load
        return "torchaudio.load works here; used as upstream does"

    @staticmethod
    def _load_soundfile(path: str) -> tuple[Any, int]:
        import soundfile as sf
        import torch

        audio, sr = sf.read(path, dtype="float32", always_2d=True)
        return torch.from_numpy(audio.T.copy()), sr

    def __call__(self, ref_bytes: bytes, ref_text: str, text: str, seed: int, options: SynthesisOptions) -> np.ndarray:
        from f5_tts.model.utils import seed_everything

        ui = self.ui
        with tempfile.NamedTemporaryFile(suffix=".wav") as f:
            f.write(ref_bytes)
            f.flush()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                seed_everything(seed)
                ref_file, ref_text = ui.preprocess_ref_audio_text(f.name, ref_text)
                audio, sr = self._load(ref_file)  # infer_process from here on
                seconds = audio.shape[-1] / sr
                max_chars = int(len(ref_text.encode("utf-8")) / seconds * (22 - seconds) * options.speed)
                batches = ui.chunk_text(text, max_chars=max_chars)
                wave, _, _ = next(
                    ui.infer_batch_process(
                        (audio, sr),
                        ref_text,
                        batches,
                        self.model,
                        self.vocoder,
                        mel_spec_type="vocos",
                        progress=ui.tqdm,
                        nfe_step=options.nfe_steps,
                        cfg_strength=options.cfg_strength,
                        sway_sampling_coef=options.sway_sampling_coef,
                        speed=options.speed,
                        device=self.device,
                    )
                )
        return wave


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def compare(args: argparse.Namespace, model_dir: Path) -> None:
    from consumer.engine.f5 import F5Engine

    ref_bytes = wheel_example_path(REF_FILE).read_bytes()
    options = SynthesisOptions(nfe_steps=args.nfe)
    upstream = UpstreamPath(model_dir, args.device)
    engine = F5Engine(load_model_dir(model_dir), device=args.device)
    engine.load()
    print(f"upstream path: {upstream.load_note}")
    if args.compile:
        import torch

        # An experiment, not a worker option: the DiT under torch.compile with dynamic shapes (every message
        # has its own length). Compilation happens during the warm-up below and is reported.
        engine._model.transformer = torch.compile(engine._model.transformer, dynamic=True)

    # The worker calls the engine from a long-lived job thread (consumer/worker/loop.py); so does this benchmark.
    # (Upstream's path runs its chunks in a fresh ThreadPoolExecutor per call.)
    job_thread = ThreadPoolExecutor(1, thread_name_prefix="job")

    def run_engine(text: str, seed: int, opts: SynthesisOptions = options) -> np.ndarray:
        def job() -> np.ndarray:
            reference = decode_reference(ref_bytes, REF_TEXT, cache_key="bench/basic_ref_en")
            return engine.synthesize(SynthesisJob(text, reference, opts, seed)).samples

        return job_thread.submit(job).result()

    # Warm both paths (lazy kernels, upstream's md5 cache of the processed reference, our mel cache).
    upstream(ref_bytes, REF_TEXT, TEXTS[0], 0, options)
    warm_s = timed(partial(run_engine, TEXTS[0], 0))[1]
    if args.compile:
        print(f"engine warm-up with torch.compile: {warm_s:.1f} s")
    if args.profile:  # in this thread: the profiler records the thread it starts in
        reference = decode_reference(ref_bytes, REF_TEXT, cache_key="bench/basic_ref_en")
        profile(lambda: engine.synthesize(SynthesisJob(TEXTS[1], reference, options, 0)).samples)

    reference = decode_reference(ref_bytes, REF_TEXT)
    rows = []
    print(f"\n{'msg':>3} {'chunks':>6} {'audio_s(u/e)':>12} {'upstream_s':>10} {'engine_s':>8} {'ratio':>5}")
    for i in range(args.messages):
        text, seed = TEXTS[i % len(TEXTS)], 1000 + i
        n_chunks = len(engine.chunks(text, reference, options.speed))
        calls: list[tuple[str, Callable[[], np.ndarray]]] = [
            ("u", partial(upstream, ref_bytes, REF_TEXT, text, seed, options)),
            ("e", partial(run_engine, text, seed)),
        ]
        results = {name: timed(fn) for name, fn in (calls if i % 2 == 0 else calls[::-1])}  # alternate order
        (u_wave, u_wall, u_cpu), (e_wave, e_wall, e_cpu) = results["u"], results["e"]
        u_audio, audio_s = len(u_wave) / engine.sample_rate, len(e_wave) / engine.sample_rate
        rows.append((u_wall, e_wall, u_cpu, e_cpu, audio_s))
        print(
            f"{i:>3} {n_chunks:>6} {u_audio:>5.2f}/{audio_s:<6.2f} {u_wall:>10.3f} {e_wall:>8.3f} "
            f"{u_wall / e_wall:>5.2f}"
        )

    u_total, e_total = sum(r[0] for r in rows), sum(r[1] for r in rows)
    u_cpu, e_cpu = sum(r[2] for r in rows), sum(r[3] for r in rows)
    audio_total = sum(r[4] for r in rows)
    ratios = [r[0] / r[1] for r in rows]
    print(
        f"\nper message (wall, mean): upstream {u_total / len(rows):.3f} s, engine {e_total / len(rows):.3f} s"
        f"\nRTF (wall): upstream {u_total / audio_total:.4f}, engine {e_total / audio_total:.4f}"
        f"\nspeed-up (total wall): {u_total / e_total:.2f}x   median per-message: {statistics.median(ratios):.2f}x"
        f"\nCPU seconds (process): upstream {u_cpu:.1f}, engine {e_cpu:.1f} ({u_cpu / e_cpu:.2f}x)"
        "\n(audio lengths differ by a few frames: upstream trims the reference with pydub on a 16-bit copy)"
    )
    # Fixed per-call cost: one ODE step on a short text, so both paths do almost no model work and the
    # difference is what each does around the model (files, hashing, loading, mel, threads).
    one_step = SynthesisOptions(nfe_steps=1)
    u_times, e_times = [], []
    for i in range(args.overhead_calls):
        u_times.append(timed(partial(upstream, ref_bytes, REF_TEXT, TEXTS[0], i, one_step))[1])
        e_times.append(timed(partial(run_engine, TEXTS[0], i, one_step))[1])
    u_med, e_med = statistics.median(u_times), statistics.median(e_times)
    print(
        f"fixed per-call cost (nfe 1, {args.overhead_calls} calls each, median): upstream {u_med * 1000:.1f} ms, "
        f"engine {e_med * 1000:.1f} ms (saves {(u_med - e_med) * 1000:.1f} ms per message)"
    )
    if args.rounds > 0:
        chunk_counts = [
            len(engine.chunks(TEXTS[i % len(TEXTS)], reference, options.speed)) for i in range(args.messages)
        ]
        paths = {
            "upstream": [
                partial(upstream, ref_bytes, REF_TEXT, TEXTS[i % len(TEXTS)], 1000 + i, options)
                for i in range(args.messages)
            ],
            "engine": [partial(run_engine, TEXTS[i % len(TEXTS)], 1000 + i) for i in range(args.messages)],
        }
        alternating_rounds(paths, chunk_counts, args.rounds)
    job_thread.shutdown()
    engine.close()


def alternating_rounds(paths: dict[str, list[Callable[[], np.ndarray]]], chunk_counts: list[int], rounds: int) -> None:
    """Per round: every message through one path, then through the other (the first path alternates); the
    ratio is upstream's total wall time over the engine's. Prints each round and the medians."""
    two = [i for i, n in enumerate(chunk_counts) if n == 2]
    print(f"\n{rounds} alternating rounds of {len(chunk_counts)} messages ({len(two)} with two chunks):")
    all_ratios, two_ratios = [], []
    for r in range(rounds):
        order = ["upstream", "engine"] if r % 2 == 0 else ["engine", "upstream"]
        walls = {name: [timed(call)[1] for call in paths[name]] for name in order}
        u, e = walls["upstream"], walls["engine"]
        all_ratios.append(sum(u) / sum(e))
        two_ratios.append(sum(u[i] for i in two) / sum(e[i] for i in two) if two else float("nan"))
        print(
            f"round {r}: {order[0]} first, upstream {sum(u):.2f} s, engine {sum(e):.2f} s, "
            f"ratio_all {all_ratios[-1]:.2f}, ratio_two_chunk {two_ratios[-1]:.2f}"
        )
    print(
        f"engine: ratio_all={statistics.median(all_ratios):.2f} "
        f"ratio_two_chunk={statistics.median(two_ratios):.2f} rounds={rounds}"
    )


def profile(fn: Callable[[], np.ndarray], top: int = 8) -> None:
    """Share of one synthesis's CPU time per operator (torch.profiler), to show what bounds the speed."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    print(f"\nprofile of one synthesis ({total / 1e6:.2f} s of op time), top {top} operators by self time:")
    for e in ops[:top]:
        print(f"  {e.self_cpu_time_total / total:6.1%}  {e.count:>5} calls  {e.key}")


def memory(args: argparse.Namespace, model_dir: Path) -> None:
    from consumer.engine.f5 import F5Engine

    ref_bytes = wheel_example_path(REF_FILE).read_bytes()
    engine = F5Engine(load_model_dir(model_dir), device=args.device)
    engine.load()
    options = SynthesisOptions(nfe_steps=args.memory_nfe)
    # 40 distinct cache keys > the 32-entry prompt cache: eviction is exercised too.
    references = [decode_reference(ref_bytes, REF_TEXT, cache_key=f"bench/{k}") for k in range(40)]

    def one(i: int) -> None:
        text = f"Message number {i}. " + TEXTS[i % 2]
        audio = engine.synthesize(SynthesisJob(text, references[i % len(references)], options, seed=i))
        encode(audio.samples, audio.sample_rate, AudioFormat.WAV)

    loaded = rss_mb()
    # Warm-up until the steady state: every text length once (new tensor shapes make oneDNN build and cache
    # primitives) and all 40 references (the 32-entry prompt cache fills, then evicts).
    for i in range(len(references)):
        one(i)
    gc.collect()
    baseline = rss_mb()
    print(
        f"\nmemory: RSS after load {loaded:.1f} MB, after {len(references)} warm-up syntheses {baseline:.1f} MB; "
        f"now {args.memory_runs} more (nfe {args.memory_nfe})"
    )
    started = time.perf_counter()
    for i in range(args.memory_runs):
        one(len(references) + i)
        if (i + 1) % 50 == 0:
            now = rss_mb()
            print(f"  after {i + 1:>4}: RSS {now:.1f} MB ({now - baseline:+.1f} MB)")
    gc.collect()
    growth = rss_mb() - baseline
    print(
        f"RSS growth over {args.memory_runs} consecutive syntheses: {growth:+.1f} MB (goal < 50 MB); "
        f"including warm-up: {rss_mb() - loaded:+.1f} MB; {time.perf_counter() - started:.0f} s"
    )
    engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "base"], default="tiny", help="random model size")
    parser.add_argument("--model-dir", type=Path, help="a prepared model directory instead of a random one")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--messages", type=int, default=6)
    parser.add_argument("--nfe", type=int, default=32)
    parser.add_argument("--overhead-calls", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5, help="alternating upstream/engine rounds (0: none)")
    parser.add_argument("--memory", action="store_true", help="also run the RSS check")
    parser.add_argument("--profile", action="store_true", help="print one synthesis's time by operator")
    parser.add_argument("--compile", action="store_true", help="torch.compile the engine's DiT (experiment)")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--memory-runs", type=int, default=200)
    parser.add_argument("--memory-nfe", type=int, default=8)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "f5-worker")
    args = parser.parse_args()

    import torch

    from consumer.engine.random_model import ensure_random_model

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model_dir = args.model_dir or ensure_random_model(args.cache_dir, args.size)
    print(
        f"model {load_model_dir(model_dir).model_id} ({model_dir}), device {args.device}, "
        f"torch threads {torch.get_num_threads()}, nfe {args.nfe}"
    )
    if not args.memory_only:
        compare(args, model_dir)
    if args.memory or args.memory_only:
        memory(args, model_dir)


if __name__ == "__main__":
    main()
