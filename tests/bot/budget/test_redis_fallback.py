"""When Redis goes away, chat goes on: each replica answers from its share of every limit.

These tests run their own throwaway ``redis-server`` (killed and restarted at will), never the
shared one, and a TCP server that accepts connections and never answers (a hung Redis).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bot.budget.limits import Ask, Cap, Granted, Outcome, Rate, Refused, Wait
from bot.budget.redis import RedisBackend
from tests.faults.redisserver import RedisServer as Server

PASSWORD = "s3cret-pw"
LOGGER = "bot.budget.redis"

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path, password=PASSWORD)
    s.start()
    try:
        yield s
    finally:
        s.kill()


@pytest.fixture
async def spy(server: Server) -> AsyncIterator[aioredis.Redis]:
    """A client of our own, to see what the backend really wrote."""
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    yield client
    await client.aclose()


def rate(limit: int = 10) -> Rate:
    """Refills 1 unit every 6 minutes: not during a test."""
    return Rate(
        key=f"r:{uuid.uuid4().hex[:6]}",
        limit=limit,
        period=3600.0,
        unit="requests",
        label="requests per hour",
    )


def cap(limit: int = 100) -> Cap:
    return Cap(
        key=f"c:{uuid.uuid4().hex[:6]}",
        limit=limit,
        period="day",
        unit="tokens",
        label="tokens per day",
    )


async def timed(call: Awaitable[Outcome]) -> tuple[Outcome, float]:
    start = time.monotonic()
    out = await call
    return out, time.monotonic() - start


async def test_normal_operation_goes_through_redis(server: Server, spy: aioredis.Redis) -> None:
    async with RedisBackend(server.url, prefix="qb") as b:
        r, c = rate(10), cap(100)
        out = await b.acquire(Ask(rates=((r, 4),), caps=((c, 30),)))
        assert isinstance(out, Granted)
        (w,) = out.windows
        assert float(await spy.hget(f"{{qb}}:rate:{r.key}", "level") or "nan") == pytest.approx(
            6, abs=0.01
        )
        assert await spy.get(f"{{qb}}:cap:{c.key}:{w}") == "30"
        assert 0 < await spy.ttl(f"{{qb}}:cap:{c.key}:{w}") <= 2 * 86400
        assert await spy.zcard("{qb}:replicas") == 1
        assert not b.degraded and b.fallbacks == 0
    assert await spy.zcard("{qb}:replicas") == 0  # left the count on close


async def test_falls_back_to_its_share_and_comes_back(
    server: Server, spy: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    r, c = rate(10), cap(100)
    async with RedisBackend(server.url, prefix="qb", replicas=2, retry_interval=0.8) as b:
        assert isinstance(await b.acquire(Ask(rates=((r, 3),))), Granted)  # through Redis

        server.kill()
        # all at once: every call in flight finds Redis gone, and the fallback is logged once
        start = time.monotonic()
        outs = await asyncio.gather(
            *[b.acquire(Ask(rates=((r, 1),), caps=((c, 2),))) for _ in range(7)]
        )
        assert time.monotonic() - start < 1.0
        # a fresh local bucket of 10 // 2: five pass, the others wait
        assert [type(o) for o in outs].count(Granted) == 5
        outs.sort(key=lambda o: isinstance(o, Wait))
        assert isinstance(outs[5], Wait) and outs[5].rate == r  # the caller's Rate, not a copy
        assert b.degraded and b.fallbacks == 1
        state = await b.rate_state(r)
        assert (state.limit, round(state.level)) == (5, 0)
        out = await b.acquire(Ask(caps=((c, 41),)))  # 10 used of a local cap of 50
        assert isinstance(out, Refused) and (out.cap, out.used) == (c, 10)

        warnings = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert f"Redis at 127.0.0.1:{server.port} unreachable" in message
        assert "(1/2)" in message
        assert PASSWORD not in caplog.text

        server.start()  # empty again: nothing was saved
        await asyncio.sleep(0.9)
        out = await b.acquire(Ask(rates=((r, 1),)))
        assert isinstance(out, Granted)
        assert not b.degraded and b.fallbacks == 1
        assert any("answers again" in rec.getMessage() for rec in caplog.records)
        state = await b.rate_state(r)  # Redis's new, full bucket, not the empty local one
        assert (state.limit, round(state.level)) == (10, 9)
        assert float(await spy.hget(f"{{qb}}:rate:{r.key}", "level") or "nan") == pytest.approx(
            9, abs=0.1
        )
        # the cap charged while Redis was away was added to Redis when it came back
        assert (await b.cap_state(c)).used == 10
        assert len([rec for rec in caplog.records if rec.levelno >= logging.WARNING]) == 1


async def test_a_hung_redis_is_tried_once_per_interval() -> None:
    """Accepts connections, never answers: only the calls that try Redis wait for the timeout."""
    connections: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(4096):
            pass

    hung = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = hung.sockets[0].getsockname()[1]
    start = time.monotonic()
    try:
        async with RedisBackend(
            f"redis://127.0.0.1:{port}/0",
            prefix="qb",
            replicas=1,
            retry_interval=0.5,
            timeout=0.3,
        ) as b:  # start() finds out that Redis does not answer
            assert time.monotonic() - start < 0.6
            assert b.degraded and b.fallbacks == 1
            r = rate(1000)
            slow = 0
            start = time.monotonic()
            while time.monotonic() - start < 1.3:
                out, took = await timed(b.acquire(Ask(rates=((r, 1),))))
                assert isinstance(out, Granted)
                assert took < 0.6  # one timeout at most, no retries inside redis-py
                slow += took > 0.2
                await asyncio.sleep(0.02)
            # tries at about 0.5 s and 1.0 s (each then waits out its 0.3 s timeout)
            assert 1 <= slow <= 3
            assert 2 <= len(connections) <= 4
            assert b.degraded and b.fallbacks == 1
    finally:
        for writer in connections:
            writer.close()
        hung.close()
        await hung.wait_closed()


async def test_a_stalled_redis_costs_one_timeout_then_none(
    server: Server, spy: aioredis.Redis
) -> None:
    """Redis stops answering mid-command (CLIENT PAUSE): one call waits out the timeout, once."""
    async with RedisBackend(server.url, prefix="qb", replicas=1, timeout=0.3) as b:
        r = rate(1000)
        assert isinstance(await b.acquire(Ask(rates=((r, 1),))), Granted)
        await spy.client_pause(1500)
        for _ in range(5):
            out, took = await timed(b.acquire(Ask(rates=((r, 1),))))
            assert isinstance(out, Granted)
            assert took < 0.6  # one timeout at most, no retries inside redis-py
        assert b.degraded and b.fallbacks == 1


async def test_replicas_count_each_other_for_the_share(server: Server) -> None:
    a, b, c = (
        RedisBackend(server.url, prefix="qb", heartbeat_interval=0.05, retry_interval=60)
        for _ in range(3)
    )
    try:
        for backend in (a, b, c):
            await backend.start()
        assert (a.replicas, c.replicas) == (1, 3)  # a counted before the others joined
        await asyncio.sleep(0.06)
        await a.start()
        assert a.replicas == 3
        await c.aclose()  # leaves the count at once
        await asyncio.sleep(0.06)
        await a.start()
        assert a.replicas == 2

        server.kill()
        r = rate(10)
        outs = [await a.acquire(Ask(rates=((r, 1),))) for _ in range(6)]
        assert a.degraded
        assert [type(o) for o in outs] == [Granted] * 5 + [Wait]  # 10 // 2
    finally:
        for backend in (a, b, c):
            await backend.aclose()  # twice for c: closing is idempotent
