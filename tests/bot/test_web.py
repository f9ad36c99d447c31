"""The limits ``bot.web`` puts on clients before anything is authenticated."""

from __future__ import annotations

from bot.config import load_settings
from bot.web import KEEPALIVE_TIMEOUT, MAX_BODY, POOLS, READ_TIMEOUT, SMALL_BODY, BodyPools


def test_the_settings_default_to_the_servers_limits() -> None:
    settings = load_settings()
    assert settings.http_keepalive_timeout == KEEPALIVE_TIMEOUT == 15
    assert settings.http_read_timeout == READ_TIMEOUT == 10


def test_big_bodies_cannot_crowd_out_small_ones() -> None:
    pools = BodyPools()
    big = 0
    while pools.take(MAX_BODY):
        big += 1
    assert big == POOLS[False] // MAX_BODY
    assert not pools.take(SMALL_BODY + 1)  # a big one more: refused
    assert pools.take(3000)  # an event of a few KB: still read
    pools.give(MAX_BODY)
    assert pools.take(SMALL_BODY + 1)


def test_small_bodies_have_a_bounded_pool_too() -> None:
    pools = BodyPools()
    small = 0
    while pools.take(SMALL_BODY):
        small += 1
    assert small == POOLS[True] // SMALL_BODY
    assert pools.take(MAX_BODY)  # and leave the big ones theirs
