"""Which addresses a webhook may reach, with WEBHOOK_ALLOW_PRIVATE off and on. Names resolve through a stubbed
resolver (there is no DNS here); every address a name resolves to must pass."""

from __future__ import annotations

import socket

import pytest

from consumer.core import targets
from consumer.core.errors import WebhookRefused
from consumer.worker import webhook

PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946"]
PRIVATE = ["127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", "fd12:3456::1"]
NEVER = [
    "169.254.169.254",  # AWS / GCP / Azure metadata
    "169.254.170.2",  # ECS task metadata
    "169.254.1.1",  # link-local
    "fe80::1",  # IPv6 link-local
    "fd00:ec2::254",  # AWS metadata over IPv6 (inside the ULA range that ALLOW_PRIVATE opens)
    "100.100.100.200",  # Alibaba metadata
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",  # multicast
    "ff02::1",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "::",
    "::ffff:169.254.169.254",  # the metadata address, IPv4-mapped
    "::ffff:10.0.0.1",  # a private address, IPv4-mapped: private rules apply to what it carries
    "2002:a9fe:a9fe::1",  # 6to4 carrying 169.254.169.254
    "64:ff9b::a9fe:a9fe",  # NAT64 carrying 169.254.169.254
]


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed_either_way(address):
    assert webhook.is_allowed_address(address, allow_private=False)
    assert webhook.is_allowed_address(address, allow_private=True)


@pytest.mark.parametrize("address", PRIVATE)
def test_loopback_rfc1918_and_ula_only_with_allow_private(address):
    assert not webhook.is_allowed_address(address, allow_private=False)
    assert webhook.is_allowed_address(address, allow_private=True)


@pytest.mark.parametrize("address", [a for a in NEVER if a != "::ffff:10.0.0.1"])
def test_metadata_link_local_and_reserved_are_refused_whatever_the_setting(address):
    assert not webhook.is_allowed_address(address, allow_private=False)
    assert not webhook.is_allowed_address(address, allow_private=True)


def test_a_mapped_private_address_follows_the_private_rule():
    assert not webhook.is_allowed_address("::ffff:10.0.0.1", allow_private=False)
    assert webhook.is_allowed_address("::ffff:10.0.0.1", allow_private=True)


@pytest.fixture
def resolver(monkeypatch):
    """Stub DNS: name → addresses."""
    table: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]
        ]

    monkeypatch.setattr(targets.socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    "host", ["metadata.google.internal", "METADATA.google.internal.", "metadata", "instance-data.ec2.internal"]
)
def test_metadata_names_are_refused_before_resolution(resolver, host, allow_private):
    resolver[host.lower().rstrip(".")] = ["93.184.216.34"]  # even if they resolved to a public address
    with pytest.raises(WebhookRefused, match="metadata"):
        webhook.resolve_target(f"http://{host}/hook", allow_private)


@pytest.mark.parametrize("allow_private", [False, True])
def test_a_name_with_one_metadata_address_among_public_ones_is_refused(resolver, allow_private):
    resolver["rebind.example.com"] = ["93.184.216.34", "169.254.169.254"]
    with pytest.raises(WebhookRefused, match=r"169\.254\.169\.254"):
        webhook.resolve_target("https://rebind.example.com/hook", allow_private)


def test_a_name_resolving_to_a_private_address_needs_the_setting(resolver):
    resolver["intranet.example.com"] = ["10.0.0.7"]
    with pytest.raises(WebhookRefused, match="only public addresses"):
        webhook.resolve_target("https://intranet.example.com/hook", allow_private=False)
    target = webhook.resolve_target("https://intranet.example.com/hook?x=1", allow_private=True)
    assert (target.address, target.port, target.path, target.host) == (
        "10.0.0.7",
        443,
        "/hook?x=1",
        "intranet.example.com",
    )


def test_the_connection_goes_to_the_checked_address(resolver):
    resolver["hooks.example.com"] = ["93.184.216.34"]
    target = webhook.resolve_target("http://hooks.example.com:8080/in", allow_private=False)
    assert target.address == "93.184.216.34" and target.port == 8080


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "http:///nohost", "file:///etc/passwd", "http://example.com:99999/"]
)
def test_bad_urls_are_refused(resolver, url):
    with pytest.raises(WebhookRefused):
        webhook.resolve_target(url, allow_private=True)
