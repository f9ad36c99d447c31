"""Per-channel settings: stored overrides over the configured defaults."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select

from bot.errors import StoreError
from bot.models import ChannelSettings
from bot.store.db import DB_ERRORS, Database, describe
from bot.store.schema import ChannelSetting

log = logging.getLogger(__name__)

FIELDS = ("model", "system_prompt", "max_tokens", "temperature", "enabled")


MAX_TOKENS_LIMIT = 1_000_000
"""No model answers with more tokens than this (the largest take 128,000)."""


def check_settings(values: dict[str, Any]) -> None:
    """The ranges the provider accepts, checked before they are stored: a channel set to
    ``max_tokens 0`` or ``temperature 5`` would make every request there a failed call."""
    max_tokens = values.get("max_tokens")
    if max_tokens is not None and not (
        isinstance(max_tokens, int) and 1 <= max_tokens <= MAX_TOKENS_LIMIT
    ):
        raise ValueError(
            f"max_tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT:,}; got {max_tokens}"
        )
    temperature = values.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, int | float) and 0 <= temperature <= 2
    ):
        raise ValueError(f"temperature must be from 0 to 2; got {temperature}")
    model = values.get("model")
    if model is not None and not (isinstance(model, str) and model.strip()):
        raise ValueError("model must name a model, e.g. gpt-4o-mini")


class ChannelStore:
    """Read on every request, changed rarely: reads are cached for ``ttl`` seconds (a change
    made on another replica shows within that time; one made here, at once). Concurrent
    misses of one channel share one read: a burst of 1,000 requests is one query, not 1,000.

    While the database is down, a channel read before keeps its last known settings (tried
    again once per ``ttl``), so that answers go on; only a channel never read raises."""

    def __init__(self, db: Database, defaults: ChannelSettings, *, ttl: float = 10.0):
        self.db = db
        self.defaults = defaults
        self.ttl = ttl
        self._cache: dict[tuple[str, str, str], tuple[float, ChannelSettings]] = {}
        self._reading: dict[tuple[str, str, str], asyncio.Future[ChannelSettings]] = {}

    async def get(self, platform: str, workspace: str, channel: str) -> ChannelSettings:
        key = (platform, workspace, channel)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        if (reading := self._reading.get(key)) is not None:
            return await asyncio.shield(reading)
        reading = asyncio.get_running_loop().create_future()
        self._reading[key] = reading
        try:
            settings = await self._read(platform, workspace, channel)
        except StoreError as exc:
            if hit is None:
                reading.set_exception(exc)
                reading.exception()  # retrieved: no "never retrieved" warning when nobody waits
                raise
            log.warning("%s: using its settings as last read, until the database answers", exc)
            settings = hit[1]
        except BaseException as exc:
            reading.set_exception(exc)
            reading.exception()
            raise
        finally:
            del self._reading[key]
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic() + self.ttl, settings)
        reading.set_result(settings)
        return settings

    async def _read(self, platform: str, workspace: str, channel: str) -> ChannelSettings:
        try:
            async with self.db.session() as s:
                row = await s.get(ChannelSetting, (platform, workspace, channel))
        except DB_ERRORS as exc:
            raise StoreError(
                f"Could not read settings of channel {channel}: {describe(exc)}"
            ) from exc
        return self.defaults if row is None else self._over_defaults(row)

    def _over_defaults(self, row: ChannelSetting) -> ChannelSettings:
        overrides = {f: getattr(row, f) for f in FIELDS if getattr(row, f) is not None}
        return replace(self.defaults, **overrides)

    async def configured(
        self, platform: str, workspace: str, *, most: int
    ) -> tuple[list[tuple[str, ChannelSettings]], int]:
        """The channels of one workspace with settings of their own, by ID, at most ``most``
        of them; and how many there are in all (for a page that shows a few)."""
        where = (ChannelSetting.platform == platform, ChannelSetting.workspace == workspace)
        try:
            async with self.db.session() as s:
                count = await s.scalar(
                    select(func.count()).select_from(ChannelSetting).where(*where)
                )
                rows = (
                    await s.scalars(
                        select(ChannelSetting)
                        .where(*where)
                        .order_by(ChannelSetting.channel)
                        .limit(most)
                    )
                ).all()
        except DB_ERRORS as exc:
            raise StoreError(f"Could not read channel settings: {describe(exc)}") from exc
        found = [(row.channel, self._over_defaults(row)) for row in rows]
        return found, int(count or 0)

    async def set(
        self, platform: str, workspace: str, channel: str, **values: Any
    ) -> ChannelSettings:
        """Set some fields; a value of None resets that field to the configured default.
        Raises ValueError, with the allowed range, for a value no request could be sent with."""
        if unknown := values.keys() - set(FIELDS):
            raise ValueError(f"unknown channel settings: {', '.join(sorted(unknown))}")
        check_settings(values)
        try:
            async with self.db.session() as s, s.begin():
                row = await s.get(ChannelSetting, (platform, workspace, channel))
                if row is None:
                    row = ChannelSetting(platform=platform, workspace=workspace, channel=channel)
                    s.add(row)
                for name, value in values.items():
                    setattr(row, name, value)
            self._cache.pop((platform, workspace, channel), None)
        except DB_ERRORS as exc:
            raise StoreError(
                f"Could not save settings of channel {channel}: {describe(exc)}"
            ) from exc
        return await self.get(platform, workspace, channel)
