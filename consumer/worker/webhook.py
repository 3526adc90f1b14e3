"""Signed webhook delivery per the Standard Webhooks spec (https://www.standardwebhooks.com/), with an SSRF
guard: the target's resolved addresses must be public, and the request goes to the address that was checked
(no second DNS lookup to rebind), with redirects never followed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3

from consumer.core.errors import WebhookFailed, WebhookRefused
from consumer.core.logs import redact


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    address: str  # the checked IP the connection goes to


def resolve_target(url: str, allow_private: bool) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"webhook URL must be http(s) with a host: {redact(url)}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookFailed(f"cannot resolve {parts.hostname}: {exc}") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        private = [a for a in addresses if not is_public_address(a)]
        if private:
            raise WebhookRefused(f"webhook host {parts.hostname} resolves to non-public address(es) {private}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])


def deliver(
    url: str,
    body: bytes,
    msg_id: str,
    *,
    secret: str | None,
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
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
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
        raise WebhookFailed(f"POST to {target.host} answered {response.status}")
    return response.status
