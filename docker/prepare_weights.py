"""Fetch and verify F5-TTS weights at image BUILD time into a model directory (the `model.json` layout read by
`consumer.engine.model_spec.load_model_dir`), so the running worker never downloads anything:

    <out>/model.json                 model_id, arch, mel_spec, checkpoint, vocab, vocoder (+ where it came from)
    <out>/<checkpoint file>          e.g. model_1250000.safetensors, sha256-verified
    <out>/vocab.txt
    <out>/vocoder/config.yaml, vocoder/pytorch_model.bin
    <out>/asr/                       optional (--asr-model): a Whisper model for F5_WORKER_ASR_MODEL

Sources are a hub repository id (huggingface_hub, pinned by --*-revision) or a local directory/file:

    python docker/prepare_weights.py --out /opt/f5-worker/model \\
        --model-repo SWivid/F5-TTS --model-file F5TTS_v1_Base/model_1250000.safetensors \\
        --model-revision <commit> --model-sha256 <hex> --vocoder charactr/vocos-mel-24khz

Exit status: 0 done; 1 a source is missing or the download failed; 2 verification failed (wrong or missing
sha256). The directory appears complete or not at all (written next to <out>, then renamed).

It needs only the standard library, pyyaml, huggingface_hub (hub sources) and the f5-tts package files (the
architecture config and vocabulary), not torch: the Dockerfile runs it in a slim stage whose cache survives code
changes. `consumer/engine/model_spec.py` (torch-free, standard library only) is loaded by path for the same reason,
with the error classes it shares with the worker (`consumer/core/errors.py`, `contracts/codes.py`).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent  # the repository, or /build in the image's weights stage
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from consumer.core.errors import PrepareError  # noqa: E402 (needs the path above)

VOCODER_FILES = ("config.yaml", "pytorch_model.bin")
ASR_DIR = "asr"
ASR_PATTERNS = ("*.json", "*.txt", "*.safetensors")  # configs, tokenizer, weights; not .bin/.h5/.msgpack copies
_CHUNK = 1 << 20
# The Dockerfile's build argument for each option (`--build-args`: errors name what to set in the build).
BUILD_ARGS = {
    "--model-repo": "MODEL_REPO",
    "--model-file": "MODEL_FILE",
    "--model-revision": "MODEL_REVISION",
    "--model-sha256": "MODEL_SHA256",
    "--arch": "MODEL_ARCH",
    "--vocoder": "VOCODER_REPO",
    "--vocoder-revision": "VOCODER_REVISION",
    "--vocoder-sha256": "VOCODER_SHA256",
    "--asr-model": "ASR_MODEL",
    "--asr-revision": "ASR_REVISION",
}


def _load_model_spec() -> ModuleType:
    """`consumer/engine/model_spec.py` next to this script (repository or build stage), else the installed one."""
    path = _ROOT / "consumer" / "engine" / "model_spec.py"
    if not path.is_file():
        from consumer.engine import model_spec

        return model_spec
    spec = importlib.util.spec_from_file_location("f5_worker_model_spec", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def _copy_hashed(source: Path, target: Path) -> str:
    """Copy `source` to `target` and return its sha256, reading the file once."""
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest()


def _verify(name: str, actual: str, expected: str | None, fix: str) -> None:
    if expected and actual != expected.strip().lower():
        raise PrepareError(f"sha256 mismatch for {name}: expected {expected.strip().lower()}, got {actual}", 2, (fix,))


class Fetcher:
    """Resolves files from a local directory/file or a hub repository (downloaded into a throwaway cache)."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def fetch(self, repo: str, filename: str, revision: str | None, fix: tuple[str, ...]) -> tuple[Path, str]:
        """`(local path, provenance)` of `filename` in `repo`; `fix`: the options naming the repository, the file
        (when there is one) and the revision, in that order."""
        local = Path(repo).expanduser()
        if local.is_file():
            return local, str(local.resolve())
        if local.is_dir():
            path = local / filename
            if not path.is_file():
                raise PrepareError(f"{filename} not found in {local}", 1, tuple(o for o in fix[1:2] if o) or fix[:1])
            return path, str(path.resolve())
        if repo.startswith((".", "/", "~")):
            raise PrepareError(f"local source {repo} does not exist", 1, fix[:1])
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as exc:
            raise PrepareError("huggingface_hub is needed for hub sources: pip install huggingface_hub") from exc
        try:
            path = hf_hub_download(repo_id=repo, filename=filename, revision=revision, cache_dir=str(self.cache_dir))
        except Exception as exc:  # hub errors vary (HTTP, offline, missing repo, auth): report them, exit 1
            raise PrepareError(f"downloading {filename} from {repo}@{revision or 'main'}: {exc}", 1, fix) from exc
        return Path(path), f"hf://{repo}/{filename}@{revision or 'main'}"


