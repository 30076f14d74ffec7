"""routing.router.fastpath: the router's cached, inline hook dispatch, and the
mitmproxy 11.0.2 internals it mirrors (if an upgrade changes them, these fail
before production does). End-to-end routing through it is covered by
test_router_e2e.py, which runs the router with the fast path on (the default)."""

from __future__ import annotations

import asyncio
import inspect
import socket
from typing import Any

import pytest
from mitmproxy import exceptions
from mitmproxy.proxy import commands, events, server
from mitmproxy.proxy.layers.http import HttpRequestHeadersHook, HttpResponseHook
from mitmproxy.proxy.mode_servers import ProxyConnectionHandler, ServerInstance
from mitmproxy.test import tflow

from routing.router import fastpath
from routing.router.__main__ import listen_socket


class Recorder:
    def __init__(self, name: str, calls: list[str], result: Any = None) -> None:
        self.name, self.calls, self.result = name, calls, result

    def requestheaders(self, flow: Any) -> Any:
        self.calls.append(self.name)
        return self.result() if callable(self.result) else self.result


class Halting:
    def requestheaders(self, flow: Any) -> None:
        raise exceptions.AddonHalt


class Failing:
    def requestheaders(self, flow: Any) -> None:
        raise RuntimeError("boom")


class Parent:
    """An add-on with children, as mitmproxy's `addons` attribute allows."""

    def __init__(self, *children: Any) -> None:
        self.addons = list(children)


class FakeLayer:
    """Yields what it is told per event, and records the events it got."""

    def __init__(self, script: dict[type, list[commands.Command]]) -> None:
        self.script = script
        self.seen: list[events.Event] = []
        self.context = "the context"

    def handle_event(self, event: events.Event):
        self.seen.append(event)
        yield from self.script.get(type(event), [])


def test_the_supported_mitmproxy_version_passes_the_check():
    fastpath.check_version()


def test_handlers_of_a_hook_are_found_in_chain_order_including_children():
    calls: list[str] = []
    table = fastpath.HookTable(
        [Recorder("a", calls), Parent(Recorder("b", calls)), Recorder("c", calls)]
    )
    assert table.run(HttpRequestHeadersHook(tflow.tflow())) is None
    assert calls == ["a", "b", "c"]
    assert table.handlers("response") == ()


def test_an_addon_with_an_update_hook_is_refused():
    class Updating:
        def update(self, flows: Any) -> None:
            pass

    with pytest.raises(RuntimeError, match="update"):
        fastpath.HookTable([Updating()])


def test_the_router_addons_have_no_update_hook():
    from mitmproxy.addons import proxyserver

    from routing.router.addon import RouterAddon

    assert not hasattr(proxyserver.Proxyserver, "update")
    assert not hasattr(RouterAddon, "update")


def test_addon_halt_stops_the_chain():
    calls: list[str] = []
    table = fastpath.HookTable([Halting(), Recorder("after", calls)])
    table.run(HttpRequestHeadersHook(tflow.tflow()))
    assert calls == []


def test_a_failing_handler_is_logged_and_the_rest_still_run(caplog):
    calls: list[str] = []
    table = fastpath.HookTable([Failing(), Recorder("after", calls)])
    table.run(HttpRequestHeadersHook(tflow.tflow()))
    assert calls == ["after"]
    assert "router hook requestheaders failed: boom" in caplog.text


def test_an_awaitable_result_pauses_the_chain_until_awaited():
    calls: list[str] = []

    async def slow() -> None:
        calls.append("awaited")

    table = fastpath.HookTable([Recorder("first", calls, result=slow), Recorder("second", calls)])
    hook = HttpRequestHeadersHook(tflow.tflow())
    step = table.run(hook)
    assert step is not None and calls == ["first"]
    setattr(hook, fastpath._PENDING, step)
    asyncio.run(table.run_async(hook))
    assert calls == ["first", "awaited", "second"]


