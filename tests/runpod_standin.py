"""A loopback stand-in for RunPod's GraphQL API (`POST <base>/graphql`), for the RunPod provider's tests.

It answers what the official `runpod` SDK (1.10) sends for pods and GPU types: `gpuTypes` (with and without an
id), `myself { pods }`, `pod`, `podFindAndDeployOnDemand`, `podStop`, `podResume` and `podTerminate`. The
documents are parsed (a small GraphQL reader: fields, aliases, arguments, selection sets) and every answer holds
only the fields asked for, as a GraphQL server's does, so a provider that reads a field the SDK never requests
finds it missing here too. Errors come as RunPod sends them: HTTP 200 with `errors` (no capacity, unknown pod),
or 401 for a key it does not accept (the key comes as `Authorization: Bearer`; `?api_key=` in the URL, as older
SDKs send it, is accepted too).

Every request is recorded (method, path, query string, headers, body, the top-level fields and their
arguments), so a test asserts what the real SDK sent. Pods live in memory; a deployed pod is "starting" (no
`runtime`) until `boot(id)`.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

KNOWN_GPU_TYPES = (
    "NVIDIA GeForce RTX 4090",
    "NVIDIA RTX A5000",
    "NVIDIA L4",
    "NVIDIA A40",
    "NVIDIA RTX A6000",
    "NVIDIA GeForce RTX 3090",
    "NVIDIA A100 80GB PCIe",
    "NVIDIA H100 80GB HBM3",
)
# RunPod's answer when a GPU type has no free machine (a GraphQL error, HTTP 200).
NO_CAPACITY = (
    "There are no longer any instances available with the requested specifications. Please refresh and try again."
)


# --- a small GraphQL reader -----------------------------------------------------------------------------------------
_TOKEN = re.compile(
    r'(?P<skip>[\s,]+|#[^\n]*)|(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?)'
    r"|(?P<name>[_A-Za-z][_0-9A-Za-z]*)|(?P<punct>[{}()\[\]:!$])"
)


@dataclass
class Field:
    name: str
    alias: str
    args: dict[str, Any]
    selection: list[Field] | None


class GraphQLError(Exception):
    """Answered as `{"errors": [{"message": ...}]}` with HTTP 200."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise GraphQLError(f"Syntax Error: Unexpected character {text[pos]!r}.")
        pos = match.end()
        kind = match.lastgroup or "skip"
        if kind != "skip":
            out.append((kind, match.group()))
    return out


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise GraphQLError("Syntax Error: Unexpected <EOF>.")
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise GraphQLError(f"Syntax Error: Expected {expected}, found {token[1]}.")
        self.pos += 1
        return token

    def document(self) -> tuple[str, list[Field]]:
        operation = "query"
        if self.peek() in ("query", "mutation"):
            operation = self.take()[1]
            if self.peek() != "{":
                self.take()  # the operation's name
        selection = self.selection()
        if self.peek() is not None:
            raise GraphQLError(f"Syntax Error: Unexpected {self.peek()}.")
        return operation, selection

    def selection(self) -> list[Field]:
        self.take("{")
        fields = []
        while self.peek() != "}":
            fields.append(self.field())
        self.take("}")
        return fields

    def field(self) -> Field:
        alias = name = self.take()[1]
        if self.peek() == ":":
            self.take(":")
            name = self.take()[1]
        args: dict[str, Any] = {}
        if self.peek() == "(":
            self.take("(")
            while self.peek() != ")":
                key = self.take()[1]
                self.take(":")
                args[key] = self.value()
            self.take(")")
        selection = self.selection() if self.peek() == "{" else None
        return Field(name, alias, args, selection)

    def value(self) -> Any:
        kind, text = self.take()
        if text == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
            self.take("]")
            return items
        if text == "{":
            obj = {}
            while self.peek() != "}":
                key = self.take()[1]
                self.take(":")
                obj[key] = self.value()
            self.take("}")
            return obj
        if kind == "string":
            return json.loads(text)
        if kind == "number":
            return float(text) if "." in text else int(text)
        return {"true": True, "false": False, "null": None}.get(text, text)  # an enum value stays its name


def parse(document: str) -> tuple[str, list[Field]]:
    """(operation, top-level fields) of a GraphQL document."""
    return _Reader(document).document()


def project(value: Any, selection: list[Field] | None) -> Any:
    """Only the fields asked for, as a GraphQL server answers."""
    if selection is None or value is None:
        return value
    if isinstance(value, list):
        return [project(item, selection) for item in value]
    return {f.alias: project(value.get(f.name), f.selection) for f in selection}


# --- the stand-in ----------------------------------------------------------------------------------------------------
@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    operation: str = ""
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # top-level field → its arguments


