"""Where a webhook may point: every address its host resolves to must be allowed (`is_allowed_address`). Cloud
metadata services are refused by name and address whatever the settings. Used by the worker before each POST
and by producers (`jobs redeliver`) before they queue one; standard library only."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from consumer.core.errors import WebhookFailed, WebhookRefused
from consumer.core.logs import redact

# Never a webhook target, whatever the settings: cloud metadata services (by name and by address) and the ranges
# they live in. Link-local covers 169.254.169.254 (AWS, GCP, Azure, OpenStack) and 169.254.170.2 (ECS).
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "fd00:ec2::254",
        "fd00:ec2::253",
        "100.100.100.200",
        "192.0.0.192",
    )
)
ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network", 0.0.0.0 reaches the local host on Linux
        "169.254.0.0/16",  # IPv4 link-local
        "fe80::/10",  # IPv6 link-local
        "100.64.0.0/10",  # carrier-grade NAT (Alibaba's metadata service lives here)
        "224.0.0.0/4",  # multicast
        "ff00::/8",
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",
    )
)
# What WEBHOOK_ALLOW_PRIVATE opens, and nothing else: loopback, RFC 1918 and unique local addresses.
PRIVATE_ALLOWED = tuple(
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _effective(ip: Address) -> Address:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64) decides for it; any other address for itself."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_allowed_address(address: str, allow_private: bool) -> bool:
    """Public unicast addresses always; loopback, RFC 1918 and ULA only with `allow_private`; metadata,
    link-local, multicast, reserved and "this network" never."""
    ip = _effective(ipaddress.ip_address(address.split("%", 1)[0]))  # "fe80::1%eth0": the scope is no escape
    if ip in METADATA_ADDRESSES or any(ip in net for net in ALWAYS_REFUSED):
        return False
    if ip.is_global and not (ip.is_multicast or ip.is_reserved):
        return True
    return allow_private and any(ip in net for net in PRIVATE_ALLOWED)


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
    host = parts.hostname.lower().rstrip(".")
    if host in METADATA_NAMES:
        raise WebhookRefused(f"webhook host {host} is a cloud metadata service")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise WebhookRefused(f"webhook URL has an invalid port: {redact(url)}") from exc
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookFailed(f"cannot resolve {parts.hostname}: {exc}") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    refused = [a for a in addresses if not is_allowed_address(a, allow_private)]
    never = [a for a in refused if not is_allowed_address(a, allow_private=True)]
    if never:
        raise WebhookRefused(
            f"webhook host {host} resolves to {never}: a cloud metadata, link-local or reserved address, never a "
            "webhook target whatever F5_WORKER_WEBHOOK_ALLOW_PRIVATE says"
        )
    if refused or not addresses:
        allowed = "public, loopback or private" if allow_private else "public"
        raise WebhookRefused(
            f"webhook host {host} resolves to {refused or 'nothing'}: only {allowed} addresses are allowed"
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])
