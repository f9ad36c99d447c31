"""Offers of more budget kept for buttons that carry only an id: on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot import messages
from bot.budget.limits import window_end
from bot.store.db import Database
from bot.store.grants import AlreadyDecided, BudgetRequests


def cap(expires_at: datetime) -> dict[str, Any]:
    return {
        "platform": "discord",
        "workspace": "G1",
        "channel": "C1",
        "user": "U1",
        "cap_key": "ch:discord:G1:C1:rpd",
        "label": "this channel's requests per day",
        "unit": "requests",
        "expires_at": expires_at,
    }


async def test_an_offer_is_kept_grants_nothing_and_lapses(db: Database) -> None:
    requests = BudgetRequests(db)
    soon = datetime.now(UTC) + timedelta(hours=1)
    past = await requests.offer(**cap(datetime.now(UTC) - timedelta(seconds=1)))
    offer_id = await requests.offer(**cap(soon))
    kept = await requests.get(offer_id)
    assert kept is not None and (kept.status, kept.requested_by, kept.expires_at) == (
        "offered",
        "U1",
        soon,
    )
    again = await requests.get(past)  # dropped once its window was over (SQLite reuses ids)
    assert again is None or again.id == offer_id
    with pytest.raises(AlreadyDecided):  # an offer is no request: nobody can grant it
        await requests.decide(offer_id, grant=True, by="UADMIN")
    assert await requests.in_force() == {} and await requests.active("discord", "G1") == []

    asked = await requests.ask(**cap(soon), amount=Decimal(2), reason="a demo")
    await requests.decide(asked.id, grant=True, by="UADMIN")
    assert await requests.in_force() == {"ch:discord:G1:C1:rpd": Decimal(2)}


async def test_a_request_says_when_it_lapses_in_its_cap_s_zone(db: Database) -> None:
    requests = BudgetRequests(db)
    kolkata = ZoneInfo("Asia/Kolkata")
    ends = window_end("week", datetime.now(UTC), "Asia/Kolkata")
    asked = await requests.ask(**cap(ends), amount=Decimal(1), reason="a deadline")
    await requests.decide(asked.id, grant=True, by="UADMIN")
    (kept,) = await requests.active("discord", "G1")
    assert kept.expires_at == ends and kept.expires_at.tzinfo == kolkata
    assert f"until 00:00 Asia/Kolkata on {ends:%b %d}" in messages.grant_line(kept)
