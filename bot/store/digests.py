"""Digest settings per workspace, claims that make a send happen once, and request events.

A claim is a row keyed by what is to be sent (``digest:slack:T1:2026-11-24``). The first
process to insert it sends; the others see it and stop. Its ``done_at`` is set after the
send. A claim without ``done_at`` whose lease has run out belongs to a sender that died
between claiming and sending: exactly one process can take it over (a conditional UPDATE),
and retries it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.config.tables import zone_name
from bot.errors import StoreError
from bot.store.db import DB_ERRORS, Database, describe
from bot.store.group import GroupWriter
from bot.store.schema import Claim, DigestReport, DigestSetting, RequestEvent

DEFAULT_AT = "09:00"
DEFAULT_TZ = "UTC"


def process_name() -> str:
    """Who holds a claim, for the logs and for an operator reading the table."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


@dataclass(frozen=True, slots=True)
class DigestConfig:
    platform: str
    workspace: str
    channel: str
    at: str = DEFAULT_AT
    tz: str = DEFAULT_TZ
    enabled: bool = True

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def hour(self) -> int:
        return int(self.at[:2])

    @property
    def minute(self) -> int:
        return int(self.at[3:])


def parse_time(value: str) -> str:
    """``9:30`` or ``09:30`` -> ``09:30``; raises ValueError with a message for the admin."""
    hours, sep, minutes = value.strip().partition(":")
    if sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2:
        h, m = int(hours), int(minutes)
        if 0 <= h < 24 and 0 <= m < 60:
            return f"{h:02d}:{m:02d}"
    raise ValueError(f"{value!r} is not a time of day: write it as HH:MM, e.g. 09:00 or 17:30.")


def parse_zone(value: str) -> str:
    """An IANA zone name (``Europe/Berlin``, ``UTC``); raises ValueError with a message."""
    return zone_name(value)


class DigestSettingsStore:
    def __init__(self, db: Database):
        self.db = db

    async def get(self, platform: str, workspace: str) -> DigestConfig | None:
        try:
            async with self.db.session() as s:
                row = await s.get(DigestSetting, (platform, workspace))
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read the digest settings: {describe(exc)}") from exc
        return _config(row) if row else None

    async def all(self) -> list[DigestConfig]:
        try:
            async with self.db.session() as s:
                rows = (await s.scalars(select(DigestSetting))).all()
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read the digest settings: {describe(exc)}") from exc
        return [_config(r) for r in rows]

    async def set(
        self,
        platform: str,
        workspace: str,
        *,
        channel: str | None = None,
        at: str | None = None,
        tz: str | None = None,
        enabled: bool | None = None,
        by: str | None = None,
    ) -> DigestConfig:
        """Change what is given; the rest keeps its value (or the default, for a new row).
        Raises ValueError for a bad time or zone, and when a new row would have no channel."""
        at = parse_time(at) if at is not None else None
        tz = parse_zone(tz) if tz is not None else None
        try:
            async with self.db.session() as s, s.begin():
                row = await s.get(DigestSetting, (platform, workspace))
                if row is None:
                    if channel is None:
                        raise ValueError(
                            "No digest channel is set here yet: `/digest set <channel> <HH:MM> "
                            "<time zone>` first."
                        )
                    row = DigestSetting(
                        platform=platform,
                        workspace=workspace,
                        channel=channel,
                        at=DEFAULT_AT,
                        tz=DEFAULT_TZ,
                        enabled=True,
                    )
                    s.add(row)
                for name, value in (
                    ("channel", channel),
                    ("at", at),
                    ("tz", tz),
                    ("enabled", enabled),
                ):
                    if value is not None:
                        setattr(row, name, value)
                row.updated_by = by
                row.updated_at = datetime.now(UTC)
                await s.flush()
                return _config(row)
        except DB_ERRORS as exc:
            raise StoreError(f"Could not store the digest settings: {describe(exc)}") from exc


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """When a weekly or monthly report goes out (to the workspace's digest channel)."""

    platform: str
    workspace: str
    period: str
    """``week`` or ``month``."""
    weekday: int = 0
    at: str = DEFAULT_AT
    tz: str = DEFAULT_TZ
    enabled: bool = True

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def hour(self) -> int:
        return int(self.at[:2])

    @property
    def minute(self) -> int:
        return int(self.at[3:])

    def when(self) -> str:
        day = (
            f"every {WEEKDAYS[self.weekday].capitalize()}"
            if self.period == "week"
            else ("on the 1st of every month")
        )
        return f"{day} at {self.at} {self.tz}"


def parse_weekday(value: str) -> int:
    """``monday`` (or ``mon``) -> 0; raises ValueError with a message for the admin."""
    name = value.strip().lower()
    for n, day in enumerate(WEEKDAYS):
        if len(name) >= 3 and day.startswith(name):
            return n
    raise ValueError(f"{value!r} is not a day of the week: write monday, tuesday... sunday.")


