"""The first chunk of a streamed job, cut short (torch-free: the F5 planner and the fake engine share it).

F5 generates reference and chunk together, so a chunk's time is a fixed part (the reference, the vocoder) plus
a part that grows with its text. A streamed job's first audio waits for its first chunk: cutting that chunk at
the first sentence end, else the first clause end (upstream's `chunk_text` punctuation: `; : , . ! ?` and their
CJK forms, and dashes), else the last word, else the last character within `FIRST_CHUNK_MAX_BYTES` (or a
chunk's size, when a long reference leaves less: the planner's bound), makes it a short synthesis. The rest of
the text is chunked as without streaming.

The bound, measured with `benchmarks/first_chunk.py` (time of one chunk by its text's UTF-8 bytes, the example
voice as reference: 5.0 s, 50 bytes, a full chunk 168 bytes; 32 steps extrapolated from 2 and 4; 2 CPU cores):

    chunk bytes                        4     17     37     53     73     94    120    168
    F5TTS_v1_Base (random weights)    75 s   86 s  113 s  136 s  169 s  204 s  250 s  337 s
      of a full chunk                 22 %   25 %   33 %   39 %   50 %   60 %   74 %  100 %
    tiny model, of a full chunk       17 %   17 %   23 %   28 %   39 %          62 %  100 %

(full-size: undisturbed rows of several runs; between runs the floor took 75-84 s, the full chunk 337-346 s).
The reference's share is the floor, about a fifth of a full chunk: the full-size model reaches 40 % at about 55
bytes, twice the floor at 60-70 bytes, and 80 bytes at about 53 %; the tiny model reaches 40 % at 74 bytes. 80
bytes, a sentence or a clause of a dozen words, halves the first audio's wait on the full-size model, and cutting
further gains less for each byte; a GPU's fixed per-step cost raises the floor's share, which favours the larger
bound there (not measured).
"""

from __future__ import annotations

import re

FIRST_CHUNK_MAX_BYTES = 80
# CJK sentence and clause marks (ideographic full stop, fullwidth ! ? ; : , and the enumeration comma); dashes
# (em, en) end a clause before a space, an em dash also between words
_SENTENCE_END = re.compile("(?<=[.!?])\\s+|(?<=[\u3002\uff01\uff1f])")
_CLAUSE_END = re.compile("(?<=[;:,\u2014\u2013])\\s+|(?<=\u2014)(?=\\w)|(?<=[\uff1b\uff1a\uff0c\u3001])")


def _fits(text: str, max_bytes: int) -> bool:
    return len(text.encode("utf-8")) <= max_bytes


def first_chunk_cut(text: str, max_bytes: int = FIRST_CHUNK_MAX_BYTES) -> tuple[str, str]:
    """(first, rest): `text`'s first sentence if it fits in `max_bytes`, else its first clauses that fit, else
    its first words that fit, else (a first word longer than the bound, or text without spaces such as Chinese)
    its first characters that fit. `rest` is empty when all of `text` fits."""
    text = text.strip()
    if _fits(text, max_bytes):
        return text, ""
    for boundary in (_SENTENCE_END, _CLAUSE_END):
        first = ""
        for match in boundary.finditer(text):
            candidate = text[: match.start()].strip()
            if not _fits(candidate, max_bytes):
                break
            first = candidate
            if boundary is _SENTENCE_END:
                break  # the first sentence, not several
        if first:
            return first, text[len(first) :].strip()
    words = text.split(" ")
    first = words[0]
    for word in words[1:]:
        if not _fits(f"{first} {word}", max_bytes):
            break
        first = f"{first} {word}"
    if not _fits(first, max_bytes):  # never the whole of a text without spaces: at most the bound
        first = first.encode("utf-8")[: max(1, max_bytes)].decode("utf-8", "ignore") or first[0]
    return first, text[len(first) :].strip()
