"""Workers as processes on this host: one `f5-worker run` per slot (a GPU, or a CPU slot where there is none).

The fleet is found in the operating system, not in this process's memory: each worker carries its pod id in its
environment (`F5_WORKER_FLEET_POD_ID`, also its `F5_WORKER_WORKER_ID`, so events name it), and `pods()` reads
/proc. A controller that takes over from a dead one sees the same workers and stops them the same way.

`docker/multi-gpu.sh` is the fixed-size case of this provider (one worker per GPU, all the time, inside one
container); this one starts and stops the same kind of workers as the queue asks. Each worker gets one GPU
(`CUDA_VISIBLE_DEVICES`) and its own health port, as there.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from consumer.core.logs import get_logger
from consumer.fleet.providers.base import Pod, ProviderError

log = get_logger(__name__)

POD_ENV = "F5_WORKER_FLEET_POD_ID"
PROC = Path("/proc")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environ(pid: int) -> dict[str, str]:
    raw = (PROC / str(pid) / "environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _parent(pid: int) -> int:
    status = (PROC / str(pid) / "status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def _started_at(pid: int) -> float:
    return (PROC / str(pid)).stat().st_mtime


def _is_zombie(pid: int) -> bool:
    status = (PROC / str(pid) / "status").read_text()
    return any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())


def gpu_slots() -> list[str]:
    """The GPUs to spread workers over, as docker/multi-gpu.sh finds them; empty on a host without GPUs."""
    chosen = os.environ.get("F5_WORKER_GPUS") or os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen:
        return [gpu.strip() for gpu in chosen.split(",") if gpu.strip()]
    try:
        listed = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],  # noqa: S607 (on PATH, as multi-gpu.sh)
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]


class LocalProvider:
    name = "local"

    def __init__(
        self,
        prefix: str,
        command: Sequence[str] | str = "f5-worker run",
        env: dict[str, str] | None = None,
        gpus: list[str] | None = None,
        clock: Callable[[], float] = time.time,
        log_dir: Path | None = None,
    ) -> None:
        self.prefix = prefix
        self.command = shlex.split(command) if isinstance(command, str) else list(command)
        self.env = dict(os.environ if env is None else env)
        self.gpus = gpu_slots() if gpus is None else gpus
        self._clock = clock
        self.log_dir = log_dir  # each worker's output in <log_dir>/<pod id>.log; None: this process's stderr
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping: set[str] = set()

    # --- the fleet, from /proc -------------------------------------------------------------------------------
    def _find(self) -> dict[str, tuple[int, dict[str, str]]]:
        """pod id → (pid, environment) of each worker of this fleet: the topmost process carrying the id."""
        self._reap()
        found: dict[str, tuple[int, dict[str, str]]] = {}
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                env = _environ(pid)
                pod_id = env.get(POD_ENV, "")
                if not pod_id.startswith(f"{self.prefix}-") or _is_zombie(pid):
                    continue
                if pod_id in found and _parent(pid) == found[pod_id][0]:
                    continue  # a child of the worker (same id): the worker is its parent
                found[pod_id] = (pid, env)
            except (OSError, ValueError, StopIteration):
                continue  # gone meanwhile, or not ours to read
        return found

    def pods(self) -> list[Pod]:
        pods = []
        for pod_id, (pid, env) in sorted(self._find().items()):
            if pod_id in self._stopping:
                state = "stopping"
            else:
                state = "running" if self._ready(env.get("F5_WORKER_HEALTH_PORT")) else "starting"
            pods.append(Pod(pod_id, state, _started_at(pid)))  # type: ignore[arg-type]
        return pods

    @staticmethod
    def _ready(port: str | None) -> bool:
        if not port:
            return True
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    # --- changes -------------------------------------------------------------------------------------------
    def start(self, count: int) -> list[Pod]:
        running = self._find()
        used = {env.get("CUDA_VISIBLE_DEVICES") for _, env in running.values()}
        started: list[Pod] = []
        for _ in range(count):
            pod_id = f"{self.prefix}-{uuid.uuid4().hex[:8]}"
            env = self.env | {
                POD_ENV: pod_id,
                "F5_WORKER_WORKER_ID": pod_id,
                "F5_WORKER_HEALTH_PORT": str(_free_port()),
            }
            if self.gpus:
                free = [gpu for gpu in self.gpus if gpu not in used]
                if not free:
                    break
                env["CUDA_VISIBLE_DEVICES"] = free[0]
                used.add(free[0])
            try:
                output = (self.log_dir / f"{pod_id}.log").open("wb") if self.log_dir else None
                child = subprocess.Popen(  # noqa: S603
                    self.command, env=env, start_new_session=True, stdout=output, stderr=output
                )
                if output is not None:
                    output.close()  # the child holds its own copy
            except OSError as exc:
                raise ProviderError(
                    f"cannot start `{shlex.join(self.command)}`: {exc}; set F5_WORKER_FLEET_LOCAL_COMMAND", config=True
                ) from exc
            self._children[pod_id] = child
            started.append(Pod(pod_id, "starting", self._clock()))
            log.info(
                "fleet_pod_started",
                provider=self.name,
                pod_id=pod_id,
                pid=child.pid,
                gpu=env.get("CUDA_VISIBLE_DEVICES"),
            )
        if count and not started:
            raise ProviderError(f"no free GPU among {', '.join(self.gpus)}: every one runs a worker")
        return started

    def stop(self, pod_ids: list[str]) -> None:
        running = self._find()
        for pod_id in pod_ids:
            if pod_id not in running:
                continue
            pid = running[pod_id][0]
            try:
                os.kill(pid, signal.SIGTERM)  # the worker finishes or hands back its job, then exits
            except ProcessLookupError:
                continue
            self._stopping.add(pod_id)
            log.info("fleet_pod_stopping", provider=self.name, pod_id=pod_id, pid=pid)

    def _reap(self) -> None:
        for pod_id, child in list(self._children.items()):
            status = child.poll()
            if status is not None:
                del self._children[pod_id]
                self._stopping.discard(pod_id)
                log.info("fleet_pod_exited", provider=self.name, pod_id=pod_id, exit_code=status)

    def close(self, *, stop_workers: bool) -> None:
        """When the controller ends: its workers keep running (a successor adopts them) unless asked to stop."""
        if stop_workers:
            self.stop(list(self._find()))
