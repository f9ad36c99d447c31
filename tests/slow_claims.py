"""A database slow to write chat events' claims: shows what an acknowledgement waits for."""

from __future__ import annotations

import asyncio

import pytest

from bot.store.events import EventLog
from bot.store.group import GroupWriter


def slow_claims(events: EventLog, seconds: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every group of ``events``' claims takes ``seconds`` longer to be written."""
    claim = events._claim

    async def slow(items: list[tuple[str, str | None]]) -> list[bool]:
        await asyncio.sleep(seconds)
        return await claim(items)

    monkeypatch.setattr(events, "_group", GroupWriter(slow, max_batch=1000))