def test_an_intercepted_flow_waits_for_resume():
    class Intercepting:
        def requestheaders(self, flow: Any) -> None:
            flow.intercept()

    table = fastpath.HookTable([Intercepting()])
    flow = tflow.tflow()
    hook = HttpRequestHeadersHook(flow)
    step = table.run(hook)
    assert step is not None
    setattr(hook, fastpath._PENDING, step)

    async def scenario() -> bool:
        waiting = asyncio.ensure_future(table.run_async(hook))
        await asyncio.sleep(0)
        held = not waiting.done()
        flow.resume()
        await waiting
        return held

    assert asyncio.run(scenario())


def test_sync_hooks_complete_inline_and_other_commands_pass_through():
    flow = tflow.tflow()
    hook = HttpRequestHeadersHook(flow)
    send = commands.SendData(flow.client_conn, b"x")
    layer = FakeLayer({events.Start: [send, hook]})
    calls: list[str] = []
    wrapped = fastpath.InlineHooks(layer, fastpath.HookTable([Recorder("r", calls)]))
    out = list(wrapped.handle_event(events.Start()))
    assert out == [send]  # the hook never reached mitmproxy's task machinery
    assert calls == ["r"]
    completed = layer.seen[1]
    assert isinstance(completed, events.HookCompleted) and completed.command is hook
    assert wrapped.context == "the context"


def test_a_hook_with_an_async_handler_goes_out_as_a_command():
    async def later() -> None:
        pass

    hook = HttpRequestHeadersHook(tflow.tflow())
    layer = FakeLayer({events.Start: [hook]})
    table = fastpath.HookTable([Recorder("r", [], result=later)])
    out = list(fastpath.InlineHooks(layer, table).handle_event(events.Start()))
    assert out == [hook]
    assert len(layer.seen) == 1  # completion comes later, from mitmproxy's hook task
    asyncio.run(table.run_async(hook))


def test_non_blocking_hooks_are_not_completed():
    hook = HttpResponseHook(tflow.tflow())
    hook.blocking = False
    layer = FakeLayer({events.Start: [hook]})
    list(fastpath.InlineHooks(layer, fastpath.HookTable([])).handle_event(events.Start()))
    assert len(layer.seen) == 1


def test_the_listening_socket_is_tcp_so_asyncio_sets_nodelay():
    # regression: with proto 0 asyncio skipped TCP_NODELAY and every streamed
    # response waited ~40 ms for the client's delayed ACK
    sock = listen_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


# --- the mitmproxy internals mirrored by fastpath -----------------------------------------


def test_server_event_feeds_events_to_the_layer_and_starts_hook_tasks():
    source = inspect.getsource(server.ConnectionHandler.server_event)
    assert "self.layer.handle_event(event)" in source
    assert "isinstance(command, commands.StartHook)" in source
    assert "self.hook_task(command)" in source


def test_hook_task_completes_blocking_hooks_with_hook_completed():
    source = inspect.getsource(server.ConnectionHandler.hook_task)
    assert "await self.handle_hook(hook)" in source
    assert "if hook.blocking:" in source
    assert "events.HookCompleted(hook)" in source


def test_connection_hooks_go_through_handle_hook():
    source = inspect.getsource(server.ConnectionHandler.handle_client)
    assert "await self.handle_hook(server_hooks.ClientConnectedHook(self.client))" in source
    assert inspect.signature(ProxyConnectionHandler.handle_hook).parameters.keys() == {
        "self",
        "hook",
    }


def test_handle_stream_builds_the_handler_the_way_fastpath_does():
    source = inspect.getsource(ServerInstance.handle_stream)
    assert (
        "ProxyConnectionHandler(\n            ctx.master, reader, writer, ctx.options, self.mode"
        in (source)
    )
    assert "handler.layer = self.make_top_layer(handler.layer.context)" in source
    assert "self.manager.register_connection(handler.layer.context.client.id, handler)" in source
    assert "await handler.handle_client()" in source


@pytest.mark.parametrize("hook_class", [HttpRequestHeadersHook, HttpResponseHook])
def test_flow_hooks_are_blocking_single_argument_dataclasses(hook_class):
    hook = hook_class(tflow.tflow())
    assert hook.blocking is True
    assert len(hook.args()) == 1
