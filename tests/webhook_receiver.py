"""A loopback HTTP endpoint that records the webhook requests it receives, for the tests and harnesses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers `status` (or what `answer(n)` returns for the n-th request, from 1) after `delay_s`, with an
    optional redirect."""

    def __init__(
        self,
        status: int = 200,
        location: str | None = None,
        answer: Callable[[int], int] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
                with receiver._lock:
                    receiver.requests.append((dict(self.headers), body))
                    code = answer(len(receiver.requests)) if answer else status
                    receiver.statuses.append(code)
                self.send_response(code)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self) -> list[dict]:
        """The event bodies the receiver answered with 2xx."""
        with self._lock:
            pairs = list(zip(self.requests, self.statuses, strict=True))
        return [json.loads(body) for (_, body), code in pairs if 200 <= code < 300]

    def received(self) -> list[dict]:
        with self._lock:
            return [json.loads(body) for _, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
