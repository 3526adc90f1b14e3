"""Reference clip decoding and processing (torch-free): bytes → `Reference`, in memory, bounded.

Follows f5-tts's `preprocess_ref_audio_text` and the start of `infer_batch_process`: trim leading and
trailing silence (-42 dBFS in 10 ms steps, as pydub's `detect_leading_silence`), add 50 ms of silence at
the end, mono at the model's rate, RMS raised to 0.1 when quieter, transcript ending in ". ".

One deliberate difference: upstream silently clips clips longer than 12 s even when a transcript is given,
after which the transcript no longer matches the audio (and the model speaks garbage). We refuse such clips
with a message instead, and clip only where the transcript is recognised afterwards (`clip_long=True`): at the
last pause before 12 s, as upstream does (a pause of 1 s preferred, else 100 ms, else a hard cut).
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from consumer.audio.signal import resample
from consumer.core.errors import BadReferenceAudio, InvalidRequest

MIN_SECONDS = 1.0
MAX_SECONDS = 12.0  # after trimming; F5-TTS was trained with prompts up to about this length
MAX_HEADER_SECONDS = 60.0  # refused before decoding: bounds memory and time
MIN_RATE, MAX_RATE = 8_000, 192_000
MAX_CHANNELS = 16
SILENCE_DB = -42.0  # upstream's remove_silence_edges threshold
SILENCE_STEP_S = 0.010
END_PADDING_S = 0.050
TARGET_RMS = 0.1
_BLOCK_FRAMES = 65_536


@dataclass(frozen=True)
class Reference:
    """A decoded, processed reference clip: mono float32 at the engine's sample rate."""

    samples: np.ndarray = field(repr=False)
    sample_rate: int
    transcript: str
    cache_key: str = ""
    version: str = ""  # which version of the clip (see consumer.storage.voice_layout.voice_version)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def normalise_transcript(transcript: str) -> str:
    """Collapse whitespace and end the way upstream's preprocessing does (". " unless it ends in "。")."""
    text = " ".join(transcript.split())
    if not text:
        raise InvalidRequest("the reference transcript is empty: give the exact words spoken in the clip")
    # Upstream's rule, kept verbatim so prompts match what the model sees through f5-tts itself:
    # "Hi!" becomes "Hi!. ", "Hi." becomes "Hi. ".
    if not text.endswith("。"):
        text += " " if text.endswith(".") else ". "
    return text


def decode_reference(data: bytes, transcript: str, *, sample_rate: int = 24000, cache_key: str = "") -> Reference:
    """Decode a wav/flac/mp3/ogg reference clip and prepare it for the engine.

    Raises `InvalidRequest` for a blank transcript and `BadReferenceAudio` (with a message meant for the
    person who supplied the clip) for anything wrong with the audio.
    """
    text = normalise_transcript(transcript)
    samples = process_reference_audio(data, sample_rate=sample_rate)
    return Reference(samples=samples, sample_rate=sample_rate, transcript=text, cache_key=cache_key)


def process_reference_audio(data: bytes, *, sample_rate: int = 24000, clip_long: bool = False) -> np.ndarray:
    """The audio half of `decode_reference`: decoded, trimmed, padded, mono float32 at `sample_rate`. What a
    speech recogniser should hear when the transcript has to be recognised; with `clip_long` (only then: the
    transcript is recognised from the result) speech over MAX_SECONDS is clipped at a pause instead of refused.
    Raises `BadReferenceAudio`."""
    mono, rate = _decode_mono(data)
    mono = resample(mono, rate, sample_rate)
    start, end = _voiced_span(mono, sample_rate)
    if end <= start:
        raise BadReferenceAudio(
            f"the reference audio is silent: nothing is louder than {SILENCE_DB:.0f} dBFS. "
            "Supply a clip of clear speech."
        )
    speech = mono[start:end]
    seconds = len(speech) / sample_rate
    if seconds < MIN_SECONDS:
        raise BadReferenceAudio(
            f"the reference audio has only {seconds:.2f} s of sound after trimming silence; "
            f"at least {MIN_SECONDS:.0f} s of speech is needed (3-10 s works best)"
        )
    if seconds > MAX_SECONDS and clip_long:
        speech = clip_at_pause(speech, sample_rate)
    elif seconds > MAX_SECONDS:
        raise BadReferenceAudio(
            f"the reference audio is {seconds:.1f} s long after trimming silence; at most {MAX_SECONDS:.0f} s "
            "is supported. Clip it to a 3-10 s stretch of speech and give the transcript of exactly that clip "
            "(or, where the worker has an ASR model, omit the transcript: it clips at a pause and transcribes)."
        )
    samples = np.concatenate([speech, np.zeros(round(END_PADDING_S * sample_rate), dtype=np.float32)])
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    if rms < TARGET_RMS:  # quiet clips are raised to the level the model expects
        samples = samples * (TARGET_RMS / rms)
    return np.ascontiguousarray(samples, dtype=np.float32)


