"""`{{ when|ago }}`: "just now" under a minute, else Django's timesince + " ago"
(never "0 minutes ago")."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return ""
    now = now or timezone.now()
    if now - when < timedelta(minutes=1):
        return "just now"
    return f"{timesince(when, now)} ago"
