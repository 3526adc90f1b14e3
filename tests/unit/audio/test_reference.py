"""Reference decoding: real clips are accepted and prepared as upstream prepares them; everything else is
refused with a message a person can act on."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from consumer.audio.reference import decode_reference, normalise_transcript, process_reference_audio
from consumer.audio.signal import resample
from consumer.core.errors import BadReferenceAudio, InvalidRequest
from consumer.engine.model_spec import wheel_example_path
from tests.wheel_examples import REF_EN_FILE, REF_EN_TEXT

RATE = 24000


def _encode(samples: np.ndarray, rate: int, fmt: str = "WAV", **kwargs) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, **kwargs)
    return buffer.getvalue()


def _tone(seconds: float, rate: int = RATE, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_wheel_clip_is_prepared_like_upstream(ref_en_bytes):
    ref = decode_reference(ref_en_bytes, REF_EN_TEXT, cache_key="k")
    assert ref.sample_rate == RATE and ref.samples.ndim == 1 and ref.samples.dtype == np.float32
    assert ref.transcript == REF_EN_TEXT + " " and ref.cache_key == "k"
    # 5.33 s file; pydub's edge trimming removes 70 ms + 330 ms, then 50 ms of silence is appended.
    assert ref.duration_s == pytest.approx(5.333 - 0.070 - 0.330 + 0.050, abs=0.011)
    assert np.all(ref.samples[-int(0.05 * RATE) :] == 0)
    assert np.sqrt(np.mean(ref.samples.astype(np.float64) ** 2)) >= 0.1 - 1e-6


def test_trimming_matches_pydub(ref_en_bytes):
    pydub = pytest.importorskip("pydub")
    from pydub import silence

    segment = pydub.AudioSegment.from_file(str(wheel_example_path(REF_EN_FILE)))
    lead = silence.detect_leading_silence(segment, silence_threshold=-42)
    trail = silence.detect_leading_silence(segment.reverse(), silence_threshold=-42)
    ref = decode_reference(ref_en_bytes, REF_EN_TEXT)
    expected_s = (len(segment) - lead - trail) / 1000 + 0.05
    assert ref.duration_s == pytest.approx(expected_s, abs=0.011)


@pytest.mark.parametrize(
    ("fmt", "kwargs"),
    [("FLAC", {}), ("MP3", {}), ("OGG", {"subtype": "VORBIS"}), ("OGG", {"subtype": "OPUS"})],
)
def test_other_containers_stereo_and_rates_decode_to_24k_mono(ref_en_bytes, fmt, kwargs):
    mono, rate = sf.read(io.BytesIO(ref_en_bytes), dtype="float32")
    high = resample(mono, rate, 48000)
    stereo = np.stack([high, high * 0.5], axis=1)
    ref = decode_reference(_encode(stereo, 48000, fmt, **kwargs), REF_EN_TEXT)
    baseline = decode_reference(ref_en_bytes, REF_EN_TEXT)
    assert ref.sample_rate == RATE and ref.samples.ndim == 1
    assert ref.duration_s == pytest.approx(baseline.duration_s, abs=0.06)  # codec padding moves the edges


def test_quiet_clip_is_raised_to_target_rms(ref_en_bytes):
    mono, rate = sf.read(io.BytesIO(ref_en_bytes), dtype="float32")
    ref = decode_reference(_encode(mono * 0.2, rate, subtype="FLOAT"), REF_EN_TEXT)
    assert np.sqrt(np.mean(ref.samples.astype(np.float64) ** 2)) == pytest.approx(0.1, rel=1e-4)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"empty \(0 bytes\)"),
        (b"this is a text file, not audio " * 40, "could not be read as audio"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "could not be read as audio"),
    ],
)
def test_non_audio_is_refused(data, message):
    with pytest.raises(BadReferenceAudio, match=message):
        decode_reference(data, REF_EN_TEXT)


def test_silent_clip_is_refused():
    with pytest.raises(BadReferenceAudio, match="silent"):
        decode_reference(_encode(np.zeros(3 * RATE, dtype=np.float32), RATE), REF_EN_TEXT)


def test_near_silent_hiss_is_refused():
    hiss = np.random.default_rng(0).normal(0, 0.001, 3 * RATE).astype(np.float32)  # about -60 dBFS
    with pytest.raises(BadReferenceAudio, match="silent"):
        decode_reference(_encode(hiss, RATE, subtype="FLOAT"), REF_EN_TEXT)


def test_too_short_is_refused():
    clip = np.concatenate([np.zeros(RATE, np.float32), _tone(0.5), np.zeros(RATE, np.float32)])
    with pytest.raises(BadReferenceAudio, match=r"only 0\.5\d s of sound after trimming"):
        decode_reference(_encode(clip, RATE), REF_EN_TEXT)


def test_too_long_is_refused_with_advice_to_clip():
    with pytest.raises(BadReferenceAudio, match=r"15\.0 s long.*at most 12 s.*transcript of exactly that clip"):
        decode_reference(_encode(_tone(15.0), RATE), REF_EN_TEXT)


def _speech_with_pauses(parts: list[tuple[str, float]]) -> np.ndarray:
    """("tone", s) and ("pause", s) pieces: a stand-in for speech with pauses."""
    return np.concatenate([_tone(s) if kind == "tone" else np.zeros(int(s * RATE), np.float32) for kind, s in parts])


@pytest.mark.parametrize(
    ("parts", "expected_s"),
    [
        # A 1 s pause is preferred to a later short one: cut where the 1 s pause starts (after 5 s of tone).
        ([("tone", 5), ("pause", 1.2), ("tone", 4), ("pause", 0.2), ("tone", 6)], 5.0),
        # Only short pauses: the last one before 12 s.
        ([("tone", 4), ("pause", 0.2), ("tone", 5), ("pause", 0.2), ("tone", 6)], 9.2),
        # No pause at all: a hard cut at 12 s.
        ([("tone", 15)], 12.0),
    ],
)
def test_long_clip_is_clipped_at_a_pause_when_the_transcript_will_be_recognised(parts, expected_s):
    data = _encode(_speech_with_pauses(parts), RATE)
    with pytest.raises(BadReferenceAudio, match="at most 12 s"):
        process_reference_audio(data, sample_rate=RATE)  # a given transcript could not match a clipped clip
    clipped = process_reference_audio(data, sample_rate=RATE, clip_long=True)
    assert len(clipped) / RATE == pytest.approx(expected_s + 0.050, abs=0.015)  # + the 50 ms end padding
    assert np.all(clipped[-int(0.05 * RATE) :] == 0)


def test_long_header_is_refused_before_decoding():
    with pytest.raises(BadReferenceAudio, match="61 s long; at most 12 s"):
        decode_reference(_encode(np.zeros(61 * 8000, np.float32), 8000), REF_EN_TEXT)


def test_truncated_wav_is_refused(ref_en_bytes):
    with pytest.raises(BadReferenceAudio, match="WAV is truncated"):
        decode_reference(ref_en_bytes[: len(ref_en_bytes) // 2], REF_EN_TEXT)


@pytest.mark.parametrize("fmt", ["FLAC", "MP3"])
def test_truncated_compressed_file_is_refused(ref_en_bytes, fmt):
    mono, rate = sf.read(io.BytesIO(ref_en_bytes), dtype="float32")
    data = _encode(mono, rate, fmt)
    with pytest.raises(BadReferenceAudio, match="truncated"):
        decode_reference(data[: len(data) // 2], REF_EN_TEXT)


def test_absurd_sample_rate_is_refused():
    with pytest.raises(BadReferenceAudio, match="4000 Hz"):
        decode_reference(_encode(_tone(3.0, rate=4000), 4000), REF_EN_TEXT)


def test_too_many_channels_is_refused():
    many = np.tile(_tone(2.0)[:, None], (1, 17))
    with pytest.raises(BadReferenceAudio, match="17 channels"):
        decode_reference(_encode(many, RATE, "WAVEX"), REF_EN_TEXT)


@pytest.mark.parametrize("transcript", ["", "   ", "\n\t"])
def test_blank_transcript_is_an_invalid_request(ref_en_bytes, transcript):
    with pytest.raises(InvalidRequest, match="transcript is empty"):
        decode_reference(ref_en_bytes, transcript)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Some call me nature", "Some call me nature. "),
        ("Some call me nature.", "Some call me nature. "),
        ("  Some  call\nme nature. ", "Some call me nature. "),
        ("Really?", "Really?. "),  # upstream's rule, kept so prompts match f5-tts's own
        ("对，这就是我。", "对，这就是我。"),
    ],
)
def test_transcript_ends_like_upstream(raw, expected):
    assert normalise_transcript(raw) == expected
