"""Bounds of every number, timestamp and list the REST API takes, in one place.

Anything outside them is a 400 with a JSON message that says what is allowed,
never a 500: a value that parses (`1e308`, `10**30`, minute 99) can still
overflow a timedelta, a database OFFSET or datetime(). Names have their rules
in accounts/validators.py. Where JupyterHub 6.1.1 is lenient without harm we
follow it (a limit above the maximum is clamped to it); where its leniency is
a bug we refuse (a negative offset, which it silently makes positive).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions
from rest_framework.parsers import JSONParser

PAGE_DEFAULT_LIMIT = 50  # JupyterHub's api_page_default_limit
PAGE_MAX_LIMIT = 200  # JupyterHub's api_page_max_limit
MAX_OFFSET = 10**9
MAX_LIST = 1000  # names, scopes or roles in one request
MAX_EXPIRES_IN = 100 * 365 * 24 * 3600  # seconds; far enough, and a valid datetime
FUTURE_SLACK = timedelta(minutes=59)  # JupyterHub's _parse_timestamp
MAX_ROUTE_MICROS = 2**53  # route table versions are microseconds since 1970


def integer(raw: str | None, *, name: str, default: int, minimum: int, maximum: int) -> int:
    """A query-string integer within [MINIMUM, MAXIMUM] (DEFAULT when absent)."""
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not (text.lstrip("-").isdigit() and len(text) <= 20):
        raise exceptions.ParseError(f"{name} must be an integer from {minimum} to {maximum}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise exceptions.ParseError(f"{name} must be an integer from {minimum} to {maximum}")
    return value


def page_bounds(params: Mapping[str, str], *, paginated: bool) -> tuple[int, int]:
    """JupyterHub's offset/limit: limit defaults to 50 with the pagination
    Accept header, else 200; above 200 it is clamped, 0 means 1."""
    offset = integer(params.get("offset"), name="offset", default=0, minimum=0, maximum=MAX_OFFSET)
    raw = (params.get("limit") or "").strip()
    if not raw:
        return offset, PAGE_DEFAULT_LIMIT if paginated else PAGE_MAX_LIMIT
    if not raw.isdigit():
        raise exceptions.ParseError(
            f"limit must be an integer from 0 to {PAGE_MAX_LIMIT} (more means {PAGE_MAX_LIMIT})"
        )
    limit = int(raw) if len(raw) <= 6 else PAGE_MAX_LIMIT
    return offset, max(1, min(limit, PAGE_MAX_LIMIT))


def string_list(value: Any, *, name: str, maximum: int = MAX_LIST) -> list[str]:
    """A JSON list of at most MAXIMUM strings ([] when absent)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise exceptions.ParseError(f"{name} must be a list of strings")
    if len(value) > maximum:
        raise exceptions.ParseError(f"{name} may hold at most {maximum} items, not {len(value)}")
    return value


def seconds(value: Any, *, name: str, maximum: int = MAX_EXPIRES_IN) -> float | None:
    """A JSON number of seconds in [0, MAXIMUM]; None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise exceptions.ParseError(f"{name} must be a number of seconds from 0 to {maximum}")
    if not 0 <= value <= maximum:
        raise exceptions.ParseError(f"{name} must be a number of seconds from 0 to {maximum}")
    return value


def timestamp(value: Any, *, name: str, future_ok: bool = False) -> datetime | None:
    """An ISO 8601 time (a trailing Z allowed; naive = UTC); None when absent.
    Unless FUTURE_OK, more than an hour ahead is refused, as JupyterHub does
    for activity: a server stamped in year 9999 would never be culled."""
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well-formed but impossible, e.g. minute 99
        parsed = None
    if parsed is None:
        raise exceptions.ParseError(f"{name} must be an ISO 8601 time, not {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not future_ok and parsed - timezone.now() > FUTURE_SLACK:
        raise exceptions.ParseError(
            f"Rejecting {name} from more than an hour in the future: {parsed.isoformat()}"
        )
    return parsed


def route_version_micros(raw: str) -> int | None:
    """The time part of a route table version `<micros>-<count>`, or None when
    it is not one (the caller says so)."""
    micros, sep, count = raw.partition("-")
    if not sep or not micros.isdigit() or not count.isdigit() or len(micros) > 16:
        return None
    value = int(micros)
    return value if value <= MAX_ROUTE_MICROS else None


class BoundedJSONParser(JSONParser):
    """DRF's strict JSON parser, plus a 400 for JSON nested deeper than Python's
    parser can follow (it raises RecursionError, a 500, near 1,000 levels), and
    for a NUL character in any string: PostgreSQL cannot store or even compare
    one, so it would surface as a database error instead of a clear answer."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
        if _has_nul(data):
            raise exceptions.ParseError("strings may not contain NUL characters (\\u0000)")
        return data


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
