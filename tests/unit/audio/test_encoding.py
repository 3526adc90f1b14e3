"""Encoding: every format decodes back at the promised rate and duration, loudness targets are met, PCM is
headerless int16; plus the numpy ports of upstream's cross-fade and silence removal."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from consumer.audio.encoding import CONTENT_TYPES, OPUS_RATES, encode
from consumer.audio.signal import cross_fade, remove_long_silences
from contracts.requests import AudioFormat

RATE = 24000


@pytest.fixture(scope="module")
def speech(en_reference) -> np.ndarray:
    return en_reference.samples


def _decode(encoded) -> tuple[np.ndarray, int]:
    if encoded.format is AudioFormat.PCM:
        return np.frombuffer(encoded.data, dtype="<i2").astype(np.float32) / 32768, encoded.sample_rate
    if encoded.format is AudioFormat.AAC:  # libsndfile reads no AAC
        import av

        with av.open(io.BytesIO(encoded.data)) as container:
            frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
            return np.concatenate(frames).astype(np.float32), container.streams.audio[0].rate
    return sf.read(io.BytesIO(encoded.data), dtype="float32")


@pytest.mark.parametrize("fmt", list(AudioFormat))
@pytest.mark.parametrize("out_rate", [8000, 22050, 24000, 44100, 48000])
def test_every_format_decodes_back_at_the_right_rate_and_length(speech, fmt, out_rate):
    encoded = encode(speech, RATE, fmt, out_sample_rate=out_rate)
    audio, rate = _decode(encoded)
    expected_rate = min(r for r in OPUS_RATES if r >= out_rate) if fmt is AudioFormat.OPUS else out_rate
    assert rate == encoded.sample_rate == expected_rate
    assert encoded.content_type == CONTENT_TYPES[fmt] and encoded.format is fmt
    input_s = len(speech) / RATE
    priming = 2048 / rate if fmt is AudioFormat.AAC else 0.0  # AAC: the encoder's delay and last frame's padding
    assert len(audio) / rate == pytest.approx(input_s + priming / 2, abs=0.02 + priming / 2)
    assert encoded.duration_s == pytest.approx(len(audio) / rate, abs=0.001)
    assert np.sqrt(np.mean(audio**2)) > 0.05  # the signal survived


def test_pcm_is_raw_little_endian_int16(speech):
    encoded = encode(speech, RATE, AudioFormat.PCM, out_sample_rate=16000)
    n = round(len(speech) * 16000 / RATE)
    assert len(encoded.data) == 2 * n
    assert encoded.data[:4] != b"RIFF"
    wav, _ = sf.read(io.BytesIO(encode(speech, RATE, AudioFormat.WAV, out_sample_rate=16000).data), dtype="int16")
    assert np.array_equal(np.frombuffer(encoded.data, dtype="<i2"), wav)  # same conversion as the WAV writer


@pytest.mark.parametrize("fmt", [AudioFormat.WAV, AudioFormat.FLAC, AudioFormat.MP3, AudioFormat.OPUS])
@pytest.mark.parametrize("target", [-30.0, -23.0, -16.0])
def test_loudness_target_is_met_within_1_lu(speech, fmt, target):
    pyloudnorm = pytest.importorskip("pyloudnorm")
    encoded = encode(speech, RATE, fmt, out_sample_rate=48000, target_lufs=target)
    audio, rate = _decode(encoded)
    assert pyloudnorm.Meter(rate).integrated_loudness(audio.astype(np.float64)) == pytest.approx(target, abs=1.0)


def test_too_short_for_loudness_is_left_alone():
    t = np.arange(int(0.2 * RATE)) / RATE
    blip = (0.25 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    audio, _ = _decode(encode(blip, RATE, AudioFormat.WAV, target_lufs=-10.0))
    assert np.abs(audio).max() == pytest.approx(0.25, abs=0.001)


def test_silence_with_loudness_target_stays_silent():
    audio, _ = _decode(encode(np.zeros(RATE, np.float32), RATE, AudioFormat.FLAC, target_lufs=-16.0))
    assert not np.any(audio)


def test_output_is_clipped_to_full_scale():
    loud = np.linspace(-3, 3, RATE, dtype=np.float32)
    audio, _ = _decode(encode(loud, RATE, AudioFormat.WAV))
    assert audio.max() <= 1.0 and audio.min() >= -1.0 and audio.max() > 0.99


def test_cross_fade_overlaps_chunks_like_upstream():
    a, b = np.ones(RATE, np.float32), np.full(RATE // 2, -1.0, np.float32)
    n = int(0.15 * RATE)
    joined = cross_fade([a, b], RATE, 0.15)
    assert len(joined) == len(a) + len(b) - n
    assert np.allclose(joined[len(a) - n : len(a)], np.linspace(1, 0, n) - np.linspace(0, 1, n))
    assert len(cross_fade([a, np.ones(10, np.float32)], RATE)) == RATE  # overlap limited by the short chunk
    assert np.array_equal(cross_fade([a, b], RATE, 0.0), np.concatenate([a, b]))


def test_remove_long_silences_matches_pydub(speech):
    pydub = pytest.importorskip("pydub")
    from pydub import silence

    gap = np.zeros(int(2.5 * RATE), np.float32)
    signal = np.concatenate([gap[: RATE // 2], speech, gap, speech, gap[: int(1.2 * RATE)]])
    ours = remove_long_silences(signal, RATE)
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes()
    segment = pydub.AudioSegment(data=pcm, sample_width=2, frame_rate=RATE, channels=1)
    pieces = silence.split_on_silence(segment, min_silence_len=1000, silence_thresh=-50, keep_silence=500, seek_step=10)
    expected_ms = sum(len(p) for p in pieces)
    assert len(ours) / RATE * 1000 == pytest.approx(expected_ms, abs=2)
    assert len(ours) < len(signal) - 2 * RATE


def test_remove_long_silences_keeps_all_silent_audio():
    silent = np.zeros(3 * RATE, np.float32)
    assert len(remove_long_silences(silent, RATE)) == len(silent)
