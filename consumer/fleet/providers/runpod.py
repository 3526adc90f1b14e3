"""Workers as RunPod pods, through the official `runpod` SDK (1.10: GraphQL, `POST <base>/graphql`, the key in an
`Authorization: Bearer` header; the base is `https://api.runpod.io` or the `RUNPOD_API_BASE_URL` environment
variable, which `F5_WORKER_FLEET_RUNPOD_API_URL` sets for the duration of each call).

The fleet is the pods whose name starts with `<F5_WORKER_FLEET_NAME_PREFIX>-`, read from RunPod on every call, not
from this process's memory: a successor controller sees the same pods. Each pod is created from the template file
(`F5_WORKER_FLEET_RUNPOD_TEMPLATE`, deploy/runpod/pod.json) and named `<prefix>-<8 hex>`; the name is also its
worker id (`F5_WORKER_WORKER_ID`), so events and claims name the pod.

Scaling down is graceful: `stop` calls `runpod.stop_pod` (the `podStop` mutation), which stops the pod's Docker
container: its main process, the worker, gets SIGTERM, stops polling, finishes or hands back its job within
`F5_WORKER_SHUTDOWN_GRACE_S`, and exits; SIGKILL follows after RunPod's delay (its FAQ gives 5 s for an
interrupted spot pod and no figure for a stop: keep the grace below 5 s). A stopped pod releases its GPU and is no
longer billed for it, but it still exists: its container disk is wiped, its volume disk (none in our template) is
still billed, and it could be resumed. `runpod.terminate_pod` (`podTerminate`) deletes the pod and everything on it
and ends all billing; RunPod's console asks for a stop first. So a pod of the fleet that has stopped (desired
status EXITED, no runtime left) is terminated at the next `start` or `stop` (`close` with `--stop-workers` too).
`pods()` changes nothing: the controller's dry run calls it.

The API key never appears in a message or a log line: every error text is redacted (`api_key=***`, `Bearer ***`,
the key itself), and no SDK exception is chained to the errors raised here (SDK versions before 1.10 put the key in
the URL, and requests' exceptions quote the URL).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import requests
import runpod  # type: ignore[import-untyped]
from runpod import error as runpod_error

from consumer.core.logs import get_logger
from consumer.core.settings import FleetSettings
from consumer.fleet.providers.base import Pod, PodState, ProviderError
from consumer.fleet.providers.runpod_template import TEMPLATE_SETTING, WORKER_ID_ENV, PodTemplate, load_template

__all__ = ["KEY_SETTING", "RunPodProvider", "redact"]

log = get_logger(__name__)

KEY_SETTING = "F5_WORKER_FLEET_RUNPOD_API_KEY"
PREFIX_SETTING = "F5_WORKER_FLEET_NAME_PREFIX"
URL_ENV = "RUNPOD_API_BASE_URL"  # where the SDK (1.10) reads its API base, at every call

_CAPACITY = re.compile(
    r"no longer any instances available|no (gpus?|instances?|machines?) (are |is )?available|not enough (free )?gpus"
    r"|insufficient (gpu )?capacity|out of (stock|capacity)",
    re.IGNORECASE,
)
_AUTH = re.compile(r"unauthori[sz]ed|forbidden|api[ _-]?key|not authenticated|access denied|permission", re.IGNORECASE)
_STOPPED = {"EXITED", "PAUSED", "DEAD", "TERMINATED"}  # RunPod's desired statuses of a pod that is going or gone
_SDK_LOCK = threading.Lock()  # the SDK's key and base URL are process-wide: one call at a time


def redact(text: str, key: str | None = None) -> str:
    """`text` without API keys: URL query values, bearer tokens, and `key` wherever it appears."""
    text = re.sub(r"(api_key=)[^&\s'\"]+", r"\1***", text, flags=re.IGNORECASE)
    text = re.sub(r"(Bearer\s+)[^\s'\"]+", r"\1***", text)
    return text.replace(key, "***") if key else text


@dataclass(frozen=True)
class _Failure:
    """An SDK call that failed, classified; `detail` is redacted."""

    kind: Literal["auth", "capacity", "unknown_gpu", "refused", "unreachable", "answer"]
    detail: str

    def error(self, doing: str) -> ProviderError:
        if self.kind == "auth":
            return ProviderError(
                f"RunPod refused the API key while {doing} ({self.detail}); set {KEY_SETTING} to a valid key",
                config=True,
            )
        if self.kind in ("unknown_gpu", "refused"):
            return ProviderError(
                f"RunPod refused the pod template while {doing} ({self.detail}); fix the file or set "
                f"{TEMPLATE_SETTING}",
                config=True,
            )
        return ProviderError(f"RunPod API failed while {doing}: {self.detail}; retried at the next step")


def _classify(exc: Exception, key: str | None) -> _Failure:
    text = redact(f"{exc}", key) or type(exc).__name__
    if isinstance(exc, runpod_error.AuthenticationError):
        return _Failure("auth", f"HTTP 401: {text}")
    if isinstance(exc, runpod_error.QueryError):
        if _CAPACITY.search(text):
            return _Failure("capacity", text)
        return _Failure("auth" if _AUTH.search(text) else "answer", text)
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        body = redact(getattr(exc, "doc", "") or "", key)
        if re.search(r"\b403\b|forbidden", body, re.IGNORECASE):
            return _Failure("auth", "HTTP 403 Forbidden")
        return _Failure("answer", "an answer that is not JSON")
    if isinstance(exc, requests.RequestException):
        return _Failure("unreachable", f"{type(exc).__name__}: {text}")
    if isinstance(exc, ValueError):  # the SDK checks its arguments before sending them
        return _Failure("unknown_gpu" if "No GPU found" in text else "refused", text)
    return _Failure("answer", f"unexpected answer ({type(exc).__name__}: {text})")


class RunPodProvider:
    name = "runpod"

    def __init__(self, settings: FleetSettings, clock: Callable[[], float] = time.time) -> None:
        self.prefix = settings.fleet_name_prefix
        self.template_path = settings.fleet_runpod_template
        self._key = settings.fleet_runpod_api_key
        self._api_url = settings.fleet_runpod_api_url
        self._clock = clock
        self._template: PodTemplate | None = None  # read, validated and its GPU types checked on first use
        self._created: dict[str, float] = {}  # pod id → when this provider created it

    def __repr__(self) -> str:
        return f"RunPodProvider(prefix={self.prefix!r}, template={self.template_path!r}, api_url={self._api_url!r})"

    # --- the SDK, with this provider's key and endpoint -------------------------------------------------------------
    @property
    def _secret(self) -> str | None:
        return self._key.get_secret_value() if self._key is not None else None

    @contextlib.contextmanager
    def _sdk(self) -> Iterator[None]:
        """The SDK's process-wide key (and base URL) set for one call, and put back after it."""
        with _SDK_LOCK:
            saved_key, saved_url = runpod.api_key, os.environ.get(URL_ENV)
            runpod.api_key = self._secret
            if self._api_url:
                os.environ[URL_ENV] = self._api_url.rstrip("/")
            try:
                yield
            finally:
                runpod.api_key = saved_key
                if self._api_url and saved_url is None:
                    os.environ.pop(URL_ENV, None)
                elif self._api_url and saved_url is not None:
                    os.environ[URL_ENV] = saved_url

    def _try(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, _Failure | None]:
        with self._sdk():
            try:
                return fn(*args, **kwargs), None
            except Exception as exc:  # noqa: BLE001 - classified; never chained (it may quote the key)
                return None, _classify(exc, self._secret)

    def _call(self, doing: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn's answer; a ProviderError raised outside the SDK's exception, so nothing of it is chained."""
        answer, failure = self._try(fn, *args, **kwargs)
        if failure is not None:
            raise failure.error(doing)
        return answer

    # --- before the first call ---------------------------------------------------------------------------------------
    def _ready(self) -> PodTemplate:
        """The template, once the key, the name prefix, the template and its GPU types are known to be usable."""
        if self._template is not None:
            return self._template
        if not self._secret:
            raise ProviderError(f"no RunPod API key: set {KEY_SETTING}", config=True)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.prefix):
            raise ProviderError(
                f"the fleet's name prefix {self.prefix!r} cannot name RunPod pods; set {PREFIX_SETTING} to letters, "
                "digits, '.', '_' or '-'",
                config=True,
            )
        template = load_template(self.template_path)
        for gpu in template.gpu_type_ids:
            answer, failure = self._try(runpod.get_gpu, gpu)
            if failure is not None:
                raise failure.error(f"checking GPU type {gpu!r} of {self.template_path}")
            if not isinstance(answer, dict) or answer.get("id") != gpu:
                raise _Failure("unknown_gpu", f"no GPU type {gpu!r}").error(f"checking {self.template_path}")
        self._template = template
        return template

    # --- the fleet ----------------------------------------------------------------------------------------------------
    def _fleet(self) -> list[dict[str, Any]]:
        """RunPod's record of every pod of this fleet (its name has the prefix)."""
        listed = self._call("listing pods", runpod.get_pods)
        if not isinstance(listed, list):
            raise _Failure("answer", "the pod list is not a list").error("listing pods")
        ours = [p for p in listed if isinstance(p, dict) and str(p.get("name", "")).startswith(f"{self.prefix}-")]
        self._created = {k: v for k, v in self._created.items() if any(p.get("id") == k for p in ours)}
        return ours

    @staticmethod
    def _state(raw: dict[str, Any]) -> PodState:
        desired = raw.get("desiredStatus")
        if desired in _STOPPED:
            return "stopping"
        return "running" if desired == "RUNNING" and raw.get("runtime") else "starting"

    def _pod(self, raw: dict[str, Any], now: float) -> Pod:
        pod_id = str(raw["id"])
        uptime = raw.get("uptimeSeconds") or 0
        started_at = self._created.get(pod_id, now - uptime if isinstance(uptime, int | float) else now)
        return Pod(pod_id, self._state(raw), started_at)

    def pods(self) -> list[Pod]:
        self._ready()
        now = self._clock()
        return [self._pod(raw, now) for raw in self._fleet() if raw.get("desiredStatus") != "TERMINATED"]

    # --- changes -----------------------------------------------------------------------------------------------------
    def start(self, count: int) -> list[Pod]:
        template = self._ready()
        if count <= 0:
            return []
        self._reap(self._fleet())
        available = list(template.gpu_type_ids)  # a type without capacity is not tried again within this call
        started: list[Pod] = []
        for _ in range(count):
            try:
                pod = self._create(template, available)
            except ProviderError as exc:
                if exc.config or not started:
                    raise
                log.warning(
                    "fleet_start_incomplete", provider=self.name, started=len(started), wanted=count, error=str(exc)
                )
                break
            if pod is None:
                break
            started.append(pod)
        if not started:
            tried = ", ".join(template.gpu_type_ids)
            raise ProviderError(
                f"no RunPod capacity for any GPU type of the template (tried {tried}); retried at the next step"
            )
        return started

    def _create(self, template: PodTemplate, available: list[str]) -> Pod | None:
        """One pod on the first GPU type with capacity; None when none has any."""
        name = f"{self.prefix}-{uuid.uuid4().hex[:8]}"
        while available:
            gpu = available[0]
            answer, failure = self._try(runpod.create_pod, **self._arguments(template, name, gpu))
            if failure is None and isinstance(answer, dict) and answer.get("id"):
                now = self._clock()
                self._created[str(answer["id"])] = now
                log.info("fleet_pod_started", provider=self.name, pod_id=answer["id"], name=name, gpu_type=gpu)
                return Pod(str(answer["id"]), "starting", now)
            failure = failure or _Failure("answer", "the created pod has no id")
            if failure.kind != "capacity":
                raise failure.error(f"creating pod {name} on {gpu}")
            available.pop(0)
            log.warning(
                "fleet_gpu_type_full",
                provider=self.name,
                gpu_type=gpu,
                consequence=f"trying {available[0]}" if available else "no GPU type of the template is left",
            )
        return None

    @staticmethod
    def _arguments(template: PodTemplate, name: str, gpu: str) -> dict[str, Any]:
        return {
            "name": name,
            "image_name": template.image_name,
            "gpu_type_id": gpu,
            "gpu_count": template.gpu_count,
            "cloud_type": template.cloud_type,
            "container_disk_in_gb": template.container_disk_in_gb,
            "volume_in_gb": template.volume_in_gb,
            "min_vcpu_count": template.min_vcpu_count,
            "min_memory_in_gb": template.min_memory_in_gb,
            "ports": template.ports,
            "docker_args": template.docker_args,
            "support_public_ip": template.support_public_ip,
            "start_ssh": template.start_ssh,
            "env": template.env | dict.fromkeys(WORKER_ID_ENV, name),
        }

    def stop(self, pod_ids: list[str]) -> None:
        """`podStop` for each of these pods of the fleet (SIGTERM to the worker); ids of other pods are left alone."""
        self._ready()
        fleet = {str(p.get("id")): p for p in self._fleet()}
        self._reap(fleet.values())
        failures: list[str] = []
        for pod_id in pod_ids:
            raw = fleet.get(pod_id)
            if raw is None:
                log.warning("fleet_pod_unknown", provider=self.name, pod_id=pod_id, consequence="left alone: not ours")
                continue
            if self._state(raw) == "stopping":
                continue
            try:
                self._call(f"stopping pod {pod_id}", runpod.stop_pod, pod_id)
            except ProviderError as exc:
                if exc.config:
                    raise
                failures.append(str(exc))
                continue
            log.info("fleet_pod_stopping", provider=self.name, pod_id=pod_id, name=raw.get("name"))
        if failures:
            raise ProviderError(f"{len(failures)} of {len(pod_ids)} pods not stopped; first: {failures[0]}")

    def _reap(self, fleet: Iterable[dict[str, Any]]) -> None:
        """Terminate the fleet's pods that have stopped (their container gone): no disk is billed for them after."""
        for raw in fleet:
            if raw.get("desiredStatus") != "EXITED" or raw.get("runtime"):
                continue
            pod_id = str(raw.get("id"))
            _, failure = self._try(runpod.terminate_pod, pod_id)
            if failure is not None and failure.kind == "auth":
                raise failure.error(f"terminating pod {pod_id}")
            if failure is not None:
                log.warning("fleet_pod_not_terminated", provider=self.name, pod_id=pod_id, error=failure.detail)
                continue
            log.info("fleet_pod_terminated", provider=self.name, pod_id=pod_id, name=raw.get("name"))

    def close(self, *, stop_workers: bool) -> None:
        """When the controller ends: the pods keep running (a successor adopts them) unless asked to stop."""
        if not stop_workers:
            return
        try:
            self.stop([pod.pod_id for pod in self.pods() if pod.state != "stopping"])
        except ProviderError as exc:
            log.warning("fleet_pods_not_stopped", provider=self.name, error=str(exc))