def fetch_asr(source: str, revision: str | None, target: Path, cache_dir: Path) -> tuple[str, dict[str, str]]:
    """A Whisper model in transformers' layout (a local directory, or a hub snapshot at `revision`) copied into
    `target`: `(provenance, sha256 of each weights file)`. A commit hash as `revision` pins the weights."""
    local = Path(source).expanduser()
    if local.is_dir():
        root, provenance = local, str(local.resolve())
    elif source.startswith((".", "/", "~")):
        raise PrepareError(f"local ASR model {source} does not exist")
    else:
        try:
            from huggingface_hub import snapshot_download
        except ImportError as exc:
            raise PrepareError("huggingface_hub is needed for hub sources: pip install huggingface_hub") from exc
        try:
            path = snapshot_download(
                repo_id=source, revision=revision, allow_patterns=list(ASR_PATTERNS), cache_dir=str(cache_dir)
            )
        except Exception as exc:  # hub errors vary (HTTP, offline, missing repo, auth): report them, exit 1
            raise PrepareError(f"downloading the ASR model {source}@{revision or 'main'}: {exc}") from exc
        root, provenance = Path(path), f"hf://{source}@{revision or 'main'}"
    files = sorted({f for pattern in ASR_PATTERNS for f in root.glob(pattern) if f.is_file()})
    names = {f.name for f in files}
    if not {"config.json", "preprocessor_config.json"} <= names or not any(n.endswith(".safetensors") for n in names):
        raise PrepareError(f"{source} is not a Whisper model (config.json, preprocessor_config.json, *.safetensors)")
    target.mkdir()
    hashes = {f.name: _copy_hashed(f, target / f.name) for f in files}
    return provenance, {name: digest for name, digest in hashes.items() if name.endswith(".safetensors")}


