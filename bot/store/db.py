"""The database engine: one per process, opened and closed like any other connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.config import async_database_url
from bot.errors import ConfigError
from bot.lifecycle import AsyncResource

DB_ERRORS = (SQLAlchemyError, OSError, TimeoutError, OverflowError)
"""What a database that is down or unreachable raises: asyncpg's refused connections come
through SQLAlchemy as plain OSError (and sqlite3's refusal of a too large integer as a plain
OverflowError). The stores turn these into StoreError."""


def refused_data(exc: BaseException) -> bool:
    """Whether the database refused the data itself (a NUL byte, a value too long for its
    column): sending the same rows again can never work, unlike when it is down or busy."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OverflowError):
            return True
        if isinstance(seen, DBAPIError):
            code = getattr(seen.orig, "sqlstate", None) or getattr(seen.orig, "pgcode", None)
            if code:  # SQLSTATE classes 22 (data exception) and 23 (integrity violation)
                return str(code)[:2] in ("22", "23")
            return isinstance(seen, DataError | IntegrityError)
        if isinstance(seen, StatementError):  # a value our own column types would not take
            return True
        seen = seen.__cause__
    return False


def describe(exc: BaseException) -> str:
    """What went wrong, for a log line: the driver's message, never the statement or its
    parameters (which carry event payloads and message text)."""
    if isinstance(exc, DBAPIError):
        first = str(exc.orig).strip().splitlines()
        return f"{type(exc.orig).__name__}: {first[0] if first else ''}"[:300]
    if isinstance(exc, StatementError):  # refused by one of our column types (bot.store.schema)
        return f"{type(exc.orig).__name__}: {str(exc.orig).splitlines()[0] if exc.orig else ''}"[
            :300
        ]
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (usage reports) run while the bot writes; busy_timeout makes a second
    # quotabot process wait for the write lock instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Database(AsyncResource):
    """Owns the engine and the session factory. ``async with Database(url) as db: ...``"""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = async_database_url(url)
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create {folder} for the database ({exc.strerror or exc}): set "
                    "QUOTABOT_DATA_DIR to a folder quotabot may write, or QUOTABOT_DATABASE_URL"
                ) from exc
        # A burst of chat events each touch the database briefly: a pool of 5 (SQLAlchemy's
        # default) made them queue for connections until they timed out. At most 30 per
        # process, though: every replica opens its own, and PostgreSQL allows 100 connections
        # by default (3 kept for superusers). With 50 each, two replicas under load (bench.load,
        # 600 users) took them all, and "too many clients" failed their repeat checks.
        # A ping before each use finds server connections that a restart broke; a file cannot
        # break that way, and on SQLite the ping was one more trip through aiosqlite's thread.
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            echo=echo,
            pool_pre_ping=parsed.get_backend_name() != "sqlite",
            pool_size=20,
            max_overflow=10,
            pool_timeout=60,
            # Errors must not carry bound values into logs: they hold message text.
            hide_parameters=True,
        )
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as s:
            yield s

    async def ping(self) -> bool:
        """For readiness checks: the database answers a query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def aclose(self) -> None:
        await self.engine.dispose()
