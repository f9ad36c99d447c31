from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.app import cap_seed
from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy, Who
from bot.catalog import Catalog
from bot.errors import BudgetExceeded
from bot.store import Database, UsageRow, UsageStore
from bot.store.budgets import BudgetLimitStore


async def test_admins_limits_are_stored_validated_and_removed(db: Database) -> None:
    store = BudgetLimitStore(db)
    await store.set("channel:C1", "rpm", "30", by="admin")
    await store.set("user", "spend_day", "$2.50")
    await store.set("channel:C1", "rpm", "40")  # changed, not duplicated
    assert await store.all() == {
        "channel:C1": {"rpm": Decimal(40)},
        "user": {"spend_day": Decimal("2.50")},
    }
    await store.set("user", "spend_day", None)
    assert await store.all() == {"channel:C1": {"rpm": Decimal(40)}}

    for scope, kind, value, message in [
        ("chanel", "rpm", "3", "unknown scope"),
        ("channel:", "rpm", "3", "unknown scope"),
        ("channel", "rpn", "3", "unknown limit"),
        ("channel", "rpm", "lots", "not a number"),
        ("channel", "rpm", "2.5", "whole number"),
        ("channel", "rpm", "-1", "not a usable"),
        ("channel", "weight", "0", "not a usable"),
        ("channel", "rpm", "0", "at least 1 .or off to remove it."),  # 0 would read as none
        ("user", "tokens_day", "0", "at least 1"),
        ("user", "models", "gpt-4o", "per workspace or channel"),
        ("channel", "timezone", "Europe/Paris", "per workspace .* or per model, not per channel"),
        ("workspace", "timezone", "Paris", "not a time zone quotabot knows"),
        ("workspace", "timezone", "../../etc/passwd", "not a time zone quotabot knows"),
        ("workspace", "timezone", "a" * 5000, "not a time zone quotabot knows"),  # was OSError
    ]:
        with pytest.raises(ValueError, match=message):
            await store.set(scope, kind, value)


async def test_a_workspace_s_time_zone_is_kept_and_applies_to_its_caps(db: Database) -> None:
    store = BudgetLimitStore(db)
    await store.set("workspace:T1", "timezone", " Asia/Kolkata ", by="admin")
    await store.set("workspace:T1", "spend_week", "5")
    assert await store.all() == {
        "workspace:T1": {"timezone": "Asia/Kolkata", "spend_week": Decimal(5)}
    }
    budget = Budget(MemoryBackend(), Policy({}), overrides=store.all, refresh=0.0)
    assert await budget.zone("T1") == "Asia/Kolkata"
    assert await budget.zone("T2") == "UTC"
    (cap,) = budget.policy.ask(
        Who("slack", "T1", "C1", "U1"), Catalog.build().get("gpt-4o"), tokens=1, cost=None
    ).caps
    assert (cap[0].period, cap[0].zone) == ("week", "Asia/Kolkata")


async def test_a_run_time_limit_applies_without_a_restart(db: Database) -> None:
    store = BudgetLimitStore(db)
    model = Catalog.build().get("gpt-4o")
    budget = Budget(
        MemoryBackend(), Policy({"channel": {"rpd": 100}}), overrides=store.all, refresh=0.0
    )
    who = Who("slack", "T", "C1", "U")
    deadline = datetime.now(UTC).timestamp() + 1e9
    await budget.acquire(who, model, tokens=10, cost=None, deadline=deadline)
    await store.set("channel:C1", "rpd", "1")  # an admin, perhaps on another replica
    with pytest.raises(BudgetExceeded, match="requests per day: 1 of 1 request used"):
        await budget.acquire(who, model, tokens=10, cost=None, deadline=deadline)


async def test_daily_caps_survive_a_restart_of_an_in_process_budget(db: Database) -> None:
    """Without Redis the counters live in the process; what was spent today comes back from
    the usage rows, so restarting quotabot does not reset anyone's daily cap."""
    usage = UsageStore(db)
    now = datetime.now(UTC)
    for i, (user, cost) in enumerate([("U1", "0.40"), ("U1", "0.45"), ("U2", "0.90")]):
        await usage.record(
            UsageRow(
                call_id=f"c{i}",
                request_id=f"r{i}",
                created_at=now,
                platform="slack",
                workspace="T",
                channel="C",
                user=user,
                model="gpt-4o",
                endpoint="chat",
                prompt_tokens=100,
                completion_tokens=100,
                cost=Decimal(cost),
                outcome="ok",
            )
        )
    await usage.record(
        UsageRow(  # yesterday's spend does not count today
            call_id="old",
            request_id="old",
            created_at=now - timedelta(days=1),
            platform="slack",
            workspace="T",
            channel="C",
            user="U2",
            model="gpt-4o",
            endpoint="chat",
            prompt_tokens=1,
            completion_tokens=1,
            cost=Decimal("5"),
            outcome="ok",
        )
    )

    fresh = Budget(
        MemoryBackend(), Policy({"user": {"spend_day": Decimal("1.00")}}), seed=cap_seed(usage)
    )
    model = Catalog.build().get("gpt-4o")
    deadline = now.timestamp() + 1e9
    with pytest.raises(BudgetExceeded, match=r"\$0.85 of \$1.00 used"):
        await fresh.acquire(
            Who("slack", "T", "C", "U1"),
            model,
            tokens=20_000,
            cost=Decimal("0.20"),
            deadline=deadline,
        )
    await fresh.acquire(
        Who("slack", "T", "C", "U2"), model, tokens=10, cost=Decimal("0.05"), deadline=deadline
    )
