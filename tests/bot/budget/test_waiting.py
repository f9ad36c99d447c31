"""Where one person's questions wait: what a Home page says of their place in line."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy, Who
from bot.catalog import Catalog, ModelOverride


async def test_each_person_is_told_their_own_places_in_line_and_nobody_elses() -> None:
    catalog = Catalog.build(overrides={"slow": ModelOverride(rpm=60, input_price=Decimal(0))})
    m = catalog.get("slow")
    budget = Budget(MemoryBackend(), Policy({}))
    rpm, *_ = budget.policy.model_rates(m)
    await budget.backend.adjust([(rpm, 60)], [])  # the bucket empty: every request queues
    asks = [
        asyncio.create_task(
            budget.acquire(
                Who("slack", "T1", "C1", user),
                m,
                tokens=1,
                cost=None,
                deadline=time.monotonic() + 30,
            )
        )
        for user in ("U1", "U2", "U1")
    ]
    while budget.queued(m.name) < 3:  # noqa: ASYNC110  # the three lining up
        await asyncio.sleep(0.001)

    assert budget.waiting("slack", "T1", "U1") == [("slow", 1), ("slow", 3)]
    assert budget.waiting("slack", "T1", "U2") == [("slow", 2)]
    assert budget.waiting("slack", "T2", "U1") == []  # the same ID in another workspace

    for task in asks:
        task.cancel()
    await asyncio.gather(*asks, return_exceptions=True)
    assert budget.waiting("slack", "T1", "U1") == []
    await budget.aclose()
