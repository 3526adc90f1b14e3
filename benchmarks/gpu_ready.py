"""Time-to-ready and real-time factor of the worker on a GPU, end to end: an embedded AWS (moto), a full-size
random F5TTS_v1_Base checkpoint (true architecture, so true compute cost), and `python -m consumer run` as a fresh
process, the way a container starts it. Prints the start-up phases the worker logs (`startup_phase` lines:
settings_loaded → model_loaded → warm_up_done → aws_checked) and the RTF of each job from its completion event.

    .venv/bin/python benchmarks/gpu_ready.py                 # needs CUDA; ~1.4 GB model written once to the cache
    .venv/bin/python benchmarks/gpu_ready.py --jobs 8 --nfe 16 --json results.json

Without CUDA it exits with status 2 and says so; `--allow-cpu --size tiny` runs the same pipeline on the CPU with
the tiny model, to check the script itself, not to measure anything.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TEXTS = (
    "Hello from the benchmark.",
    "The quick brown fox jumps over the lazy dog, then takes a short nap in the afternoon sun.",
    "Speech synthesis at scale means keeping the model resident, the queue short and every job idempotent, "
    "so that a worker can vanish at any moment without losing a single request.",
    "One more sentence, of medium length, to round out the sample.",
)
REF_EN = "infer/examples/basic/basic_ref_en.wav"
REF_EN_TRANSCRIPT = "Some call me nature, others call me mother nature."


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=len(TEXTS), help="jobs to run (texts cycle)")
    parser.add_argument("--nfe", type=int, default=32, help="nfe_steps per job")
    parser.add_argument("--size", choices=("base", "tiny"), default="base", help="random model size")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:1, ...")
    parser.add_argument("--allow-cpu", action="store_true", help="run without CUDA (script check only)")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "f5-worker", help="model cache")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def _check_device(args: argparse.Namespace) -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    if not args.allow_cpu:
        print(
            "gpu_ready: CUDA is not available (torch.cuda.is_available() is False): this benchmark measures a GPU. "
            "Run it on a GPU machine, or pass --allow-cpu --size tiny to check the script on the CPU.",
            file=sys.stderr,
        )
        sys.exit(2)
    args.device = "cpu"
    return f"CPU ({os.cpu_count()} cores) - NOT A MEASUREMENT"


def _worker_env(args: argparse.Namespace, endpoint: str, resources: Any, model_dir: Path) -> dict[str, str]:
    return os.environ | {
        "F5_WORKER_ENGINE": "f5",
        "F5_WORKER_MODEL_DIR": str(model_dir),
        "F5_WORKER_DEVICE": args.device,
        "F5_WORKER_BURST": "true",
        "F5_WORKER_WAIT_TIME_S": "1",
        "F5_WORKER_LOG_JSON": "true",
        "F5_WORKER_AWS_ENDPOINT_URL": endpoint,
        "F5_WORKER_QUEUE_URL": resources.queue_url,
        "F5_WORKER_BUCKET": resources.bucket,
        "F5_WORKER_TOPIC_ARN": resources.topic_arn,
        "HF_HUB_OFFLINE": "1",
    }


def _log_lines(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    device_name = _check_device(args)

    from consumer.aws.clients import make_clients
    from consumer.aws.embedded import EmbeddedAws
    from consumer.aws.resources import ResourceSpec, bootstrap
    from consumer.core.settings import Settings
    from consumer.engine.model_spec import wheel_example_path
    from consumer.engine.random_model import ensure_random_model
    from consumer.producer.voice_library import VoiceLibrary
    from contracts.events import SynthesisCompleted, parse_event

    t0 = time.monotonic()
    model_dir = ensure_random_model(args.cache_dir, args.size)
    print(f"model: {model_dir} (random {args.size}; ready in {time.monotonic() - t0:.1f} s)", file=sys.stderr)

    aws = EmbeddedAws.start()
    try:
        clients = make_clients(Settings(aws_endpoint_url=aws.endpoint_url))
        resources = bootstrap(clients, ResourceSpec(name="bench", bucket="bench-audio"))
        VoiceLibrary(clients.s3, resources.bucket).add(
            "basic-en", wheel_example_path(REF_EN).read_bytes(), REF_EN_TRANSCRIPT
        )
        for i in range(args.jobs):
            request = {
                "job_id": f"bench-{i}",
                "text": TEXTS[i % len(TEXTS)],
                "voice": {"voice_id": "basic-en"},
                "options": {"nfe_steps": args.nfe, "seed": i},
            }
            clients.sqs.send_message(QueueUrl=resources.queue_url, MessageBody=json.dumps(request))

        started = time.monotonic()
        worker = subprocess.run(
            [sys.executable, "-m", "consumer", "run"],
            env=_worker_env(args, aws.endpoint_url, resources, model_dir),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        wall_s = time.monotonic() - started
        if worker.returncode != 0:
            print(worker.stderr[-5000:], file=sys.stderr)
            print(f"gpu_ready: the worker exited with {worker.returncode}", file=sys.stderr)
            return 1

        assert resources.events_queue_url is not None
        events: list[SynthesisCompleted] = []
        while True:
            batch = clients.sqs.receive_message(
                QueueUrl=resources.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not batch:
                break
            events += [e for e in (parse_event(m["Body"]) for m in batch) if isinstance(e, SynthesisCompleted)]
    finally:
        aws.stop()

    logs = _log_lines(worker.stderr)
    phases = {r["phase"]: r["seconds"] for r in logs if r.get("event") == "startup_phase"}
    events.sort(key=lambda e: int(e.job_id.split("-")[1]))
    results = {
        "device": device_name,
        "model": f"random-{args.size}",
        "nfe_steps": args.nfe,
        "startup_seconds": phases,
        "worker_wall_s": round(wall_s, 2),
        "jobs": [
            {
                "job_id": e.job_id,
                "text_chars": e.text_chars,
                "audio_s": round(e.output.duration_s, 2),
                "synthesis_s": round(e.timings.synthesis_s, 3),
                "rtf": round(e.timings.real_time_factor, 4),
            }
            for e in events
        ],
    }
    print(f"\ndevice: {device_name}\nmodel: random-{args.size}, nfe_steps={args.nfe}\n")
    print("time to ready (seconds since process start, from the worker's startup_phase lines):")
    for phase, seconds in phases.items():
        print(f"  {phase:<16} {seconds:8.2f}")
    print(f"\n{'job':<10} {'chars':>5} {'audio s':>8} {'synth s':>8} {'RTF':>7}")
    for job in results["jobs"]:
        cells = f"{job['text_chars']:>5} {job['audio_s']:>8.2f} {job['synthesis_s']:>8.3f} {job['rtf']:>7.4f}"
        print(f"{job['job_id']:<10} {cells}")
    if results["jobs"]:
        rtfs = [j["rtf"] for j in results["jobs"]]
        results["rtf_median"] = statistics.median(rtfs)
        print(f"\nRTF median {results['rtf_median']:.4f} (min {min(rtfs):.4f}, max {max(rtfs):.4f}), {len(rtfs)} jobs")
    if len(events) != args.jobs:
        print(f"gpu_ready: {args.jobs - len(events)} of {args.jobs} jobs did not complete", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if len(events) == args.jobs and "aws_checked" in phases else 1


if __name__ == "__main__":
    sys.exit(main())
