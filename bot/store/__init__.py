"""Where usage and per-channel settings live: SQLAlchemy 2 on SQLite (default) or PostgreSQL."""

from bot.store.channels import ChannelStore
from bot.store.db import Database
from bot.store.rows import UsageRow
from bot.store.usage import UsageStore

__all__ = ["ChannelStore", "Database", "UsageRow", "UsageStore"]
