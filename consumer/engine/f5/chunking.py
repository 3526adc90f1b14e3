"""Text in: whitespace and vocabulary checks, and the chunks a text is spoken in.

Chunks are upstream's `chunk_text`, sized from the reference's speaking rate as `infer_process` sizes them,
with one change: a single sentence too long for one chunk is split at word boundaries instead of generated in
one arbitrarily long pass. Text the vocabulary cannot represent is refused (`TextNotRepresentable`) instead of
spoken as silence."""

from __future__ import annotations

from consumer.core.errors import InvalidRequest, TextNotRepresentable
from consumer.engine import Reference, SynthesisJob

MAX_PROMPT_S = 22.0  # upstream sizes chunks so that reference + chunk stay within ~22 s
MAX_UNKNOWN_SHOWN = 20  # characters named in a refusal


def normalized_text(job: SynthesisJob) -> str:
    """The job's text with whitespace collapsed; blank text or transcript is invalid."""
    text = " ".join(job.text.split())
    if not text:
        raise InvalidRequest("the text to synthesize is empty")
    if not job.reference.transcript.strip():
        raise InvalidRequest("the reference transcript is empty")
    return text


def check_representable(text: str, what: str, vocab: dict[str, int]) -> None:
    """Refuses `text` (named `what` in the error) when it has tokens outside `vocab`, naming them."""
    from f5_tts.model.utils import convert_char_to_pinyin

    tokens = convert_char_to_pinyin([text])[0]
    unknown = list(dict.fromkeys(t for t in tokens if t not in vocab))
    if unknown:
        shown = ", ".join(_describe(t) for t in unknown[:MAX_UNKNOWN_SHOWN])
        more = f" and {len(unknown) - MAX_UNKNOWN_SHOWN} more" if len(unknown) > MAX_UNKNOWN_SHOWN else ""
        raise TextNotRepresentable(f"{what} contains characters the model's vocabulary cannot represent: {shown}{more}")


def split_into_chunks(text: str, reference: Reference, speed: float = 1.0) -> list[str]:
    """upstream's `infer_process` chunking: as many bytes per chunk as the reference speaks in the time
    left of ~22 s. A single sentence over twice that (upstream would generate it in one, arbitrarily
    long, pass) is split at spaces, or between characters when it has none."""
    from f5_tts.infer.utils_infer import chunk_text

    max_chars = chunk_max_bytes(reference, speed)
    hard_limit = max(2 * max_chars, 200)
    out: list[str] = []
    for chunk in chunk_text(text, max_chars=max_chars):
        out.extend(split_long(chunk, hard_limit) if len(chunk.encode("utf-8")) > hard_limit else [chunk])
    return out


def chunk_max_bytes(reference: Reference, speed: float = 1.0) -> int:
    """upstream's `max_chars`: the UTF-8 bytes `reference` speaks in the time left of ~22 s, at `speed`."""
    ref_s = reference.duration_s
    return max(1, int(len(reference.transcript.encode("utf-8")) / ref_s * (MAX_PROMPT_S - ref_s) * speed))


def split_long(chunk: str, limit: int) -> list[str]:
    """Greedy split into pieces of at most `limit` UTF-8 bytes, at spaces where there are any (a single word
    over the limit stays whole)."""
    pieces: list[str] = []
    current = ""
    units = chunk.split(" ") if " " in chunk else list(chunk)
    sep = " " if " " in chunk else ""
    for unit in units:
        candidate = f"{current}{sep}{unit}" if current else unit
        if len(candidate.encode("utf-8")) <= limit or not current:
            current = candidate
        else:
            pieces.append(current)
            current = unit
    if current:
        pieces.append(current)
    return pieces


def _describe(token: str) -> str:
    if len(token) == 1:
        return f"{token!r} (U+{ord(token):04X})"
    return repr(token)
