"""Usage rows: written once per provider call, read back as reports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from sqlalchemy import ColumnElement, String, delete, func, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from bot.errors import RowRejected, StoreError
from bot.store import rollups
from bot.store.db import DB_ERRORS, Database, describe, refused_data
from bot.store.group import GroupWriter
from bot.store.rows import UsageRow
from bot.store.schema import Money, RequestEvent, UsageRecord
from bot.store.spool import Spool

log = logging.getLogger(__name__)

GroupBy = Literal["channel", "model", "user", "day", "workspace", "platform", "provider"]
GROUPS: tuple[GroupBy, ...] = get_args(GroupBy)


@dataclass(frozen=True, slots=True)
class ReportLine:
    key: str
    calls: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    unpriced_calls: int
    """Calls whose model has no price: their cost is not in ``cost``."""
    audio_seconds: float = 0.0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class UsageStore:
    """Writes are group-committed: rows that arrive together share one transaction, so a
    burst of answers costs a few commits, not one each (and SQLite's single writer is not
    fought over by every request). Each caller still waits until its own row is committed."""

    MAX_BATCH = 500
    REPLAY_EVERY = 5.0
    """Seconds between attempts to move spooled rows to the database while it is away."""

    def __init__(
        self, db: Database, *, spool: Spool | None = None, quarantine: Spool | None = None
    ):
        """With ``spool``, rows the database cannot take are kept there (durably) and written
        when it is back, instead of failing their callers. With ``quarantine``, a row the
        database refuses for its data (a NUL byte, an over-long ID) is set aside there, with
        its reason, instead of failing its caller or holding up the rows around it."""
        self.db = db
        self.spool = spool
        self.quarantine = quarantine
        self.quarantined = 0
        """Rows set aside since start (``/metrics``)."""
        self._group = GroupWriter(self._write, max_batch=self.MAX_BATCH, split_on=RowRejected)
        self._replayer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Write what an earlier run left in the spool (in the background)."""
        if self.spool is not None and self.spool.path.exists():
            self._replay_soon(delay=0.0)

    async def aclose(self) -> None:
        """Stop replaying; whatever is left stays in the spool for the next start."""
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer

    async def record(self, row: UsageRow) -> bool:
        """Store ``row``; False if a row with its ``call_id`` is already there (a replay)."""
        return await self._group.submit(row)

    async def _write(self, rows: list[UsageRow]) -> list[bool]:
        rows = [_without_nul(row) for row in rows]
        if any(_too_long(row) for row in rows):
            # As PostgreSQL would refuse them, on SQLite too: each row on its own.
            if len(rows) > 1:
                raise RowRejected("a usage row has a value longer than its column")
            problem = _too_long(rows[0])
            return [await self._set_aside(rows[0], RowRejected(f"{problem} is too long"))]
        try:
            return await self._insert(rows)
        except RowRejected as exc:
            if len(rows) > 1:
                raise  # the group writer writes each row on its own
            return [await self._set_aside(rows[0], exc)]
        except StoreError as exc:
            if self.spool is None or not await self._spool(rows, exc):
                raise
            return [True] * len(rows)  # safe on disk; written when the database is back

    async def _set_aside(self, row: UsageRow, exc: RowRejected) -> bool:
        """A row the database will never take: into the quarantine file, with its reason;
        logged by its ids and figures only. Raises ``exc`` when there is no quarantine."""
        self.quarantined += 1
        log.error(
            "the database refused usage row %s (request %s, %s): set aside in %s",
            row.call_id[:64],
            row.request_id[:64],
            exc,
            self.quarantine.path if self.quarantine else "nowhere",
        )
        if self.quarantine is None:
            raise exc
        await self.quarantine.append([row], reason=str(exc))
        return True

    async def _write_each(self, rows: list[UsageRow]) -> None:
        """Rows from the spool whose group the database refused: each on its own, the refused
        ones set aside. Raises StoreError if the database is away again."""
        for row in rows:
            try:
                await self._insert([row])
            except RowRejected as exc:
                await self._set_aside(row, exc)

    async def _spool(self, rows: list[UsageRow], exc: StoreError) -> bool:
        assert self.spool is not None
        try:
            await self.spool.append(rows)
        except OSError as disk:
            log.error(
                "could not spool %d usage rows to %s either: %s", len(rows), self.spool.path, disk
            )
            return False
        log.warning(
            "the database did not take %d usage rows (%s): kept in %s until it is back",
            len(rows),
            exc,
            self.spool.path,
        )
        self._replay_soon(delay=self.REPLAY_EVERY)
        return True

    def _replay_soon(self, *, delay: float) -> None:
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.get_running_loop().create_task(self._replay(delay))

    async def _replay(self, delay: float) -> None:
        assert self.spool is not None
        while True:
            await asyncio.sleep(delay)
            delay = self.REPLAY_EVERY
            rows = await self.spool.take()
            if not rows:
                return
            try:
                for start in range(0, len(rows), self.MAX_BATCH):
                    chunk = rows[start : start + self.MAX_BATCH]
                    try:
                        await self._insert(chunk)
                    except RowRejected:
                        await self._write_each(chunk)
            except StoreError as exc:
                log.info("the database still does not take spooled usage rows: %s", exc)
                continue
            await self.spool.drop(len(rows))
            log.warning("wrote %d spooled usage rows to the database", len(rows))

    async def _insert(self, rows: list[UsageRow]) -> list[bool]:
        """One statement for the whole group: a round trip per row through aiosqlite's thread
        waits for a turn of a busy event loop each time (a 500-row burst took seconds). Given
        the rows as parameters, SQLAlchemy sends them as multi-row VALUES itself, from one
        cached compilation (a VALUES clause built per group was compiled anew each time)."""
        dialect = sqlite if self.db.dialect == "sqlite" else postgresql
        table = UsageRecord.__table__
        stmt = (
            dialect.insert(table)
            .on_conflict_do_nothing(index_elements=["call_id"])
            .returning(table.c.call_id)
        )
        try:
            async with self.db.session() as s, s.begin():
                new = set((await s.scalars(stmt, [asdict(row) for row in rows])).all())
                # (The database adds the new rows to the hourly rollups, in this transaction:
                # see the usage_rollup trigger of migration 0004.)
        except DB_ERRORS as exc:
            calls = ", ".join(r.call_id[:64] for r in rows[:3])
            error = RowRejected if refused_data(exc) else StoreError
            raise error(f"Could not record usage for calls {calls}...: {describe(exc)}") from exc
        out = []
        for row in rows:  # the same call twice in one group: only the first is new
            out.append(row.call_id in new)
            new.discard(row.call_id)
        return out

    async def rows(self, *, request_id: str | None = None) -> list[UsageRecord]:
        stmt = select(UsageRecord).order_by(UsageRecord.id)
        if request_id is not None:
            stmt = stmt.where(UsageRecord.request_id == request_id)
        async with self.db.session() as s:
            return list((await s.scalars(stmt)).all())

    async def report(
        self,
        *,
        by: GroupBy = "channel",
        since: datetime | None = None,
        until: datetime | None = None,
        where: tuple[tuple[str, str], ...] = (),
    ) -> list[ReportLine]:
        """Totals per group, most expensive first; sums are done in SQL, exactly. Read from
        the hourly rollups (raw rows only for hours that ``since``/``until`` split), so it
        stays fast as rows accumulate, and still counts rows pruned by the retention."""
        if by not in GROUPS:
            raise ValueError(f"cannot group usage by {by!r}; choose one of {', '.join(GROUPS)}")
        src = rollups.source(since or _BEGIN, until or _END, fine=True, where=where)
        key = self._key(by, src)
        stmt = select(
            key.label("key"),
            func.sum(src.c.calls),
            func.sum(src.c.failed),
            func.sum(src.c.prompt_tokens),
            func.sum(src.c.completion_tokens),
            type_coerce(func.sum(src.c.cost), Money()),
            func.sum(src.c.unpriced),
            func.sum(src.c.audio_seconds),
            func.sum(src.c.cached_tokens),
            func.sum(src.c.reasoning_tokens),
        ).group_by(key)
        try:
            async with self.db.session() as s:
                result = (await s.execute(stmt)).all()
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read usage: {describe(exc)}") from exc
        lines = [
            ReportLine(
                key=str(k),
                calls=int(calls),
                failed=int(failed),
                prompt_tokens=int(pt),
                completion_tokens=int(ct),
                cost=Decimal(cost) if cost is not None else Decimal(0),
                unpriced_calls=int(unpriced),
                audio_seconds=float(audio or 0),
                cached_tokens=int(cached or 0),
                reasoning_tokens=int(reasoning or 0),
            )
            for k, calls, failed, pt, ct, cost, unpriced, audio, cached, reasoning in result
        ]
        if by == "day":
            return sorted(lines, key=lambda line: line.key)
        return sorted(lines, key=lambda line: (-line.cost, -line.calls, line.key))

    async def total(
        self, *, unit: str, where: tuple[tuple[str, str], ...], since: datetime
    ) -> int | Decimal:
        """What the answered calls matching ``where`` since ``since`` add up to: requests,
        tokens, or USD. Rebuilds a budget cap's use after a restart. (Failed calls carry no
        tokens and no cost, so the rollups' sums are the answered calls'.)"""
        src = rollups.source(since, _END, fine=True, where=where)
        col: ColumnElement[Any]
        if unit == "requests":
            col = func.sum(src.c.requests)
        elif unit == "tokens":
            col = func.sum(src.c.prompt_tokens + src.c.completion_tokens)
        else:
            col = type_coerce(func.sum(src.c.cost), Money())
        try:
            async with self.db.session() as s:
                found: Any = (await s.execute(select(col))).scalar()
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read usage: {describe(exc)}") from exc
        if unit == "usd":
            return Decimal(found) if found is not None else Decimal(0)
        return int(found or 0)

    async def prune(self, before: datetime, *, batch: int = 10_000) -> int:
        """Delete raw usage rows (and request events) older than ``before``, in batches so
        that no transaction holds locks for long; the hourly rollups keep their figures.
        Returns the number of usage rows deleted."""
        deleted = 0
        for table in (UsageRecord, RequestEvent):
            while True:
                ids = select(table.id).where(table.created_at < before).limit(batch)
                try:
                    async with self.db.session() as s, s.begin():
                        n = (await s.execute(delete(table).where(table.id.in_(ids)))).rowcount  # type: ignore[attr-defined]
                except (
                    SQLAlchemyError,
                    OSError,
                    TimeoutError,
                ) as exc:  # OSError: refused connections
                    raise StoreError(f"Could not prune old usage rows: {describe(exc)}") from exc
                if table is UsageRecord:
                    deleted += n
                if n < batch:
                    break
        return deleted

    def _key(self, by: GroupBy, src: Any) -> ColumnElement[str]:
        if by == "day":
            if self.db.dialect == "sqlite":
                return func.strftime("%Y-%m-%d", src.c.ts)
            return func.to_char(func.timezone("UTC", src.c.ts), "YYYY-MM-DD")
        return src.c[by]  # type: ignore[no-any-return]


_WIDTHS: dict[str, int] = {
    c.key: c.type.length
    for c in UsageRecord.__table__.columns
    if isinstance(c.type, String) and c.type.length is not None
}
"""The usage table's string columns and their widths (PostgreSQL enforces them)."""


def _without_nul(row: UsageRow) -> UsageRow:
    """NUL bytes dropped from every text: PostgreSQL refuses them, SQLite would keep them."""
    changes: dict[str, Any] = {
        name: value.replace("\x00", "")
        for name, value in asdict(row).items()
        if isinstance(value, str) and "\x00" in value
    }
    return replace(row, **changes) if changes else row


def _too_long(row: UsageRow) -> str | None:
    """The first field longer than its column, or None."""
    for name, width in _WIDTHS.items():
        value = getattr(row, name, None)
        if isinstance(value, str) and len(value) > width:
            return f"{name} ({len(value):,} characters, at most {width})"
    return None


_BEGIN = datetime(1970, 1, 1, tzinfo=UTC)
_END = datetime(9999, 1, 1, tzinfo=UTC)
