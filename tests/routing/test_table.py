"""The pure routing core: path classification and the route table."""

from __future__ import annotations

import pytest

from routing.router.table import (
    PathKind,
    RouteTable,
    apply_changes,
    build_routes,
    classify,
    parse_route,
)


def route(prefix: str, port: int = 1):
    parts = prefix.strip("/").split("/")
    data = {
        "target": f"http://127.0.0.1:{port}",
        "user": parts[1],
        "server_name": parts[2] if len(parts) > 2 else "",
    }
    return parse_route(prefix, data)


@pytest.fixture
def table() -> RouteTable:
    t = RouteTable()
    t.replace([route("/user/alice/", 1), route("/user/alice/lab/", 2), route("/user/bob/", 3)])
    return t


@pytest.mark.parametrize(
    ("path", "port"),
    [
        ("/user/alice/", 1),
        ("/user/alice", 1),
        ("/user/alice/lab/tree", 2),
        ("/user/alice/lab", 2),
        ("/user/alice/labx/", 1),
        ("/user/alice/tree?x=/user/bob/", 1),
        ("//user//bob//x", 3),
        ("/user/bob/lab/", 3),
        ("/user/carol/", None),
        ("/user/Alice/", None),
        ("/user/alic/", None),
    ],
)
def test_route_lookup_prefers_the_longest_prefix_and_exact_names(table, path, port):
    where = classify(path)
    assert where.kind == PathKind.USER
    found = table.lookup(where.user, where.segment)
    assert (found.port if found else None) == port


@pytest.mark.parametrize("path", ["/", "/hub/", "/hub/user/alice/", "/user/", "/users/alice/"])
def test_paths_outside_user_prefixes_belong_to_the_hub(path):
    assert classify(path).kind == PathKind.HUB


@pytest.mark.parametrize(
    "path",
    [
        "/hub/api/users/alice/server/progress",
        "/hub/api/users/alice/servers/lab/progress",
        "/hub/api/users/alice/server/progress?_xsrf=x",
        "//hub/api/users/alice//server/progress",
    ],
)
def test_spawn_progress_paths_go_to_the_stream_server(path):
    assert classify(path).kind == PathKind.STREAM


@pytest.mark.parametrize(
    "path",
    [
        "/hub/api/users/alice/server",
        "/hub/api/users/alice/progress",
        "/hub/api/progress",
        "/hub/spawn-pending/alice/progress",
        "/user/alice/api/users/x/server/progress",
    ],
)
def test_other_paths_ending_in_progress_are_not_streams(path):
    assert classify(path).kind != PathKind.STREAM


@pytest.mark.parametrize(
    "path",
    [
        "/user/alice/../bob/",
        "/user/alice/./x",
        "/user/alice/%2e%2e/bob/",
        "/user/alice/%2E./bob/",
        "/user/%2e%2e/",
        "/user/alice%2fbob/",
        "/user/alice/%2F/",
        "/user/alice%5Cbob/",
        "/user/alice\\bob/",
        "/hub/../user/bob/",
        "http://evil/user/bob/",
        "*",
    ],
)
def test_path_tricks_are_classified_bad(path):
    assert classify(path).kind == PathKind.BAD


def test_incremental_changes_add_replace_and_remove(table):
    apply_changes(
        table,
        {
            "/user/alice/lab/": None,
            "/user/bob/": {"target": "http://127.0.0.1:9", "user": "bob", "server_name": ""},
            "/user/carol/": {"target": "http://127.0.0.1:7", "user": "carol", "server_name": ""},
        },
    )
    assert table.lookup("alice", "lab").port == 1
    assert table.lookup("bob", "").port == 9
    assert table.lookup("carol", "").port == 7
    assert len(table) == 3


@pytest.mark.parametrize(
    ("prefix", "data"),
    [
        ("/user/alice/", {"target": "ftp://x", "user": "alice", "server_name": ""}),
        ("/user/alice/", {"target": "http://127.0.0.1:1", "user": "bob", "server_name": ""}),
        ("/user/alice/", {"user": "alice"}),
        ("/elsewhere/", {"target": "http://127.0.0.1:1", "user": "alice", "server_name": ""}),
    ],
)
def test_unusable_routes_are_skipped_never_guessed(prefix, data):
    routes, skipped = build_routes({prefix: data})
    assert (routes, skipped) == ([], [prefix])


def test_full_refresh_drops_routes_not_in_the_new_table(table):
    table.replace([route("/user/bob/", 5)])
    assert table.lookup("alice", "") is None
    assert len(table) == 1


def test_lookup_cost_does_not_depend_on_table_size():
    big = RouteTable()
    big.replace(route(f"/user/u{n}/", n + 1) for n in range(10_000))
    assert big.lookup("u9999", "lab").port == 10_000
    assert len(big) == 10_000
