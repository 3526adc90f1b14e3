"""`pip install 'f5-worker[api]'` alone is enough for the HTTP door, and brings no torch: a fresh virtualenv with
only that extra serves /healthz."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

from tests.paths import REPO


def test_the_api_extra_alone_serves_without_torch(stack, tmp_path):
    venv = tmp_path / "api-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    installed = subprocess.run([*pip, f"{REPO}[api]"], capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-2000:]
    python = str(venv / "bin" / "python")
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "F5_WORKER_AWS_ENDPOINT_URL": stack.endpoint_url,
        "F5_WORKER_QUEUE_URL": stack.resources.queue_url,
        "F5_WORKER_BUCKET": stack.resources.bucket,
        "F5_WORKER_API_PORT": str(port),
    }
    server = subprocess.Popen(
        [str(venv / "bin" / "f5-worker"), "api"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the API did not answer /healthz"
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            assert answer.status == 200  # it reached the queue
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "PYTHONPATH" not in env and os.environ.get("VIRTUAL_ENV") != str(venv)
