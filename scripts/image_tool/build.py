"""The builds: the Dockerfile's `runtime` and `api` targets on the stand-in bases, the tiny random checkpoint as
the `model-src` build context (verified by sha256 like real weights), and the host's package-index settings
as read-only mounts of the RUN steps (never in a layer).

On a machine with Docker, the same images are (docs/deploying.md has the production build):

    docker buildx build --target runtime -t f5-worker:dev \\
      --build-arg TORCH_INDEX_URL= --build-arg FLASH_ATTN_WHEEL=none \\
      --build-arg MODEL_REPO=/model-src --build-arg MODEL_FILE=model.safetensors \\
      --build-arg MODEL_ARCH=/model-src/model.json --build-arg VOCODER_REPO=/model-src/vocoder \\
      --build-arg MODEL_SHA256=$(sha256sum DIR/model.safetensors | cut -d' ' -f1) \\
      --build-context model-src=DIR .
    docker buildx build --target api -t f5-worker-api:dev .
"""

from __future__ import annotations

import configparser
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.image_tool.bases import CUDA, PYTHON_SLIM
from scripts.image_tool.engines import buildah, run

REPO = Path(__file__).resolve().parents[2]
# Where RUN steps see the host's pip settings: a directory every Debian/Ubuntu base has (empty), so the read-only
# mount leaves no mount point behind in a layer; the PIP_CONFIG_FILE build argument points pip at it.
PIP_MOUNT = "/mnt"
RUNTIME_TAG = "localhost/f5-worker:dev"
API_TAG = "localhost/f5-worker-api:dev"


@dataclass(frozen=True)
class ModelSource:
    directory: Path
    sha256: str


def tiny_model_source() -> ModelSource:
    """The tiny random checkpoint `f5-worker local` generates (same cache, same generator), and its sha256."""
    from consumer.engine.random_model import ensure_random_model

    cache = Path(os.environ.get("F5_WORKER_CACHE_DIR") or Path.home() / ".cache" / "f5-worker")
    directory = Path(ensure_random_model(cache, "tiny"))
    digest = hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()
    return ModelSource(directory, digest)


def _pip_setting(name: str) -> str | None:
    env = os.environ.get(f"PIP_{name.upper().replace('-', '_')}")
    if env:
        return env
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", f"global.{name}"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None


def pip_mounts(work: Path) -> list[str]:
    """`-v` flags giving RUN steps this host's CA bundle and index URL (a proxy's CA, a private index); with
    the build argument PIP_CONFIG_FILE (`PIP_ARGS`). Only the index settings travel: local wheel folders and
    constraints of this host stay out of the build."""
    conf = configparser.ConfigParser()
    conf["global"] = {}
    directory = work / "pip"
    directory.mkdir(parents=True, exist_ok=True)
    cert = _pip_setting("cert") or os.environ.get("SSL_CERT_FILE")
    if cert and Path(cert).is_file():
        shutil.copyfile(cert, directory / "ca.crt")
        conf["global"]["cert"] = f"{PIP_MOUNT}/ca.crt"
    index = _pip_setting("index-url")
    if index and not index.startswith("file:"):
        conf["global"]["index-url"] = index
    with (directory / "pip.conf").open("w", encoding="utf-8") as handle:
        conf.write(handle)
    return ["-v", f"{directory}:{PIP_MOUNT}:ro"]


PIP_ARGS = {"PIP_CONFIG_FILE": f"{PIP_MOUNT}/pip.conf"}


@dataclass
class Build:
    """One `buildah bud` of a Dockerfile target with the stand-in arguments, and what it took."""

    target: str
    tag: str
    args: dict[str, str] = field(default_factory=dict)
    contexts: dict[str, Path] = field(default_factory=dict)
    # buildah's layer cache does not key a RUN step on the content of a bind-mounted build context: a build
    # that must see a changed context (with the same build arguments) cannot use it.
    no_cache: bool = False
    seconds: float = 0.0

    def argv(self, mounts: list[str]) -> list[str]:
        argv = buildah("bud", "--isolation", "chroot", "--layers", "--target", self.target, "-t", self.tag)
        if self.no_cache:
            argv.append("--no-cache")
        for name, value in self.args.items():
            argv += ["--build-arg", f"{name}={value}"]
        for name, path in self.contexts.items():
            argv += ["--build-context", f"{name}={path}"]
        return [*argv, *mounts, str(REPO)]

    def run(self, mounts: list[str], log: Path, *, check: bool = True) -> str:
        started = time.monotonic()
        try:
            return run(self.argv(mounts), log=log, check=check)
        finally:
            self.seconds = time.monotonic() - started


def standin_args(model: ModelSource) -> dict[str, str]:
    """The build arguments that make the Dockerfile build on the stand-in bases with the tiny checkpoint."""
    return {
        "BASE_IMAGE": CUDA.tag,
        "API_BASE_IMAGE": PYTHON_SLIM.tag,
        "PYTHON": CUDA.python,
        "TORCH_INDEX_URL": "",  # pip's configured index: PyPI's torch 2.9.1 is the CUDA 12.8 build
        "FLASH_ATTN_WHEEL": "none",  # no wheel for this CPU-only stand-in; SDPA attention
        "MODEL_REPO": "/model-src",
        "MODEL_FILE": "model.safetensors",
        "MODEL_ARCH": "/model-src/model.json",
        "VOCODER_REPO": "/model-src/vocoder",
        "MODEL_SHA256": model.sha256,
        **PIP_ARGS,
    }


def runtime_build(model: ModelSource) -> Build:
    return Build("runtime", RUNTIME_TAG, standin_args(model), {"model-src": model.directory})


def api_build() -> Build:
    return Build("api", API_TAG, {"API_BASE_IMAGE": PYTHON_SLIM.tag, **PIP_ARGS})
