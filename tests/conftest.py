"""Shared fixtures: a clean environment, and real databases (SQLite always, PostgreSQL when up).

PostgreSQL and Redis tests use ``QUOTABOT_TEST_POSTGRES_URL`` / ``QUOTABOT_TEST_REDIS_URL``;
when those are unset they try the local defaults and skip, saying why, if nothing answers.
When a URL is set, an unreachable server is an error, not a skip: CI sets both.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.store import Database, migrate

POSTGRES_URL = os.environ.get("QUOTABOT_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("QUOTABOT_TEST_REDIS_URL")
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_OWN_PREFIXES = ("QUOTABOT_", "OPENAI_", "SLACK_", "DISCORD_")


@pytest.fixture(autouse=True)
def clean_environ(tmp_path: Path) -> Iterator[None]:
    """Each test starts from no configuration at all, with its own data directory."""
    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(_OWN_PREFIXES):
            del os.environ[key]
    os.environ["XDG_DATA_HOME"] = str(tmp_path / "data")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _asyncpg_dsn(url: str) -> str:
    u = make_url(url).set(drivername="postgresql")
    return u.render_as_string(hide_password=False)


async def _admin(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(_asyncpg_dsn(url), timeout=5)


_pg_checked: dict[str, str | None] = {}


async def _postgres_admin_url() -> str:
    """The server to make throwaway databases on; skips (or fails, when configured) if down."""
    url = POSTGRES_URL or DEFAULT_POSTGRES_URL
    if url not in _pg_checked:

        async def probe() -> str | None:
            try:
                conn = await _admin(url)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                return f"{type(exc).__name__}: {exc}"
            await conn.close()
            return None

        _pg_checked[url] = await probe()
    problem = _pg_checked[url]
    if problem:
        if POSTGRES_URL:
            pytest.fail(f"QUOTABOT_TEST_POSTGRES_URL={POSTGRES_URL} is unreachable: {problem}")
        pytest.skip(
            f"PostgreSQL not reachable at {url} ({problem}); set QUOTABOT_TEST_POSTGRES_URL "
            "to run these tests"
        )
    return url


@asynccontextmanager
async def fresh_postgres() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    admin_url = await _postgres_admin_url()
    name = f"quotabot_test_{uuid.uuid4().hex[:12]}"
    conn = await _admin(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    conn = await _admin(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


_redis_checked: dict[str, str | None] = {}


@pytest.fixture
def redis_url() -> str:
    """The Redis to test against; skips (or fails, when configured) if it does not answer."""
    import redis
    from redis.exceptions import RedisError

    url = REDIS_URL or DEFAULT_REDIS_URL
    if url not in _redis_checked:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            client.ping()
            _redis_checked[url] = None
        except (RedisError, OSError) as exc:
            _redis_checked[url] = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
    if problem := _redis_checked[url]:
        if REDIS_URL:
            pytest.fail(f"QUOTABOT_TEST_REDIS_URL={REDIS_URL} is unreachable: {problem}")
        pytest.skip(f"Redis not reachable at {url} ({problem}); set QUOTABOT_TEST_REDIS_URL")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each kind: the same tests run on both."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    else:
        async with fresh_postgres() as url:
            yield url


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_postgres() as url:
        yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database."""
    async with Database(db_url) as database:
        await migrate.upgrade(database)
        yield database
