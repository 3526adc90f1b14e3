"""OpenAI's speech body (`consumer/api/speech.py`): what it accepts, what this API refuses of it, and the
`SynthesisRequest` it becomes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consumer.api.speech import MODEL_NAMES, SpeechRequest
from contracts.limits import MAX_TEXT_CHARS
from contracts.requests import SynthesisRequest


def speech(**fields) -> SpeechRequest:
    return SpeechRequest.model_validate({"model": "tts-1", "input": "Hello there.", "voice": "narrator"} | fields)


def test_the_voice_is_a_string_or_openais_object():
    assert speech(voice="narrator").voice_id == "narrator"
    assert speech(voice={"id": "narrator"}).voice_id == "narrator"


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_served_model_name_and_openais_defaults_are_accepted(model):
    request = speech(model=model)
    assert request.problem() is None
    assert (request.response_format, request.speed, request.stream_format) == ("mp3", 1.0, "audio")


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"model": "whisper-1"}, "model", "f5-tts"),
        ({"stream": True, "target_lufs": -16}, "stream", "target_lufs"),
        ({"stream": True, "response_format": "flac"}, "stream", "flac"),
        ({"stream": "yes"}, "stream", "true or false"),
        ({"speed": 0.25}, "speed", "0.3-3.0"),  # OpenAI's range, outside F5's
        ({"speed": 4.0}, "speed", "0.3-3.0"),
    ],
)
def test_what_openai_allows_and_this_api_does_not_is_named_by_its_field(fields, param, says):
    problem = speech(**fields).problem()
    assert problem is not None
    assert problem[0] == param and says in problem[1]


@pytest.mark.parametrize(
    "fields",
    [
        {"input": ""},
        {"input": "x" * (MAX_TEXT_CHARS + 1)},
        {"speed": 4.5},
        {"response_format": "ogg"},
        {"voice": {"name": "narrator"}},
        {"model": None},
    ],
)
def test_what_openai_refuses_too_is_a_validation_error(fields):
    with pytest.raises(ValidationError):
        speech(**fields)


def test_the_synthesis_body_carries_the_text_voice_format_speed_and_known_extras_only():
    request = speech(
        input="Chapter one.",
        voice={"id": "narrator"},
        response_format="flac",
        speed=1.25,
        instructions="whisper it",  # accepted, ignored: the style comes from the reference clip
        seed=7,
        nfe_steps=16,
        epss=True,
        sample_rate=48000,
        target_lufs=-16,
        language="en",
        unknown_field="dropped",
    )
    body = request.synthesis_body()
    assert body == {
        "text": "Chapter one.",
        "voice": {"voice_id": "narrator"},
        "options": {"speed": 1.25, "seed": 7, "nfe_steps": 16, "epss": True},
        "output": {"format": "flac", "sample_rate": 48000, "target_lufs": -16},
        "metadata": {"via": "openai-speech"},
        "language": "en",
    }
    synthesis = SynthesisRequest.model_validate(body | {"job_id": "local.job-1"})
    assert synthesis.options.seed == 7 and synthesis.output.sample_rate == 48000


def test_without_extras_the_body_names_no_language_and_the_workers_defaults_apply():
    body = speech(response_format="wav").synthesis_body()
    assert "language" not in body
    assert body["options"] == {"speed": 1.0} and body["output"] == {"format": "wav"}
    SynthesisRequest.model_validate(body | {"job_id": "local.job-2"})


@pytest.mark.parametrize(
    ("fields", "default", "streamed"),
    [
        ({}, True, True),  # OpenAI's behaviour: audio as it is made
        ({}, False, False),  # F5_WORKER_API_STREAM=false
        ({"stream": False}, True, False),
        ({"stream": True}, False, True),
        ({"response_format": "flac"}, True, False),  # needs the whole audio: answered when done
        ({"target_lufs": -16}, True, False),
        ({"response_format": "aac", "stream_format": "sse"}, True, True),
    ],
)
def test_whether_the_worker_streams_follows_the_body_then_the_setting(fields, default, streamed):
    request = speech(**fields)
    assert request.problem() is None
    assert request.streamed(default) is streamed
    assert request.synthesis_body(request.streamed(default))["output"].get("stream", False) is streamed
    SynthesisRequest.model_validate({"job_id": "j", **request.synthesis_body(request.streamed(default))})
