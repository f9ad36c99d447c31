"""One row the database refuses never costs the rows written with it: a refused group is
written again row by row, the refused row is set aside (quarantined with its reason, counted,
logged without its text), the same way on SQLite and PostgreSQL; the spool never retries it
forever; claims written with a bad one are each still won exactly once."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from bot import logs
from bot.store import Database, UsageRow, UsageStore
from bot.store.events import EventLog
from bot.store.spool import Spool
from tests.bot.store.test_spool import row as spooled

SECRET_TEXT = "my password is hunter2"


@contextmanager
def quiet_payload_loggers() -> Iterator[None]:
    """As every quotabot process logs (bot.logs.configure), restored afterwards."""
    before = {name: logging.getLogger(name).level for name in logs.PAYLOAD_LOGGERS}
    logs.quiet_payload_loggers()
    try:
        yield
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def row(call_id: str, **kw: object) -> UsageRow:
    """The spool tests' row, with message text stored (it must never reach a log)."""
    return replace(spooled(call_id), **{"prompt_text": SECRET_TEXT, **kw})  # type: ignore[arg-type]


BAD = {
    # the database refuses it (numeric overflow on PostgreSQL, integer overflow on SQLite)
    "overflow": {"cost": Decimal("10") ** 12},
    # refused on PostgreSQL, kept on SQLite: set aside on both, before the database is asked
    "too long": {"user": "U" * 500},
}


async def stored(db: Database) -> list[str]:
    return sorted(r.call_id for r in await UsageStore(db).rows())


@pytest.mark.parametrize("poison", sorted(BAD))
async def test_a_refused_row_is_set_aside_and_its_group_is_written(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture, poison: str
) -> None:
    quarantine = Spool(tmp_path / "usage-quarantine.jsonl")
    store = UsageStore(db, spool=Spool(tmp_path / "usage-spool.jsonl"), quarantine=quarantine)
    rows = [row(f"ok-{n}") for n in range(20)]
    rows.insert(7, row("bad", **BAD[poison]))
    with quiet_payload_loggers(), caplog.at_level(logging.DEBUG):  # serve --verbose's most
        results = await asyncio.gather(*(store.record(r) for r in rows))  # one group

    assert all(results)  # every caller is told its row is safe: stored, or set aside
    assert await stored(db) == sorted(f"ok-{n}" for n in range(20))
    (kept,) = (tmp_path / "usage-quarantine.jsonl").read_text().splitlines()
    assert json.loads(kept)["call_id"] == "bad" and json.loads(kept)["reason"]
    assert store.quarantined == 1
    assert not (tmp_path / "usage-spool.jsonl").exists()  # nothing left to retry
    assert "refused usage row bad" in caplog.text  # the log says so...
    leaks = [
        (r.name, r.getMessage()[:200]) for r in caplog.records if SECRET_TEXT in r.getMessage()
    ]
    assert leaks == []  # ...not what it said
    assert all(SECRET_TEXT not in (r.exc_text or "") for r in caplog.records)


async def test_nul_bytes_are_dropped_the_same_way_on_every_database(db: Database) -> None:
    store = UsageStore(db)
    assert await store.record(row("nul", channel="C\x001", prompt_text="a\x00b"))
    (got,) = await store.rows()
    assert (got.channel, got.prompt_text) == ("C1", "ab")


async def test_the_spool_sets_a_refused_row_aside_instead_of_retrying_it_forever(
    db: Database, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "usage-spool.jsonl")
    # Left by an outage: the refused row first, innocent rows after it.
    await spool.append([row("bad", **BAD["overflow"]), row("a"), row("b")])
    store = UsageStore(db, spool=spool, quarantine=Spool(tmp_path / "q.jsonl"))
    store.start()
    for _ in range(100):
        if not spool.path.exists():
            break
        await asyncio.sleep(0.05)
    await store.aclose()
    assert await stored(db) == ["a", "b"]
    assert not spool.path.exists() and store.quarantined == 1


async def test_a_refused_claim_does_not_cost_the_others_their_only_answer(db: Database) -> None:
    log = EventLog(db)
    keys = [f"slack:T1:C1:{n}" for n in range(30)] + ["slack:T1:C1:\x00bad", "x" * 5_000]
    first = await asyncio.gather(*(log.first(k, {"event": k}) for k in keys))
    again = await asyncio.gather(*(log.first(k, {"event": k}) for k in keys))
    assert all(first)  # each claimed once...
    assert not any(again)  # ...and never again (a retry, another replica)
