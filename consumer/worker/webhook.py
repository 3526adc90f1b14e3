"""Signed webhook delivery per the Standard Webhooks spec (https://www.standardwebhooks.com/), with an SSRF
guard: every address the target resolves to must be allowed (`is_allowed_address`), the request goes to the
address that was checked (no second DNS lookup to rebind), and redirects are never followed (a 3xx is a failed
delivery). Cloud metadata services are refused by name and address whatever the settings."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import urllib3
from standardwebhooks import Webhook

from consumer.core.errors import WebhookFailed
from consumer.core.targets import (  # noqa: F401 - re-exported: the worker's webhook API
    ALWAYS_REFUSED,
    METADATA_ADDRESSES,
    METADATA_NAMES,
    PRIVATE_ALLOWED,
    Target,
    is_allowed_address,
    resolve_target,
)


def parse_secrets(value: str | None) -> tuple[str, ...]:
    """`webhook_secret` as configured: one secret, or several separated by spaces or commas (rotation)."""
    return tuple(part for part in (value or "").replace(",", " ").split() if part)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value, `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, by the Standard
    Webhooks reference library."""
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body)


def deliver(
    url: str,
    body: bytes,
    msg_id: str,
    *,
    secrets: Sequence[str] = (),
    allow_private: bool,
    timeout_s: float,
    now: float | None = None,
) -> int:
    """POST the event once. Returns the HTTP status; raises WebhookRefused or WebhookFailed."""
    target = resolve_target(url, allow_private)
    timestamp = int(now if now is not None else time.time())
    headers = {
        "Host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        "Content-Type": "application/json",
        "User-Agent": "f5-worker",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
    }
    if secrets:  # one signature per secret, space-separated: receivers accept any (secret rotation)
        headers["webhook-signature"] = " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)
    pool: urllib3.HTTPConnectionPool  # HTTPS pools are HTTP pools
    pool_kwargs: dict[str, Any] = {"timeout": urllib3.Timeout(total=timeout_s), "retries": False, "maxsize": 1}
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            **pool_kwargs,
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, **pool_kwargs)
    try:
        response = pool.urlopen("POST", target.path, body=body, headers=headers, redirect=False)
    except urllib3.exceptions.HTTPError as exc:
        raise WebhookFailed(f"POST to {target.host} failed: {exc}") from exc
    finally:
        pool.close()
    if not 200 <= response.status < 300:
        raise WebhookFailed(f"POST to {target.host} answered {response.status}", status=response.status)
    return response.status
