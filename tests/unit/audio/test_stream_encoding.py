"""`StreamEncoder`: a job's audio encoded block by block is a whole file of its format, whatever the blocks; and
AAC, which the whole-file and long-form paths now write too."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile as sf

from consumer.audio.encoding import CONTENT_TYPES, EXTENSIONS, encode
from consumer.audio.longform import LongformWriter
from consumer.audio.stream_encoding import WAV_HEADER_BYTES, StreamEncoder, wav_header
from contracts.requests import AudioFormat

RATE = 24_000
TONE = (0.3 * np.sin(2 * np.pi * 220 * np.arange(3 * RATE) / RATE)).astype(np.float32)


def _encode(fmt: AudioFormat, pieces: int, out_rate: int | None = None) -> tuple[bytes, StreamEncoder]:
    encoder = StreamEncoder(fmt, RATE, out_sample_rate=out_rate)
    sizes = np.sort(np.random.default_rng(pieces).choice(np.arange(1, len(TONE)), pieces - 1, replace=False))
    data = b"".join(encoder.push(block) for block in np.split(TONE, sizes)) + encoder.finish()
    return data, encoder


def _decoded(data: bytes) -> tuple[int, int]:
    """(samples, rate) as a decoder gives them."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream)), stream.rate


def _decoded_s(data: bytes) -> float:
    samples, rate = _decoded(data)
    return samples / rate


@pytest.mark.parametrize("fmt", [AudioFormat.PCM, AudioFormat.WAV])
def test_uncompressed_blocks_are_byte_identical_however_the_audio_is_cut(fmt):
    whole, _ = _encode(fmt, 1)
    assert _encode(fmt, 13)[0] == whole
    assert _encode(fmt, 13, out_rate=16_000)[0] == _encode(fmt, 1, out_rate=16_000)[0]


def test_wav_starts_with_the_streaming_header_and_the_final_header_makes_the_whole_file_paths_bytes():
    data, encoder = _encode(AudioFormat.WAV, 7)
    assert data[:WAV_HEADER_BYTES] == wav_header(None, RATE)
    assert data[4:8] == b"\xff\xff\xff\xff" and data[40:44] == b"\xff\xff\xff\xff"
    body = data[WAV_HEADER_BYTES:]
    fixed = wav_header(len(body), RATE) + body
    samples, rate = sf.read(io.BytesIO(fixed), dtype="int16")
    assert rate == RATE and len(samples) == len(body) // 2 == len(TONE)
    assert encoder.duration_s == pytest.approx(3.0)
    assert fixed == encode(TONE, RATE, AudioFormat.WAV).data  # the same bytes as the whole-file path


@pytest.mark.parametrize("fmt", [AudioFormat.MP3, AudioFormat.OPUS, AudioFormat.AAC])
def test_lossy_streams_decode_to_the_audio_length_whatever_the_blocks(fmt):
    one, _ = _encode(fmt, 1)
    many, encoder = _encode(fmt, 13)
    frame_s = 0.1  # a codec frame plus priming, generously
    assert 3.0 <= _decoded_s(many) <= 3.0 + frame_s  # codecs add priming and padding, never lose the tail
    assert _decoded(many) == _decoded(one)  # the encoder saw the same frames: no padding at block boundaries
    assert encoder.duration_s == pytest.approx(3.0)


@pytest.mark.parametrize("fmt", [AudioFormat.PCM, AudioFormat.MP3, AudioFormat.OPUS, AudioFormat.AAC])
@pytest.mark.parametrize("out_rate", [16_000, 48_000])
def test_resampled_streams_have_the_right_rate_and_length(fmt, out_rate):
    data, encoder = _encode(fmt, 5, out_rate=out_rate)
    assert encoder.sample_rate == out_rate
    seconds = len(data) / 2 / out_rate if fmt is AudioFormat.PCM else _decoded_s(data)
    assert seconds == pytest.approx(3.0, abs=0.1)


def test_bytes_flow_while_the_audio_comes_not_only_at_the_end():
    for fmt in (AudioFormat.MP3, AudioFormat.OPUS, AudioFormat.AAC, AudioFormat.WAV):
        encoder = StreamEncoder(fmt, RATE)
        assert encoder.push(TONE[:100]) is not None  # a tiny first block is fine
        sizes = [len(encoder.push(block)) for block in np.array_split(TONE, 6)]
        assert sum(s > 0 for s in sizes) >= 5, (fmt, sizes)
        encoder.finish()


def test_flac_is_not_streamed():
    with pytest.raises(ValueError, match="flac"):
        StreamEncoder(AudioFormat.FLAC, RATE)


def test_aac_is_encoded_whole_and_long_form(tmp_path):
    assert (CONTENT_TYPES[AudioFormat.AAC], EXTENSIONS[AudioFormat.AAC]) == ("audio/aac", "aac")
    encoded = encode(TONE, RATE, AudioFormat.AAC, out_sample_rate=44_100)
    assert encoded.sample_rate == 44_100 and encoded.data[:2] == b"\xff\xf1"  # an ADTS sync word, MPEG-4
    assert encoded.duration_s == pytest.approx(_decoded_s(encoded.data)) == pytest.approx(3.0, abs=0.1)
    with LongformWriter(tmp_path, RATE, AudioFormat.AAC, out_sample_rate=16_000, target_lufs=-16) as writer:
        for block in np.array_split(TONE, 4):
            writer.write(block)
        done = writer.finish()
        assert done.sample_rate == 16_000 and done.duration_s == pytest.approx(3.0, abs=0.1)
        assert done.duration_s == pytest.approx(_decoded_s(done.path.read_bytes()))
