from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from bot.errors import StoreError
from bot.models import ChannelSettings
from bot.store import ChannelStore, Database

DEFAULTS = ChannelSettings(
    model="gpt-3.5-turbo", system_prompt="Be brief.", max_tokens=256, temperature=None, enabled=True
)


async def test_channels_start_from_the_defaults_and_keep_their_own(db: Database) -> None:
    store = ChannelStore(db, DEFAULTS)
    assert await store.get("slack", "T1", "C1") == DEFAULTS

    changed = await store.set("slack", "T1", "C1", model="gpt-4o", system_prompt="Pirate voice.")
    assert changed.model == "gpt-4o"
    assert changed.system_prompt == "Pirate voice."
    assert changed.max_tokens == 256  # untouched fields keep the default

    # Other channels, workspaces and platforms are unaffected.
    assert await store.get("slack", "T1", "C2") == DEFAULTS
    assert await store.get("discord", "T1", "C1") == DEFAULTS

    await store.set("slack", "T1", "C1", enabled=False, temperature=0.2)
    got = await store.get("slack", "T1", "C1")
    assert (got.enabled, got.temperature, got.model) == (False, 0.2, "gpt-4o")

    reset = await store.set("slack", "T1", "C1", model=None)
    assert reset.model == "gpt-3.5-turbo"
    assert reset.enabled is False


async def test_a_burst_of_requests_reads_a_channel_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ChannelStore(db, DEFAULTS)
    await store.set("slack", "T1", "C1", model="gpt-4o")
    store._cache.clear()
    reads = 0
    read = store._read

    async def counted(*args: str) -> ChannelSettings:
        nonlocal reads
        reads += 1
        return await read(*args)

    monkeypatch.setattr(store, "_read", counted)
    got = await asyncio.gather(*(store.get("slack", "T1", "C1") for _ in range(200)))
    assert {g.model for g in got} == {"gpt-4o"}
    assert reads == 1


async def test_while_the_database_is_down_a_channel_keeps_its_last_known_settings(
    db: Database,
) -> None:
    """Found by the PostgreSQL fault test: once the cache expired during an outage, every
    message was dropped unanswered. A channel read before keeps its settings; one never read
    still raises (nothing to go on)."""
    store = ChannelStore(db, DEFAULTS, ttl=0.0)  # every get reads the database
    await store.set("slack", "T1", "C1", model="gpt-4o", enabled=True)
    async with db.session() as s, s.begin():  # the table is gone: every read fails
        await s.execute(text("DROP TABLE channel_settings"))
    got = await asyncio.gather(*(store.get("slack", "T1", "C1") for _ in range(3)))
    assert {g.model for g in got} == {"gpt-4o"}
    with pytest.raises(StoreError):
        await store.get("slack", "T1", "C2")
