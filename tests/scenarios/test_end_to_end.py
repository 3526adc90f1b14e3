"""The walking skeleton, real at every step: the F5-TTS engine (tiny random checkpoint written to disk and
loaded through the same loaders as real weights), a moto server over HTTP, S3 objects and SNS→SQS events."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from consumer.engine.model_spec import wheel_example_path
from consumer.producer.voice_library import VoiceLibrary
from contracts.events import SynthesisCompleted, SynthesisFailed

ZH_TRANSCRIPT = "对，这就是我，万人敬仰的太乙真人。"


def test_three_requests_two_wavs_two_successes_one_failure(stack, make_worker, tiny_engine):
    VoiceLibrary(stack.clients.s3, stack.resources.bucket).add(
        "basic-zh", wheel_example_path("infer/examples/basic/basic_ref_zh.wav").read_bytes(), ZH_TRANSCRIPT
    )
    texts = {"en-1": "The quick brown fox jumps over the lazy dog.", "zh-1": "你好，欢迎使用语音合成。"}
    stack.send(json.dumps({"job_id": "en-1", "text": texts["en-1"], "voice": {"voice_id": "basic-en"}}))
    stack.send(json.dumps({"job_id": "zh-1", "text": texts["zh-1"], "voice": {"voice_id": "basic-zh"}}))
    stack.send(json.dumps({"job_id": "bad-1", "text": "", "voice": {"voice_id": "basic-en"}}))

    worker, _ = make_worker(tiny_engine, visibility_timeout_s=60, heartbeat_interval_s=10)
    assert worker.run() == 0

    events = {e.job_id: e for e in stack.events()}
    assert set(events) == {"en-1", "zh-1", "bad-1"}
    assert isinstance(events["bad-1"], SynthesisFailed) and "text" in events["bad-1"].error_message
    for job_id in ("en-1", "zh-1"):
        event = events[job_id]
        assert isinstance(event, SynthesisCompleted) and event.model_id == "random-tiny"
        audio, rate = sf.read(io.BytesIO(stack.get(event.output.key)))
        assert rate == 24000 and event.output.sample_rate == 24000
        duration = len(audio) / rate
        # F5 sizes the output from the reference's speaking rate: plausible for the text, not silence.
        assert 1.0 < duration < 15.0 and abs(duration - event.output.duration_s) < 0.01
        assert np.abs(audio).max() > 0.001
    assert stack.objects("outputs/") == ["outputs/en-1.wav", "outputs/zh-1.wav"]
    assert stack.queue_counts() == (0, 0)
    assert stack.queue_counts(stack.resources.dlq_url) == (0, 0)


def test_worker_process_runs_from_environment_and_exits_zero_on_sigterm(stack, tiny_model_path):
    """`f5-worker run` as a process: env settings, model preloaded, health port, SIGTERM → exit 0."""
    import os
    import signal
    import time
    import urllib.request

    from consumer.worker.health import check

    stack.send(json.dumps({"job_id": "proc-1", "text": "Process test.", "voice": {"voice_id": "basic-en"}}))
    port = 18000 + os.getpid() % 1000
    env = dict(os.environ)
    env.update(
        {
            f"F5_WORKER_{k.upper()}": str(v)
            for k, v in {
                "aws_endpoint_url": stack.endpoint_url,
                "queue_url": stack.resources.queue_url,
                "bucket": stack.resources.bucket,
                "topic_arn": stack.resources.topic_arn,
                "model_dir": tiny_model_path,
                "device": "cpu",
                "wait_time_s": 1,
                "health_port": port,
            }.items()
        }
    )
    proc = subprocess.Popen([sys.executable, "-m", "consumer", "run"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        events = []
        while not events and time.monotonic() < deadline:
            events = stack.events()
        assert [e.job_id for e in events] == ["proc-1"]
        assert check(port, "/readyz") and check(port, "/healthz")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        assert 'f5_worker_jobs_total{outcome="done"} 1.0' in metrics
        assert 'f5_worker_startup_seconds{phase="model_loaded"}' in metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log_lines = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    assert any(line["event"] == "worker_stopped" for line in log_lines)
    job_lines = [line for line in log_lines if line.get("event") == "job_finished"]
    assert job_lines and job_lines[0]["job_id"] == "proc-1"
