"""What `f5-worker run` checks before it loads the model (which takes seconds to minutes): the settings it needs,
a model to load, and that the queue and bucket answer with these credentials. Each check fails fast, with one
line naming the cause and one the fix (`ConfigurationError`, exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

from consumer.aws.probe import check_aws
from consumer.core.errors import ConfigurationError
from consumer.core.settings import Settings

__all__ = ["check_aws", "check_model", "check_settings", "preflight"]  # check_aws: shared with the API


def check_settings(settings: Settings) -> None:
    missing = [f"F5_WORKER_{name.upper()}" for name in ("queue_url", "bucket") if not getattr(settings, name)]
    if missing:
        raise ConfigurationError(
            f"{' and '.join(missing)} not set",
            "set them (`f5-worker init --endpoint-url URL` creates the resources and prints them; docs/settings.md)",
        )


def check_model(settings: Settings) -> None:
    """A model must be configured on purpose: the hub default is only used when F5_WORKER_CHECKPOINT names it."""
    if settings.engine != "f5" or "checkpoint" in settings.model_fields_set:
        return
    if settings.model_dir is not None:
        check_model_dir(settings.model_dir)
        return
    tiny = settings.cache_dir / "random-tiny"
    trial = (
        f"to try the pipeline, F5_WORKER_MODEL_DIR={tiny} (random weights from `f5-worker local`: noise)"
        if (tiny / "model.json").is_file()
        else "to try the pipeline, `f5-worker local` generates a random tiny model"
    )
    raise ConfigurationError(
        "no model configured",
        "set F5_WORKER_MODEL_DIR to a prepared model directory (docker/prepare_weights.py), or "
        f"F5_WORKER_CHECKPOINT=hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors to download; {trial}",
    )


def check_model_dir(model_dir: Path) -> None:
    """The directory exists and holds model.json (the loader checks the files it names; importing it here would
    cost seconds of imports)."""
    if not model_dir.is_dir():
        problem = "does not exist" if not model_dir.exists() else "is not a directory"
    elif not (model_dir / "model.json").is_file():
        problem = "holds no model.json"
    else:
        return
    raise ConfigurationError(
        f"F5_WORKER_MODEL_DIR={model_dir} {problem}",
        "point F5_WORKER_MODEL_DIR at a prepared model directory (model.json + weights, from "
        "docker/prepare_weights.py), or set F5_WORKER_CHECKPOINT instead",
    )


def preflight(settings: Settings) -> None:
    check_settings(settings)
    check_model(settings)
    check_aws(settings)
