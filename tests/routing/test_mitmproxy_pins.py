"""The mitmproxy 11.0.2 behaviour the router relies on (see routing/router/addon.py).
If an upgrade changes any of it, these fail before production does."""

from __future__ import annotations

import inspect

from mitmproxy import version
from mitmproxy.addons import proxyserver
from mitmproxy.proxy import server
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers import websocket
from mitmproxy.proxy.layers.http import _http1
from mitmproxy.proxy.mode_servers import ServerInstance
from mitmproxy.test import tflow

from routing.router.strict_answers import StrictHttp1Client


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
    # the upper bound on handed-off connections (routing/router/limits.py); the
    # router's own idle timeout (default the same) applies to them first
    assert server.TCP_TIMEOUT == 600


def test_server_connect_hook_runs_before_the_connect_and_may_move_or_refuse_it():
    # RouterAddon.server_connect (public hook) checks the target within the connect
    # timeout, moves a stale route's connection to its new address, or refuses it
    source = inspect.getsource(server.ConnectionHandler.open_connection)
    hook = source.index("await self.handle_hook(server_hooks.ServerConnectHook(hook_data))")
    refused = source.index("if err := command.connection.error:")
    connect = source.index("*command.connection.address,")
    assert hook < refused < connect


def test_server_side_http1_connections_are_built_by_the_name_strict_answers_replaces():
    # routing/router/strict_answers.py swaps mitmproxy.proxy.layers.http.Http1Client
    # (HttpLayer and HttpClient build them by the module's global name)
    source = inspect.getsource(http_layers)
    assert "from ._http1 import Http1Client\n" in source
    assert source.count("Http1Client(") == 2
    assert "Http1Client(self.context" in inspect.getsource(http_layers.HttpLayer)
    assert "Http1Client" in vars(http_layers)
    assert issubclass(StrictHttp1Client, _http1.Http1Client)


def test_received_bytes_are_buffered_before_read_headers_sees_them():
    source = inspect.getsource(_http1.Http1Connection._handle_event)
    assert source.index("self.buf += event.data") < source.index("yield from self.state(event)")


def test_an_unparsable_answer_is_a_close_then_a_response_protocol_error():
    # what StrictHttp1Client.refuse yields for a head the relay's parser refuses
    source = inspect.getsource(_http1.Http1Client.read_headers)
    error = source.index("except ValueError as e:")
    close = source.index("yield commands.CloseConnection(self.conn)", error)
    protocol_error = source.index("ResponseProtocolError(", close)
    assert error < close < protocol_error