def _pod_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(14))


class RunPodStandIn:
    """RunPod's GraphQL API on 127.0.0.1. `url` is the base (the SDK appends `/graphql`)."""

    def __init__(
        self,
        api_key: str,
        gpu_types: Iterable[str] = KNOWN_GPU_TYPES,
        rejects_with: Literal[401, 403, "graphql"] = 401,
    ) -> None:
        self.api_key = api_key
        self.gpu_types = list(gpu_types)
        self.rejects_with = rejects_with  # how a key it does not accept is answered
        self.capacity: dict[str, int] = {}  # GPU type → pods it can still take (absent: no limit)
        # field → what its next calls answer: an error message, or None for a normal answer (then the queue is done)
        self.failures: dict[str, list[str | None]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        self._resolvers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "gpuTypes": self._gpu_types,
            "myself": lambda _args: {"id": "user-standin", "pods": list(self.pods.values())},
            "pod": lambda args: self.pods.get(args["input"]["podId"]),
            "podFindAndDeployOnDemand": self._deploy,
            "podStop": self._stop,
            "podResume": self._resume,
            "podTerminate": self._terminate,
        }
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    # --- what tests set up and read ------------------------------------------------------------------------------
    def add_pod(self, name: str, *, running: bool = True, image: str = "someone/else:latest") -> str:
        """A pod created elsewhere (another fleet, a person): the provider must leave it alone."""
        pod_id = _pod_id()
        with self.lock:
            self.pods[pod_id] = self._new_pod(pod_id, name, image, "NVIDIA A40", 1, {}, 10, 0)
        if running:
            self.boot(pod_id)
        return pod_id

    def boot(self, pod_id: str, uptime_s: int = 30) -> None:
        """The pod's container is up: it has a runtime."""
        with self.lock:
            pod = self.pods[pod_id]
            pod["uptimeSeconds"] = uptime_s
            pod["runtime"] = {
                "uptimeInSeconds": uptime_s,
                "ports": [
                    {"ip": "100.64.0.2", "isIpPublic": False, "privatePort": 8080, "publicPort": 8080, "type": "http"}
                ],
                "gpus": [{"id": "GPU-standin", "gpuUtilPercent": 0, "memoryUtilPercent": 0}],
            }

    def calls(self, name: str) -> list[dict[str, Any]]:
        """The arguments of every call of the top-level field `name`, in order."""
        with self.lock:
            return [r.fields[name] for r in self.requests if name in r.fields]

    def deployed(self) -> list[dict[str, Any]]:
        """The `input` of every deploy mutation received, answered or refused."""
        return [args["input"] for args in self.calls("podFindAndDeployOnDemand")]

    def stopped(self) -> list[str]:
        return [args["input"]["podId"] for args in self.calls("podStop")]

    def terminated(self) -> list[str]:
        return [args["input"]["podId"] for args in self.calls("podTerminate")]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- the API ---------------------------------------------------------------------------------------------------
    def _new_pod(
        self, pod_id: str, name: str, image: str, gpu: str, gpus: int, env: dict[str, str], disk: int, volume: int
    ) -> dict[str, Any]:
        return {
            "id": pod_id,
            "name": name,
            "desiredStatus": "RUNNING",
            "imageName": image,
            "env": [f"{k}={v}" for k, v in env.items()],
            "gpuCount": gpus,
            "containerDiskInGb": disk,
            "volumeInGb": volume,
            "volumeMountPath": "/runpod-volume",
            "costPerHr": 0.69,
            "dockerArgs": "",
            "dockerId": None,
            "lastStatusChange": "Rented by User: Fri Dec 05 2025 07:00:00 GMT+0000 (Coordinated Universal Time)",
            "machineId": "machine-standin",
            "machine": {"podHostId": f"{pod_id}-64410a1b", "gpuDisplayName": gpu.removeprefix("NVIDIA ")},
            "memoryInGb": 31,
            "vcpuCount": 8,
            "podType": "RESERVED",
            "port": None,
            "ports": "8080/http",
            "uptimeSeconds": 0,
            "runtime": None,
        }

    def _gpu_types(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = args.get("input", {}).get("id")
        return [
            {
                "id": gpu,
                "displayName": gpu.removeprefix("NVIDIA ").removeprefix("GeForce "),
                "memoryInGb": 24,
                "maxGpuCount": 8,
                "manufacturer": "Nvidia",
                "cudaCores": 0,
                "secureCloud": True,
                "communityCloud": True,
                "securePrice": 0.69,
                "communityPrice": 0.44,
                "oneMonthPrice": None,
                "threeMonthPrice": None,
                "oneWeekPrice": None,
                "communitySpotPrice": 0.29,
                "secureSpotPrice": 0.35,
                "lowestPrice": {"minimumBidPrice": 0.29, "uninterruptablePrice": 0.44},
            }
            for gpu in self.gpu_types
            if wanted is None or gpu == wanted
        ]

    def _deploy(self, args: dict[str, Any]) -> dict[str, Any]:
        spec = args["input"]
        gpu = spec.get("gpuTypeId")
        if gpu not in self.gpu_types:
            raise GraphQLError(f"Invalid GPU type: {gpu}")
        if self.capacity.get(gpu, 1) <= 0:
            raise GraphQLError(NO_CAPACITY)
        if gpu in self.capacity:
            self.capacity[gpu] -= 1
        env = {item["key"]: item["value"] for item in spec.get("env", [])}
        pod_id = _pod_id()
        pod = self._new_pod(
            pod_id, spec["name"], spec["imageName"], gpu, spec.get("gpuCount", 1), env,
            spec.get("containerDiskInGb", 10), spec.get("volumeInGb", 0),
        )  # fmt: skip
        self.pods[pod_id] = pod
        return pod

    def _known(self, args: dict[str, Any]) -> dict[str, Any]:
        pod = self.pods.get(args["input"]["podId"])
        if pod is None:
            raise GraphQLError("Pod not found")  # what RunPod answers for an id that is not yours
        return pod

    def _stop(self, args: dict[str, Any]) -> dict[str, Any]:
        pod = self._known(args)
        pod.update(desiredStatus="EXITED", runtime=None, uptimeSeconds=0)  # docker stop: SIGTERM, the container ends
        return pod

    def _resume(self, args: dict[str, Any]) -> dict[str, Any]:
        pod = self._known(args)
        pod["desiredStatus"] = "RUNNING"
        return pod

    def _terminate(self, args: dict[str, Any]) -> None:
        self._known(args)
        del self.pods[args["input"]["podId"]]

    def answer(self, document: str) -> dict[str, Any]:
        """The JSON answer to one GraphQL document."""
        try:
            _, fields = parse(document)
        except GraphQLError as exc:
            return {"errors": [{"message": str(exc)}]}
        data: dict[str, Any] = {}
        errors = []
        for f in fields:
            resolver = self._resolvers.get(f.name)
            try:
                if resolver is None:
                    raise GraphQLError(f'Cannot query field "{f.name}" on type "Query".')
                planned = self.failures.get(f.name)
                failure = planned.pop(0) if planned else None
                if failure is not None:
                    raise GraphQLError(failure)
                data[f.alias] = project(resolver(f.args), f.selection)
            except GraphQLError as exc:
                data[f.alias] = None
                errors.append({"message": str(exc), "path": [f.alias], "extensions": {"code": "RUNPOD"}})
        return {"errors": errors, "data": data} if errors else {"data": data}

    # --- HTTP ----------------------------------------------------------------------------------------------------
    def _record(self, handler: BaseHTTPRequestHandler, raw: bytes) -> Recorded:
        parts = urlsplit(handler.path)
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        record = Recorded(handler.command, parts.path, parse_qs(parts.query), dict(handler.headers), body)
        if isinstance(body, dict) and isinstance(body.get("query"), str):
            try:
                record.operation, fields = parse(body["query"])
                record.fields = {f.name: f.args for f in fields}
            except GraphQLError:
                pass
        self.requests.append(record)
        return record

    def _key_of(self, record: Recorded) -> str | None:
        bearer = record.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            return bearer.removeprefix("Bearer ")
        return record.query.get("api_key", [None])[0]

    def _respond(self, handler: BaseHTTPRequestHandler, raw: bytes) -> tuple[int, str, bytes]:
        with self.lock:
            record = self._record(handler, raw)
            if record.path != "/graphql":
                return 404, "text/plain", b"404 page not found"
            if self._key_of(record) != self.api_key:
                return self._rejection()
            if not isinstance(record.body, dict) or not isinstance(record.body.get("query"), str):
                return 400, "application/json", b'{"errors":[{"message":"Must provide query string."}]}'
            return 200, "application/json", json.dumps(self.answer(record.body["query"])).encode()

    def _rejection(self) -> tuple[int, str, bytes]:
        if self.rejects_with == 401:
            return 401, "application/json", b'{"errors":[{"message":"Unauthorized"}]}'
        if self.rejects_with == 403:
            return 403, "text/html", b"<html><body><h1>403 Forbidden</h1></body></html>"
        return 200, "application/json", b'{"errors":[{"message":"Unauthorized: invalid api key"}],"data":null}'

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, content_type, body = standin._respond(self, raw)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

            def log_message(self, *_: object) -> None:
                return

        return Handler
