"""quotabot's settings, from environment variables and an optional TOML file.

settings.py  the flat fields, named as they are set (``SLACK_BOT_TOKEN``, ``max_tokens``),
             validated, and loaded by ``load_settings``
groups.py    the same settings by subject, as code reads them: ``settings.slack.bot_token``
sources.py   the TOML file and ``<VARIABLE>_FILE`` secrets
tables.py    the TOML file's ``[models."NAME"]`` and ``[budgets."SCOPE"]`` tables
providers.py its ``[providers."NAME"]`` tables, and each provider with its key read
urls.py      a database URL with an asyncio or a blocking driver
"""

from bot.config.groups import (
    GROUPS,
    OPENAI_DEFAULT_BASE_URL,
    AccessSettings,
    BudgetSettings,
    DefaultsSettings,
    DigestsSettings,
    DiscordSettings,
    EventsSettings,
    LogsSettings,
    ProviderSettings,
    SlackSettings,
    StoreSettings,
    VoiceSettings,
    WebSettings,
)
from bot.config.providers import DEFAULT_PROVIDER, ProviderConfig, ProviderKind, ProviderSpec
from bot.config.settings import DEFAULT_SYSTEM_PROMPT, Settings, load_settings
from bot.config.sources import SECRETS, env_name
from bot.config.tables import IdList, LimitsConfig, ModelConfig
from bot.config.urls import async_database_url, sync_database_url

__all__ = [
    "DEFAULT_PROVIDER",
    "DEFAULT_SYSTEM_PROMPT",
    "GROUPS",
    "OPENAI_DEFAULT_BASE_URL",
    "SECRETS",
    "AccessSettings",
    "BudgetSettings",
    "DefaultsSettings",
    "DigestsSettings",
    "DiscordSettings",
    "EventsSettings",
    "IdList",
    "LimitsConfig",
    "LogsSettings",
    "ModelConfig",
    "ProviderConfig",
    "ProviderKind",
    "ProviderSettings",
    "ProviderSpec",
    "Settings",
    "SlackSettings",
    "StoreSettings",
    "VoiceSettings",
    "WebSettings",
    "async_database_url",
    "env_name",
    "load_settings",
    "sync_database_url",
]
