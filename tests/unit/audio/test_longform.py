"""Texts as long as a chapter: `text_uri`, the engine's streaming path, encoding from disk with bounded memory,
loudness measured a block at a time, and a job timeout that grows with the text."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from benchmarks.longform import chapter
from consumer.audio.encoding import encode
from consumer.audio.longform import LongformWriter
from consumer.audio.loudness import LoudnessMeter
from consumer.audio.signal import CrossFader, cross_fade
from consumer.engine import SynthesisJob
from consumer.engine.fake import FakeEngine
from consumer.storage.jobs import JobStore
from contracts.events import ErrorCode, SynthesisCompleted, SynthesisFailed
from contracts.limits import MAX_TEXT_URI_CHARS
from contracts.requests import SynthesisOptions, VoiceRef


# --- building blocks ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fade_s", [0.15, 0.0, 0.01])
def test_the_cross_fader_joins_chunk_by_chunk_exactly_as_the_whole(fade_s):
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (100, 5000, 3, 40000, 2000, 1)]
    fader = CrossFader(24_000, fade_s)
    pieces = [fader.push(w) for w in waves] + [fader.finish()]
    assert np.array_equal(
        np.concatenate(pieces).astype(np.float32), cross_fade(waves, 24_000, fade_s).astype(np.float32)
    )


@pytest.mark.parametrize("rate", [16_000, 24_000, 44_100])
def test_the_block_loudness_meter_measures_what_pyloudnorm_measures(rate):
    rng = np.random.default_rng(rate)
    t = np.arange(rate * 7) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) * rng.random(len(t))).astype(np.float32)
    x[rate * 2 : rate * 3] = 0  # a silent second, for the gates
    meter, at = LoudnessMeter(rate), 0
    for n in (1, 1000, 12_345, 99_999, 5, len(x)):  # odd block sizes
        meter.add(x[at : at + n])
        at += n
    expected = pyloudnorm.Meter(rate).integrated_loudness(x.astype(np.float64))
    assert meter.integrated() == pytest.approx(expected, abs=1e-9)
    assert LoudnessMeter(rate).integrated() == -np.inf


@pytest.mark.parametrize(
    ("fmt", "rate", "lufs"),
    [
        ("wav", None, -16.0),
        ("wav", 44_100, -20.0),
        ("flac", 16_000, None),
        ("opus", None, -18.0),
        ("aac", 44_100, None),
    ],
)
def test_encoding_from_disk_agrees_with_encoding_in_memory(fmt, rate, lufs):
    rng = np.random.default_rng(1)
    x = (0.2 * np.sin(2 * np.pi * 200 * np.arange(24_000 * 25) / 24_000) * rng.random(24_000 * 25)).astype(np.float32)
    short = encode(x, 24_000, fmt, out_sample_rate=rate, target_lufs=lufs)
    with LongformWriter(None, 24_000, fmt, out_sample_rate=rate, target_lufs=lufs) as writer:
        for at in range(0, len(x), 7_777):
            writer.write(x[at : at + 7_777])
        long = writer.finish()
        data = long.path.read_bytes()
    assert (long.sample_rate, long.duration_s) == (short.sample_rate, pytest.approx(short.duration_s, abs=0.03))
    if fmt == "wav" and rate is None:
        ours, theirs = sf.read(io.BytesIO(data))[0], sf.read(io.BytesIO(short.data))[0]
        assert np.abs(ours - theirs).max() <= 1 / 32768  # the same samples, up to the last bit of a gain
    if lufs is not None:  # loudness targets behave as on short jobs: the decoded audio measures the same
        ours, theirs = (_decoded_lufs(d) for d in (data, short.data))
        assert ours == pytest.approx(theirs, abs=0.1)
        if fmt != "opus":  # lossless: on target (a lossy codec moves it a little, on both paths alike)
            assert ours == pytest.approx(lufs, abs=0.2)


def _decoded_lufs(data: bytes) -> float:
    decoded, rate = sf.read(io.BytesIO(data), dtype="float64")
    return pyloudnorm.Meter(rate).integrated_loudness(decoded)


def test_the_f5_stream_is_the_whole_rendering_in_pieces(tiny_engine, en_reference):
    text = chapter(700)
    job = SynthesisJob(text, en_reference, SynthesisOptions(nfe_steps=2), seed=7)
    whole = tiny_engine.synthesize(job).samples
    seen: list[tuple[int, int]] = []
    progress = SynthesisJob(
        text, en_reference, SynthesisOptions(nfe_steps=2), 7, on_progress=lambda i, n: seen.append((i, n))
    )
    pieces = list(tiny_engine.synthesize_stream(progress))
    chunks = seen[-1][1]
    assert chunks >= 3 and seen == [(i, chunks) for i in range(chunks + 1)]
    assert np.array_equal(np.concatenate(pieces), whole)  # same job, same audio


# --- the job ------------------------------------------------------------------------------------------------------
def _memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1)) / 1024


def test_a_10k_character_text_uri_job_streams_with_bounded_memory(stack, make_worker, tiny_engine, summary_line):
    text = chapter(10_000)
    stack.clients.s3.put_object(Bucket=stack.resources.bucket, Key="texts/chapter-1.txt", Body=text.encode())
    request = {
        "job_id": "chapter-1",
        "text_uri": f"s3://{stack.resources.bucket}/texts/chapter-1.txt",
        "voice": {"voice_id": "basic-en"},
        "options": {"nfe_steps": 2},
    }
    stack.send(json.dumps(request))
    worker, services = make_worker(tiny_engine, progress_interval_s=0.5)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak: measure this job only
    baseline = _memory_mb("VmRSS")
    worker.run()
    growth = _memory_mb("VmHWM") - baseline

    event = JobStore(stack.clients.s3, stack.resources.bucket, "jobs").result("chapter-1")
    assert isinstance(event, SynthesisCompleted), event
    audio, rate = sf.read(io.BytesIO(stack.get(event.output.key)), dtype="float32")
    job = SynthesisJob(text, services.voices.resolve(VoiceRef(voice_id="basic-en")), SynthesisOptions(nfe_steps=2), 0)
    assert len(audio) / rate == pytest.approx(event.output.duration_s, abs=0.01)
    assert event.output.duration_s == pytest.approx(job.expected_audio_s, rel=0.1)
    assert event.text_chars == len(text) and event.output.duration_s > 500
    summary_line(f"longform 10k chars: audio {event.output.duration_s:.0f} s, peak RSS growth {growth:.0f} MB")
    assert growth <= 300, growth


def test_text_uri_mistakes_fail_the_job_with_a_reason(stack, make_worker):
    bucket = stack.resources.bucket
    stack.clients.s3.put_object(Bucket=bucket, Key="texts/latin1.txt", Body="café".encode("latin-1"))
    stack.clients.s3.put_object(Bucket=bucket, Key="texts/blank.txt", Body=b"  \n ")
    stack.clients.s3.put_object(Bucket=bucket, Key="texts/huge.txt", Body=b"a" * (MAX_TEXT_URI_CHARS + 1))
    cases = {
        "t-missing": (f"s3://{bucket}/texts/nothing.txt", ErrorCode.INVALID_REQUEST, "does not exist"),
        "t-latin1": (f"s3://{bucket}/texts/latin1.txt", ErrorCode.INVALID_REQUEST, "not UTF-8"),
        "t-blank": (f"s3://{bucket}/texts/blank.txt", ErrorCode.INVALID_REQUEST, "is empty"),
        "t-huge": (f"s3://{bucket}/texts/huge.txt", ErrorCode.INVALID_REQUEST, "characters; at most"),
        "t-foreign": ("s3://someone-elses-bucket/t.txt", ErrorCode.FORBIDDEN_LOCATION, "not allowed"),
    }
    for job_id, (uri, _, _) in cases.items():
        stack.send(json.dumps({"job_id": job_id, "text_uri": uri, "voice": {"voice_id": "basic-en"}}))
    worker, _ = make_worker()
    worker.run()
    events = {e.job_id: e for e in stack.events()}
    for job_id, (_, code, words) in cases.items():
        event = events[job_id]
        assert isinstance(event, SynthesisFailed) and event.error_code == code, (job_id, event)
        assert words in event.error_message, (job_id, event.error_message)
    assert stack.queue_counts() == (0, 0)


def test_the_job_timeout_grows_with_the_text(stack, make_worker):
    text = chapter(2_000)  # 2 s of (fake) synthesis against a 1 s base limit
    stack.send(json.dumps({"job_id": "slow-long", "text": text[:1_900], "voice": {"voice_id": "basic-en"}}))
    worker, _ = make_worker(FakeEngine(work_s=2.0), job_timeout_s=1.0, job_timeout_per_1k_chars_s=2.0)
    worker.run()
    assert worker.outcomes == {"done": 1}

    stack.send(json.dumps({"job_id": "slow-long-2", "text": text[:1_900], "voice": {"voice_id": "basic-en"}}))
    worker, services = make_worker(FakeEngine(work_s=2.0), job_timeout_s=1.0, job_timeout_per_1k_chars_s=0.0)
    worker.run()
    assert services.metrics.count("done") == 0 and worker.outcomes.get("retry", 0) >= 1
