"""Exactly-once handling of chat events across platform retries, replicas and crashes.

Each event is claimed once, by whichever process sees it first. A claim may also keep the event
itself and a lease, which its process renews while it works on the event: an event whose
process was killed (kill -9, out of memory, a lost node) is acknowledged to the platform, which
will not send it again, so a live process takes it over once the lease has run out
(``bot.takeover``) and answers it instead.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from bot.errors import RowRejected, StoreError
from bot.store.db import DB_ERRORS, Database, describe, refused_data
from bot.store.group import GroupWriter
from bot.store.journal import Journal
from bot.store.schema import SeenEvent

log = logging.getLogger(__name__)

KEEP = timedelta(days=2)
"""Slack retries for minutes and Discord tokens live 15 minutes: two days is plenty."""
MAX_TAKEOVERS = 3
"""An event whose processes died this often is given up: it may be what kills them."""
_CHUNK = 500
"""Keys per statement (SQLite allows 32,766 parameters)."""

_table = cast("Table", SeenEvent.__table__)


@dataclass(frozen=True, slots=True)
class Orphan:
    """An event whose process died before it was done, now this process's to answer."""

    key: str
    payload: dict[str, Any]
    attempts: int
    """Times it has been taken over, this time included."""


class EventLog:
    """Claims are group-committed (see bot.store.group): every chat event makes one before
    anything else, so at a few hundred events a second a transaction each was the bottleneck.

    ``lease`` is how long a claim with a payload stays this process's without being renewed
    (``renew``); 0 keeps no payloads, and nothing is ever taken over. ``ack_wait``: see
    ``bot.takeover.claimed``.
    """

    PRUNE_EVERY = 1000
    """Claims between deletions of the ones older than ``KEEP``."""

    def __init__(
        self,
        db: Database,
        *,
        lease: float = 30.0,
        ack_wait: float = 0.0,
        journal: Journal | None = None,
        owner: str | None = None,
    ):
        self.db = db
        self.lease = timedelta(seconds=lease)
        self.ack_wait = ack_wait
        """Seconds an acknowledgement waits for a claim to be written (``bot.takeover``)."""
        self.journal = journal if self.takes_over else None
        self.owner = owner or uuid.uuid4().hex
        self._claims = 0
        # A claim the database refuses must not fail the claims written with it (each of those
        # events would then be answered without one): the group is retried row by row.
        self._group = GroupWriter(self._claim, max_batch=1000, split_on=RowRejected)
        self._done = GroupWriter(self._finish, max_batch=1000)
        self._open: set[str] = set()
        """Claims of this process with a lease, not done yet: renewed."""
        self._unwritten: set[str] = set()
        """Done, but the database could not be told yet: retried at each ``renew``."""

    @property
    def takes_over(self) -> bool:
        return self.lease > timedelta(0)

    def hold(self, key: str, payload: dict[str, Any]) -> None:
        """Before acknowledging an event that ``first`` is about to claim: keep it in the local
        journal (if any) until the claim is written, for a restart after a crash to find."""
        if self.journal is not None:
            self.journal.hold(storable(key), payload)

    async def first(self, key: str, payload: Mapping[str, Any] | None = None) -> bool:
        """True for the first caller with ``key``, in any process sharing the database.

        With a ``payload`` (and a lease), the event is kept until ``done(key)``: if this
        process dies first, another one gets the payload from ``orphans``.
        """
        key = storable(key)
        kept = json.dumps(payload) if payload is not None and self.takes_over else None
        try:
            won = await self._group.submit((key, kept))
        finally:
            if self.journal is not None:
                self.journal.release(key)
        if won and kept is not None:
            self._open.add(key)
        return won

    async def present(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` some process has claimed (marks, such as a stopped answer's)."""
        wanted = {storable(k): k for k in keys}
        found: set[str] = set()
        try:
            async with self.db.session() as s:
                for chunk in _chunks(wanted):
                    query = select(_table.c.key).where(_table.c.key.in_(chunk))
                    found.update(wanted[k] for k in await s.scalars(query))
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read events: {describe(exc)}") from exc
        return found

    async def recover(self, prefixes: Sequence[str]) -> list[Orphan]:
        """Events a process that died on this data directory acknowledged but never claimed
        (its journal): claimed now, by this process, to be answered like ``orphans``."""
        if self.journal is None:
            return []
        taken = []
        for path, events in self.journal.left():
            try:
                for key, payload in events:
                    if not key.startswith(tuple(prefixes)):
                        log.warning("event %s left in %s: not served here, dropped", key, path)
                    elif await self.first(key, payload):  # else: claimed before the crash
                        taken.append(Orphan(key, payload, 0))
            except StoreError as exc:
                # Those claimed so far are answered; the file is read again next time.
                log.warning("could not claim the events left in %s yet: %s", path, exc)
                self.journal.drop(path, done=False)
                break
            self.journal.drop(path)
        return taken

    async def done(self, key: str) -> None:
        """The event needs nothing more: nobody is to take it over. Never raises: a write
        that fails is retried by ``renew``."""
        key = storable(key)
        if key not in self._open:
            return
        self._open.discard(key)
        self._unwritten.add(key)
        try:
            await self._done.submit(key)
        except StoreError as exc:
            log.warning("could not mark event %s done (will retry): %s", key, exc)
        else:
            self._unwritten.discard(key)

    async def renew(self) -> None:
        """Extend the lease of every event this process is still working on (and write the
        dones that failed). Called well within each lease by ``bot.takeover``."""
        for keys in _chunks(self._unwritten):
            await self._finish(keys)
            self._unwritten.difference_update(keys)
        if not self._open:
            return
        until = datetime.now(UTC) + self.lease
        try:
            async with self.db.session() as s, s.begin():
                for keys in _chunks(self._open):
                    await s.execute(
                        update(_table)
                        .where(_table.c.key.in_(keys), _table.c.owner == self.owner)
                        .values(lease_until=until)
                    )
        except DB_ERRORS as exc:
            raise StoreError(
                f"Could not renew the leases of events under way: {describe(exc)}"
            ) from exc

    async def orphans(self, prefixes: Sequence[str], limit: int = 20) -> list[Orphan]:
        """Events (with a key starting with one of ``prefixes``) whose lease has run out, now
        leased to this process: the caller answers each, then calls ``done``."""
        now = datetime.now(UTC)
        taken: list[Orphan] = []
        given_up: list[str] = []
        try:
            async with self.db.session() as s, s.begin():
                candidates = (
                    await s.execute(
                        select(_table.c.key, _table.c.attempts, _table.c.payload)
                        .where(
                            _table.c.lease_until < now,
                            or_(*(_table.c.key.startswith(p) for p in prefixes)),
                        )
                        .order_by(_table.c.lease_until)
                        .limit(limit)
                        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer
                    )
                ).all()
                for key, attempts, payload in candidates:
                    # Compare-and-set on ``attempts``: of two processes after the same event,
                    # one wins (PostgreSQL re-checks the condition on the row it waited for).
                    won = await s.execute(
                        update(_table)
                        .where(
                            _table.c.key == key,
                            _table.c.attempts == attempts,
                            _table.c.lease_until < now,
                        )
                        .values(
                            owner=self.owner,
                            lease_until=now + self.lease,
                            attempts=attempts + 1,
                        )
                    )
                    if won.rowcount != 1:  # type: ignore[attr-defined]  # a CursorResult
                        continue
                    if attempts + 1 > MAX_TAKEOVERS or payload is None:
                        given_up.append(key)
                    else:
                        taken.append(Orphan(key, json.loads(payload), attempts + 1))
        except DB_ERRORS as exc:
            raise StoreError(
                f"Could not look for events left by a stopped process: {describe(exc)}"
            ) from exc
        for key in given_up:
            log.error("event %s was taken over %d times: given up", key, MAX_TAKEOVERS)
        self._open.update(o.key for o in taken)
        self._open.update(given_up)
        for key in given_up:
            await self.done(key)
        return taken

    async def _claim(self, items: list[tuple[str, str | None]]) -> list[bool]:
        now = datetime.now(UTC)
        dialect = sqlite if self.db.dialect == "sqlite" else postgresql
        # One statement, compiled once and cached: with a list of rows SQLAlchemy sends them
        # as multi-row VALUES itself ("insertmanyvalues"). Building a VALUES clause of this
        # group's size instead compiled a new statement for every group (most of the CPU an
        # event cost at 300 events a second).
        stmt = (
            dialect.insert(_table)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(_table.c.key)
        )
        prune = self._claims // self.PRUNE_EVERY != (self._claims + len(items)) // self.PRUNE_EVERY
        lease_until = now + self.lease
        rows = [
            {
                "key": key,
                "created_at": now,
                "owner": self.owner,
                "lease_until": lease_until if payload is not None else None,
                "payload": payload,
                "attempts": 0,
            }
            for key, payload in items
        ]
        try:
            async with self.db.session() as s, s.begin():
                new = set((await s.scalars(stmt, rows)).all())
                if prune:
                    await s.execute(delete(SeenEvent).where(SeenEvent.created_at < now - KEEP))
        except DB_ERRORS as exc:
            keys = [key for key, _ in items]
            shown = ", ".join(keys[:3]) + ("..." if len(keys) > 3 else "")
            error = RowRejected if refused_data(exc) else StoreError
            raise error(f"Could not record events {shown}: {describe(exc)}") from exc
        self._claims += len(items)
        out = []
        for key, _ in items:  # the same key twice in one group: only the first caller gets it
            out.append(key in new)
            new.discard(key)
        return out

    async def _finish(self, keys: list[str]) -> list[None]:
        stmt = (
            update(_table)
            .where(_table.c.key == bindparam("k"))
            .values(lease_until=None, payload=None)
        )
        try:
            async with self.db.session() as s, s.begin():
                await s.execute(stmt, [{"k": key} for key in keys])
        except DB_ERRORS as exc:
            raise StoreError(f"Could not mark {len(keys)} events done: {describe(exc)}") from exc
        return [None] * len(keys)


def storable(key: str) -> str:
    """An event key as stored: at most 200 characters, NUL written out (PostgreSQL refuses
    it, SQLite would keep it), the same on both."""
    return key.replace("\x00", "\\0")[:200]


def _chunks(keys: Iterable[str]) -> list[list[str]]:
    ordered = sorted(keys)
    return [ordered[i : i + _CHUNK] for i in range(0, len(ordered), _CHUNK)]
