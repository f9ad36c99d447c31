"""Each daily, weekly and monthly cap counts its own scope's usage only: after requests by A,
B's first request is judged by B's usage alone, for every scope and cap kind, after a restart
(the in-process counters rebuilt from the usage store) and across two processes sharing Redis.

Drives the real service against the sandbox, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.app import cap_seed
from bot.budget.backend import BudgetBackend
from bot.budget.limits import window_start
from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import CAPS, Policy, Who, cap_label
from bot.catalog import Catalog
from bot.errors import BudgetExceeded
from bot.models import ChannelSettings, ChatRequest, Message
from bot.provider import OpenAIClient
from bot.service import Service
from bot.store import ChannelStore, Database, UsageStore

KINDS = CAPS
ZONE = "Asia/Kolkata"
"""Every workspace's: its caps count Kolkata's days, weeks and months (UTC+05:30)."""
PEERS: dict[str, tuple[Who, Who]] = {
    # scope: (A, B), two askers apart in that scope only
    "workspace": (Who("slack", "T1", "C1", "U1"), Who("slack", "T2", "C1", "U1")),
    "channel": (Who("slack", "T1", "C1", "U1"), Who("slack", "T1", "C2", "U1")),
    "user": (Who("slack", "T1", "C1", "U1"), Who("slack", "T1", "C1", "U2")),
}
DEFAULTS = ChannelSettings(
    model="gpt-4o-mini", system_prompt="", max_tokens=16, temperature=None, enabled=True
)
"""16 tokens: every sandbox answer runs to max_tokens, so one call uses what it reserved."""


def ask(who: Who, text: str) -> ChatRequest:
    return ChatRequest(
        platform=who.platform,
        workspace=who.workspace,
        channel=who.channel,
        user=who.user,
        messages=(Message("user", text),),
    )


async def used(usage: UsageStore, who: Who, scope: str, kind: str) -> Decimal | int:
    period, unit = CAPS[kind]
    since = window_start(period, datetime.now(UTC), ZONE)
    return await usage.total(unit=unit, where=who.where(scope, "gpt-4o-mini"), since=since)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scope", sorted(PEERS))
@pytest.mark.parametrize("shared", ["restart", "redis"])
async def test_a_cap_counts_only_its_own_scope(
    db: Database,
    provider: OpenAIClient,
    request: pytest.FixtureRequest,
    scope: str,
    kind: str,
    shared: str,
) -> None:
    usage = UsageStore(db)
    channels = ChannelStore(db, DEFAULTS)
    catalog = Catalog.build()
    limits: dict[str, dict[str, object]] = {scope: {kind: 10**6}}
    limits.setdefault("workspace", {})["timezone"] = ZONE
    new_backend: Callable[[], BudgetBackend]
    if shared == "redis":
        from bot.budget.redis import RedisBackend

        url, prefix = request.getfixturevalue("redis_url"), f"qbtest:{uuid.uuid4().hex[:8]}"

        def new_backend() -> BudgetBackend:
            return RedisBackend(url, prefix=prefix)
    else:
        new_backend = MemoryBackend

    def process() -> Service:
        """A quotabot process: its own budget counters, the shared store (and Redis)."""
        backend = new_backend()
        seed = cap_seed(usage) if isinstance(backend, MemoryBackend) else None
        budget = Budget(backend, Policy(limits), seed=seed)  # type: ignore[arg-type]
        return Service(
            provider=provider, catalog=catalog, usage=usage, channels=channels, budget=budget
        )

    a, b = PEERS[scope]
    first = process()
    await first.budget.backend.start()
    for text in ("one", "two"):
        await first.handle(ask(a, text))
    # A's two calls fill the cap exactly; one more call of A's would go over, B's fits.
    limits[scope][kind] = await used(usage, a, scope, kind)
    assert limits[scope][kind]

    second = process()  # after a restart, or another replica on the same Redis
    await second.budget.backend.start()
    try:
        model = catalog.get("gpt-4o-mini")
        caps = [s for s in await second.budget.status(b, model) if s.resets_at is not None]
        (standing,) = [s for s in caps if _kind(s.label) == kind]
        assert standing.used == 0, f"B has sent nothing, yet /budget shows {standing.used} used"
        with pytest.raises(BudgetExceeded):
            await second.handle(ask(a, "three"))
        reply = await second.handle(ask(b, "first"))
        assert reply.text
    finally:
        for process_ in (first, second):
            await process_.budget.aclose()
            await process_.budget.backend.aclose()
        if shared == "redis":
            cleanup = new_backend()
            await cleanup.delete_all()  # type: ignore[attr-defined]
            await cleanup.aclose()


def _kind(label: str) -> str:
    """The cap kind a /budget line speaks of ("this user's tokens per day" -> tokens_day)."""
    (kind,) = [k for k in CAPS if label.endswith(cap_label(k))]
    return kind