def _decode_mono(data: bytes) -> tuple[np.ndarray, int]:
    """Decode to mono float32 without ever holding more than MAX_HEADER_SECONDS of multichannel audio."""
    if not data:
        raise BadReferenceAudio("the reference audio is empty (0 bytes)")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.SoundFileError, RuntimeError, ValueError) as exc:
        raise BadReferenceAudio(
            "the reference could not be read as audio (supported: WAV, FLAC, MP3, OGG Vorbis/Opus); "
            "it may be corrupt or truncated"
        ) from exc
    rate, channels = int(info.samplerate), int(info.channels)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadReferenceAudio(
            f"the reference audio's sample rate is {rate} Hz; it must be between {MIN_RATE} and {MAX_RATE} Hz"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadReferenceAudio(f"the reference audio has {channels} channels; at most {MAX_CHANNELS} are supported")
    if info.frames <= 0:
        raise BadReferenceAudio("the reference audio contains no samples")
    if info.frames / rate > MAX_HEADER_SECONDS:
        raise BadReferenceAudio(
            f"the reference audio is {info.frames / rate:.0f} s long; at most {MAX_SECONDS:.0f} s of speech is "
            "supported. Clip it to a 3-10 s stretch of speech and give the transcript of exactly that clip."
        )
    _check_wav_complete(data)

    limit = int(MAX_HEADER_SECONDS * rate)  # a header may lie: never decode more than this
    blocks: list[np.ndarray] = []
    decoded = 0
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            while decoded <= limit:
                block = f.read(frames=_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if not len(block):
                    break
                blocks.append(block.mean(axis=1, dtype=np.float32) if channels > 1 else block[:, 0].copy())
                decoded += len(block)
    except (sf.SoundFileError, RuntimeError, ValueError) as exc:
        raise BadReferenceAudio(
            f"the reference audio could not be decoded after {decoded / rate:.2f} s ({exc}); "
            "the file is probably truncated or corrupt"
        ) from exc
    if decoded > limit:
        raise BadReferenceAudio(f"the reference audio is longer than {MAX_HEADER_SECONDS:.0f} s")
    if decoded == 0:
        raise BadReferenceAudio("the reference audio contains no samples")
    # Frame counts from headers (FLAC STREAMINFO, MP3 Xing) reveal a cut-off file.
    if decoded < 0.99 * info.frames - rate * 0.05:
        raise BadReferenceAudio(
            f"the reference audio is truncated: its header announces {info.frames / rate:.2f} s "
            f"but only {decoded / rate:.2f} s could be decoded"
        )
    mono = np.concatenate(blocks)
    if not np.all(np.isfinite(mono)):
        raise BadReferenceAudio("the reference audio contains invalid samples (NaN or infinity)")
    return mono, rate


def _check_wav_complete(data: bytes) -> None:
    """libsndfile quietly shortens a WAV whose data chunk is cut off; the RIFF header tells the truth."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if chunk_id == b"data":
            available = len(data) - offset - 8
            # 0 and 0xFFFFFFFF are "unknown length" markers written by streaming encoders.
            if size not in (0, 0xFFFFFFFF) and available < size:
                raise BadReferenceAudio(
                    f"the reference WAV is truncated: its data chunk announces {size} bytes "
                    f"but the file holds only {available}"
                )
            return
        offset += 8 + size + (size & 1)


def _voiced_span(samples: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """[start, end) without leading/trailing 10 ms steps quieter than SILENCE_DB (pydub's rule: RMS of
    each step, scanned from the start and, separately, from the end)."""
    n = len(samples)
    step = max(1, round(SILENCE_STEP_S * sample_rate))
    power = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
    threshold = (10 ** (SILENCE_DB / 20)) ** 2  # compare mean squares

    def loud(edges_a: np.ndarray, edges_b: np.ndarray) -> np.ndarray:
        return (power[edges_b] - power[edges_a]) / np.maximum(edges_b - edges_a, 1) >= threshold

    heads = np.arange(0, n, step)
    head_loud = np.flatnonzero(loud(heads, np.minimum(heads + step, n)))
    if not len(head_loud):
        return 0, 0
    tails = np.arange(n, 0, -step)
    tail_loud = np.flatnonzero(loud(np.maximum(tails - step, 0), tails))
    return int(heads[head_loud[0]]), int(tails[tail_loud[0]])


PAUSES_S = (1.0, 0.1)  # upstream's preference: cut at a long pause, else a short one


def clip_at_pause(speech: np.ndarray, sample_rate: int, max_seconds: float = MAX_SECONDS) -> np.ndarray:
    """`speech` cut at the start of its last pause (PAUSES_S, longest first) that leaves between MIN_SECONDS and
    `max_seconds` before it; without one, cut at `max_seconds`. Trailing silence is trimmed again."""
    step = max(1, round(SILENCE_STEP_S * sample_rate))
    n_steps = len(speech) // step
    frames = speech[: n_steps * step].reshape(n_steps, step).astype(np.float64)
    quiet = np.mean(np.square(frames), axis=1) < (10 ** (SILENCE_DB / 20)) ** 2
    # Runs of quiet steps as [start, end) step indices.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    runs = edges.reshape(-1, 2)
    cut = round(max_seconds * sample_rate)
    for pause_s in PAUSES_S:
        long_enough = runs[(runs[:, 1] - runs[:, 0]) * SILENCE_STEP_S >= pause_s]
        starts = long_enough[:, 0] * step
        fits = starts[(starts >= MIN_SECONDS * sample_rate) & (starts <= cut)]
        if len(fits):
            cut = int(fits[-1])
            break
    clipped = speech[:cut]
    _, end = _voiced_span(clipped, sample_rate)
    return clipped[: max(end, 1)]
