"""The budget as the service sees it: reserve, reconcile, refuse, queue fairly. Runs on every
backend: the in-process one and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.budget.backend import BudgetBackend
from bot.budget.limits import Learned, Rate, Wait
from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy, Who
from bot.budget.tickets import QueueInfo, Ticket
from bot.catalog import Catalog, ModelInfo, ModelOverride
from bot.errors import BudgetExceeded, QueueFull, TooLargeForLimit, WaitTooLong


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[BudgetBackend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    from bot.budget.redis import RedisBackend

    b = RedisBackend(request.getfixturevalue("redis_url"), prefix=f"qbtest:{uuid.uuid4().hex[:8]}")
    yield b
    await b.delete_all()
    await b.aclose()


def model(name: str = "m", rpm: int = 1000, tpm: int = 100_000) -> ModelInfo:
    # A fresh model name per test keeps Redis keys apart.
    unique = f"{name}-{uuid.uuid4().hex[:6]}"
    catalog = Catalog.build(
        overrides={
            unique: ModelOverride(
                rpm=rpm, tpm=tpm, input_price=Decimal("0.001"), output_price=Decimal("0.002")
            )
        }
    )
    return catalog.get(unique)


HEADROOM = int(10_000 * 0.25 / 60)
"""What learning keeps back of a 10,000 TPM bucket: 0.25 s of refill, for clock drift."""


def who(channel: str = "C1", user: str = "U1") -> Who:
    return Who("slack", "T1", channel, user)


def soon(seconds: float = 30.0) -> float:
    return time.monotonic() + seconds


async def level(budget: Budget, rate: Rate) -> float:
    return (await budget.backend.rate_state(rate)).level


async def test_reserve_then_reconcile_to_what_was_used(backend: BudgetBackend) -> None:
    m = model(tpm=10_000)
    budget = Budget(backend, Policy({}))
    rpm, tpm = budget.policy.model_rates(m)
    ticket = await budget.acquire(who(), m, tokens=1_500, cost=None, deadline=soon())
    assert await level(budget, tpm) == pytest.approx(8_500, abs=1)
    await budget.settle(ticket, tokens=300, cost=Decimal("0.0004"))
    assert await level(budget, tpm) == pytest.approx(9_700, abs=1)
    assert await level(budget, rpm) == pytest.approx(999, abs=0.1)
    await budget.settle(ticket, tokens=300, cost=None)  # settling twice changes nothing
    assert await level(budget, tpm) == pytest.approx(9_700, abs=1)


async def test_a_failed_call_gives_its_reservation_back(backend: BudgetBackend) -> None:
    m = model(tpm=10_000)
    budget = Budget(backend, Policy({"channel": {"tokens_day": 5_000}}))
    ticket = await budget.acquire(who(), m, tokens=4_000, cost=None, deadline=soon())
    waiting = asyncio.create_task(
        budget.acquire(who(), m, tokens=2_000, cost=None, deadline=soon())
    )
    await asyncio.sleep(0.2)
    assert not waiting.done()  # no room unless the call in flight gives some back
    await budget.release(ticket)
    await asyncio.wait_for(waiting, 5)
    _, tpm = budget.policy.model_rates(m)
    assert await level(budget, tpm) == pytest.approx(8_000, abs=1)


async def test_a_cap_that_calls_in_flight_may_give_back_to_waits_for_them(
    backend: BudgetBackend,
) -> None:
    """A call reserves its prompt and max_tokens; what it does not use comes back when it
    settles. So a cap that looks spent while calls are in flight does not refuse at once:
    the request waits for them, and is refused only if they give back too little."""
    m = model(tpm=100_000)
    budget = Budget(backend, Policy({"channel": {"tokens_day": 5_000}}))
    first = await budget.acquire(who(), m, tokens=4_000, cost=None, deadline=soon())
    asks = [
        asyncio.create_task(budget.acquire(who(), m, tokens=2_000, cost=None, deadline=soon()))
        for _ in range(2)
    ]
    await asyncio.sleep(0.2)
    assert not any(a.done() for a in asks)
    await budget.settle(first, tokens=2_500, cost=None)  # 1,500 back: room for one
    second = await asyncio.wait_for(asks[0], 5)
    await asyncio.sleep(0.2)
    assert not asks[1].done()  # the one just sent may give back enough
    await budget.settle(second, tokens=2_000, cost=None)  # it used all it asked for
    with pytest.raises(BudgetExceeded, match="tokens per day: 4,500 of 5,000 tokens used"):
        await asyncio.wait_for(asks[1], 5)
    # Nothing in flight: refused at once, as a request cap always is.
    with pytest.raises(BudgetExceeded):
        await asyncio.wait_for(
            budget.acquire(who(), m, tokens=1_000, cost=None, deadline=soon()), 0.5
        )


async def test_a_wait_for_calls_in_flight_ends_in_the_cap_s_refusal(
    backend: BudgetBackend,
) -> None:
    m = model(tpm=100_000)
    budget = Budget(backend, Policy({"user": {"spend_day": Decimal("0.01")}}))
    await budget.acquire(who(), m, tokens=10, cost=Decimal("0.008"), deadline=soon())
    await budget.check(who(), m, cost=Decimal("0.004"))  # as acquire: the call may give back
    with pytest.raises(BudgetExceeded):
        await budget.check(who(), m, cost=Decimal("0.011"))  # more than the call could
    with pytest.raises(BudgetExceeded, match=r"spend per day: \$0.0080 of \$0.0100 used"):
        await budget.acquire(who(), m, tokens=10, cost=Decimal("0.004"), deadline=soon(0.3))


async def test_a_cap_under_a_cent_shows_its_amounts_to_the_micro_dollar(
    backend: BudgetBackend,
) -> None:
    """A test cap of $0.00001 read "$0.0000 of $0.0000 used": nothing to act on."""
    m = model()
    budget = Budget(backend, Policy({"channel": {"spend_day": Decimal("0.00005")}}))
    t = await budget.acquire(who(), m, tokens=10, cost=Decimal("0.00004"), deadline=soon())
    await budget.settle(t, tokens=10, cost=Decimal("0.000012"))
    with pytest.raises(BudgetExceeded, match=r"spend per day: \$0.000012 of \$0.000050 used"):
        await budget.acquire(who(), m, tokens=10, cost=Decimal("0.00004"), deadline=soon())


async def test_caps_refuse_at_once_with_what_was_used_and_when_it_resets(
    backend: BudgetBackend,
) -> None:
    m = model()
    budget = Budget(
        backend, Policy({"user": {"spend_day": Decimal("0.01")}, "channel:C9": {"rpd": 1}})
    )
    t = await budget.acquire(who(), m, tokens=2_000, cost=Decimal("0.008"), deadline=soon())
    await budget.settle(t, tokens=2_000, cost=Decimal("0.006"))
    with pytest.raises(BudgetExceeded) as info:
        await budget.acquire(who(), m, tokens=2_000, cost=Decimal("0.005"), deadline=soon())
    message = str(info.value)
    assert "this user's spend per day" in message
    assert "$0.0060 of $0.0100 used" in message
    assert "resets at 00:00 UTC" in message
    # Another user in the same channel is not affected; a capped channel is, for everyone.
    await budget.acquire(who(user="U2"), m, tokens=10, cost=Decimal("0.001"), deadline=soon())
    await budget.acquire(who("C9"), m, tokens=10, cost=None, deadline=soon())
    with pytest.raises(
        BudgetExceeded, match="this channel's requests per day: 1 of 1 request used"
    ):
        await budget.acquire(who("C9", "U3"), m, tokens=10, cost=None, deadline=soon())


async def test_a_check_refuses_as_acquire_would_and_takes_nothing(backend: BudgetBackend) -> None:
    """What a recording is checked against before its download: the caps, as they are now."""
    m = model()
    budget = Budget(
        backend, Policy({"user": {"spend_day": Decimal("0.01")}, "channel:C9": {"rpd": 0}})
    )
    await budget.check(who(), m, cost=Decimal("0.01"))  # fits exactly
    t = await budget.acquire(who(), m, tokens=10, cost=Decimal("0.008"), deadline=soon())
    await budget.settle(t, tokens=10, cost=Decimal("0.006"))
    for _ in range(3):
        await budget.check(who(), m, cost=Decimal("0.004"))  # reserves nothing
    with pytest.raises(BudgetExceeded, match=r"this user's spend per day: \$0.0060 of \$0.0100"):
        await budget.check(who(), m, cost=Decimal("0.0041"))
    with pytest.raises(TooLargeForLimit, match="requests per day"):
        await budget.check(who("C9"), m, cost=None)
    (spend,) = [s for s in await budget.status(who(), m) if s.unit == "usd"]
    assert spend.used == Decimal("0.006")


async def test_a_request_larger_than_a_per_minute_limit_is_refused_before_sending(
    backend: BudgetBackend,
) -> None:
    m = model(tpm=4_000)
    budget = Budget(backend, Policy({}))
    with pytest.raises(TooLargeForLimit, match="tokens per minute is 4,000"):
        await budget.acquire(who(), m, tokens=4_001, cost=None, deadline=soon())


async def test_learning_from_headers_and_backing_off(backend: BudgetBackend) -> None:
    m = model(rpm=3, tpm=40_000)
    budget = Budget(backend, Policy({}))
    await budget.observe(m, Learned(requests=(500, 499), tokens=(30_000, 29_000)))
    rpm, tpm = budget.policy.model_rates(m)
    assert (await budget.backend.rate_state(rpm)).limit == 500
    assert (await budget.backend.rate_state(tpm)).limit == 30_000
    await budget.backoff(m, 0.3)
    started = time.monotonic()
    await budget.acquire(who(), m, tokens=10, cost=None, deadline=soon())
    assert time.monotonic() - started >= 0.25
    await budget.aclose()


async def test_waiting_requests_are_told_their_place_and_served_fairly(
    backend: BudgetBackend,
) -> None:
    """10 requests per second; channel A floods with 12, B and C ask 3 each: the first nine
    sent take turns between the three channels."""
    m = model(rpm=600)
    budget = Budget(backend, Policy({}))
    rpm, _ = budget.policy.model_rates(m)
    await budget.backend.adjust([(rpm, 600)], [])  # empty the bucket: everyone queues
    infos: list[tuple[str, QueueInfo]] = []
    order: list[str] = []

    async def one(channel: str) -> None:
        async def on_queued(info: QueueInfo) -> None:
            infos.append((channel, info))

        ticket = await budget.acquire(
            who(channel),
            m,
            tokens=1,
            cost=None,
            deadline=soon(),
            on_queued=on_queued,
        )
        order.append(channel)
        await budget.settle(ticket, tokens=1, cost=None)

    tasks = [asyncio.create_task(one("A")) for _ in range(12)]
    # The flood lines up before the others (a slow machine may serve a few of it meanwhile).
    while budget.queued(m.name) + len(order) < 12:  # noqa: ASYNC110
        await asyncio.sleep(0.001)
    tasks += [asyncio.create_task(one(c)) for c in "BC" for _ in range(3)]
    await asyncio.gather(*tasks)
    await budget.aclose()
    assert len(infos) == 18
    first: dict[str, int] = {}
    for channel, info in infos:
        first[channel] = min(first.get(channel, 99), info.position)
    # B's first request is told it is second (or first, if some of the flood was served
    # already), not 13th: the flood is not ahead of it.
    assert first["A"] == 1 and first["B"] <= 2 and first["C"] <= 3
    for _, info in infos:  # 10 requests per second come back into the bucket
        assert info.wait == pytest.approx(info.position / 10, abs=0.15)
    assert Counter(order[:9]) == {"A": 3, "B": 3, "C": 3}


async def test_the_queue_is_bounded_and_a_hopeless_wait_is_refused_at_once(
    backend: BudgetBackend,
) -> None:
    m = model(rpm=60)
    budget = Budget(backend, Policy({}), queue_size=2)
    rpm, _ = budget.policy.model_rates(m)
    await budget.backend.adjust([(rpm, 60)], [])
    with pytest.raises(WaitTooLong, match="the wait would be about"):
        await budget.acquire(who(), m, tokens=1, cost=None, deadline=soon(0.5))
    waiting = [
        asyncio.create_task(budget.acquire(who(), m, tokens=1, cost=None, deadline=soon()))
        for _ in range(2)
    ]
    await asyncio.sleep(0.05)
    with pytest.raises(QueueFull):
        await budget.acquire(who(), m, tokens=1, cost=None, deadline=soon())
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert budget.queued(m.name) == 0
    await budget.aclose()


async def test_a_channel_over_its_own_rate_does_not_hold_up_the_others(
    backend: BudgetBackend,
) -> None:
    m = model(rpm=1000)
    budget = Budget(backend, Policy({"channel:SLOW": {"rpm": 1}}))
    await budget.acquire(who("SLOW"), m, tokens=1, cost=None, deadline=soon())
    slow = asyncio.create_task(
        budget.acquire(who("SLOW"), m, tokens=1, cost=None, deadline=soon(120))
    )
    await asyncio.sleep(0.05)
    started = time.monotonic()
    ticket: Ticket = await budget.acquire(who("FAST"), m, tokens=1, cost=None, deadline=soon())
    assert time.monotonic() - started < 0.5
    assert ticket is not None
    assert not slow.done()
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)
    await budget.aclose()


async def test_learning_remaining_does_not_forget_calls_in_flight(backend: BudgetBackend) -> None:
    """A's answer says 7,500 tokens remain (someone else used 1,500); B was granted after the
    provider counted that, so B's 1,000 are not in it: 6,500 are really left, not 7,500."""
    m = model(tpm=10_000)
    budget = Budget(backend, Policy({}))
    _, tpm = budget.policy.model_rates(m)
    a = await budget.acquire(who(), m, tokens=1_000, cost=None, deadline=soon())
    await budget.acquire(who(), m, tokens=1_000, cost=None, deadline=soon())  # B, in flight
    await budget.settle(a, tokens=1_000, cost=None)
    await budget.observe(m, Learned(tokens=(10_000, 7_500)))
    assert await level(budget, tpm) == pytest.approx(6_500 - HEADROOM, abs=1)


