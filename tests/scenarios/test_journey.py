"""The journey a new user takes, as subprocesses: `local --serve` in the background, then the CLI from "another
terminal" with the env file it wrote (voices add → say → enqueue → jobs show), and the usual mistakes on the way.
Every command ends with its documented exit code; none prints a traceback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("F5_WORKER_", "AWS_"))}
    return env | {
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _cli(args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "consumer.cli", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


@pytest.fixture
def served(tmp_path: Path):
    """`f5-worker local --serve` running; yields the environment its env file describes."""
    env_file = tmp_path / "f5-worker.env"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "consumer.cli", "local", "--serve", "--env-file", str(env_file)],
        env=_clean_env(tmp_path),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 240
    while not env_file.exists():
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, "local --serve wrote no env file"
        time.sleep(0.5)
    time.sleep(0.5)  # the file is written in one call; the worker starts polling right after
    settings = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    yield _clean_env(tmp_path) | settings, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    log.close()


def test_the_journey_from_local_serve_to_jobs_show(served, tmp_path, reference_wav):
    env, proc = served
    assert {"AWS_ACCESS_KEY_ID", "F5_WORKER_EVENTS_QUEUE_URL", "F5_WORKER_MODEL_DIR"} <= set(env)
    (tmp_path / "clip.wav").write_bytes(reference_wav)

    added = _cli(["voices", "add", "narrator", "clip.wav", "--transcript", "Hello from the library."], env, tmp_path)
    assert added.returncode == 0 and "added narrator" in added.stdout

    said = _cli(["say", "Hello there.", "--voice", "narrator", "--out", "hello.wav", "--timeout", "90"], env, tmp_path)
    assert said.returncode == 0, said.stderr
    assert (tmp_path / "hello.wav").stat().st_size > 44
    # not a terminal: one plain line per phase, ending with the upload (the worker may take it before the first poll)
    phases = said.stderr.strip().splitlines()
    assert phases[-1].startswith("uploaded s3://") and "Traceback" not in said.stderr
    assert set(phases[:-1]) <= {"queued"} | {p for p in phases if p.startswith(("started on", "chunk ", "encoding"))}

    (tmp_path / "text.txt").write_text("Read from a file.")
    options = ["--speed", "1.2", "--nfe-steps", "8", "--sample-rate", "16000", "--loudness", "-16"]
    for attempt in range(2):  # the same --job-id again is a safe retry: the recorded result comes back
        tuned = _cli(
            ["say", "@text.txt", "--voice", "narrator", *options, "--job-id", "said-1", "--out", "s.wav"], env, tmp_path
        )
        assert tuned.returncode == 0, (attempt, tuned.stderr)
    assert sf.info(str(tmp_path / "s.wav")).samplerate == 16000
    piped = _cli(["say", "-", "--voice", "narrator", "--out", "p.wav"], env, tmp_path, stdin="From standard input.")
    assert piped.returncode == 0 and (tmp_path / "p.wav").exists()

    wrong = _cli(["say", "Hello.", "--voice", "nobody", "--timeout", "90"], env, tmp_path)  # refused before queueing
    assert wrong.returncode == 2 and "unknown voice 'nobody'" in wrong.stderr, wrong.stderr
    assert "f5-worker voices list" in wrong.stderr

    request = {"job_id": "journey-1", "text": "Queued from a file.", "voice": {"voice_id": "narrator"}}
    (tmp_path / "requests.json").write_text(json.dumps([request]))
    queued = _cli(["enqueue", "requests.json"], env, tmp_path)
    assert queued.returncode == 0 and "queued journey-1" in queued.stdout
    waited = _cli(["jobs", "wait", "journey-1", "--timeout", "60", "--json"], env, tmp_path)
    assert waited.returncode == 0 and json.loads(waited.stdout)["type"] == "synthesis.completed.v1", waited.stderr
    shown = _cli(["jobs", "show", "journey-1", "--json"], env, tmp_path)
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "COMPLETED"
    listed = _cli(["jobs", "list", "--json"], env, tmp_path)
    assert "journey-1" in [row["job_id"] for row in json.loads(listed.stdout)]

    # the web console and the HTTP API, started beside the worker
    console = re.search(
        r"web console and HTTP API \(keyless, this machine only\): (\S+)/", (tmp_path / "serve.log").read_text()
    )
    assert console, (tmp_path / "serve.log").read_text()
    with urllib.request.urlopen(f"{console.group(1)}/", timeout=10) as page:
        assert b"f5-worker console" in page.read()

    # the usual mistakes: exit 2 (usage, configuration) or 1 (the work failed), one or two lines, no traceback
    mistakes = [
        (["enqueue", "missing.json"], None, 2, "cannot read missing.json"),
        (["enqueue", "-"], "[]", 2, "nothing to enqueue"),
        (["enqueue", "-"], "{not json", 2, "not JSON"),
        (["voices", "add", "v2", "missing.wav", "--transcript", "x"], None, 2, "cannot read missing.wav"),
        (["jobs", "show", "never-sent"], None, 1, "no worker has received it yet"),
        (["local", "--text", ""], None, 2, "--text is empty"),
        (["say", "@missing.txt"], None, 2, "cannot read missing.txt"),
    ]
    for args, stdin, code, cause in mistakes:
        result = _cli(args, env, tmp_path, stdin)
        assert (result.returncode, cause in result.stderr) == (code, True), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) <= 2, (args, result.stderr)

    no_credentials = {k: v for k, v in env.items() if not k.startswith("AWS_ACCESS") and k != "AWS_SECRET_ACCESS_KEY"}
    result = _cli(["voices", "list"], no_credentials, tmp_path)
    assert result.returncode == 2 and "no AWS credentials" in result.stderr and "fix:" in result.stderr

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
