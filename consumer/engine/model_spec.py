"""What a model directory holds, read without torch: `model.json` names the DiT architecture, the mel
settings, the checkpoint, the vocabulary and the vocoder. `default_spec` describes a bare F5TTS_v1_Base
checkpoint with the architecture taken from the installed f5-tts wheel (its `configs/*.yaml`), so the
architecture has one source of truth.

    model.json = {
      "model_id": "my-voice-v3",
      "arch": {"dim": 1024, "depth": 22, ...},          # DiT keyword arguments
      "mel_spec": {"target_sample_rate": 24000, "n_mel_channels": 100, "hop_length": 256,
                   "win_length": 1024, "n_fft": 1024, "mel_spec_type": "vocos"},
      "checkpoint": "model.safetensors",                # relative to the directory (.safetensors or .pt)
      "vocab": "vocab.txt",                             # relative file
      "vocoder": "vocoder"                              # relative dir (config.yaml + pytorch_model.bin) or hub id
    }
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumer.core.errors import ModelSpecError

MODEL_JSON = "model.json"
DEFAULT_ARCHITECTURE = "F5TTS_v1_Base"
DEFAULT_CHECKPOINT = "hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors"
DEFAULT_VOCODER = "charactr/vocos-mel-24khz"
# f5-tts's `load_model` hard-codes these mel settings (module constants in utils_infer); a model directory
# that asks for anything else cannot be loaded faithfully, so it is refused up front.
SUPPORTED_MEL_SPEC: dict[str, Any] = {
    "target_sample_rate": 24000,
    "n_mel_channels": 100,
    "hop_length": 256,
    "win_length": 1024,
    "n_fft": 1024,
    "mel_spec_type": "vocos",
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to load one model. Paths are absolute; `checkpoint` may be an `hf://` URL and
    `vocoder` a hub repository id."""

    model_id: str
    arch: dict[str, Any] = field(hash=False)
    mel_spec: dict[str, Any] = field(hash=False)
    checkpoint: str
    vocab: str
    vocoder: str

    @property
    def sample_rate(self) -> int:
        return int(self.mel_spec["target_sample_rate"])

    @property
    def hop_length(self) -> int:
        return int(self.mel_spec["hop_length"])

    @property
    def mel_spec_type(self) -> str:
        return str(self.mel_spec["mel_spec_type"])


def f5_tts_package_dir() -> Path:
    """The installed f5_tts package directory, found without importing it (importing pulls torch)."""
    spec = importlib.util.find_spec("f5_tts")
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError("the f5-tts package is not installed (pip install 'f5-worker[engine]')")
    return Path(next(iter(spec.submodule_search_locations)))


def wheel_example_path(relative: str) -> Path:
    """A file shipped in the f5-tts wheel, e.g. `infer/examples/basic/basic_ref_en.wav`."""
    path = f5_tts_package_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(f"{relative} is not in the installed f5-tts package ({path})")
    return path


@dataclass(frozen=True)
class ExampleVoice:
    """A real reference clip shipped in the f5-tts wheel, with the transcript upstream gives for it."""

    file: str
    transcript: str

    def audio(self) -> bytes:
        return wheel_example_path(self.file).read_bytes()


# The demo voice of `f5-worker local`, the warm-up, the tests and the benchmarks (transcript from basic.toml).
EXAMPLE_VOICE_EN = ExampleVoice(
    "infer/examples/basic/basic_ref_en.wav", "Some call me nature, others call me mother nature."
)


def wheel_architecture(name: str = DEFAULT_ARCHITECTURE) -> tuple[dict[str, Any], dict[str, Any]]:
    """`(arch, mel_spec)` of a packaged config, e.g. `configs/F5TTS_v1_Base.yaml`."""
    return _training_config(wheel_example_path(f"configs/{name}.yaml"), name)


