"""Usage rows survive a database outage: spooled to local disk (fsynced) while PostgreSQL is
down, written exactly once when it is back, also by the next process after a restart. Runs a
throwaway PostgreSQL server of its own (initdb/pg_ctl), never the shared one."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.store import Database, UsageRow, UsageStore, migrate
from bot.store.spool import Spool
from tests.faults import pgserver


def row(call_id: str) -> UsageRow:
    return UsageRow(
        call_id=call_id,
        request_id=f"r-{call_id}",
        created_at=datetime.now(UTC),
        platform="slack",
        workspace="T1",
        channel="C1",
        user="U1",
        model="gpt-4o-mini",
        endpoint="chat",
        prompt_tokens=10,
        completion_tokens=5,
        cost=Decimal("0.0000045"),
        outcome="ok",
    )


async def test_the_spool_keeps_rows_across_a_torn_last_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    await spool.append([row("a"), row("b")])
    with spool.path.open("a") as f:
        f.write('{"call_id": "c", "trunc')  # a crash in the middle of a write
    assert [r.call_id for r in await spool.take()] == ["a", "b"]
    await spool.drop(1)
    assert [r.call_id for r in await spool.take()] == ["b"]
    got = (await spool.take())[0]
    assert got.cost == Decimal("0.0000045") and got.created_at.tzinfo is not None


@pytest.fixture
def postgres_server():  # type: ignore[no-untyped-def]
    if why := pgserver.available():
        pytest.skip(why)
    server = pgserver.PgServer()
    server.init()
    server.start()
    yield server
    with contextlib.suppress(Exception):  # the test may have stopped it
        server.stop("immediate")
    server.remove()


async def count(db: Database) -> list[str]:
    return sorted(r.call_id for r in await UsageStore(db).rows())


async def test_rows_written_while_the_database_is_down_arrive_once_when_it_is_back(
    postgres_server: pgserver.PgServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Database(postgres_server.url) as db:
        await migrate.upgrade(db)
        store = UsageStore(db, spool=Spool(tmp_path / "spool.jsonl"))
        store.REPLAY_EVERY = 0.2
        assert all(await asyncio.gather(*(store.record(row(f"up-{i}")) for i in range(3))))

        await asyncio.to_thread(postgres_server.stop)
        # The callers are told their rows are safe: they are, on disk.
        assert all(await asyncio.gather(*(store.record(row(f"down-{i}")) for i in range(4))))
        assert len(await store.spool.take()) == 4  # type: ignore[union-attr]
        assert "kept in" in caplog.text

        await asyncio.to_thread(postgres_server.start)
        for _ in range(100):
            if not await store.spool.take():  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.1)
        assert await count(db) == sorted(
            [f"up-{i}" for i in range(3)] + [f"down-{i}" for i in range(4)]
        )
        await store.aclose()


async def test_a_restart_writes_what_the_last_run_spooled_and_never_twice(
    postgres_server: pgserver.PgServer, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool.jsonl")
    async with Database(postgres_server.url) as db:
        await migrate.upgrade(db)
        await UsageStore(db).record(row("both"))  # it reached the database before the outage...
        await spool.append([row("both"), row("only-spooled")])  # ...and the spool as well

        store = UsageStore(db, spool=spool)  # the next process starts
        store.start()
        for _ in range(50):
            if not await spool.take():
                break
            await asyncio.sleep(0.1)
        assert await count(db) == ["both", "only-spooled"]
        await store.aclose()
