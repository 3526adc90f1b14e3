"""One long `text_uri` job through the whole worker (moto server, F5 engine, S3 upload): wall time, audio
duration, real-time factor and peak RSS growth during the job (goal: at most 300 MB, whatever the length).

    .venv/bin/python benchmarks/longform.py                      # 100,000 characters, tiny random model, CPU
    .venv/bin/python benchmarks/longform.py --chars 20000 --compare
    .venv/bin/python benchmarks/longform.py --size base --device cuda --nfe 32

AWS is a moto server in a child process, so the RSS measured is the worker's alone (an in-process moto would
add its copies of the uploaded object). `--compare` runs the same text a second time through the in-memory path
(`longform_above_chars` raised above the text's length) and prints the two side by side: the memory ratio is
what streaming buys. The last line is `longform: chars=N audio_s=A rss_growth_mb=R` (the streaming run).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._moto import moto_server
from consumer.aws.clients import make_clients
from consumer.aws.resources import ResourceSpec, bootstrap
from consumer.core.logs import configure
from consumer.core.settings import Settings
from consumer.producer.voice_library import VoiceLibrary
from consumer.storage.jobs import JobStore

SENTENCES = [
    "The river ran quietly past the old mill, and nobody on the bridge looked down.",
    "She kept the letters in a tin box under the stairs for many years.",
    "When the train finally arrived, the platform was almost empty.",
    "He wrote slowly, crossing out every other word, until the page was full.",
    "Outside, the rain had stopped and the street lamps were coming on one by one.",
]


def chapter(chars: int) -> str:
    """`chars` characters of plain English prose (whole words, ending in a full stop), the same every time."""
    words: list[str] = []
    i = 0
    while sum(map(len, words)) + len(words) < chars:
        words.append(SENTENCES[i % len(SENTENCES)])
        i += 1
    return " ".join(words)[:chars].rsplit(" ", 1)[0] + "."


def memory_mb(field: str) -> float:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def one_job(endpoint: str, engine, text: str, nfe: int, longform_above: int, job_id: str) -> dict:
    from consumer.worker.loop import Worker
    from consumer.worker.services import build_services

    spec = ResourceSpec(name=f"bench-{job_id}", bucket=f"bench-{job_id}-audio")
    admin = make_clients(Settings(aws_endpoint_url=endpoint))
    res = bootstrap(admin, spec)
    VoiceLibrary(admin.s3, res.bucket).add_example("basic-en")
    admin.s3.put_object(Bucket=res.bucket, Key="texts/chapter.txt", Body=text.encode())
    request = {
        "job_id": job_id,
        "text_uri": f"s3://{res.bucket}/texts/chapter.txt",
        "voice": {"voice_id": "basic-en"},
        "options": {"nfe_steps": nfe},
    }
    admin.sqs.send_message(QueueUrl=res.queue_url, MessageBody=json.dumps(request))
    settings = Settings(
        aws_endpoint_url=endpoint,
        queue_url=res.queue_url,
        bucket=res.bucket,
        burst=True,
        wait_time_s=1,
        longform_above_chars=longform_above,
        job_timeout_s=86_400,
    )
    worker = Worker(build_services(settings, engine))
    Path("/proc/self/clear_refs").write_text("5")  # the peak from here on
    baseline = memory_mb("VmRSS")
    started = time.perf_counter()
    worker.run()
    wall = time.perf_counter() - started
    growth = memory_mb("VmHWM") - baseline
    event = JobStore(admin.s3, res.bucket, "jobs").result(job_id)
    if event is None or event.type != "synthesis.completed.v1":
        sys.exit(f"{job_id} did not complete: {event}")
    return {"wall_s": wall, "audio_s": event.output.duration_s, "rss_growth_mb": growth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=100_000)
    parser.add_argument("--size", choices=["tiny", "base"], default="tiny", help="random model size")
    parser.add_argument("--model-dir", type=Path, help="a prepared model directory instead of a random one")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    parser.add_argument("--nfe", type=int, default=2, help="sampling steps (2: the pipeline, not the model)")
    parser.add_argument("--compare", action="store_true", help="also run the in-memory path, side by side")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "f5-worker")
    args = parser.parse_args()
    configure("WARNING", json_lines=False)

    import torch

    from consumer.engine.f5 import F5Engine
    from consumer.engine.model_spec import load_model_dir
    from consumer.engine.random_model import ensure_random_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model_dir = args.model_dir or ensure_random_model(args.cache_dir, args.size)
    engine = F5Engine(load_model_dir(model_dir), device=device)
    engine.load()
    engine.warm_up()
    text = chapter(args.chars)
    print(f"model {engine.model_id} on {device}, {len(text):,} characters, nfe {args.nfe}")
    with moto_server() as endpoint:
        runs = {"streaming": one_job(endpoint, engine, text, args.nfe, 5_000, "stream")}
        if args.compare:
            runs["in memory"] = one_job(endpoint, engine, text, args.nfe, len(text) + 1, "memory")
    for name, r in runs.items():
        print(
            f"{name:>10}: wall {r['wall_s']:.1f} s, audio {r['audio_s']:.0f} s, RTF {r['wall_s'] / r['audio_s']:.3f}, "
            f"peak RSS growth {r['rss_growth_mb']:.0f} MB"
        )
    if args.compare:
        ratio = runs["in memory"]["rss_growth_mb"] / max(runs["streaming"]["rss_growth_mb"], 1.0)
        print(f"memory ratio in-memory/streaming: {ratio:.1f}x")
    s = runs["streaming"]
    print(f"longform: chars={len(text)} audio_s={s['audio_s']:.0f} rss_growth_mb={s['rss_growth_mb']:.0f}")


if __name__ == "__main__":
    main()
