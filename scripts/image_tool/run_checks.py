"""The built images run as RunPod would run them, checked from inside a network namespace that has only a
loopback: the embedded AWS (moto) listens on its 127.0.0.1, every container joins it (`--network ns:...`), so
nothing in them can reach any other network. Containers run with the image's own user (uid 10001), a read-only
root filesystem and a tmpfs /tmp, as `podman run` (runc) does them.

Run by `python -m scripts.image_tool` through `ip netns exec`; prints one JSON line with each check's result."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from consumer.api.auth import create_key
from consumer.aws.clients import make_clients
from consumer.aws.embedded import EMULATOR_CREDENTIALS, EmbeddedAws
from consumer.aws.resources import Resources, ResourceSpec, bootstrap
from consumer.core.settings import load_settings
from consumer.producer.voice_library import VoiceLibrary
from contracts.events import Event, SynthesisCompleted, parse_event
from contracts.requests import SynthesisRequest, VoiceRef
from scripts.image_tool.engines import podman, run, ulimits

VOICE = "basic-en"
SAMPLE_RATE = 24_000
SHORT_TEXT = "Hello from the image. This sentence came through a queue."
LONG_TEXT = " ".join(
    [
        "The worker was asked to stop while it spoke this paragraph.",
        "It may finish within its grace, or hand the message back to the queue,",
        "and then another worker takes it from the start and finishes it.",
        "Either way the audio is written once and one completion event says so.",
    ]
    * 4
)
GRACE_S = 3.0  # the worker's F5_WORKER_SHUTDOWN_GRACE_S here: short, so a long job is handed back
HEALTH_PORT = 8080
API_PORT = 8000


CheckFailed = AssertionError  # one check did not hold; the message says what was seen


def _wait_for(what: str, probe: Callable[[], Any], timeout_s: float, every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every_s)
    raise CheckFailed(f"{what}: not within {timeout_s:.0f} s")


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@dataclass
class Stack:
    """The embedded AWS in this namespace, with the worker's resources and the example voice."""

    aws: EmbeddedAws
    resources: Resources
    clients: Any
    events: list[Event] = field(default_factory=list)

    @classmethod
    def start(cls) -> Stack:
        aws = EmbeddedAws.start()
        settings = load_settings(aws_endpoint_url=aws.endpoint_url)
        clients = make_clients(settings)
        resources = bootstrap(clients, ResourceSpec(), settings.aws_region)
        VoiceLibrary(clients.s3, resources.bucket, settings.voices_prefix, SAMPLE_RATE).add_example(VOICE)
        return cls(aws, resources, clients)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "F5_WORKER_AWS_ENDPOINT_URL": self.aws.endpoint_url,
            **EMULATOR_CREDENTIALS,
            **self.resources.env(),
            "F5_WORKER_WAIT_TIME_S": "1",
            "F5_WORKER_LOG_JSON": "true",
            **extra,
        }

    def send(self, text: str) -> str:
        job_id = f"image-{uuid.uuid4().hex[:10]}"
        request = SynthesisRequest(job_id=job_id, text=text, voice=VoiceRef(voice_id=VOICE))
        self.clients.sqs.send_message(QueueUrl=self.resources.queue_url, MessageBody=request.model_dump_json())
        return job_id

    def drain_events(self) -> list[Event]:
        response = self.clients.sqs.receive_message(
            QueueUrl=self.resources.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            self.events.append(parse_event(message["Body"]))
            self.clients.sqs.delete_message(
                QueueUrl=self.resources.events_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return self.events

    def completed(self, job_id: str) -> list[SynthesisCompleted]:
        return [e for e in self.events if isinstance(e, SynthesisCompleted) and e.job_id == job_id]

    def wait_completed(self, job_id: str, timeout_s: float) -> SynthesisCompleted:
        def done() -> SynthesisCompleted | None:
            self.drain_events()
            failed = [e for e in self.events if e.job_id == job_id and not isinstance(e, SynthesisCompleted)]
            if failed:
                raise CheckFailed(f"job {job_id} failed: {failed[0].model_dump_json()}")
            found = self.completed(job_id)
            return found[0] if found else None

        return _wait_for(f"completion event of {job_id}", done, timeout_s, every_s=0)

    def audio_seconds(self, event: SynthesisCompleted) -> float:
        import io

        import soundfile

        body = self.clients.s3.get_object(Bucket=event.output.bucket, Key=event.output.key)["Body"].read()
        data, rate = soundfile.read(io.BytesIO(body))
        return len(data) / rate


@dataclass
class Container:
    name: str
    started: float

    def exec(self, *argv: str) -> tuple[int, str]:
        result = subprocess.run(podman("exec", self.name, *argv), capture_output=True, text=True, check=False)
        return result.returncode, (result.stdout + result.stderr).strip()

    def logs(self) -> str:
        return run(podman("logs", self.name), check=False)

    def signal(self, name: str) -> None:
        run(podman("kill", "--signal", name, self.name))

    def wait(self, timeout_s: float) -> int:
        return int(run(podman("wait", self.name), timeout=timeout_s).strip().splitlines()[-1])


@contextmanager
def container(image: str, netns: str, env: dict[str, str], *command: str) -> Iterator[Container]:
    """`podman run -d` as RunPod would: the image's user, read-only root, tmpfs /tmp, loopback-only network."""
    name = f"f5-image-{uuid.uuid4().hex[:8]}"
    flags = [f"--env={k}={v}" for k, v in env.items()]
    started = time.monotonic()
    run(
        podman(
            "run", "--detach", "--pull=never", "--name", name, f"--network=ns:{netns}",
            "--read-only", "--read-only-tmpfs=false", "--tmpfs=/tmp:rw,mode=1777,size=2g",
            *ulimits(), *flags, image, *command,
        )
    )  # fmt: skip
    try:
        yield Container(name, started)
    finally:
        run(podman("rm", "--force", "--time", "2", name), check=False)


def one_shot(image: str, netns: str, env: dict[str, str], *command: str) -> tuple[int, str]:
    flags = [f"--env={k}={v}" for k, v in env.items()]
    argv = podman(
        "run", "--rm", "--pull=never", f"--network=ns:{netns}", "--read-only", "--read-only-tmpfs=false",
        "--tmpfs=/tmp:rw,mode=1777", *ulimits(), *flags, image, *command,
    )  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return result.returncode, (result.stdout + result.stderr).strip()


def _logged(logs: str, event: str, job_id: str) -> bool:
    """Whether the worker's JSON log has `event` for `job_id`."""
    for line in logs.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event and entry.get("job_id") == job_id:
            return True
    return False


def _ready(port: int) -> bool:
    return _http_status(f"http://127.0.0.1:{port}/readyz") == 200


def check_worker(runtime: str, netns: str, stack: Stack, results: dict[str, Any]) -> None:
    """Health before and after ready, time to ready, one job, SIGTERM in the middle of a long one."""
    env = stack.env(F5_WORKER_SHUTDOWN_GRACE_S=str(GRACE_S))
    with container(runtime, netns, env) as first:
        code, said = first.exec("f5-worker", "check")
        if code != 1:
            raise CheckFailed(f"f5-worker check before ready: exit {code} ({said})")
        _wait_for("the worker's /readyz", lambda: _ready(HEALTH_PORT), 300)
        results["ready_s"] = round(time.monotonic() - first.started, 1)
        code, said = first.exec("f5-worker", "check")
        if code != 0:
            raise CheckFailed(f"f5-worker check after ready: exit {code} ({said})")
        code, uid = first.exec("id", "-u")
        if uid != "10001":
            raise CheckFailed(f"the worker runs as uid {uid}, not 10001")
        results["check"] = "ok"

        job = stack.send(SHORT_TEXT)
        event = stack.wait_completed(job, 120)
        seconds = stack.audio_seconds(event)
        if seconds < 0.5:
            raise CheckFailed(f"job {job}: {seconds:.2f} s of audio")
        results["job"] = "ok"
        results["job_audio_s"] = round(seconds, 2)

        long_job = stack.send(LONG_TEXT)
        _wait_for("the long job's start", lambda: _logged(first.logs(), "job_started", long_job), 60)
        time.sleep(1.0)
        stopped = time.monotonic()
        first.signal("TERM")
        status = first.wait(timeout_s=GRACE_S + 60)
        took = time.monotonic() - stopped
    if status != 0:
        raise CheckFailed(f"SIGTERM: exit {status}")
    stack.drain_events()
    finished_in_grace = bool(stack.completed(long_job))
    if not finished_in_grace:  # handed back: a second worker must finish it
        with container(runtime, netns, env) as second:
            stack.wait_completed(long_job, 300)
            second.signal("TERM")
            if second.wait(timeout_s=GRACE_S + 60) != 0:
                raise CheckFailed("the second worker's SIGTERM exit was not 0")
    stack.drain_events()
    completions = stack.completed(long_job)
    if len(completions) != 1:
        raise CheckFailed(f"the interrupted job completed {len(completions)} times")
    stack.audio_seconds(completions[0])
    results["sigterm"] = "ok"
    results["sigterm_exit_s"] = round(took, 1)
    results["sigterm_outcome"] = (
        "finished within the grace" if finished_in_grace else "handed back, finished by another"
    )


def check_multi_gpu(runtime: str, netns: str, stack: Stack, results: dict[str, Any]) -> None:
    """docker/multi-gpu.sh with two CPU "devices": two workers in one container, both take jobs."""
    env = stack.env(F5_WORKER_GPUS="0,1", F5_WORKER_MAX_IN_FLIGHT="1", F5_WORKER_SHUTDOWN_GRACE_S="10")
    with container(runtime, netns, env, "f5-worker-multi-gpu") as launcher:
        _wait_for("both workers ready", lambda: _ready(HEALTH_PORT) and _ready(HEALTH_PORT + 1), 300)
        jobs = [stack.send(LONG_TEXT[:300]) for _ in range(4)]
        workers = {stack.wait_completed(job, 300).worker_id for job in jobs}
        launcher.signal("TERM")
        status = launcher.wait(timeout_s=60)
    if len(workers) != 2:
        raise CheckFailed(f"jobs taken by {len(workers)} worker(s): {sorted(workers)}")
    if status != 0:
        raise CheckFailed(f"multi-gpu launcher: exit {status} after SIGTERM")
    results["multi_gpu"] = "ok"


def check_api(api: str, netns: str, stack: Stack, results: dict[str, Any]) -> None:
    """The HTTP door's image: no torch, /healthz 200 with a key configured, keyless on 0.0.0.0 refused (exit 2)."""
    code, said = one_shot(api, netns, {}, "python", "-c", "import torch")
    if code == 0 or "No module named 'torch'" not in said:
        raise CheckFailed(f"torch in the api image: exit {code} ({said[-200:]})")
    code, said = one_shot(api, netns, stack.env())
    if code != 2 or len(said.splitlines()) > 2:
        raise CheckFailed(f"keyless api on 0.0.0.0: exit {code}, said: {said[-300:]}")
    _key, entry = create_key("image-check")
    with container(api, netns, stack.env(F5_WORKER_API_KEY_HASHES=entry)):
        _wait_for("the api's /healthz", lambda: _http_status(f"http://127.0.0.1:{API_PORT}/healthz") == 200, 60)
    results["api"] = "ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--netns", required=True, help="the namespace's path, /run/netns/NAME")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    stack = Stack.start()
    try:
        for name, check in (
            ("job", lambda: check_worker(args.runtime, args.netns, stack, results)),
            ("multi_gpu", lambda: check_multi_gpu(args.runtime, args.netns, stack, results)),
            ("api", lambda: check_api(args.api, args.netns, stack, results)),
        ):
            try:
                check()
            except (CheckFailed, TimeoutError, RuntimeError, subprocess.SubprocessError) as exc:
                results.setdefault("failures", []).append(f"{name}: {exc}")
    finally:
        stack.aws.stop()
    print(json.dumps(results))
    return 1 if results.get("failures") else 0


if __name__ == "__main__":
    sys.exit(main())
