"""The mitmproxy 11.0.2 behaviour the router relies on (see routing/router/addon.py).
If an upgrade changes any of it, these fail before production does."""

from __future__ import annotations

import inspect

from mitmproxy import version
from mitmproxy.addons import proxyserver
from mitmproxy.proxy import server
from mitmproxy.proxy.layers import websocket
from mitmproxy.proxy.mode_servers import ServerInstance
from mitmproxy.test import tflow


def test_mitmproxy_is_the_pinned_version():
    assert version.VERSION == "11.0.2"


def test_setting_request_data_address_keeps_the_host_header():
    flow = tflow.tflow()
    flow.request.headers["Host"] = "hub.example.org"
    data = flow.request.data
    data.scheme, data.host, data.port = b"http", "10.0.0.9", 8888
    assert flow.request.headers["Host"] == "hub.example.org"
    assert (flow.request.host, flow.request.port, flow.request.scheme) == (
        "10.0.0.9",
        8888,
        "http",
    )


def test_websocket_messages_list_is_appended_before_the_hook_and_not_reread():
    source = inspect.getsource(websocket.WebsocketLayer.relay_messages)
    append = source.index("self.flow.websocket.messages.append(message)")
    hook = source.index("yield WebsocketMessageHook(self.flow)")
    assert append < hook
    assert source.count("websocket.messages") == 1  # the layer keeps its own `message`


def test_server_instance_handle_stream_is_what_our_listener_calls():
    params = list(inspect.signature(ServerInstance.handle_stream).parameters)
    assert params[:3] == ["self", "reader", "writer"]
    assert hasattr(proxyserver.Proxyserver, "register_connection")


def test_connection_idle_timeout_is_the_documented_ten_minutes():
    # kernels idle longer need WebSocket pings (jupyter-server sends them)
    assert server.TCP_TIMEOUT == 600
