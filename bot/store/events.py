"""Exactly-once handling of chat events across platform retries and replicas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from bot.errors import StoreError
from bot.store.db import DB_ERRORS, Database
from bot.store.group import GroupWriter
from bot.store.schema import SeenEvent

KEEP = timedelta(days=2)
"""Slack retries for minutes and Discord tokens live 15 minutes: two days is plenty."""


class EventLog:
    """Claims are group-committed (see bot.store.group): every chat event makes one before
    anything else, so at a few hundred events a second a transaction each was the bottleneck."""

    PRUNE_EVERY = 1000
    """Claims between deletions of the ones older than ``KEEP``."""

    def __init__(self, db: Database):
        self.db = db
        self._claims = 0
        self._group = GroupWriter(self._claim, max_batch=1000)

    async def first(self, key: str) -> bool:
        """True for the first caller with ``key``, in any process sharing the database."""
        return await self._group.submit(key[:200])

    async def _claim(self, keys: list[str]) -> list[bool]:
        now = datetime.now(UTC)
        dialect = sqlite if self.db.dialect == "sqlite" else postgresql
        # One statement, compiled once and cached: with a list of rows SQLAlchemy sends them
        # as multi-row VALUES itself ("insertmanyvalues"). Building a VALUES clause of this
        # group's size instead compiled a new statement for every group (most of the CPU an
        # event cost at 300 events a second).
        table = SeenEvent.__table__
        stmt = (
            dialect.insert(table)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(table.c.key)
        )
        prune = self._claims // self.PRUNE_EVERY != (self._claims + len(keys)) // self.PRUNE_EVERY
        try:
            async with self.db.session() as s, s.begin():
                rows = [{"key": key, "created_at": now} for key in keys]
                new = set((await s.scalars(stmt, rows)).all())
                if prune:
                    await s.execute(delete(SeenEvent).where(SeenEvent.created_at < now - KEEP))
        except DB_ERRORS as exc:
            shown = ", ".join(keys[:3]) + ("..." if len(keys) > 3 else "")
            raise StoreError(f"Could not record events {shown}: {exc}") from exc
        self._claims += len(keys)
        out = []
        for key in keys:  # the same key twice in one group: only the first caller gets it
            out.append(key in new)
            new.discard(key)
        return out
