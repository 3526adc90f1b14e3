"""Speech recognition of reference clips sent without a transcript: a tiny random Whisper model generated on disk and
loaded through the real loader (its weights are set so that one word always wins), the voice resolver's rules
(transcribed once per ETag, a clear invalid_request without an ASR model, no speech → bad_reference_audio), the
worker end to end, the voice library and `voices add`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from consumer.audio.reference import process_reference_audio
from consumer.aws.clients import make_clients
from consumer.cli import app
from consumer.core.errors import BadReferenceAudio, EngineError, InvalidRequest
from consumer.core.metrics import Metrics
from consumer.core.settings import Settings
from consumer.engine import SynthesisJob, SynthesizedAudio
from consumer.engine.asr import WhisperTranscriber, build_transcriber
from consumer.engine.fake import FakeEngine
from consumer.producer.voice_library import VoiceLibrary
from consumer.worker.loop import Worker
from consumer.worker.process import start_transcriber
from consumer.worker.services import StartupTimeline, build_services
from consumer.worker.voices import VoiceResolver
from contracts.events import ErrorCode, SynthesisCompleted, SynthesisFailed
from contracts.requests import VoiceRef
from tests.tiny_whisper import RECOGNISED, write_tiny_whisper

NO_ASR_MESSAGE = "the reference clip has no transcript and this worker has no ASR model (F5_WORKER_ASR_MODEL)"


@pytest.fixture(scope="session")
def transcriber(tiny_whisper: Path) -> WhisperTranscriber:
    transcriber = build_transcriber(Settings(asr_model=str(tiny_whisper), device="cpu"))
    assert transcriber is not None
    return transcriber


def noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


# --- the loader and the model ---------------------------------------------------------------------------------------
def test_tiny_whisper_loads_through_the_real_loader_and_recognises_its_word(tiny_whisper, summary_line):
    t0 = time.monotonic()
    transcriber = build_transcriber(Settings(asr_model=str(tiny_whisper), device="cpu"))
    load_s = time.monotonic() - t0
    assert isinstance(transcriber, WhisperTranscriber)
    assert (transcriber.device, transcriber.sample_rate, transcriber.model_id) == ("cpu", 16_000, str(tiny_whisper))
    t0 = time.monotonic()
    # Any audio, at any rate (resampled to the feature extractor's 16 kHz): the same words.
    assert transcriber.transcribe(noise(2.0, 24_000), 24_000) == RECOGNISED
    call_s = time.monotonic() - t0
    assert transcriber.transcribe(noise(3.0, 16_000, seed=1), 16_000) == RECOGNISED
    summary_line(f"tiny whisper (cpu): load {load_s:.2f} s, first transcription {call_s:.2f} s")


def test_no_model_configured_means_no_transcriber():
    assert build_transcriber(Settings()) is None
    assert build_transcriber(Settings(asr_model="")) is None  # e.g. an image built without ASR_MODEL


def test_language_is_passed_to_multilingual_models_and_checked_at_load(tiny_whisper):
    for language in ("en", "English"):
        transcriber = build_transcriber(Settings(asr_model=str(tiny_whisper), device="cpu", asr_language=language))
        assert transcriber is not None and transcriber.transcribe(noise(1.5, 16_000), 16_000) == RECOGNISED
    with pytest.raises(EngineError, match="F5_WORKER_ASR_LANGUAGE='klingon'"):
        build_transcriber(Settings(asr_model=str(tiny_whisper), device="cpu", asr_language="klingon"))


def test_english_only_models_get_no_task_and_refuse_a_language(tmp_path):
    english = write_tiny_whisper(tmp_path / "tiny-whisper-en", multilingual=False)
    # generate() raises for a task or language given to an English-only model: this one was given neither.
    transcriber = build_transcriber(Settings(asr_model=str(english), device="cpu"))
    assert transcriber is not None and transcriber.transcribe(noise(1.5, 16_000), 16_000) == RECOGNISED
    with pytest.raises(EngineError, match="English-only"):
        build_transcriber(Settings(asr_model=str(english), device="cpu", asr_language="en"))


def test_load_failures_name_the_setting(tmp_path):
    with pytest.raises(EngineError, match=r"does not exist .*F5_WORKER_ASR_MODEL"):
        build_transcriber(Settings(asr_model=str(tmp_path / "missing"), device="cpu"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match=r"loading the ASR model .* failed .*Set F5_WORKER_ASR_MODEL"):
        build_transcriber(Settings(asr_model=str(tmp_path / "empty"), device="cpu"))


def test_a_model_that_hears_nothing_is_a_bad_reference(tmp_path):
    deaf = build_transcriber(Settings(asr_model=str(write_tiny_whisper(tmp_path / "deaf", favoured=None))))
    assert deaf is not None
    with pytest.raises(BadReferenceAudio, match="no speech was recognised"):
        deaf.transcribe(noise(2.0, 24_000), 24_000)


def test_start_transcriber_marks_the_timeline_only_when_configured(tiny_whisper):
    timeline = StartupTimeline(Metrics())
    assert start_transcriber(Settings(), timeline) is None and "asr_loaded" not in timeline.phases
    loaded = start_transcriber(Settings(asr_model=str(tiny_whisper), device="cpu"), timeline)
    assert isinstance(loaded, WhisperTranscriber) and "asr_loaded" in timeline.phases


def test_asr_and_voice_modules_import_without_torch():
    code = (
        "import sys, consumer.engine.asr, consumer.worker.voices, consumer.producer.voice_library,"
        " consumer.worker.services, consumer.worker.process;"
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- resolving voices -----------------------------------------------------------------------------------------------
class ScriptedTranscriber:
    """Returns `text` and records what it was asked to transcribe."""

    model_id = "scripted"

    def __init__(self, text: str = "Words the recogniser heard", delay_s: float = 0.0) -> None:
        self.text = text
        self.delay_s = delay_s
        self.calls: list[tuple[np.ndarray, int]] = []

    def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        self.calls.append((samples, sample_rate))
        time.sleep(self.delay_s)
        return self.text


def _clip(stack, reference_wav: bytes, key: str = "refs/clip.wav") -> str:
    stack.clients.s3.put_object(Bucket=stack.resources.bucket, Key=key, Body=reference_wav)
    return f"s3://{stack.resources.bucket}/{key}"


def _resolver(stack, transcriber=None, revalidate_after_s: float = 60.0) -> VoiceResolver:
    return VoiceResolver(
        stack.clients.s3,
        stack.resources.bucket,
        "voices",
        (),
        24_000,
        revalidate_after_s=revalidate_after_s,
        transcriber=transcriber,
    )


def test_a_clip_without_transcript_is_transcribed_once_per_etag(stack, reference_wav):
    uri = _clip(stack, reference_wav)
    asr = ScriptedTranscriber()
    resolver = _resolver(stack, asr, revalidate_after_s=0)  # every resolve checks the ETag again
    first = resolver.resolve(VoiceRef(audio_uri=uri))
    second = resolver.resolve(VoiceRef(audio_uri=uri))
    assert first.transcript == "Words the recogniser heard. "  # normalised as a given transcript is
    assert second is first and len(asr.calls) == 1
    # It heard exactly the processed audio the engine gets (trimmed, padded, at the engine's rate).
    heard, rate = asr.calls[0]
    assert rate == 24_000 and np.array_equal(heard, first.samples)
    assert np.array_equal(heard, process_reference_audio(reference_wav, sample_rate=24_000))
    assert first.cache_key.startswith(f"{stack.resources.bucket}/refs/clip.wav@")

    # A transcript given for the same clip wins over the recognised one; the recogniser is not asked.
    given = resolver.resolve(VoiceRef(audio_uri=uri, transcript="Some call me nature."))
    assert given.transcript == "Some call me nature. " and len(asr.calls) == 1

    # A replaced clip (new ETag) is transcribed again.
    samples, rate = sf.read(io.BytesIO(reference_wav), dtype="float32")
    shorter = io.BytesIO()
    sf.write(shorter, samples[: len(samples) - rate // 2], rate, format="WAV")
    _clip(stack, shorter.getvalue())
    assert resolver.resolve(VoiceRef(audio_uri=uri)) is not first and len(asr.calls) == 2


def test_jobs_arriving_together_with_a_new_clip_share_one_transcription(stack, reference_wav):
    uri = _clip(stack, reference_wav)
    asr = ScriptedTranscriber(delay_s=0.3)
    resolver = _resolver(stack, asr)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolver.resolve(VoiceRef(audio_uri=uri)).transcript))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["Words the recogniser heard. "] * 4 and len(asr.calls) == 1


def test_a_clip_without_transcript_needs_an_asr_model(stack, reference_wav):
    uri = _clip(stack, reference_wav)
    calls: list[str] = []
    stack.clients.s3.meta.events.register("before-call.s3.*", lambda event_name, **kw: calls.append(event_name))
    with pytest.raises(InvalidRequest) as info:
        _resolver(stack).resolve(VoiceRef(audio_uri=uri))
    assert NO_ASR_MESSAGE in str(info.value) and info.value.code == ErrorCode.INVALID_REQUEST
    assert calls == []  # refused before touching S3
    # With a transcript the same worker resolves it.
    assert _resolver(stack).resolve(VoiceRef(audio_uri=uri, transcript="Some call me nature.")).transcript


@pytest.mark.parametrize("heard", ["", "  \n "])
def test_no_recognised_speech_is_a_bad_reference(stack, reference_wav, heard):
    with pytest.raises(BadReferenceAudio, match="no speech was recognised") as info:
        _resolver(stack, ScriptedTranscriber(heard)).resolve(VoiceRef(audio_uri=_clip(stack, reference_wav)))
    assert info.value.code == ErrorCode.BAD_REFERENCE_AUDIO


def test_library_voices_keep_their_manifest_transcript(stack):
    asr = ScriptedTranscriber()
    reference = _resolver(stack, asr).resolve(VoiceRef(voice_id="basic-en"))
    assert reference.transcript.startswith("Some call me nature") and asr.calls == []


# --- the worker end to end ------------------------------------------------------------------------------------------
class TranscriptRecordingEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.transcripts: list[str] = []

    def synthesize(self, job: SynthesisJob) -> SynthesizedAudio:
        self.transcripts.append(job.reference.transcript)
        return super().synthesize(job)


def _job(job_id: str, uri: str) -> str:
    return json.dumps({"job_id": job_id, "text": "Hello there.", "voice": {"audio_uri": uri}})


def test_worker_synthesizes_with_the_recognised_transcript(stack, reference_wav, transcriber):
    uri = _clip(stack, reference_wav)
    stack.send(_job("asr-1", uri))
    stack.send(_job("asr-2", uri))
    settings = stack.settings()
    engine = TranscriptRecordingEngine()
    services = build_services(settings, engine, clients=make_clients(settings), transcriber=transcriber)
    assert Worker(services).run() == 0
    events = stack.events()
    assert sorted(e.job_id for e in events) == ["asr-1", "asr-2"]
    assert all(isinstance(e, SynthesisCompleted) for e in events)
    assert engine.transcripts == [f"{RECOGNISED}. "] * 2


def test_worker_without_asr_fails_the_job_as_invalid_request(stack, reference_wav, make_worker):
    stack.send(_job("no-asr-1", _clip(stack, reference_wav)))
    worker, _ = make_worker()
    worker.run()
    (event,) = stack.events()
    assert isinstance(event, SynthesisFailed) and event.error_code == ErrorCode.INVALID_REQUEST
    assert NO_ASR_MESSAGE in event.error_message and not event.retryable
    assert stack.queue_counts() == (0, 0)


# --- the voice library and `voices add` -----------------------------------------------------------------------------
def test_library_stores_the_recognised_transcript_and_its_source(stack, reference_wav):
    asr = ScriptedTranscriber("Some call me nature")
    library = VoiceLibrary(stack.clients.s3, stack.resources.bucket, transcriber=asr)
    recognised = library.add("heard", reference_wav)
    assert (recognised["transcript"], recognised["transcript_source"]) == ("Some call me nature", "asr")
    given = library.add("given", reference_wav, "Some call me nature, others call me mother nature.")
    assert given["transcript_source"] == "given" and len(asr.calls) == 1
    # Jobs for the library voice use the stored transcript without recognising anything again.
    resolved = _resolver(stack, asr).resolve(VoiceRef(voice_id="heard"))
    assert resolved.transcript == "Some call me nature. " and len(asr.calls) == 1

    with pytest.raises(InvalidRequest, match="no ASR model configured"):
        VoiceLibrary(stack.clients.s3, stack.resources.bucket).add("nothing", reference_wav)
    assert stack.objects("voices/nothing/") == []


@pytest.fixture
def cli_env(stack, monkeypatch):
    for key in ("aws_endpoint_url", "queue_url", "bucket", "topic_arn"):
        monkeypatch.setenv(f"F5_WORKER_{key.upper()}", str(getattr(stack.settings(), key)))
    monkeypatch.setenv("F5_WORKER_DEVICE", "cpu")
    monkeypatch.delenv("F5_WORKER_ASR_MODEL", raising=False)
    return stack


def test_voices_add_transcribes_with_asr_model(cli_env, reference_wav, tiny_whisper, tmp_path):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(reference_wav)
    runner = CliRunner()
    refused = runner.invoke(app, ["voices", "add", "narrator", str(clip)])
    assert refused.exit_code == 1 and "rejected: no transcript given and no ASR model" in refused.output
    added = runner.invoke(app, ["voices", "add", "narrator", str(clip), "--asr-model", str(tiny_whisper), "--json"])
    assert added.exit_code == 0, added.output
    manifest = json.loads(added.stdout)  # stderr carries transformers' progress bars
    assert (manifest["transcript"], manifest["transcript_source"]) == (RECOGNISED, "asr")
    shown = json.loads(runner.invoke(app, ["voices", "show", "narrator", "--json"]).output)
    assert shown["transcript"] == RECOGNISED