def _arch(model_spec: ModuleType, value: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """`(arch, mel_spec, label)` from a packaged config name (F5TTS_v1_Base), an f5-tts training config yaml,
    a model.json (its `arch` and `mel_spec`) or a JSON dict of DiT keyword arguments."""
    try:
        arch, mel_spec = model_spec.read_architecture(value)
    except (OSError, ValueError) as exc:  # missing file, unknown config name, bad JSON/yaml, not a DiT config
        raise PrepareError(f"--arch {value}: {exc}", 1, ("--arch",)) from exc
    return arch, mel_spec, Path(value).name


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    model_spec = _load_model_spec()
    out = Path(args.out).resolve()
    if out.exists() and any(out.iterdir()) and not args.force:
        raise PrepareError(f"{out} exists and is not empty (use --force to replace it)")
    if not args.model_sha256 and not args.allow_unverified:
        skip = "" if args.build_args else "; --allow-unverified skips the check for local experiments"
        raise PrepareError(
            "--model-sha256 is required (the hub shows it on the file's page as the LFS 'SHA256', and "
            f"`sha256sum` prints it for a local file){skip}",
            2,
            ("--model-sha256",),
        )
    arch, mel_spec, arch_label = _arch(model_spec, args.arch)
    mel_spec = model_spec.check_mel_spec(mel_spec, f"--arch {args.arch}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    cache = Path(tempfile.mkdtemp(prefix="f5-weights-cache-"))
    try:
        fetcher = Fetcher(cache)
        checkpoint, checkpoint_source = fetcher.fetch(
            args.model_repo, args.model_file, args.model_revision, ("--model-repo", "--model-file", "--model-revision")
        )
        if checkpoint.suffix not in (".safetensors", ".pt"):
            raise PrepareError(f"checkpoint must be .safetensors or .pt, got {checkpoint.name}")
        checkpoint_sha = _copy_hashed(checkpoint, staging / checkpoint.name)
        _verify(checkpoint.name, checkpoint_sha, args.model_sha256, "--model-sha256")

        vocab = Path(args.vocab) if args.vocab else model_spec.wheel_example_path("infer/examples/vocab.txt")
        if not vocab.is_file():
            raise PrepareError(f"vocabulary {vocab} does not exist")
        shutil.copyfile(vocab, staging / "vocab.txt")

        (staging / "vocoder").mkdir()
        vocoder_source, vocoder_sha = {}, {}
        for name in VOCODER_FILES:
            path, vocoder_source[name] = fetcher.fetch(
                args.vocoder, name, args.vocoder_revision, ("--vocoder", "", "--vocoder-revision")
            )
            vocoder_sha[name] = _copy_hashed(path, staging / "vocoder" / name)
        _verify(f"vocoder/{VOCODER_FILES[1]}", vocoder_sha[VOCODER_FILES[1]], args.vocoder_sha256, "--vocoder-sha256")
        asr: dict[str, Any] = {}
        if args.asr_model:
            source, sha = fetch_asr(args.asr_model, args.asr_revision, staging / ASR_DIR, cache)
            asr = {"asr": source, "asr_sha256": sha}

        model_id = args.model_id or (
            Path(args.model_file).with_suffix("").as_posix() if args.model_file else f"{arch_label}/{checkpoint.stem}"
        )
        manifest = {
            "model_id": model_id,
            "arch": arch,
            "mel_spec": mel_spec,
            "checkpoint": checkpoint.name,
            "vocab": "vocab.txt",
            "vocoder": "vocoder",
            "source": {
                "checkpoint": checkpoint_source,
                "checkpoint_sha256": checkpoint_sha,
                "arch": arch_label,
                "vocoder": vocoder_source,
                "vocoder_sha256": vocoder_sha,
                **asr,
            },
        }
        (staging / model_spec.MODEL_JSON).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        model_spec.load_model_dir(staging)  # the worker's own reader accepts it
        staging.chmod(0o755)  # mkdtemp makes it 0700; the image's non-root user must read it
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Fetch and verify F5-TTS weights into a model directory.")
    parser.add_argument("--out", required=True, help="model directory to create, e.g. /opt/f5-worker/model")
    parser.add_argument("--model-repo", required=True, help="hub repository id, local directory or local file")
    parser.add_argument("--model-file", default="", help="checkpoint path inside the repository/directory")
    parser.add_argument("--model-revision", default=None, help="hub revision (commit hash for reproducible builds)")
    parser.add_argument("--model-sha256", default="", help="expected sha256 of the checkpoint (required)")
    parser.add_argument("--allow-unverified", action="store_true", help="accept a checkpoint without --model-sha256")
    parser.add_argument("--arch", default="F5TTS_v1_Base", help="packaged f5-tts config name, or a JSON file")
    parser.add_argument("--vocab", default=None, help="vocabulary file (default: the f5-tts wheel's vocab.txt)")
    parser.add_argument("--vocoder", default="charactr/vocos-mel-24khz", help="hub repository id or local directory")
    parser.add_argument("--vocoder-revision", default=None)
    parser.add_argument("--vocoder-sha256", default="", help="expected sha256 of vocoder/pytorch_model.bin")
    parser.add_argument("--model-id", default=None, help="model_id in model.json (default: from the file name)")
    parser.add_argument("--asr-model", default="", help="Whisper hub id or local directory, copied to <out>/asr")
    parser.add_argument("--asr-revision", default=None, help="hub revision of the ASR model (commit hash)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--build-args", action="store_true", help="name the Dockerfile's build arguments in errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        manifest = prepare(args)
    except PrepareError as exc:
        print(f"prepare_weights: {_in_terms_of(str(exc), exc.fix, args.build_args)}", file=sys.stderr)
        return exc.status
    summary = {k: manifest[k] for k in ("model_id", "checkpoint")} | manifest["source"]
    print(json.dumps({"out": str(Path(args.out).resolve()), **summary}, indent=2))
    return 0


def _in_terms_of(message: str, fix: tuple[str, ...], build_args: bool) -> str:
    """The message as the user who ran it can act on it: in an image build, the options become build arguments."""
    if not build_args:
        return message
    for option, name in BUILD_ARGS.items():
        message = re.sub(rf"(?<![\w-]){re.escape(option)}(?![\w-])", name, message)
    names = [BUILD_ARGS[option] for option in fix if option in BUILD_ARGS]  # "": no option names it
    label = "build argument" if len(names) == 1 else "build arguments"
    return f"{message} ({label}: {', '.join(names)})" if names else message


if __name__ == "__main__":
    sys.exit(main())
