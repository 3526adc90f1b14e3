"""An embedded AWS for local runs and tests: moto's server on a free loopback port (real HTTP, long polling,
visibility timeouts, redrive, SNS→SQS, S3 conditional writes)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

# What an emulator accepts: boto3 signs every request, so a machine without AWS credentials (no AWS_* variables,
# no ~/.aws) needs some, or the first call fails with NoCredentialsError.
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def use_emulator_credentials() -> None:
    """Throwaway credentials for this process and its children, unless some are already set."""
    for name, value in EMULATOR_CREDENTIALS.items():
        os.environ.setdefault(name, value)


@dataclass
class EmbeddedAws:
    """moto's server on a free loopback port, with throwaway credentials."""

    endpoint_url: str
    _server: object

    @classmethod
    def start(cls) -> EmbeddedAws:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        use_emulator_credentials()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        return cls(f"http://{host}:{port}", server)

    def stop(self) -> None:
        self._server.stop()  # type: ignore[attr-defined]
