"""Pure token handling: generate, split, hash and compare token strings.

A token is `hub_` + 40 random url-safe characters. Only its first characters
(the lookup prefix) and a salted SHA-256 of the whole string are stored, so a
leaked database yields no usable token. SHA-256 rather than a slow KDF because
tokens carry 240 bits of entropy and are checked on every API request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_MARK = "hub_"
PREFIX_LENGTH = 8  # characters after the mark used for the indexed lookup
_BODY_LENGTH = 40


def generate() -> str:
    return TOKEN_MARK + secrets.token_urlsafe(30)[:_BODY_LENGTH]


def lookup_prefix(token: str) -> str:
    """The indexed part; for foreign tokens (no mark) the first characters."""
    body = token[len(TOKEN_MARK) :] if token.startswith(TOKEN_MARK) else token
    return body[:PREFIX_LENGTH]


def new_salt() -> str:
    return secrets.token_hex(8)


def hash_token(token: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{token}".encode()).hexdigest()


def matches(token: str, salt: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token, salt), stored_hash)


def is_plausible(token: str) -> bool:
    """Reject junk before touching the database (length, charset)."""
    if not 8 <= len(token) <= 256:
        return False
    return all(c.isalnum() or c in "-_." for c in token)


def from_authorization(header: str) -> str:
    """The token of an `Authorization: token <t>` (or `bearer <t>`) header; "" if none."""
    keyword, _, raw = header.strip().partition(" ")
    return raw.strip() if keyword.lower() in ("token", "bearer") else ""
