"""docker/prepare_weights.py, the image's build-time weight fetcher: it lays out a model directory the worker loads,
refuses a checkpoint whose sha256 does not match, fetches hub sources with the pinned revision, and the directory
it writes runs a real job in a worker process that has no network beyond loopback (and never tries to use any)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from consumer.engine.model_spec import load_model_dir, wheel_example_path
from contracts.events import SynthesisCompleted
from tests.paths import REPO
from tests.tiny_whisper import RECOGNISED

SCRIPT = REPO / "docker" / "prepare_weights.py"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def prepare_weights() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prepare_weights", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(source: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--out",
        str(out),
        "--model-repo",
        str(source),
        "--model-file",
        "model.safetensors",
        "--vocoder",
        str(source / "vocoder"),
        "--arch",
        str(source / "model.json"),  # the tiny architecture, not F5TTS_v1_Base's
        *extra,
    ]


@pytest.fixture(scope="module")
def prepared(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random model run through the script as the Dockerfile runs it (a subprocess, exit 0)."""
    out = tmp_path_factory.mktemp("prepared") / "model"
    sha = _sha256(tiny_model_path / "model.safetensors")
    argv = _args(tiny_model_path, out, "--model-sha256", sha, "--model-id", "prepared-tiny")
    result = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["checkpoint_sha256"] == sha
    return out


def test_layout_is_what_the_worker_loads(prepared: Path, tiny_model_path: Path) -> None:
    assert sorted(p.relative_to(prepared).as_posix() for p in prepared.rglob("*")) == [
        "model.json",
        "model.safetensors",
        "vocab.txt",
        "vocoder",
        "vocoder/config.yaml",
        "vocoder/pytorch_model.bin",
    ]
    spec = load_model_dir(prepared)
    source = json.loads((tiny_model_path / "model.json").read_text(encoding="utf-8"))
    assert spec.model_id == "prepared-tiny"
    assert spec.arch == source["arch"] and spec.mel_spec == source["mel_spec"]
    assert spec.vocoder == str(prepared / "vocoder")  # a local directory: nothing to download at start
    assert _sha256(Path(spec.checkpoint)) == _sha256(tiny_model_path / "model.safetensors")
    assert Path(spec.vocab).read_bytes() == wheel_example_path("infer/examples/vocab.txt").read_bytes()
    manifest = json.loads((prepared / "model.json").read_text(encoding="utf-8"))
    assert manifest["source"]["vocoder_sha256"]["pytorch_model.bin"] == _sha256(prepared / "vocoder/pytorch_model.bin")
    assert oct(prepared.stat().st_mode & 0o777) == oct(0o755)


