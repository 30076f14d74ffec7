"""A password hasher for the test process only (tests/conftest.py).

The hub stores passwords with Django's PBKDF2 at its default 1,000,000
iterations: about a quarter of a second of CPU per hash here, and the suite
makes thousands (every user a fixture or factory creates, every login). Tests
hash with the same algorithm at 1,000 iterations instead. The iteration count
is part of each stored hash, so hub and worker processes the tests start
(with the hub's own settings) still verify these passwords; they upgrade one
to the full count at its first login there, as they would a password stored
before Django raised its default."""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1_000
