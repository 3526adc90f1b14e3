"""Speak while it thinks: a streamed job's blocks reach a reader while the job runs, through the queue, S3 and the
HTTP door, and their concatenation is the final object (pcm and wav exactly, lossy formats by duration)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import threading
import time
from datetime import datetime

import av
import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from consumer.core.errors import StreamFailed
from consumer.engine.fake import FakeEngine
from consumer.producer.client import Client
from consumer.storage.job_record import JobStatus
from tests.scenarios.test_api import KEY, running_worker, serving

TEXT = "First words come fast. Then a second sentence follows. A third one is here. And the last one ends it."
LONG_TEXT = " ".join(f"Sentence number {i} of a longer text." for i in range(12))  # 6 s at 0.5 s a chunk


def _body(job_id: str, fmt: str = "pcm", **output) -> str:
    return json.dumps(
        {
            "job_id": job_id,
            "text": TEXT,
            "voice": {"voice_id": "basic-en"},
            "output": {"format": fmt, "stream": True, **output},
        }
    )


def _client(stack) -> Client:
    return Client(stack.clients, stack.resources.queue_url, stack.resources.bucket)


def _final(stack, job_id: str) -> bytes:
    event = next(e for e in stack.events(wait_s=2) if e.job_id == job_id)
    return stack.clients.s3.get_object(Bucket=event.output.bucket, Key=event.output.key)["Body"].read()


def _decoded_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        return sum(frame.samples for frame in container.decode(audio=0)) / container.streams.audio[0].rate


def test_blocks_arrive_while_the_job_runs_and_add_up_to_the_final_object(stack, make_worker):
    stack.send(_body("s-pcm"))
    arrivals: list[tuple[float, str]] = []
    received = b""
    with running_worker(make_worker, FakeEngine(chunk_s=0.4)):
        reader = _client(stack)
        for block in reader.stream("s-pcm", timeout_s=60):
            arrivals.append((time.monotonic(), stack.record("s-pcm")["status"]))
            received += block
        final = _final(stack, "s-pcm")
    assert received == final  # pcm: the stream is the object, byte for byte
    assert len(arrivals) >= 3, "one block per chunk, not one at the end"
    assert arrivals[0][1] == JobStatus.INPROGRESS, "the first block came before the job finished"
    record = stack.record("s-pcm")
    assert record["stream"]["bytes"] == len(final) and record["stream"]["blocks"] >= 3
    assert record["stream"]["prefix"].startswith("streams/s-pcm/1/")
    deadline = time.monotonic() + 10
    while stack.objects("streams/s-pcm/") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack.objects("streams/s-pcm/") == [], "blocks are removed once the outcome is recorded"


@pytest.mark.parametrize("fmt", ["wav", "mp3", "opus", "aac"])
def test_every_streamed_format_decodes_like_the_final_object(stack, make_worker, fmt):
    stack.send(_body(f"s-{fmt}", fmt))
    with running_worker(make_worker, FakeEngine(chunk_s=0.05)):
        received = b"".join(_client(stack).stream(f"s-{fmt}", timeout_s=60))
        final = _final(stack, f"s-{fmt}")
    if fmt == "wav":
        assert received[:4] == b"RIFF" and received[4:8] == b"\xff\xff\xff\xff"  # the streaming header
        assert received[44:] == final[44:]
        streamed, rate = sf.read(io.BytesIO(final), dtype="int16")
        assert rate == 24_000 and len(streamed) == (len(received) - 44) // 2
    else:
        assert received == final  # the final object is the blocks' bytes
        assert abs(_decoded_seconds(received) - _decoded_seconds(final)) < 0.05
        assert _decoded_seconds(received) > 1.0


def test_a_reader_that_comes_late_gets_the_whole_audio_from_the_final_object(stack, make_worker):
    stack.send(_body("s-late"))
    with running_worker(make_worker, FakeEngine()):
        client = _client(stack)
        client.wait("s-late", timeout_s=30, poll_s=0.2)
        final = _final(stack, "s-late")
        assert b"".join(client.stream("s-late", timeout_s=30)) == final


def test_a_failed_stream_raises_with_the_failure(stack, make_worker):
    stack.send(_body("s-bad").replace("basic-en", "nobody"))
    with running_worker(make_worker, FakeEngine()), pytest.raises(StreamFailed, match="nobody") as failed:
        b"".join(_client(stack).stream("s-bad", timeout_s=30))
    assert failed.value.event is not None and failed.value.event.error_code.value == "unknown_voice"


def test_stream_with_a_loudness_target_is_refused_before_synthesis(stack, make_worker):
    engine = FakeEngine()
    stack.send(_body("s-lufs", target_lufs=-16))
    worker, _ = make_worker(engine)
    worker.run()
    (event,) = stack.events()
    assert event.error_code.value == "invalid_request" and "target_lufs" in event.error_message
    assert engine.calls == 0


# --- over HTTP ----------------------------------------------------------------------------------------------
@pytest.fixture
def stream_api(stack):
    from tests.scenarios.test_api import KEY_ENTRY

    settings = stack.settings(api_key_hashes=(KEY_ENTRY,), api_speech_wait_s=60, burst=False)
    with serving(settings) as url:
        yield url


def test_the_openai_sdk_streams_wav_to_a_file_while_the_job_runs(stack, stream_api, make_worker, tmp_path):
    client = openai.OpenAI(base_url=f"{stream_api}/v1", api_key=KEY)
    path = tmp_path / "streamed.wav"
    with running_worker(make_worker, FakeEngine(chunk_s=0.4)):
        with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="basic-en", input=TEXT, response_format="wav"
        ) as response:
            job_id = response.headers["x-f5-job-id"]
            chunks = []
            for chunk in response.iter_bytes():
                if not chunks:
                    first_status = stack.record(f"team-a.{job_id}")["status"]
                chunks.append(chunk)
        path.write_bytes(b"".join(chunks))
        final = _final(stack, f"team-a.{job_id}")
    assert first_status == JobStatus.INPROGRESS, "the first bytes came while the job ran"
    streamed, rate = sf.read(str(path), dtype="int16")
    whole, _ = sf.read(io.BytesIO(final), dtype="int16")
    assert rate == 24_000 and np.array_equal(streamed, whole)


def test_the_openai_sdk_reads_sse_events_of_aac(stack, stream_api, make_worker):
    client = openai.OpenAI(base_url=f"{stream_api}/v1", api_key=KEY)
    with running_worker(make_worker, FakeEngine(chunk_s=0.2)):
        with client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="basic-en", input=TEXT, response_format="aac", stream_format="sse"
        ) as response:
            job_id = response.headers["x-f5-job-id"]
            events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
        final = _final(stack, f"team-a.{job_id}")
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 3 and events[-1]["type"] == "speech.audio.done"
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert audio == final and _decoded_seconds(audio) == pytest.approx(_decoded_seconds(final))


def test_sse_sends_openai_delta_and_done_events(stack, stream_api, make_worker):
    body = {"model": "tts-1", "voice": "basic-en", "input": TEXT, "response_format": "pcm", "stream_format": "sse"}
    events = []
    with running_worker(make_worker, FakeEngine(chunk_s=0.1)):
        with httpx.stream(
            "POST", f"{stream_api}/v1/audio/speech", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
        ) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            job_id = response.headers["x-f5-job-id"]
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        final = _final(stack, f"team-a.{job_id}")
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert len(events) > 3
    assert events[-1]["type"] == "speech.audio.done" and events[-1]["usage"]["input_tokens"] == len(TEXT)
    assert b"".join(base64.b64decode(e["audio"]) for e in events[:-1]) == final


def test_an_early_failure_keeps_its_status_and_a_late_one_ends_the_stream(stack, stream_api, make_worker):
    headers = {"Authorization": f"Bearer {KEY}"}
    worker, _ = make_worker(FakeEngine(chunk_s=0.5), burst=False, heartbeat_interval_s=1)  # sees a cancel within 1 s
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        refused = httpx.post(
            f"{stream_api}/v1/audio/speech",
            json={"model": "tts-1", "voice": "basic-en", "input": "x\x00y", "response_format": "pcm"},
            headers=headers,
            timeout=60,
        )
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "text_not_representable"

        body = {
            "model": "tts-1",
            "voice": "basic-en",
            "input": LONG_TEXT,
            "response_format": "pcm",
            "stream_format": "sse",
        }
        events = []
        with httpx.stream("POST", f"{stream_api}/v1/audio/speech", json=body, headers=headers, timeout=60) as sse:
            job_id = sse.headers["x-f5-job-id"]
            for line in sse.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if len(events) == 1:  # cancel once audio flows: the stream ends with an error event
                        threading.Thread(
                            target=httpx.delete, args=(f"{stream_api}/v1/jobs/{job_id}",), kwargs={"headers": headers}
                        ).start()
        assert events[0]["type"] == "speech.audio.delta"
        assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "cancelled"

        body["stream_format"] = "audio"
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream("POST", f"{stream_api}/v1/audio/speech", json=body, headers=headers, timeout=60) as raw,
        ):
            job_id = raw.headers["x-f5-job-id"]
            for i, _chunk in enumerate(raw.iter_raw()):
                if i == 0:
                    httpx.delete(f"{stream_api}/v1/jobs/{job_id}", headers=headers)
    finally:
        worker.stop()
        thread.join(timeout=60)


# --- say --play ------------------------------------------------------------------------------------------------
def test_say_play_feeds_the_player_from_the_first_block_while_the_job_runs(stack, make_worker, tmp_path):
    from tests.unit.cli.test_commands import F5_WORKER, stack_env

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    heard, first_at = tmp_path / "heard.pcm", tmp_path / "first-byte-at"
    player = bin_dir / "ffplay"  # a stand-in that notes when the first byte came and keeps what it was fed
    player.write_text(
        f'#!/bin/sh\nhead -c 2 > {heard}; date +%s.%N > {first_at}; cat >> {heard}\necho "$@" > {tmp_path}/args\n'
    )
    player.chmod(0o755)
    env = stack_env(stack, tmp_path) | {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    out = tmp_path / "said.pcm"
    with running_worker(make_worker, FakeEngine(chunk_s=0.5)):
        said = subprocess.run(
            [F5_WORKER, "say", LONG_TEXT, "--format", "pcm", "--out", str(out), "--job-id", "said-1", "--play"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert said.returncode == 0, said.stderr
    finished = datetime.fromisoformat(stack.record("said-1")["finished_at"]).timestamp()
    assert float(first_at.read_text()) < finished - 2, "playback started seconds before the job finished"
    assert heard.read_bytes() == out.read_bytes() == _final_of(stack, "said-1")
    assert "-f s16le" in (tmp_path / "args").read_text()  # raw PCM: the player is told its shape
    assert "not played" not in said.stderr


def _final_of(stack, job_id: str) -> bytes:
    return stack.get(f"outputs/{job_id}.pcm")