def test_wrong_sha256_fails_and_writes_nothing(tiny_model_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    argv = _args(tiny_model_path, out, "--model-sha256", "0" * 64)
    result = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    actual = _sha256(tiny_model_path / "model.safetensors")
    assert f"sha256 mismatch for model.safetensors: expected {'0' * 64}, got {actual}" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no model directory, no staging leftovers


def test_sha256_is_required_unless_waived(
    prepare_weights: ModuleType,
    tiny_model_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert prepare_weights.main(_args(tiny_model_path, tmp_path / "a")) == 2
    assert "--model-sha256 is required" in capsys.readouterr().err
    assert prepare_weights.main([*_args(tiny_model_path, tmp_path / "b"), "--allow-unverified"]) == 0
    load_model_dir(tmp_path / "b")


def test_wrong_vocoder_sha256_fails(
    prepare_weights: ModuleType,
    tiny_model_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [*_args(tiny_model_path, tmp_path / "m", "--allow-unverified"), "--vocoder-sha256", "f" * 64]
    assert prepare_weights.main(argv) == 2
    assert "sha256 mismatch for vocoder/pytorch_model.bin" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_missing_local_source_and_occupied_target(
    prepare_weights: ModuleType,
    tiny_model_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [*_args(tmp_path / "nowhere", tmp_path / "m", "--allow-unverified"), "--arch", "F5TTS_v1_Base"]
    assert prepare_weights.main(argv) == 1
    assert f"local source {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    assert prepare_weights.main([*argv, "--arch", "F5TTS_v9_Imaginary"]) == 1
    assert "--arch F5TTS_v9_Imaginary" in capsys.readouterr().err
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x", encoding="utf-8")
    assert prepare_weights.main(_args(tiny_model_path, occupied, "--allow-unverified")) == 1
    assert "is not empty" in capsys.readouterr().err
    assert prepare_weights.main([*_args(tiny_model_path, occupied, "--allow-unverified"), "--force"]) == 0
    assert not (occupied / "keep.txt").exists()


def test_in_an_image_build_each_error_is_one_line_naming_the_build_argument(
    prepare_weights: ModuleType,
    tiny_model_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = _sha256(tiny_model_path / "model.safetensors")
    empty_context = tmp_path / "model-src"
    empty_context.mkdir()
    cases = [
        ([], 2, "MODEL_SHA256 is required", "MODEL_SHA256"),
        (["--model-sha256", "0" * 64], 2, "sha256 mismatch for model.safetensors", "MODEL_SHA256"),
        (["--model-sha256", good, "--model-repo", str(empty_context)], 1, "model.safetensors not found", "MODEL_FILE"),
        (["--model-sha256", good, "--arch", "F5TTS_v9_Imaginary"], 1, "MODEL_ARCH F5TTS_v9_Imaginary", "MODEL_ARCH"),
    ]
    for i, (extra, status, cause, build_arg) in enumerate(cases):
        assert prepare_weights.main([*_args(tiny_model_path, tmp_path / f"m{i}"), "--build-args", *extra]) == status
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and cause in lines[0] and lines[0].endswith(")"), lines
        assert f"build argument: {build_arg}" in lines[0] and "--" not in lines[0].split("(build argument")[0], lines


def test_hub_sources_are_fetched_at_the_pinned_revision(
    prepare_weights: ModuleType,
    tiny_model_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The hub as the Dockerfile uses it, served from local files: which files, which revisions.
    import huggingface_hub

    files = {
        ("SWivid/F5-TTS", "F5TTS_v1_Base/model_1250000.safetensors"): tiny_model_path / "model.safetensors",
        ("charactr/vocos-mel-24khz", "config.yaml"): tiny_model_path / "vocoder/config.yaml",
        ("charactr/vocos-mel-24khz", "pytorch_model.bin"): tiny_model_path / "vocoder/pytorch_model.bin",
    }
    calls: list[tuple[str, str, str | None]] = []

    def fake_download(repo_id: str, filename: str, revision: str | None = None, **_: Any) -> str:
        # Like the real one: a path ending in the file's name inside the repository snapshot.
        calls.append((repo_id, filename, revision))
        snapshot = tmp_path / "hub" / repo_id / str(revision) / filename
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_bytes(files[(repo_id, filename)].read_bytes())
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    argv = [
        "--out",
        str(tmp_path / "m"),
        "--model-repo",
        "SWivid/F5-TTS",
        "--model-file",
        "F5TTS_v1_Base/model_1250000.safetensors",
        "--model-revision",
        "abc123",
        "--model-sha256",
        _sha256(tiny_model_path / "model.safetensors"),
        "--vocoder",
        "charactr/vocos-mel-24khz",
        "--vocoder-revision",
        "def456",
        "--arch",
        str(tiny_model_path / "model.json"),
    ]
    assert prepare_weights.main(argv) == 0
    assert calls == [
        ("SWivid/F5-TTS", "F5TTS_v1_Base/model_1250000.safetensors", "abc123"),
        ("charactr/vocos-mel-24khz", "config.yaml", "def456"),
        ("charactr/vocos-mel-24khz", "pytorch_model.bin", "def456"),
    ]
    manifest = json.loads((tmp_path / "m/model.json").read_text(encoding="utf-8"))
    assert manifest["model_id"] == "F5TTS_v1_Base/model_1250000"
    assert manifest["checkpoint"] == "model_1250000.safetensors"
    assert manifest["source"]["checkpoint"] == "hf://SWivid/F5-TTS/F5TTS_v1_Base/model_1250000.safetensors@abc123"
    load_model_dir(tmp_path / "m")


def test_default_arch_is_the_packaged_f5tts_v1_base(
    prepare_weights: ModuleType,
    tiny_model_path: Path,
    tmp_path: Path,
) -> None:
    # No --arch: the architecture comes from the f5-tts wheel's configs/F5TTS_v1_Base.yaml (one source of truth).
    argv = _args(tiny_model_path, tmp_path / "m", "--allow-unverified")
    del argv[argv.index("--arch") : argv.index("--arch") + 2]
    assert prepare_weights.main(argv) == 0
    arch = json.loads((tmp_path / "m/model.json").read_text(encoding="utf-8"))["arch"]
    assert (arch["dim"], arch["depth"], arch["heads"]) == (1024, 22, 16)


# --- the prepared directory in a worker process with no network -------------------------------------------------------
NETWORK_GUARD = '''
"""Loaded by every Python process started with this directory on PYTHONPATH: refuses (and records) any
connection or name lookup that is not loopback."""
import ipaddress
import os
import socket

_LOG = os.environ["NETWORK_GUARD_LOG"]


def _record(line):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(f"{os.getpid()} {line}\\n")


def _is_loopback(host):
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
        _record(f"connect {address!r}")
        raise ConnectionRefusedError(f"network guard: {address!r} is not loopback")


def connect(self, address):
    _check(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_loopback(host):
        _record(f"getaddrinfo {host!r}")
        raise socket.gaierror(socket.EAI_NONAME, f"network guard: {host!r} is not loopback")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
with open(_LOG + ".loaded", "a", encoding="utf-8") as f:
    f.write(f"{os.getpid()}\\n")
'''


@pytest.fixture
def guarded_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "sitecustomize.py").write_text(NETWORK_GUARD, encoding="utf-8")
    log = tmp_path / "network.log"
    pythonpath = os.pathsep.join(p for p in (str(guard_dir), os.environ.get("PYTHONPATH", "")) if p)
    env = os.environ | {"PYTHONPATH": pythonpath, "NETWORK_GUARD_LOG": str(log)}
    return env, log


def test_network_guard_refuses_and_records(guarded_env: tuple[dict[str, str], Path]) -> None:
    # The guard is only evidence if it bites: a non-loopback connect and lookup are refused and recorded.
    env, log = guarded_env
    code = (
        "import socket\n"
        "for attempt in (lambda: socket.socket().connect(('203.0.113.7', 443)),\n"
        "                lambda: socket.create_connection(('huggingface.co', 443), timeout=1),\n"
        "                lambda: socket.socket().connect(('127.0.0.1', 9))):\n"
        "    try:\n"
        "        attempt()\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__, exc.errno)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    # Loopback is left alone (port 9 is closed: a real ECONNREFUSED, errno 111); the rest never leaves the process.
    assert result.stdout.splitlines() == ["ConnectionRefusedError None", "gaierror -2", "ConnectionRefusedError 111"]
    recorded = log.read_text(encoding="utf-8")
    assert "connect ('203.0.113.7', 443)" in recorded and "getaddrinfo 'huggingface.co'" in recorded
    assert "127.0.0.1" not in recorded


def _run_offline_worker(stack: Any, env: dict[str, str], **settings: str) -> subprocess.CompletedProcess[str]:
    """`python -m consumer run` in burst mode against the test stack, hub access off, with `F5_WORKER_<KEY>`
    settings added to `env`; returns once the queue is empty."""
    env = env | {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "F5_WORKER_DEVICE": "cpu",
        "F5_WORKER_BURST": "true",
        "F5_WORKER_WAIT_TIME_S": "1",
        "F5_WORKER_AWS_ENDPOINT_URL": stack.endpoint_url,
        "F5_WORKER_QUEUE_URL": stack.resources.queue_url,
        "F5_WORKER_BUCKET": stack.resources.bucket,
        "F5_WORKER_TOPIC_ARN": stack.resources.topic_arn,
    }
    env |= {f"F5_WORKER_{key.upper()}": value for key, value in settings.items()}
    return subprocess.run(
        [sys.executable, "-m", "consumer", "run"], env=env, capture_output=True, text=True, timeout=300
    )


def test_worker_runs_the_prepared_model_offline(
    prepared: Path, stack: Any, guarded_env: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    # Given the prepared directory, a request, and a worker process that may only reach loopback (the moto server),
    env, log = guarded_env
    stack.send(json.dumps({"job_id": "offline-1", "text": "Hello from the image.", "voice": {"voice_id": "basic-en"}}))
    # when it runs until the queue is empty,
    result = _run_offline_worker(
        stack,
        env,
        engine="f5",
        model_dir=str(prepared),
        warm_up="false",  # the job itself synthesizes; saves ~3 s on 2 cores
        cache_dir=str(tmp_path / "cache"),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # then the job completed with the prepared model, and nothing tried to leave the machine.
    assert stack.objects("outputs/") == ["outputs/offline-1.wav"]
    (event,) = stack.events()
    assert isinstance(event, SynthesisCompleted) and event.model_id == "prepared-tiny"
    assert Path(str(log) + ".loaded").read_text(encoding="utf-8").strip(), "the guard was not loaded"
    assert not log.exists(), log.read_text(encoding="utf-8")


# --- the optional ASR model (--asr-model) ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def prepared_with_asr(
    tiny_model_path: Path,
    tiny_whisper: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    out = tmp_path_factory.mktemp("prepared-asr") / "model"
    argv = _args(tiny_model_path, out, "--allow-unverified", "--asr-model", str(tiny_whisper))
    result = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return out


def test_asr_model_is_copied_next_to_the_weights(prepared_with_asr: Path, tiny_whisper: Path) -> None:
    from consumer.engine.asr import WhisperTranscriber

    asr = prepared_with_asr / "asr"
    assert {"config.json", "preprocessor_config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in asr.iterdir()
    }
    source = json.loads((prepared_with_asr / "model.json").read_text(encoding="utf-8"))["source"]
    assert source["asr"] == str(tiny_whisper.resolve())
    assert source["asr_sha256"] == {"model.safetensors": _sha256(tiny_whisper / "model.safetensors")}
    load_model_dir(prepared_with_asr)  # the F5 model directory is still what the worker reads
    transcriber = WhisperTranscriber(str(asr), device="cpu")
    transcriber.load()
    assert transcriber.transcribe(np.zeros(16_000, dtype=np.float32) + 0.1, 16_000) == RECOGNISED


def test_asr_hub_source_is_a_snapshot_at_the_pinned_revision(
    prepare_weights: ModuleType,
    tiny_whisper: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import huggingface_hub

    calls: list[dict[str, Any]] = []

    def fake_snapshot(**kwargs: Any) -> str:
        calls.append(kwargs)
        return str(tiny_whisper)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    provenance, sha = prepare_weights.fetch_asr("openai/whisper-large-v3-turbo", "abc123", tmp_path / "asr", tmp_path)
    assert provenance == "hf://openai/whisper-large-v3-turbo@abc123" and list(sha) == ["model.safetensors"]
    (call,) = calls
    assert (call["repo_id"], call["revision"]) == ("openai/whisper-large-v3-turbo", "abc123")
    assert set(call["allow_patterns"]) == {"*.json", "*.txt", "*.safetensors"}  # no duplicate .bin/.h5 weights


def test_asr_source_that_is_not_a_whisper_model_fails_and_writes_nothing(
    prepare_weights: ModuleType,
    tiny_model_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text("{}", encoding="utf-8")
    argv = _args(tiny_model_path, tmp_path / "m", "--allow-unverified", "--asr-model", str(not_a_model))
    assert prepare_weights.main(argv) == 1
    assert "is not a Whisper model" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert prepare_weights.main([*argv[:-1], str(tmp_path / "nowhere")]) == 1
    assert "local ASR model" in capsys.readouterr().err


def test_worker_transcribes_with_the_prepared_asr_model_offline(
    prepared_with_asr: Path, stack: Any, guarded_env: tuple[dict[str, str], Path], reference_wav: bytes
) -> None:
    # A clip without a transcript, a worker process (fake engine) with the prepared ASR model and no network:
    env, log = guarded_env
    stack.clients.s3.put_object(Bucket=stack.resources.bucket, Key="refs/clip.wav", Body=reference_wav)
    voice = {"audio_uri": f"s3://{stack.resources.bucket}/refs/clip.wav"}
    stack.send(json.dumps({"job_id": "asr-offline-1", "text": "Hello.", "voice": voice}))
    result = _run_offline_worker(stack, env, engine="fake", asr_model=str(prepared_with_asr / "asr"))
    assert result.returncode == 0, result.stderr[-4000:]
    # the model was loaded at start, the clip transcribed, the job completed, and nothing left the machine.
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    events = {entry["event"]: entry for entry in logs}
    assert events["asr_loaded"]["model"] == str(prepared_with_asr / "asr")
    assert "asr_loaded" in events["worker_ready"]["startup"]
    assert events["reference_transcribed"]["chars"] == len(RECOGNISED)
    (event,) = stack.events()
    assert isinstance(event, SynthesisCompleted) and event.job_id == "asr-offline-1"
    assert not log.exists(), log.read_text(encoding="utf-8")
