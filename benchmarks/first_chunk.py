"""First-chunk benchmark: the time of one chunk as a function of its length, to size the streamed first chunk
(`consumer.engine.first_chunk.FIRST_CHUNK_MAX_BYTES`).

F5 generates reference and chunk together, so a chunk costs about c + nfe * (a + b * (ref bytes + chunk bytes)):
a short chunk still pays for the reference. Each length is timed at two step counts; their difference gives the
per-step cost, the rest the fixed cost (vocoder, set-up), and `--target-nfe` steps are extrapolated from them.

    .venv/bin/python benchmarks/first_chunk.py                            # tiny random model, CPU
    .venv/bin/python benchmarks/first_chunk.py --size base --nfe 2 4      # full-size architecture

The last line: `first_chunk: full_bytes=F floor_s=… full_s=… at_40pct=N at_2x_floor=M` (bytes of chunk text
whose extrapolated time is 40 % of a full chunk's, and twice the time of an empty chunk).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumer.audio.reference import decode_reference
from consumer.engine import SynthesisJob
from consumer.engine.model_spec import EXAMPLE_VOICE_EN, load_model_dir
from contracts.requests import SynthesisOptions

PASSAGE = (
    "the rivers carve the valleys and the winds shape the mountains while the seasons turn whether anyone is "
    "watching or not and every forest you walk through was here long before you and will be here long after "
    "you are gone so respect me and I will nurture you but ignore me and you shall face the consequences"
)


def text_of(n_bytes: int) -> str:
    """About `n_bytes` of the passage, cut at a word, with a full stop (one sentence: one chunk)."""
    words, out = (PASSAGE + " ") * 3, ""
    words = words.split()
    for word in words:
        if out and len(out) + 1 + len(word) + 1 > n_bytes:
            break
        out = f"{out} {word}" if out else word
    return out[0].upper() + out[1:] + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--nfe", type=int, nargs=2, default=[4, 8], help="the two step counts timed")
    parser.add_argument("--target-nfe", type=int, default=32)
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 40, 60, 80, 120, 170])
    parser.add_argument("--repeats", type=int, default=3, help="median of this many runs per cell")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "f5-worker")
    args = parser.parse_args()

    import torch

    from consumer.engine.f5 import F5Engine
    from consumer.engine.f5.chunking import MAX_PROMPT_S
    from consumer.engine.random_model import ensure_random_model

    model_dir = ensure_random_model(args.cache_dir, args.size)
    engine = F5Engine(load_model_dir(model_dir), device=args.device, max_batch_items=1, concurrent_calls=1)
    engine.load()
    voice = EXAMPLE_VOICE_EN
    reference = decode_reference(voice.audio(), voice.transcript, sample_rate=engine.sample_rate)
    ref_bytes = len(voice.transcript.encode())
    ref_s = reference.duration_s
    full_bytes = int(ref_bytes / ref_s * (MAX_PROMPT_S - ref_s))  # a full chunk (`split_into_chunks`'s max_chars)
    lengths = sorted({*args.lengths, full_bytes})
    print(
        f"model {args.size} on {args.device} ({torch.get_num_threads()} threads), reference {reference.duration_s:.1f}"
        f" s / {ref_bytes} bytes, full chunk {full_bytes} bytes, nfe {args.nfe} -> {args.target_nfe}"
    )

    def timed(text: str, nfe: int) -> float:
        job = SynthesisJob(text, reference, SynthesisOptions(nfe_steps=nfe), seed=0)
        runs = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            engine.synthesize(job)
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    timed(text_of(40), args.nfe[0])  # warm-up
    lo, hi = args.nfe
    rows: list[tuple[int, float]] = []
    print(f"{'bytes':>5} {'audio_s':>7} {f't{lo}_s':>7} {f't{hi}_s':>7} {'step_s':>7} {'fixed_s':>7} {'t_s':>7}")
    for n in lengths:
        text = text_of(n)
        assert len(engine.chunks(text, reference)) == 1, text
        t_lo, t_hi = timed(text, lo), timed(text, hi)
        step = (t_hi - t_lo) / (hi - lo)
        fixed = max(0.0, t_lo - lo * step)
        t = fixed + args.target_nfe * step
        audio_s = reference.duration_s * len(text.encode()) / ref_bytes
        rows.append((len(text.encode()), t))
        print(f"{len(text.encode()):>5} {audio_s:>7.1f} {t_lo:>7.2f} {t_hi:>7.2f} {step:>7.3f} {fixed:>7.2f} {t:>7.2f}")
    engine.close()

    # where the measured time crosses 40 % of a full chunk's and twice the shortest chunk's (linear between rows)
    full, floor = rows[-1][1], rows[0][1]
    print(f"{'bytes':>5} {'t_s':>7} {'of_full':>7} {'of_floor':>8}")
    for x, y in rows:
        print(f"{x:>5} {y:>7.2f} {y / full:>7.0%} {y / floor:>8.2f}")
    print(
        f"first_chunk: full_bytes={rows[-1][0]} floor_s={floor:.2f} full_s={full:.2f} "
        f"at_40pct={crossing(rows, 0.4 * full):.0f} at_2x_floor={crossing(rows, 2 * floor):.0f}"
    )


def crossing(rows: list[tuple[int, float]], t: float) -> float:
    """The chunk bytes at which the time (linear between measured rows) reaches `t`."""
    for (x0, y0), (x1, y1) in itertools.pairwise(rows):
        if y0 <= t <= y1:
            return x0 + (x1 - x0) * (t - y0) / (y1 - y0) if y1 > y0 else x0
    return float(rows[0][0] if t < rows[0][1] else rows[-1][0])


if __name__ == "__main__":
    main()
