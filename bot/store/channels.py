"""Per-channel settings: stored overrides over the configured defaults."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.errors import StoreError
from bot.models import ChannelSettings
from bot.store.db import Database
from bot.store.schema import ChannelSetting

FIELDS = ("model", "system_prompt", "max_tokens", "temperature", "enabled")


class ChannelStore:
    def __init__(self, db: Database, defaults: ChannelSettings):
        self.db = db
        self.defaults = defaults

    async def get(self, platform: str, workspace: str, channel: str) -> ChannelSettings:
        try:
            async with self.db.session() as s:
                row = await s.get(ChannelSetting, (platform, workspace, channel))
        except SQLAlchemyError as exc:
            raise StoreError(f"Could not read settings of channel {channel}: {exc}") from exc
        if row is None:
            return self.defaults
        overrides = {f: getattr(row, f) for f in FIELDS if getattr(row, f) is not None}
        return replace(self.defaults, **overrides)

    async def set(
        self, platform: str, workspace: str, channel: str, **values: Any
    ) -> ChannelSettings:
        """Set some fields; a value of None resets that field to the configured default."""
        if unknown := values.keys() - set(FIELDS):
            raise ValueError(f"unknown channel settings: {', '.join(sorted(unknown))}")
        try:
            async with self.db.session() as s, s.begin():
                row = await s.get(ChannelSetting, (platform, workspace, channel))
                if row is None:
                    row = ChannelSetting(platform=platform, workspace=workspace, channel=channel)
                    s.add(row)
                for name, value in values.items():
                    setattr(row, name, value)
        except SQLAlchemyError as exc:
            raise StoreError(f"Could not save settings of channel {channel}: {exc}") from exc
        return await self.get(platform, workspace, channel)
