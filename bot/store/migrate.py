"""Alembic, driven from our own code so that ``quotabot db upgrade`` needs no alembic.ini."""

from __future__ import annotations

import asyncio
import fcntl
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from bot.errors import ConfigError, StoreError
from bot.store.db import DB_ERRORS, Database, describe


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("migrations")))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    await _run(db, lambda cfg: command.upgrade(cfg, revision), revision)


async def downgrade(db: Database, revision: str) -> None:
    await _run(db, lambda cfg: command.downgrade(cfg, revision), revision)


def _known(revision: str) -> None:
    """Raises ConfigError, listing the revisions there are, for one that is not."""
    script = ScriptDirectory.from_config(alembic_config())
    if re.fullmatch(r"(head|base)?([+-]\d+)?", revision):  # head, base, -1, head-2 ...
        return
    try:
        script.get_revision(revision)
    except CommandError:
        revisions = sorted(r.revision for r in script.walk_revisions())
        raise ConfigError(
            f"there is no schema revision {revision!r}: choose base, head, or one of "
            f"{', '.join(revisions)}"
        ) from None


async def current(db: Database) -> str | None:
    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with db.engine.connect() as conn:
        return await conn.run_sync(read)


async def ensure_schema(db: Database, *, migrate: bool | None = None) -> None:
    """Bring the schema to head (default: only for SQLite, which has no DBA), or refuse to run
    against an outdated one, which would fail later in confusing ways."""
    if migrate is None:
        migrate = db.dialect == "sqlite"
    if migrate:
        await upgrade(db)
        return
    try:
        have = await current(db)
    except DB_ERRORS as exc:
        # A one-line reason, not a traceback: a process restarted during a database outage
        # exits with this until the database is back (its spool is written then).
        where = make_url(db.url).render_as_string(hide_password=True)
        raise StoreError(f"The database at {where} does not answer: {describe(exc)}") from exc
    want = head()
    if have != want:
        raise ConfigError(
            f"The database schema is at revision {have or 'none'} but this quotabot needs {want}: "
            "run `quotabot db upgrade` first."
        )


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _run(db: Database, action: object, revision: str) -> None:
    _known(revision)
    # Alembic's "connection sharing" recipe: env.py finds our connection in cfg.attributes and
    # runs on it, so migrations work inside an already running event loop.
    cfg = alembic_config(db.url)

    def run(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        action(cfg)  # type: ignore[operator]

    # Several quotabot processes may start at once on a new database: one migrates, the
    # others wait for it and then find the schema at head.
    async with _sqlite_file_lock(db), db.engine.begin() as conn:
        if db.dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        await conn.run_sync(run)


_LOCK_KEY = 0x71B07  # any constant shared by every quotabot process


@asynccontextmanager
async def _sqlite_file_lock(db: Database) -> AsyncIterator[None]:
    path = make_url(db.url).database if db.dialect == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate-lock", "a+b") as lock:  # noqa: ASYNC230 (opening a lock file is instant)
        await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
