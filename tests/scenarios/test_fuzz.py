"""Property tests: any JSON gives a valid request or a clear validation error; the handler never lets an
exception escape; reference decoding never crashes, hangs or balloons on hostile audio."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import threading
import time
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from consumer.audio.reference import decode_reference
from consumer.core.errors import BadReferenceAudio, InvalidRequest
from consumer.worker.job import Outcome, process_message
from consumer.worker.message import ReceivedMessage
from consumer.worker.validate import validate
from contracts import SynthesisRequest, parse_request

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
# Near-valid requests: the right keys with values of any shape, so validation goes deep.
near_valid = st.fixed_dictionaries(
    {"job_id": st.one_of(st.text(max_size=140), json_values), "text": st.one_of(st.text(max_size=200), json_values)},
    optional={
        "voice": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "voice_id": st.text(max_size=70),
                    "audio_uri": st.text(max_size=80),
                    "transcript": st.text(max_size=30),
                },
            ),
            json_values,
        ),
        "output": st.dictionaries(
            st.sampled_from(["format", "sample_rate", "bucket", "key_prefix", "target_lufs"]), json_values, max_size=4
        ),
        "options": st.dictionaries(
            st.sampled_from(["speed", "nfe_steps", "cfg_strength", "seed", "remove_silence"]), json_values, max_size=4
        ),
        "metadata": json_values,
        "schema_version": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(json_values, near_valid))
def test_any_json_is_a_request_or_a_readable_validation_error(value):
    body = json.dumps(value)
    try:
        request = parse_request(body)
    except ValidationError as exc:
        assert exc.error_count() >= 1
        return
    assert isinstance(request, SynthesisRequest)
    assert parse_request(request.model_dump_json()) == request


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_validate_raises_only_invalid_request(body):
    try:
        validate(body)
    except InvalidRequest as exc:
        assert str(exc)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.text(max_size=200), json_values.map(json.dumps), near_valid.map(json.dumps)))
def test_no_exception_escapes_the_handler(stack, make_worker, body):
    _, services = make_worker()
    raw = {
        "MessageId": "m-1",
        "ReceiptHandle": "not-a-real-receipt",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": "1"},
    }
    outcome = process_message(ReceivedMessage.from_sqs(raw), services, threading.Event())
    assert outcome in set(Outcome)


def _wav(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _lying_header(frames: int, rate: int = 24000, channels: int = 1) -> bytes:
    """A WAV header that claims `frames` frames, followed by almost no data."""
    data_size = frames * channels * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_size) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return header + b"data" + struct.pack("<I", data_size) + b"\x01\x00" * 100


_speech = (0.3 * np.sin(np.linspace(0, 2000, 24000 * 4))).astype(np.float32)
HOSTILE = {
    "zero-length": b"",
    "garbage": bytes(range(256)) * 40,
    "truncated-wav": _wav(_speech, 24000)[:5000],
    "header-only": _wav(_speech, 24000)[:44],
    "huge-claimed-length": _lying_header(frames=2**31 // 2),
    "four-hours-claimed": _lying_header(frames=24000 * 3600 * 4),
    "rate-1-hz": _lying_header(frames=100, rate=1),
    "rate-10-mhz": _lying_header(frames=100, rate=10_000_000),
    "many-channels": _lying_header(frames=100, channels=200),
    "very-long": _wav(np.tile(_speech, 30), 24000),  # two minutes
    "text-file": b"Some call me nature, others call me mother nature.\n" * 20,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_reference_audio_is_refused_quickly_without_memory_blowup(name):
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises((BadReferenceAudio, InvalidRequest)) as info:
        decode_reference(HOSTILE[name], "Some call me nature.")
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert str(info.value)
    assert elapsed < 3.0, f"{name}: {elapsed:.1f}s"
    assert peak < 150 * 2**20, f"{name}: peak {peak / 2**20:.0f} MiB"


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=4096))
def test_random_bytes_never_crash_the_decoder(data):
    with contextlib.suppress(BadReferenceAudio, InvalidRequest):
        decode_reference(data, "words")