async def test_calls_sent_before_the_answering_one_are_not_counted_twice(
    backend: BudgetBackend,
) -> None:
    """C was sent before A, B after. A's headers say 7,500 remain: C is already in that figure,
    B is not. Taking C off again would lose its 1,000 tokens of quota for good."""
    m = model(tpm=10_000)
    budget = Budget(backend, Policy({}))
    _, tpm = budget.policy.model_rates(m)
    c = await budget.acquire(who(), m, tokens=1_000, cost=None, deadline=soon())
    c.sending()
    a = await budget.acquire(who(), m, tokens=1_000, cost=None, deadline=soon())
    a.sending()
    b = await budget.acquire(who(), m, tokens=1_000, cost=None, deadline=soon())
    b.sending()
    await budget.settle(a, tokens=1_000, cost=None)
    await budget.observe(m, Learned(tokens=(10_000, 7_500)), a)
    assert await level(budget, tpm) == pytest.approx(6_500 - HEADROOM, abs=1)


async def test_a_burst_is_shared_fairly_even_if_one_channel_reaches_the_budget_first(
    backend: BudgetBackend,
) -> None:
    """600 requests a minute. A's 600 requests reach the budget a moment before B's 300: A
    does not get the whole minute's bucket at once; B is served beside A from then on."""
    m = model(rpm=600)
    budget = Budget(backend, Policy({}), spread=1.0)
    order: list[str] = []

    async def one(channel: str) -> None:
        ticket = await budget.acquire(who(channel), m, tokens=1, cost=None, deadline=soon())
        order.append(channel)
        await budget.settle(ticket, tokens=1, cost=None)

    tasks = [asyncio.create_task(one("A")) for _ in range(600)]
    await asyncio.sleep(0.1)
    tasks += [asyncio.create_task(one("B")) for _ in range(300)]
    try:
        while len(order) < 500:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        served = Counter(order[:500])
        assert served["B"] >= 200, served  # all at once in arrival order, B would have none
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await budget.aclose()


