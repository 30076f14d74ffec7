"""Who is on the other end of a request: the client's own address.

Every request reaches the hub from the router, so REMOTE_ADDR alone would make
all clients one (one person's failed logins would lock everybody out, issue 8).
The router replaces any client-sent X-Forwarded-For with the address it saw
(routing/router/relay.py, addon.py); a load balancer in front of the router
appends its peer. So the header is read right to left, each hop counted only
while the address that sent it is one of ours (HUB_TRUSTED_PROXIES): the first
address not ours is the client. From anyone else the header is ignored."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _is_trusted(address: object, trusted: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def resolve_client_address(peer: str, forwarded_for: str, trusted: tuple[Network, ...]) -> str:
    """The client's address, given the TCP peer and the X-Forwarded-For value.

    Pure. A forwarded entry that is not an address ends the walk at the hop
    that sent it: garbage from a client never becomes its identity."""
    current = _address(peer)
    if current is None:
        return peer
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()] if forwarded_for else []
    while hops and _is_trusted(current, trusted):
        previous = _address(hops.pop())
        if previous is None:
            break
        current = previous
    return str(current)


def client_address(request: HttpRequest) -> str:
    return resolve_client_address(
        request.META.get("REMOTE_ADDR", ""),
        request.META.get("HTTP_X_FORWARDED_FOR", ""),
        settings.HUB_TRUSTED_PROXIES,
    )
