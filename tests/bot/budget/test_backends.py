"""One contract, every backend: the in-process one, and Redis shared by several "replicas".

Redis takes its time from the Redis server, so these tests run on real time with short
periods (a bucket of 10 that refills in 1 s) and allow for scheduling noise.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from bot.budget.backend import BudgetBackend
from bot.budget.limits import Ask, Cap, Granted, Rate, Refused, Wait, window, window_end
from bot.budget.memory import MemoryBackend

Factory = Callable[[], Awaitable[BudgetBackend]]


@pytest.fixture(params=["memory", "redis"])
async def replica(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """Makes backends that share one store, as several quotabot processes do."""
    if request.param == "memory":
        shared = MemoryBackend()

        async def same() -> BudgetBackend:
            return shared

        yield same
        return

    from bot.budget.redis import RedisBackend

    url = request.getfixturevalue("redis_url")
    prefix = f"qbtest:{uuid.uuid4().hex[:8]}"
    made: list[RedisBackend] = []

    async def new() -> BudgetBackend:
        backend = RedisBackend(url, prefix=prefix)
        made.append(backend)
        return backend

    yield new
    if made:
        await made[0].delete_all()
    for backend in made:
        await backend.aclose()


def rate(key: str = "r", limit: int = 10, period: float = 1.0, unit: str = "tokens") -> Rate:
    return Rate(
        key=f"{key}:{uuid.uuid4().hex[:6]}",
        limit=limit,
        period=period,
        unit=unit,  # type: ignore[arg-type]
        label=key,
    )


def cap(limit: int = 100, period: str = "day") -> Cap:
    return Cap(
        key=f"cap:{uuid.uuid4().hex[:6]}",
        limit=limit,
        period=period,
        unit="tokens",  # type: ignore[arg-type]
        label="tokens per day",
    )


async def test_grants_until_empty_then_says_how_long_to_wait(replica: Factory) -> None:
    b = await replica()
    r = rate(limit=10, period=60.0)  # refills 1 unit every 6 s: no refill during the test
    assert isinstance(await b.acquire(Ask(rates=((r, 4),))), Granted)
    assert isinstance(await b.acquire(Ask(rates=((r, 6),))), Granted)
    out = await b.acquire(Ask(rates=((r, 3),)))
    assert isinstance(out, Wait)
    assert out.rate == r
    assert 17.0 < out.seconds <= 18.0  # 3 units at 1/6 per second


async def test_all_or_nothing_and_the_longest_wait_is_named(replica: Factory) -> None:
    b = await replica()
    rpm, tpm = rate("rpm", 5, 60.0, "requests"), rate("tpm", 100, 60.0)
    assert isinstance(await b.acquire(Ask(rates=((tpm, 90),))), Granted)
    out = await b.acquire(Ask(rates=((rpm, 1), (tpm, 50))))
    assert isinstance(out, Wait)
    assert out.rate == tpm
    assert (await b.rate_state(rpm)).level == pytest.approx(5, abs=0.01)  # nothing was taken


async def test_an_amount_beyond_the_limit_never_fits(replica: Factory) -> None:
    b = await replica()
    r = rate(limit=10)
    out = await b.acquire(Ask(rates=((r, 11),)))
    assert isinstance(out, Wait)
    assert math.isinf(out.seconds)


async def test_buckets_refill_continuously(replica: Factory) -> None:
    b = await replica()
    r = rate(limit=10, period=1.0)  # 10 per second
    assert isinstance(await b.acquire(Ask(rates=((r, 10),))), Granted)
    assert isinstance(await b.acquire(Ask(rates=((r, 3),))), Wait)
    await asyncio.sleep(0.35)
    assert isinstance(await b.acquire(Ask(rates=((r, 3),))), Granted)
    await asyncio.sleep(2)
    assert (await b.rate_state(r)).level == pytest.approx(10, abs=0.01)  # never above the limit


async def test_caps_refuse_first_and_say_when_they_reset(replica: Factory) -> None:
    b = await replica()
    c, r = cap(limit=100), rate(limit=1000, period=60.0)
    granted = await b.acquire(Ask(rates=((r, 1),), caps=((c, 80),)))
    assert isinstance(granted, Granted)
    assert granted.windows == (window("day", datetime.now(UTC)),)
    out = await b.acquire(Ask(rates=((r, 1),), caps=((c, 30),)))
    assert isinstance(out, Refused)
    assert (out.cap, out.used) == (c, 80)
    assert out.resets_at == window_end("day", datetime.now(UTC))
    state = await b.cap_state(c)
    assert (state.used, state.limit) == (80, 100)
    assert (await b.rate_state(r)).level == pytest.approx(999, abs=0.1)  # refused took nothing


async def test_adjust_gives_back_and_takes_more(replica: Factory) -> None:
    b = await replica()
    r, c = rate(limit=100, period=60.0), cap(limit=1000, period="month")
    granted = await b.acquire(Ask(rates=((r, 60),), caps=((c, 600),)))
    assert isinstance(granted, Granted)
    (w,) = granted.windows
    await b.adjust([(r, -50)], [(c, w, -550)])  # reserved 60, used 10
    assert (await b.rate_state(r)).level == pytest.approx(90, abs=0.1)
    assert (await b.cap_state(c)).used == 50
    await b.adjust([(r, 5)], [(c, w, 7)])  # the provider counted a little more than we did
    assert (await b.rate_state(r)).level == pytest.approx(85, abs=0.1)
    assert (await b.cap_state(c)).used == 57
    await b.adjust([(r, -1000)], [])
    assert (await b.rate_state(r)).level == pytest.approx(100, abs=0.1)  # capped at the limit


async def test_learning_the_real_limit(replica: Factory) -> None:
    b = await replica()
    r = rate(limit=100, period=60.0)
    await b.learn(r, limit=40, remaining=30)  # configured too high
    state = await b.rate_state(r)
    assert state.limit == 40
    assert state.level == pytest.approx(30, abs=0.1)
    assert isinstance(await b.acquire(Ask(rates=((r, 31),))), Wait)

    r2 = rate(limit=3, period=60.0)
    await b.learn(r2, limit=60, remaining=59)  # configured too low: the room is used at once
    assert (await b.rate_state(r2)).limit == 60
    assert isinstance(await b.acquire(Ask(rates=((r2, 50),))), Granted)


async def test_block_makes_everyone_wait(replica: Factory) -> None:
    b = await replica()
    r = rate(limit=100, period=60.0)
    await b.block([r], 5.0)
    out = await b.acquire(Ask(rates=((r, 1),)))
    assert isinstance(out, Wait)
    assert 4.0 < out.seconds <= 5.0


async def test_replicas_never_let_more_than_the_limit_through(replica: Factory) -> None:
    """Two replicas, 200 concurrent requests for a bucket of 50: exactly 50 granted."""
    a, b = await replica(), await replica()
    r = rate(limit=50, period=3600.0, unit="requests")
    c = cap(limit=10_000)
    outcomes = await asyncio.gather(
        *[(a if i % 2 else b).acquire(Ask(rates=((r, 1),), caps=((c, 7),))) for i in range(200)]
    )
    assert sum(isinstance(o, Granted) for o in outcomes) == 50
    assert (await a.cap_state(c)).used == 50 * 7


async def test_a_claim_is_won_once_across_replicas_until_it_expires(replica: Factory) -> None:
    a, b = await replica(), await replica()
    name = f"alert:{uuid.uuid4().hex[:6]}"
    results = await asyncio.gather(*[(a if i % 2 else b).claim(name, 0.3) for i in range(10)])
    assert results.count(True) == 1
    await asyncio.sleep(0.4)
    assert await b.claim(name, 0.3) is True
