"""What the server services refuse with; views turn these into responses."""

from __future__ import annotations


class StartRefused(Exception):
    """A request about a server that cannot be honoured; status is the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ServerExists(ValueError):
    """A named server by that name exists already (the API answers 409)."""
