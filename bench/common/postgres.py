"""Throwaway PostgreSQL databases, made on a shared server for one run and dropped after it."""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy.engine import make_url


def _dsn(url: str) -> str:
    """asyncpg's form of a SQLAlchemy URL (no ``+asyncpg`` driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_database(admin_url: str, prefix: str) -> str:
    """A new, empty database ``<prefix>_<random>`` on ``admin_url``'s server: its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_dsn(admin_url), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(admin_url: str, url: str) -> None:
    """Drop ``url``'s database, connections and all."""
    name = make_url(url).database
    conn = await asyncpg.connect(_dsn(admin_url), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
