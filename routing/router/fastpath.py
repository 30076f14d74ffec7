"""Cheaper hook dispatch for the router's mitmproxy connections.

Stock mitmproxy 11.0.2 runs every event hook of every flow (requestheaders,
request, responseheaders, response, ...) as its own asyncio task, walks the
whole add-on chain for it (`traverse` + `getattr` per add-on), and then runs
a second pass over every add-on for the `update` hook. A profile of the router
put about a quarter of its CPU there, for hooks that are all plain synchronous
functions. Here:

- the handlers of each hook are looked up once per hook name (the router's
  add-ons never change after start);
- a hook whose handlers all return None is run inline, while the layer's
  commands are processed, and its completion is fed straight back into the
  layer; no task, no `update` pass (no add-on of the router has `update`);
- a handler that returns an awaitable (RouterAddon.requestheaders on a route
  miss, which asks the hub) makes the hook fall back to mitmproxy's own path:
  the command goes out as usual and `RouterConnectionHandler.handle_hook`
  awaits it, then runs the remaining handlers;
- a hook's arguments come from its dataclass field names, read once per class.

Error handling is what mitmproxy does: an exception in a handler is logged and
the flow goes on; `AddonHalt` stops the chain; a flow an add-on intercepted
waits for `resume()` (the hook then completes asynchronously).

mitmproxy internals relied on (mitmproxy==11.0.2 is pinned; `check_version`
refuses anything else and tests/routing/test_mitmproxy_pins.py covers each):
- `ConnectionHandler.server_event` feeds events to `self.layer.handle_event`,
  a generator of commands, and `handle_hook` is what its per-hook tasks and its
  connection hooks await (both public-looking methods of
  mitmproxy.proxy.server.ConnectionHandler);
- a blocking `commands.StartHook` is completed by feeding
  `events.HookCompleted(hook)` to the layer after the command batch that
  yielded it (what `ConnectionHandler.hook_task` does);
- `ServerInstance.handle_stream` builds a `ProxyConnectionHandler`, replaces
  its `.layer` with `make_top_layer(...)` and runs it inside
  `manager.register_connection(client.id, handler)`; `handle_stream` below does
  the same with the subclass (the router only runs plain reverse mode)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from mitmproxy import exceptions, flow, hooks, version
from mitmproxy.addonmanager import traverse
from mitmproxy.proxy import commands, events
from mitmproxy.proxy.mode_servers import ProxyConnectionHandler, ServerInstance

log = logging.getLogger("routing.router")

SUPPORTED_MITMPROXY = "11.0.2"
_PENDING = "_router_pending"  # attribute on a StartHook that must finish asynchronously

Handler = Callable[..., Any]


def check_version() -> None:
    """The dispatch below mirrors mitmproxy 11.0.2's ConnectionHandler; refuse others."""
    if version.VERSION != SUPPORTED_MITMPROXY:
        raise RuntimeError(
            f"routing.router.fastpath supports mitmproxy {SUPPORTED_MITMPROXY} only, "
            f"not {version.VERSION}; run without it (HUB_ROUTER_FASTPATH=0) or update it"
        )


class HookTable:
    """Handlers per hook name, resolved once from the master's add-on chain."""

    def __init__(self, chain: list[Any]) -> None:
        self.chain = chain
        self._handlers: dict[str, tuple[Handler, ...]] = {}
        self._fields: dict[type, tuple[str, ...]] = {}
        if self.handlers("update"):  # the pass this dispatch leaves out
            raise RuntimeError("an add-on of the router has an `update` hook; fastpath skips it")

    def handlers(self, name: str) -> tuple[Handler, ...]:
        found = self._handlers.get(name)
        if found is None:
            found = tuple(
                func
                for addon in traverse(self.chain)
                if callable(func := getattr(addon, name, None))
            )
            self._handlers[name] = found
        return found

    def args(self, hook: hooks.Hook) -> list[Any]:
        names = self._fields.get(type(hook))
        if names is None:
            names = self._fields[type(hook)] = tuple(f.name for f in dataclasses.fields(hook))
        return [getattr(hook, n) for n in names]

    def run(self, hook: hooks.Hook, start: int = 0) -> tuple[int, Awaitable[Any]] | None:
        """Run handlers from START on; stop at the first that returns an awaitable
        and return (index of the next handler, that awaitable)."""
        handlers = self.handlers(hook.name)
        args = self.args(hook)
        for i in range(start, len(handlers)):
            try:
                result = handlers[i](*args)
            except exceptions.AddonHalt:
                return None
            except Exception as exc:
                log.error("router hook %s failed: %s", hook.name, exc, exc_info=True)
                continue
            if result is not None and hasattr(result, "__await__"):
                return i + 1, result
        subject = args[0] if args else None
        if isinstance(subject, flow.Flow) and subject.intercepted:
            # what mitmproxy's handle_hook does after the add-ons: hold the flow
            return len(handlers), subject.wait_for_resume()
        return None

    async def run_async(self, hook: hooks.Hook) -> None:
        pending = getattr(hook, _PENDING, None)
        step = pending if pending is not None else self.run(hook)
        while step is not None:
            index, awaitable = step
            try:
                await awaitable
            except exceptions.AddonHalt:
                return
            except Exception as exc:
                log.error("router hook %s failed: %s", hook.name, exc, exc_info=True)
            step = self.run(hook, index)


class InlineHooks:
    """Wraps the connection's top layer: StartHook commands whose handlers are
    all synchronous never leave it; everything else passes through."""

    def __init__(self, layer: Any, table: HookTable) -> None:
        self.layer = layer
        self.table = table

    def __getattr__(self, name: str) -> Any:  # context, debug, ... of the real layer
        return getattr(self.layer, name)

    def handle_event(self, event: events.Event) -> Iterator[commands.Command]:
        queue = collections.deque((event,))
        while queue:
            for command in self.layer.handle_event(queue.popleft()):
                if not isinstance(command, commands.StartHook):
                    yield command
                    continue
                pending = self.table.run(command)
                if pending is not None:
                    setattr(command, _PENDING, pending)
                    yield command  # mitmproxy's hook task awaits it via handle_hook
                elif command.blocking:
                    queue.append(events.HookCompleted(command))


class RouterConnectionHandler(ProxyConnectionHandler):
    """ProxyConnectionHandler with the cached, update-free hook dispatch."""

    table: HookTable

    async def handle_hook(self, hook: commands.StartHook) -> None:
        if getattr(hook, _PENDING, None) is None:
            step = self.table.run(hook)
            if step is None:
                return
            setattr(hook, _PENDING, step)
        with self.timeout_watchdog.disarm():
            await self.table.run_async(hook)


def handle_stream(
    instance: ServerInstance, table: HookTable
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """An `asyncio.start_server` callback like `instance.handle_stream`, with
    RouterConnectionHandler and InlineHooks (plain TCP reverse mode only)."""
    from mitmproxy import ctx

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = RouterConnectionHandler(ctx.master, reader, writer, ctx.options, instance.mode)
        handler.table = table
        handler.layer = InlineHooks(instance.make_top_layer(handler.layer.context), table)
        with instance.manager.register_connection(handler.layer.context.client.id, handler):
            await handler.handle_client()

    return handle
