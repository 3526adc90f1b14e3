"""The F5-TTS engine: f5-tts's own loaders and `CFM.sample`, driven the way `infer_batch_process` drives
them, minus its file I/O, global RNG seeding and silent clipping.

Per job, for each text chunk (upstream's `chunk_text`, sized from the reference's speaking rate as
`infer_process` does), the steps are upstream's `_infer_basic` verbatim: the same prompt text, the same
duration estimate, the same `sample(...)` call and vocoder decode, so a single-chunk job equals
`torch.manual_seed(seed); infer_batch_process((audio, sr), ref_text, [text], model, vocoder, ...)` bit for
bit (tests/unit/engine/test_f5.py proves it). What differs, on purpose:

- the reference mel is computed once per `Reference.cache_key` and reused (bounded LRU; `prompts`);
- chunk i is seeded from (job seed, i) (`seeding.chunk_seed`), its noise drawn right after `torch.manual_seed`
  of that seed inside one `torch.random.fork_rng` per call, so multi-chunk output is reproducible and the
  process-wide RNG is never left seeded;
- text the vocabulary cannot represent is refused (`TextNotRepresentable`) instead of spoken as silence, and a
  single sentence too long for one chunk is split at word boundaries (`chunking`);
- `job.should_abort()` is checked before every ODE step (a forward-pre-hook on the DiT; `sampling`);
- chunks of one or several jobs run as items of batched `CFM.sample` calls, and CUDA out-of-memory lowers the
  batch size instead of failing jobs (`runner`, `memory`).

Modules, one job each: `engine` (`F5Engine`, the facade), `device` (device, dtype, attention backend),
`loading` (weights, vocoder, checksum), `chunking` (text checks and chunks), `prompts` (reference mels),
`items` (one chunk's `CFM.sample` inputs), `planning` (jobs into items, items into calls), `seeding`,
`sampling` (the one `CFM.sample` call site), `memory` (the out-of-memory item cap), `runner` (calls run, aborts
and out-of-memory handled) and `rendering` (vocoding, cross-fades, `Rendering`)."""

from consumer.engine.f5.device import cuda_capability_major, default_device, default_dtype, resolve_attention_backend
from consumer.engine.f5.engine import F5Engine
from consumer.engine.f5.rendering import Rendering
from consumer.engine.f5.seeding import chunk_seed

__all__ = [
    "F5Engine",
    "Rendering",
    "chunk_seed",
    "cuda_capability_major",
    "default_device",
    "default_dtype",
    "resolve_attention_backend",
]
