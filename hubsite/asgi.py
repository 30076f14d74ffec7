"""The hub as an ASGI application: what the stream server (hubsite.streams)
serves. Every view works here, but the router sends only progress streams this
way; the rest of the hub stays on gunicorn's threads (hubsite.wsgi).

Why not Django's own ASGIHandler as it is: it gives every request a thread of
its own for the request's whole life (a ThreadSensitiveContext), and with it,
until the response ends, a database connection. A spawn-progress stream lives
for minutes: a thousand watchers would be a thousand threads and a thousand
connections, the cost the stream server exists to avoid. Here the synchronous
part of a request (middleware and view, as under WSGI) runs on a small shared
pool of threads that keep their connections, like gunicorn's; only the body of
a streaming response is left on the event loop, where the progress feed
(servers.api.progress) serves every stream from one reader."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.db import close_old_connections
from django.http import FileResponse, HttpRequest, HttpResponseBase

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings")

REQUEST_THREADS = 8


class StreamServerHandler(ASGIHandler):
    def __init__(self, threads: int = REQUEST_THREADS) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)  # the WSGI chain, run on the pool
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hub-request")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"the stream server speaks HTTP only, not {scope['type']}")
        await self.handle(scope, receive, send)  # no per-request thread context

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(self.pool, self._respond, request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response

    def _respond(self, request: HttpRequest) -> HttpResponseBase:
        """Middleware and view on a pool thread, with the connection checks
        gunicorn's threads get from request_started/finished."""
        close_old_connections()
        try:
            return self.get_response(request)
        finally:
            close_old_connections()


def _application() -> StreamServerHandler:
    import django

    django.setup(set_prefix=False)
    return StreamServerHandler()


application = _application()
