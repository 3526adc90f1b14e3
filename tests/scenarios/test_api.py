"""The HTTP door, over real HTTP: the official `openai` SDK against `/v1/audio/speech` with a worker on the tiny
model, the jobs and voices API, and every bad input answered in OpenAI's error shape with nothing written."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest
import soundfile as sf
import uvicorn

from consumer.api.app import create_app
from consumer.api.auth import create_key
from consumer.engine.fake import FakeEngine
from consumer.storage.jobs import JobStore

KEY, KEY_ENTRY = create_key("team-a")
OTHER_KEY, OTHER_ENTRY = create_key("team-b")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(settings) -> Iterator[str]:
    """The API on a free loopback port, in this process."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_worker(make_worker, engine=None) -> Iterator[None]:
    worker, _ = make_worker(engine or FakeEngine(), burst=False)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        worker.stop()
        thread.join(timeout=60)


@pytest.fixture
def api_settings(stack):
    return stack.settings(api_key_hashes=(KEY_ENTRY, OTHER_ENTRY), api_speech_wait_s=60, burst=False)


@pytest.fixture
def api(api_settings) -> Iterator[str]:
    with serving(api_settings) as url:
        yield url


def _http(url: str, key: str | None = KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def _written(stack) -> list[str]:
    """Objects the API or a worker wrote (the voice library's example voice aside)."""
    return [k for k in stack.objects("") if not k.startswith("voices/basic-en/")]


# --- OpenAI SDK ---------------------------------------------------------------------------------------------
def test_the_openai_sdk_speaks_through_the_gateway(stack, api, make_worker, tiny_engine, tmp_path):
    client = openai.OpenAI(base_url=f"{api}/v1", api_key=KEY)
    with running_worker(make_worker, tiny_engine):
        wav = client.audio.speech.create(
            model="tts-1",
            voice="basic-en",
            input="Hello from the queue.",
            response_format="wav",
            extra_body={"nfe_steps": 4},
        )
        audio, rate = sf.read(io.BytesIO(wav.content))
        assert rate == 24_000 and len(audio) / rate > 0.3

        path = tmp_path / "speech.flac"
        with client.audio.speech.with_streaming_response.create(
            model="f5-tts",
            voice={"id": "basic-en"},
            input="Streamed to a file.",
            response_format="flac",
            extra_body={"nfe_steps": 4, "seed": 3},
        ) as response:
            response.stream_to_file(path)
        assert sf.info(str(path)).format == "FLAC" and sf.info(str(path)).frames > 0

        pcm = client.audio.speech.create(
            model="tts-1", voice="basic-en", input="Raw.", response_format="pcm", extra_body={"nfe_steps": 4}
        )
        assert len(pcm.content) % 2 == 0 and len(pcm.content) > 4_800  # 16-bit samples at 24 kHz
        assert [m.id for m in client.models.list()] == ["f5-tts", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"]


def test_a_wait_past_its_limit_is_one_504_and_one_job_though_the_sdk_retries_5xx(stack, api_settings):
    settings = api_settings.model_copy(update={"api_speech_wait_s": 0.5})
    with serving(settings) as url:  # no worker: the job cannot finish
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=2)
        with pytest.raises(openai.APIStatusError) as raised:
            client.audio.speech.create(model="tts-1", voice="basic-en", input="Nobody is listening.")
    assert raised.value.status_code == 504
    assert raised.value.response.headers["x-should-retry"] == "false"
    job = raised.value.response.headers["x-f5-job-id"]
    assert job in raised.value.message
    assert stack.queue_counts() == (1, 0)  # one message, not three
    assert len(stack.objects("api-jobs/")) == 1


# --- bad input -----------------------------------------------------------------------------------------------
BAD = [
    (
        "no key",
        None,
        "post",
        "/v1/audio/speech",
        {"json": {"model": "tts-1", "input": "x", "voice": "basic-en"}},
        401,
        "invalid_api_key",
    ),
    (
        "wrong key",
        "f5w_wrong",
        "post",
        "/v1/audio/speech",
        {"json": {"model": "tts-1", "input": "x", "voice": "basic-en"}},
        401,
        "invalid_api_key",
    ),
    (
        "unknown voice",
        KEY,
        "post",
        "/v1/audio/speech",
        {"json": {"model": "tts-1", "input": "x", "voice": "alloy"}},
        400,
        "unknown_voice",
    ),
    (
        "stream with a loudness target",
        KEY,
        "post",
        "/v1/audio/speech",
        {"json": {"model": "tts-1", "input": "x", "voice": "basic-en", "stream": True, "target_lufs": -16}},
        400,
        "unsupported",
    ),
    (
        "unknown format",
        KEY,
        "post",
        "/v1/audio/speech",
        {"json": {"model": "tts-1", "input": "x", "voice": "basic-en", "response_format": "ogg"}},
        400,
        "invalid_request",
    ),
    (
        "unknown model",
        KEY,
        "post",
        "/v1/audio/speech",
        {"json": {"model": "whisper-1", "input": "x", "voice": "basic-en"}},
        400,
        "unsupported",
    ),
    (
        "text too long",
        KEY,
        "post",
        "/v1/audio/speech",
        {"json": {"model": "tts-1", "input": "x" * 5_001, "voice": "basic-en"}},
        400,
        "invalid_request",
    ),
    (
        "malformed JSON",
        KEY,
        "post",
        "/v1/audio/speech",
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        400,
        "invalid_request",
    ),
    (
        "oversize body",
        KEY,
        "post",
        "/v1/jobs",
        {"content": b"{" + b" " * 2_000_000 + b"}", "headers": {"Content-Type": "application/json"}},
        413,
        "too_large",
    ),
    (
        "invalid job",
        KEY,
        "post",
        "/v1/jobs",
        {"json": {"text": "", "voice": {"voice_id": "basic-en"}}},
        400,
        "invalid_request",
    ),
    ("unknown job", KEY, "get", "/v1/jobs/never-sent", {}, 404, "job_not_found"),
    ("unknown job cancel", KEY, "delete", "/v1/jobs/never-sent", {}, 404, "job_not_found"),
    ("unknown voice url", KEY, "get", "/v1/voices/nobody", {}, 404, "unknown_voice"),
    (
        "non-audio upload",
        KEY,
        "post",
        "/v1/voices",
        {"data": {"voice_id": "junk", "transcript": "Hello."}, "files": {"file": ("a.wav", b"not audio at all")}},
        400,
        "bad_reference_audio",
    ),
    (
        "bad voice id",
        KEY,
        "post",
        "/v1/voices",
        {"data": {"voice_id": "Bad Id", "transcript": "Hello."}, "files": {"file": ("a.wav", b"x")}},
        400,
        "invalid_request",
    ),
]


@pytest.mark.parametrize(("case", "key", "method", "path", "kwargs", "status", "code"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_clear_4xx_in_openais_shape_and_nothing_is_written(
    stack, api, case, key, method, path, kwargs, status, code
):
    with _http(api, key) as http:
        response = getattr(http, method)(path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["type"]
    assert stack.queue_counts() == (0, 0) and _written(stack) == []


def test_an_oversize_upload_is_refused(stack, api_settings):
    with serving(api_settings.model_copy(update={"api_max_upload_bytes": 10_000})) as url, _http(url) as http:
        response = http.post(
            "/v1/voices", data={"voice_id": "big", "transcript": "Hi."}, files={"file": ("a.wav", b"\0" * 200_000)}
        )
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    assert _written(stack) == []


# --- jobs and voices ------------------------------------------------------------------------------------------
def test_jobs_over_http_idempotency_ownership_and_cancel(stack, api, make_worker):
    body = {"text": "Hello, jobs.", "voice": {"voice_id": "basic-en"}}
    with _http(api) as http, _http(api, OTHER_KEY) as other:
        created = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-1"})
        assert created.status_code == 202 and created.headers["Location"] == f"/v1/jobs/{created.json()['id']}"
        job = created.json()["id"]
        again = http.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-1"})
        assert again.status_code == 200 and again.json()["id"] == job  # a retry, not a second job
        changed = http.post("/v1/jobs", json={**body, "text": "Else."}, headers={"Idempotency-Key": "order-1"})
        assert changed.status_code == 409 and changed.json()["error"]["code"] == "idempotency_conflict"
        assert stack.queue_counts() == (1, 0)
        assert http.get(f"/v1/jobs/{job}").json()["status"] == "queued"
        assert other.get(f"/v1/jobs/{job}").status_code == 404  # another key's job does not exist for it

        with running_worker(make_worker):
            deadline = time.monotonic() + 30
            while (shown := http.get(f"/v1/jobs/{job}").json())["status"] != "completed":
                assert time.monotonic() < deadline, shown
                time.sleep(0.2)
        audio = httpx.get(shown["audio_url"], timeout=10)
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
        assert http.delete(f"/v1/jobs/{job}").status_code == 409  # finished
        assert [j["id"] for j in http.get("/v1/jobs").json()["data"]] == [job]
        assert other.get("/v1/jobs").json()["data"] == []

        queued = http.post("/v1/jobs", json={**body, "job_id": "to-cancel"}).json()["id"]
        assert http.delete(f"/v1/jobs/{queued}").json()["cancel"] == "queued"
        with running_worker(make_worker):
            deadline = time.monotonic() + 30
            while (shown := http.get(f"/v1/jobs/{queued}").json())["status"] != "cancelled":
                assert time.monotonic() < deadline, shown
                time.sleep(0.2)
        assert shown["error"]["code"] == "cancelled"


def test_voices_over_http(stack, api, reference_wav):
    with _http(api) as http:
        form = {"voice_id": "narrator", "transcript": "Some call me nature, others call me mother nature."}
        added = http.post("/v1/voices", data=form, files={"file": ("clip.wav", reference_wav, "audio/wav")})
        assert added.status_code == 201, added.text
        assert added.json()["version"].startswith("sha256:")
        twice = http.post("/v1/voices", data=form, files={"file": ("clip.wav", reference_wav, "audio/wav")})
        assert twice.status_code == 409 and twice.json()["error"]["code"] == "voice_exists"
        assert [v["voice_id"] for v in http.get("/v1/voices").json()["data"]] == ["basic-en", "narrator"]
        assert http.get("/v1/audio/voices").json() == {"voices": ["basic-en", "narrator"]}
        assert http.get("/v1/voices/narrator").json()["transcript"].startswith("Some call me")
        assert http.delete("/v1/voices/narrator").json() == {"id": "narrator", "deleted": True}
        assert http.get("/v1/voices/narrator").status_code == 404


def test_operations_endpoints_and_the_console(stack, api):
    with _http(api) as http, _http(api, key=None) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json() == {"status": "ready"}
        status = http.get("/v1/status").json()
        assert status["queue"]["visible"] == 0 and status["dlq"]["messages"] == 0
        assert "f5_api_requests" in anonymous.get("/metrics").text
        paths = anonymous.get("/openapi.json").json()["paths"]
        assert {"/v1/audio/speech", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/voices", "/v1/models"} <= set(paths)
        page = anonymous.get("/")
        assert page.status_code == 200 and "<title>f5-worker console</title>" in page.text
        assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN


def test_keyless_mode_only_on_loopback(stack, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "F5_WORKER_QUEUE_URL": stack.resources.queue_url,
        "F5_WORKER_BUCKET": stack.resources.bucket,
        "F5_WORKER_AWS_ENDPOINT_URL": stack.endpoint_url,
    }
    result = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "api", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "not a loopback address" in result.stderr and "Traceback" not in result.stderr


def test_the_api_imports_no_torch(stack):
    code = (
        "import sys; from consumer.api.app import create_app; from consumer.core.settings import Settings;"
        f"create_app(Settings(queue_url={stack.resources.queue_url!r}, bucket={stack.resources.bucket!r},"
        f" aws_endpoint_url={stack.endpoint_url!r}));"
        "print(sorted({'torch', 'f5_tts', 'torchaudio'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_key_hashes_never_reveal_the_key():
    key, entry = create_key("ops")
    name, digest = entry.split(":")
    assert name == "ops" and key not in entry and len(digest) == 64
    assert json.dumps(entry).count(key) == 0


def test_with_its_own_events_queue_a_waiting_request_wakes_on_its_event(stack, api_settings, make_worker):
    settings = api_settings.model_copy(update={"api_events_queue_url": stack.resources.events_queue_url})
    with running_worker(make_worker), serving(settings) as url, _http(url) as http:
        started = time.monotonic()
        body = {"model": "tts-1", "input": "Woken by the event.", "voice": "basic-en", "response_format": "wav"}
        response = http.post("/v1/audio/speech", json=body | {"stream": False})  # the waiter, not a stream
        elapsed = time.monotonic() - started
        metrics = http.get("/metrics").text
    assert response.status_code == 200 and response.content[:4] == b"RIFF"
    assert elapsed < 4, elapsed  # not a 5 s index fallback round
    assert 'f5_api_aws_requests_total{operation="ReceiveMessage"}' in metrics


def test_each_key_has_its_own_rate_limit(stack, api_settings):
    limited = api_settings.model_copy(update={"api_rate_per_minute": 6.0})
    with serving(limited) as url, _http(url) as http, _http(url, OTHER_KEY) as other:
        answers = [http.get("/v1/models") for _ in range(6)]
        assert [a.status_code for a in answers[:5]] == [200] * 5  # a burst of 5
        assert answers[5].status_code == 429 and answers[5].json()["error"]["code"] == "rate_limited"
        assert int(answers[5].headers["Retry-After"]) >= 1
        assert other.get("/v1/models").status_code == 200  # the other key's bucket is full


def test_a_client_that_hangs_up_cancels_its_job_only_when_it_asked_to(stack, api):
    body = {"model": "tts-1", "input": "Nobody waits for me.", "voice": "basic-en"}
    for header in ({"x-f5-cancel-on-disconnect": "true"}, {}):  # no worker: the jobs stay queued
        with _http(api) as http, pytest.raises(httpx.ReadTimeout):  # leaving the block closes the connection
            http.post("/v1/audio/speech", json=body, headers=header, timeout=1.5)
    markers = {json.loads(stack.get(k))["created_at"]: k for k in stack.objects("api-jobs/")}
    asked, not_asked = (k.removeprefix("api-jobs/").removesuffix(".json") for _, k in sorted(markers.items()))
    jobs = JobStore(stack.clients.s3, stack.resources.bucket, "jobs")
    deadline = time.monotonic() + 10
    while (record := jobs.read(asked)[0]) is None or record.cancel is None:
        assert time.monotonic() < deadline, "the hang-up did not cancel the job"
        time.sleep(0.2)
    assert jobs.read(not_asked)[0] is None  # still queued, untouched: it will run
