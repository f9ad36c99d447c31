"""Exactly-once handling of chat events across platform retries and replicas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from bot.errors import StoreError
from bot.store.db import DB_ERRORS, Database
from bot.store.schema import SeenEvent

KEEP = timedelta(days=2)
"""Slack retries for minutes and Discord tokens live 15 minutes: two days is plenty."""


class EventLog:
    def __init__(self, db: Database):
        self.db = db
        self._claims = 0

    async def first(self, key: str) -> bool:
        """True for the first caller with ``key``, in any process sharing the database."""
        now = datetime.now(UTC)
        dialect = sqlite if self.db.dialect == "sqlite" else postgresql
        stmt = (
            dialect.insert(SeenEvent)
            .values(key=key[:200], created_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        try:
            async with self.db.session() as s, s.begin():
                result = await s.execute(stmt)
                self._claims += 1
                if self._claims % 1000 == 0:
                    await s.execute(delete(SeenEvent).where(SeenEvent.created_at < now - KEEP))
        except DB_ERRORS as exc:
            raise StoreError(f"Could not record event {key}: {exc}") from exc
        return bool(result.rowcount)  # type: ignore[attr-defined]
