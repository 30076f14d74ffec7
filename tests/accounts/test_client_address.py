"""The client's address: X-Forwarded-For believed only from our own proxies."""

from __future__ import annotations

import ipaddress

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.client_address import resolve_client_address
from hubsite import env

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1"))
WITH_LB = (*LOOPBACK, ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        # the router (loopback) says who the client is
        ("127.0.0.1", "198.51.100.7", LOOPBACK, "198.51.100.7"),
        ("::1", "2001:db8::5", LOOPBACK, "2001:db8::5"),
        # nobody forwarded anything: the peer is the client
        ("127.0.0.1", "", LOOPBACK, "127.0.0.1"),
        ("198.51.100.7", "", LOOPBACK, "198.51.100.7"),
        # a client talking to the hub directly cannot name itself someone else
        ("203.0.113.9", "198.51.100.7", LOOPBACK, "203.0.113.9"),
        # behind the router, a client-made header is never in what the router sends,
        # but behind a trusted load balancer the walk stops at the first foreign hop
        ("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", WITH_LB, "198.51.100.7"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.7", LOOPBACK, "198.51.100.7"),
        # every hop ours: the oldest one is the client
        ("127.0.0.1", "10.0.0.4, 10.0.0.5", WITH_LB, "10.0.0.4"),
        # garbage in the header is not an identity: the hop that sent it is
        ("127.0.0.1", "not-an-ip", LOOPBACK, "127.0.0.1"),
        ("127.0.0.1", "198.51.100.7:5555", LOOPBACK, "198.51.100.7"),
        ("127.0.0.1", "[2001:db8::5]:443", LOOPBACK, "2001:db8::5"),
        # IPv4-mapped IPv6 peers are their IPv4 selves
        ("::ffff:127.0.0.1", "198.51.100.7", LOOPBACK, "198.51.100.7"),
    ],
)
def test_client_address_is_the_first_hop_not_ours(peer, forwarded_for, trusted, expected):
    assert resolve_client_address(peer, forwarded_for, trusted) == expected


def test_trusted_proxies_default_to_loopback(monkeypatch):
    monkeypatch.delenv("HUB_TRUSTED_PROXIES", raising=False)
    assert env.env_networks("HUB_TRUSTED_PROXIES", ["127.0.0.0/8", "::1"]) == LOOPBACK


def test_trusted_proxies_accept_networks_and_addresses(monkeypatch):
    monkeypatch.setenv("HUB_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")
    networks = env.env_networks("HUB_TRUSTED_PROXIES", [])
    assert [str(n) for n in networks] == ["10.0.0.0/8", "192.0.2.1/32"]


def test_a_misspelled_trusted_proxy_stops_the_hub(monkeypatch):
    monkeypatch.setenv("HUB_TRUSTED_PROXIES", "10.0.0.0/8,10.0.0.300")
    with pytest.raises(ImproperlyConfigured, match=r"'10\.0\.0\.300' is not an IP address"):
        env.env_networks("HUB_TRUSTED_PROXIES", [])
