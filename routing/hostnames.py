"""The one DNS-label rule, shared by the hub (settings, servers/hosts.py) and
the router (routing/router/edges.py). Standard library only: the router never
imports Django."""

from __future__ import annotations

import re

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def is_dns_label(name: str) -> bool:
    """One lowercase label of a host name: letters, digits, inner '-', 1-63 long."""
    return bool(_LABEL.match(name))


def is_dns_name(name: str) -> bool:
    """A host name such as hub.example.org: labels joined by dots, 253 at most."""
    return 0 < len(name) <= 253 and all(is_dns_label(label) for label in name.split("."))
