"""Builds the configured engine. Torch-free at import: `consumer.engine.f5` is imported only when the F5
engine is asked for, so the fake engine (tests, producers) never loads torch."""

from __future__ import annotations

from consumer.core.settings import Settings
from consumer.engine import Engine
from consumer.engine.model_spec import DEFAULT_CHECKPOINT, default_spec, load_model_dir


def build_engine(settings: Settings) -> Engine:
    """The engine named by `settings.engine` (not loaded yet: call `load()`, then `warm_up()`)."""
    if settings.engine == "fake":
        from consumer.engine.fake import FakeEngine

        return FakeEngine(work_s=settings.fake_work_s)
    if settings.engine != "f5":
        raise ValueError(f"unknown engine {settings.engine!r} (f5 or fake)")
    if settings.model_dir is not None:
        spec = load_model_dir(settings.model_dir)
    else:
        spec = default_spec(
            settings.checkpoint or DEFAULT_CHECKPOINT,
            settings.vocoder,
            vocab=str(settings.vocab) if settings.vocab else None,
            architecture=settings.architecture,
        )
    from consumer.engine.f5 import F5Engine

    # Hub downloads (hf:// checkpoints, vocoder ids) use the Hugging Face cache (HF_HOME), where an image
    # build may have pre-fetched them.
    engine = F5Engine(spec, device=settings.device, dtype=settings.dtype, attention_backend=settings.attention_backend)
    if settings.batch_max_size > 1:
        from consumer.engine.batching import BatchingEngine

        return BatchingEngine(engine, max_batch=settings.batch_max_size, window_s=settings.batch_window_ms / 1000)
    return engine
