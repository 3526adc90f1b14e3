"""An embedded AWS for local runs and tests: moto's server on a free loopback port (real HTTP, long polling,
visibility timeouts, redrive, SNS→SQS, S3 conditional writes)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass


@dataclass
class EmbeddedAws:
    """moto's server on a free loopback port, with throwaway credentials."""

    endpoint_url: str
    _server: object

    @classmethod
    def start(cls) -> EmbeddedAws:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        return cls(f"http://{host}:{port}", server)

    def stop(self) -> None:
        self._server.stop()  # type: ignore[attr-defined]
