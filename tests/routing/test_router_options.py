"""`python -m routing.router` options that name hubs: one URL or several
(`URL,URL`), refused with a clear message when they cannot be used."""

from __future__ import annotations

import pytest

from routing.router.__main__ import parse_args


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("HUB_ROUTER_TOKEN", "t")
    monkeypatch.delenv("HUB_STREAM_URL", raising=False)


def test_several_hubs_and_stream_servers_are_kept_in_order():
    config = parse_args(
        [
            "--hub-url",
            "http://a:8081/, http://b:8081",
            "--stream-url",
            "http://a:8082,http://b:8082/",
        ]
    )
    assert config.hub_url == "http://a:8081,http://b:8081"
    assert config.stream_url == "http://a:8082,http://b:8082"


def test_without_a_stream_url_progress_goes_to_the_hub():
    assert parse_args(["--hub-url", "http://a:8081"]).stream_url == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hub-url", ""], "--hub-url: needs an http(s) URL"),
        (["--hub-url", "http://a:8081,ftp://b"], "--hub-url: 'ftp://b' is not an http(s) URL"),
        (["--hub-url", "http://a:8081,https://b"], "--hub-url: all URLs must have one scheme"),
        (["--hub-url", "http://a", "--stream-url", "a:8082"], "--stream-url: 'a:8082' is not"),
    ],
)
def test_hub_urls_that_cannot_be_used_are_refused_at_start(args, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(args)
    assert message in capsys.readouterr().err