async def test_a_small_bucket_is_not_paced(backend: BudgetBackend) -> None:
    m = model(rpm=3)
    budget = Budget(backend, Policy({}), spread=10.0)
    started = time.monotonic()
    for _ in range(3):
        await budget.acquire(who(), m, tokens=1, cost=None, deadline=soon())
    assert time.monotonic() - started < 0.5


async def test_a_request_given_up_while_its_grant_is_decided_does_not_break_the_queue() -> None:
    """With Redis the backend's answer is a real await: a caller can give up meanwhile. Its
    grant is handed back and the model's queue goes on serving (it used to crash on it)."""
    gate = asyncio.Event()
    calls = 0

    class Gated(MemoryBackend):
        async def acquire(self, ask):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == 1:  # the request is made to queue...
                return Wait(0.01, ask.rates[0][0])
            await gate.wait()  # ...and the queue's grant for it is slow to come
            return await super().acquire(ask)

    m = model(rpm=600)
    budget = Budget(Gated(), Policy({}))
    rpm, _ = budget.policy.model_rates(m)
    gave_up = asyncio.create_task(budget.acquire(who(), m, tokens=1, cost=None, deadline=soon()))
    while calls < 2:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    gave_up.cancel()
    await asyncio.gather(gave_up, return_exceptions=True)
    gate.set()
    await asyncio.sleep(0.05)
    lane = budget.lane(m)
    assert lane._task is not None and (not lane._task.done() or lane._task.exception() is None)
    assert await level(budget, rpm) == pytest.approx(600, abs=0.5)  # its request given back
    ticket = await budget.acquire(who("C2"), m, tokens=1, cost=None, deadline=soon())
    await budget.settle(ticket, tokens=1, cost=None)
    await budget.aclose()