class ReportSettingsStore:
    def __init__(self, db: Database):
        self.db = db

    async def get(self, platform: str, workspace: str, period: str) -> ReportConfig | None:
        try:
            async with self.db.session() as s:
                row = await s.get(DigestReport, (platform, workspace, period))
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read the report settings: {describe(exc)}") from exc
        return _report(row) if row else None

    async def all(self) -> list[ReportConfig]:
        try:
            async with self.db.session() as s:
                rows = (await s.scalars(select(DigestReport))).all()
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read the report settings: {describe(exc)}") from exc
        return [_report(r) for r in rows]

    async def set(
        self,
        platform: str,
        workspace: str,
        period: str,
        *,
        weekday: int | None = None,
        at: str | None = None,
        tz: str | None = None,
        enabled: bool | None = None,
        by: str | None = None,
    ) -> ReportConfig:
        if period not in ("week", "month"):
            raise ValueError(f"a report is weekly or monthly, not {period!r}")
        at = parse_time(at) if at is not None else None
        tz = parse_zone(tz) if tz is not None else None
        try:
            async with self.db.session() as s, s.begin():
                row = await s.get(DigestReport, (platform, workspace, period))
                if row is None:
                    row = DigestReport(
                        platform=platform,
                        workspace=workspace,
                        period=period,
                        weekday=0,
                        at=DEFAULT_AT,
                        tz=DEFAULT_TZ,
                        enabled=True,
                    )
                    s.add(row)
                for name, value in (
                    ("weekday", weekday),
                    ("at", at),
                    ("tz", tz),
                    ("enabled", enabled),
                ):
                    if value is not None:
                        setattr(row, name, value)
                row.updated_by = by
                row.updated_at = datetime.now(UTC)
                await s.flush()
                return _report(row)
        except DB_ERRORS as exc:
            raise StoreError(f"Could not store the report settings: {describe(exc)}") from exc


def _report(row: DigestReport) -> ReportConfig:
    return ReportConfig(
        row.platform, row.workspace, row.period, row.weekday, row.at, row.tz, row.enabled
    )


def _config(row: DigestSetting) -> DigestConfig:
    return DigestConfig(row.platform, row.workspace, row.channel, row.at, row.tz, row.enabled)


class Claims:
    """Exactly-once sends across replicas and restarts (see the module docstring)."""

    def __init__(self, db: Database, *, owner: str | None = None):
        self.db = db
        self.owner = owner or process_name()

    async def claim(self, key: str, *, lease: timedelta) -> int:
        """Nonzero if this process is now the one to send ``key``: 1 when it was unclaimed,
        the attempt's number when it takes over a claim not done and older than ``lease``
        (its sender died, perhaps after sending: the caller should look before sending)."""
        now = datetime.now(UTC)
        dialect = sqlite if self.db.dialect == "sqlite" else postgresql
        insert = (
            dialect.insert(Claim)
            .values(key=key, claimed_by=self.owner, claimed_at=now, attempts=1)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        take_over = (
            update(Claim)
            .where(Claim.key == key, Claim.done_at.is_(None), Claim.claimed_at < now - lease)
            .values(claimed_by=self.owner, claimed_at=now, attempts=Claim.attempts + 1)
            .returning(Claim.attempts)
        )
        try:
            async with self.db.session() as s, s.begin():
                if (await s.execute(insert)).rowcount:  # type: ignore[attr-defined]
                    return 1
                return int((await s.execute(take_over)).scalar() or 0)
        except DB_ERRORS as exc:
            raise StoreError(f"Could not claim {key}: {describe(exc)}") from exc

    async def done(self, key: str, result: str) -> None:
        await self._update(key, done_at=datetime.now(UTC), result=result[:250])

    async def release(self, key: str) -> None:
        """Give a claim back after a failed send, so that the next attempt may take it."""
        try:
            async with self.db.session() as s, s.begin():
                await s.execute(
                    delete(Claim).where(
                        Claim.key == key, Claim.claimed_by == self.owner, Claim.done_at.is_(None)
                    )
                )
        except DB_ERRORS as exc:
            raise StoreError(f"Could not release {key}: {describe(exc)}") from exc

    async def get(self, key: str) -> Claim | None:
        try:
            async with self.db.session() as s:
                return await s.get(Claim, key)
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read claim {key}: {describe(exc)}") from exc

    async def stale(self, prefix: str, *, lease: timedelta) -> list[str]:
        """Keys under ``prefix`` claimed more than ``lease`` ago and never done."""
        cutoff = datetime.now(UTC) - lease
        stmt = select(Claim.key).where(
            Claim.key.startswith(prefix, autoescape=True),
            Claim.done_at.is_(None),
            Claim.claimed_at < cutoff,
        )
        try:
            async with self.db.session() as s:
                return list((await s.scalars(stmt)).all())
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read claims: {describe(exc)}") from exc

    async def _update(self, key: str, **values: object) -> None:
        try:
            async with self.db.session() as s, s.begin():
                await s.execute(update(Claim).where(Claim.key == key).values(**values))
        except DB_ERRORS as exc:
            raise StoreError(f"Could not update claim {key}: {describe(exc)}") from exc


class RequestEvents:
    """Counts what usage rows cannot show: requests that waited, requests refused by a cap
    before any provider call, and requests another model answered instead."""

    def __init__(self, db: Database):
        self.db = db
        # Group commit, as for usage rows: a burst queues hundreds of requests at once, and a
        # transaction each fought the usage writes for SQLite's one writer (answers took
        # seconds longer in bench.budgets).
        self._group = GroupWriter(self._write, max_batch=1000)

    async def note(
        self,
        *,
        platform: str,
        workspace: str,
        channel: str,
        user: str,
        model: str,
        kind: str,
        at: datetime | None = None,
    ) -> None:
        values: dict[str, object] = {
            "created_at": at or datetime.now(UTC),
            "platform": platform,
            "workspace": workspace,
            "channel": channel,
            "user": user,
            "model": model,
            "kind": kind,
        }
        await self._group.submit(values)

    async def _write(self, group: list[dict[str, object]]) -> list[None]:
        try:
            async with self.db.session() as s, s.begin():
                await s.execute(insert(RequestEvent), group)
        except DB_ERRORS as exc:
            error = f"Could not record {len(group)} queued/refused requests: {exc}"
            raise StoreError(error) from exc
        return [None] * len(group)