def read_architecture(value: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`(arch, mel_spec)` from a packaged config name (`F5TTS_v1_Base`), an f5-tts training config (`.yaml`,
    as fine-tuning writes it), a `model.json` (its `arch` and `mel_spec`) or a JSON dict of DiT arguments."""
    path = Path(value).expanduser()
    if not path.is_file():
        if "/" in value or path.suffix in (".json", ".yaml", ".yml"):
            raise ModelSpecError(f"architecture file {value} does not exist")
        try:
            return wheel_architecture(value)
        except FileNotFoundError as exc:
            raise ModelSpecError(f"{value!r} is neither a file nor a config packaged with f5-tts") from exc
    if path.suffix in (".yaml", ".yml"):
        return _training_config(path, str(path))
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelSpecError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelSpecError(f"{path}: expected a JSON object")
    if "arch" in raw:
        return dict(raw["arch"]), dict(raw.get("mel_spec", SUPPORTED_MEL_SPEC))
    return dict(raw), dict(SUPPORTED_MEL_SPEC)


def _training_config(config_path: Path, label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import yaml  # installed with f5-tts; imported here so the core install needs no yaml

    # The yaml holds Hydra interpolations (${...}) only outside `model`; plain safe_load leaves them as text.
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("arch"), dict):
        raise ModelSpecError(f"{label}: not an f5-tts config (no model.arch)")
    if model.get("backbone") != "DiT":
        raise ModelSpecError(f"{label}: backbone {model.get('backbone')!r} is not supported (DiT only)")
    return dict(model["arch"]), dict(model.get("mel_spec", SUPPORTED_MEL_SPEC))


def check_mel_spec(mel_spec: dict[str, Any], where: str) -> dict[str, Any]:
    unsupported = {k: v for k, v in mel_spec.items() if k in SUPPORTED_MEL_SPEC and SUPPORTED_MEL_SPEC[k] != v}
    missing = sorted(set(SUPPORTED_MEL_SPEC) - set(mel_spec))
    if unsupported or missing:
        raise ModelSpecError(
            f"{where}: mel_spec must be {SUPPORTED_MEL_SPEC} (what f5-tts's loader supports); "
            f"got differences {unsupported}, missing {missing}"
        )
    return dict(mel_spec)


def load_model_dir(path: str | Path) -> ModelSpec:
    """Read `<path>/model.json` and check that the files it names exist."""
    root = Path(path).resolve()
    manifest = root / MODEL_JSON
    try:
        raw = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelSpecError(f"{root} is not a model directory: {MODEL_JSON} is missing") from exc
    except ValueError as exc:
        raise ModelSpecError(f"{manifest} is not valid JSON: {exc}") from exc
    fields = ("model_id", "arch", "mel_spec", "checkpoint", "vocab", "vocoder")
    missing = [f for f in fields if f not in raw]
    if missing:
        raise ModelSpecError(f"{manifest} lacks {', '.join(missing)}")
    if not isinstance(raw["arch"], dict) or not isinstance(raw["mel_spec"], dict):
        raise ModelSpecError(f"{manifest}: arch and mel_spec must be objects")

    checkpoint = root / raw["checkpoint"]
    if checkpoint.suffix not in (".safetensors", ".pt"):
        raise ModelSpecError(f"{manifest}: checkpoint must be .safetensors or .pt, got {checkpoint.name}")
    vocab = root / raw["vocab"]
    for what, file in (("checkpoint", checkpoint), ("vocab", vocab)):
        if not file.is_file():
            raise ModelSpecError(f"{manifest}: {what} file {file} does not exist")
    vocoder_dir = root / raw["vocoder"]
    if vocoder_dir.is_dir():
        for name in ("config.yaml", "pytorch_model.bin"):
            if not (vocoder_dir / name).is_file():
                raise ModelSpecError(f"{manifest}: vocoder directory {vocoder_dir} lacks {name}")
        vocoder = str(vocoder_dir)
    else:
        vocoder = str(raw["vocoder"])  # a hub repository id, fetched at load time
    return ModelSpec(
        model_id=str(raw["model_id"]),
        arch=dict(raw["arch"]),
        mel_spec=check_mel_spec(raw["mel_spec"], str(manifest)),
        checkpoint=str(checkpoint),
        vocab=str(vocab),
        vocoder=vocoder,
    )


def default_spec(
    checkpoint: str = DEFAULT_CHECKPOINT,
    vocoder: str = DEFAULT_VOCODER,
    *,
    vocab: str | None = None,
    architecture: str = DEFAULT_ARCHITECTURE,
) -> ModelSpec:
    """A bare checkpoint (local path or `hf://owner/repo/path`): F5TTS_v1_Base with the wheel's vocabulary,
    or, for a fine-tuned model, its own `vocab` file and `architecture` (see `read_architecture`)."""
    arch, mel_spec = read_architecture(architecture)
    label = Path(architecture).stem
    if checkpoint.startswith("hf://"):
        model_id = checkpoint.removeprefix("hf://").removeprefix("SWivid/F5-TTS/").rsplit(".", 1)[0]
    else:
        local = Path(checkpoint).expanduser().resolve()
        if not local.is_file():
            raise ModelSpecError(f"checkpoint {checkpoint} does not exist")
        checkpoint, model_id = str(local), f"{label}/{local.stem}"
    if vocab is None:
        vocab = str(wheel_example_path("infer/examples/vocab.txt"))
    elif not Path(vocab).expanduser().is_file():
        raise ModelSpecError(f"vocab file {vocab} does not exist")
    vocoder_dir = Path(vocoder).expanduser()
    return ModelSpec(
        model_id=model_id,
        arch=arch,
        mel_spec=check_mel_spec(mel_spec, architecture),
        checkpoint=checkpoint,
        vocab=str(Path(vocab).expanduser().resolve()),
        vocoder=str(vocoder_dir.resolve()) if vocoder_dir.is_dir() else vocoder,
    )
