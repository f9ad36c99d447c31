"""👍 and 👎 on answers: one rating per person and answer (a changed mind replaces it), counted
per workspace and day for the digest.

    a finished answer carries its request id -> rate(answer, user, +1 | -1) -> the digest
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from bot.errors import StoreError
from bot.store.db import DB_ERRORS, Database, describe
from bot.store.schema import AnswerFeedback

UP, DOWN = 1, -1


class Feedback:
    def __init__(self, db: Database):
        self.db = db

    async def rate(
        self,
        *,
        answer: str,
        platform: str,
        workspace: str,
        channel: str,
        user: str,
        rating: int,
    ) -> None:
        """Keep ``user``'s rating of ``answer`` (a request id), replacing an earlier one."""
        if rating not in (UP, DOWN):
            raise ValueError(f"a rating is {UP} or {DOWN}, not {rating!r}")
        dialect = sqlite if self.db.dialect == "sqlite" else postgresql
        now = datetime.now(UTC)
        upsert = dialect.insert(AnswerFeedback).values(
            answer=answer,
            user=user,
            platform=platform,
            workspace=workspace,
            channel=channel,
            rating=rating,
            rated_at=now,
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=["answer", "user"], set_={"rating": rating, "rated_at": now}
        )
        try:
            async with self.db.session() as s, s.begin():
                await s.execute(upsert)
        except DB_ERRORS as exc:
            raise StoreError(f"Could not keep the rating: {describe(exc)}") from exc

    async def counts(
        self, platform: str, workspace: str, start: datetime, end: datetime
    ) -> tuple[int, int]:
        """(👍, 👎) given in ``workspace`` in [start, end)."""
        query = (
            select(AnswerFeedback.rating, func.count())
            .where(
                AnswerFeedback.platform == platform,
                AnswerFeedback.workspace == workspace,
                AnswerFeedback.rated_at >= start,
                AnswerFeedback.rated_at < end,
            )
            .group_by(AnswerFeedback.rating)
        )
        try:
            async with self.db.session() as s:
                got = dict((await s.execute(query)).all())
        except DB_ERRORS as exc:
            raise StoreError(f"Could not count ratings: {describe(exc)}") from exc
        return int(got.get(UP, 0)), int(got.get(DOWN, 0))
