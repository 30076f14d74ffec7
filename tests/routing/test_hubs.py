"""routing.router.hubs: which of several hubs a router sends to, as values."""

from __future__ import annotations

import pytest

from routing.router.hubs import HubPool, split_urls
from tests.routing.fakes import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_the_first_hub_is_used_while_it_answers(clock):
    pool = HubPool(["a", "b"], clock=clock)
    assert pool.current() == "a"
    pool.answered("a")
    assert pool.current() == "a"


def test_a_refused_hub_hands_the_request_to_the_next_and_is_passed_over(clock):
    pool = HubPool(["a", "b", "c"], retry_after=5, clock=clock)
    assert pool.refused("a") == "b"
    assert pool.current() == "b"
    clock.now += 4.9
    assert pool.current() == "b"


def test_a_refused_hub_is_tried_first_again_after_retry_after(clock):
    pool = HubPool(["a", "b"], retry_after=5, clock=clock)
    pool.refused("a")
    clock.now += 5
    assert pool.current() == "a"


def test_a_hub_that_answers_again_is_back_at_once(clock):
    pool = HubPool(["a", "b"], retry_after=5, clock=clock)
    pool.refused("a")
    pool.answered("a")
    assert pool.current() == "a"


def test_when_every_hub_refused_the_one_passed_over_longest_ago_is_tried(clock):
    pool = HubPool(["a", "b", "c"], retry_after=5, clock=clock)
    assert pool.refused("a") == "b"
    clock.now += 1
    assert pool.refused("b") == "c"
    clock.now += 1
    assert pool.refused("c") is None  # nothing left for this request: it fails
    assert pool.current() == "a"  # the next request still goes somewhere


def test_a_request_is_never_sent_twice_to_one_hub(clock):
    pool = HubPool(["a", "b"], clock=clock)
    assert pool.refused("a") == "b"
    assert pool.refused("b") is None


def test_a_pool_of_one_hub_has_nowhere_else_to_go(clock):
    pool = HubPool(["a"], clock=clock)
    assert pool.refused("a") is None
    assert pool.current() == "a"


def test_a_pool_needs_a_hub():
    with pytest.raises(ValueError, match="at least one hub"):
        HubPool([])


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ("http://a:8081", ["http://a:8081"]),
        ("http://a:8081/, http://b:8081", ["http://a:8081", "http://b:8081"]),
        ("http://a:8081,,", ["http://a:8081"]),
        ("", []),
    ],
)
def test_hub_url_lists_split_on_commas(value, urls):
    assert split_urls(value) == urls
