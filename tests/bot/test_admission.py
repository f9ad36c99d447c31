"""Turns to work on chat events: a bound per process, shared fairly between channels."""

from __future__ import annotations

import asyncio

import pytest

from bot.admission import Admission
from bot.models import ChatRequest
from bot.provider import OpenAIClient
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store import Database
from tests.bot.service.test_service import ask, make_service


async def test_no_more_than_the_limit_are_worked_on_at_once() -> None:
    admission = Admission(3)
    busy, most = 0, 0

    async def work() -> None:
        nonlocal busy, most
        async with admission.turn("C1"):
            busy += 1
            most = max(most, busy)
            await asyncio.sleep(0.01)
            busy -= 1

    await asyncio.gather(*(work() for _ in range(20)))
    assert most == 3
    assert (admission.active, admission.waiting) == (0, 0)


async def test_a_busy_channel_does_not_hold_every_turn() -> None:
    """Channel A floods first; B's two events still get the 2nd and 4th turns that free up."""
    admission = Admission(1)
    order: list[str] = []
    gate = await admission.acquire("A")

    async def event(channel: str, i: int) -> None:
        async with admission.turn(channel):
            order.append(f"{channel}{i}")
            await asyncio.sleep(0)

    flood = [asyncio.create_task(event("A", i)) for i in range(10)]
    await asyncio.sleep(0)
    late = [asyncio.create_task(event("B", i)) for i in range(2)]
    await asyncio.sleep(0)
    assert admission.waiting == 12
    gate.release()
    await asyncio.gather(*flood, *late)
    assert order[:5] == ["A0", "B0", "A1", "B1", "A2"]
    assert order[5:] == [f"A{i}" for i in range(3, 10)]


async def test_an_event_given_up_while_waiting_leaves_no_trace() -> None:
    admission = Admission(1)
    first = await admission.acquire("C1")
    gone = asyncio.create_task(admission.acquire("C2"))
    kept = asyncio.create_task(admission.acquire("C3"))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    assert admission.waiting == 1
    first.release()
    second = await asyncio.wait_for(kept, 1)
    second.release()
    second.release()  # twice is harmless
    assert (admission.active, admission.waiting) == (0, 0)


async def test_a_turn_handed_over_as_its_waiter_gives_up_is_passed_on() -> None:
    admission = Admission(1)
    first = await admission.acquire("C1")
    unlucky = asyncio.create_task(admission.acquire("C2"))
    then = asyncio.create_task(admission.acquire("C3"))
    await asyncio.sleep(0)
    first.release()  # hands the turn to C2's waiter...
    unlucky.cancel()  # ...which is cancelled before it runs: C3 must get it
    with pytest.raises(asyncio.CancelledError):
        await unlucky
    (await asyncio.wait_for(then, 1)).release()
    assert (admission.active, admission.waiting) == (0, 0)


async def test_a_request_waiting_for_budget_gives_its_turn_to_another_channel(
    db: Database,
) -> None:
    """One turn in the process; C1 is out of budget for a minute, so its second request waits
    in the budget's queue. That must not stop C2's question from being answered now."""
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as server,
        OpenAIClient(base_url=server.base_url, api_key="k") as client,
    ):
        service = make_service(db, client, limits={"channel": {"rpm": 1}})
        service.admission = Admission(1)
        queued = asyncio.Event()

        async def answer(request: ChatRequest) -> str:
            async with service.admission.turn(request.channel) as turn:

                async def on_queued(_: object) -> None:
                    queued.set()

                return (await service.handle(request, on_queued=on_queued, turn=turn)).text

        await answer(ask("first in C1"))
        waiting = asyncio.create_task(answer(ask("second in C1")))
        await asyncio.wait_for(queued.wait(), 5)
        other = await asyncio.wait_for(answer(ask("meanwhile in C2", channel="C2")), 5)
        assert "meanwhile in C2" in other
        assert not waiting.done()
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
