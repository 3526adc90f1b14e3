"""A small HTTP server for the container: /healthz (liveness: polled recently), /readyz (model loaded and AWS
answered), /metrics (Prometheus). Also the check behind `f5-worker check` for a Docker HEALTHCHECK.

It listens on loopback unless told otherwise (F5_WORKER_HEALTH_HOST); beyond loopback the settings require a
token (F5_WORKER_HEALTH_TOKEN), which /metrics (and any path but the probes) then asks for as
`Authorization: Bearer <token>` (compared in constant time). /healthz and /readyz stay open: an orchestrator's
probe sends no header, and they tell only whether the worker is alive and ready."""

from __future__ import annotations

import hmac
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from consumer.core.metrics import Metrics


class HealthServer:
    def __init__(
        self, metrics: Metrics, max_poll_age_s: float, port: int, host: str = "127.0.0.1", token: str | None = None
    ) -> None:
        self.metrics = metrics
        self._token = token
        self.max_poll_age_s = max_poll_age_s
        self.ready = threading.Event()
        self._ready_at: float | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body, ctype = server.respond(self.path, self.headers.get("Authorization", ""))
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Bearer realm="f5-worker metrics"')
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:  # keep stderr for structured logs
                return

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="health", daemon=True)

    def respond(self, path: str, authorization: str = "") -> tuple[int, bytes, str]:
        if path == "/healthz":
            age = self.metrics.seconds_since_poll()
            # Before the first poll the age counts from ready: the worker is alive until that one is overdue.
            since = age if age is not None or self._ready_at is None else time.monotonic() - self._ready_at
            alive = not self.ready.is_set() or (since is not None and since <= self.max_poll_age_s)
            text = f"poll_age_s={age if age is None else round(age, 1)}\n"
            return (200 if alive else 503), text.encode(), "text/plain"
        if path == "/readyz":
            return (200, b"ready\n", "text/plain") if self.ready.is_set() else (503, b"starting\n", "text/plain")
        if not self._authorized(authorization):  # everything but the probes: /metrics, and any other path
            return 401, b"a bearer token is required (F5_WORKER_HEALTH_TOKEN)\n", "text/plain"
        if path == "/metrics":
            return 200, self.metrics.render(), "text/plain; version=0.0.4"
        return 404, b"not found\n", "text/plain"

    def _authorized(self, authorization: str) -> bool:
        if self._token is None:
            return True
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token.encode())

    def mark_ready(self) -> None:
        """Model loaded and AWS answered: /readyz turns 200 and the poll age starts counting."""
        self._ready_at = time.monotonic()
        self.ready.set()

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def check(port: int, path: str = "/healthz", timeout_s: float = 3.0) -> bool:
    """True when the worker on `port` answers 200 (the container HEALTHCHECK)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False
