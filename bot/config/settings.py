"""Settings: one typed object, from environment variables and an optional TOML file.

Precedence: environment, then the file named by ``QUOTABOT_CONFIG``, then the defaults below.
Secrets come from the environment only (a file is easy to commit by mistake) and are
``SecretStr``s, so they print as ``**********`` in reprs, logs and tracebacks.

The fields are flat, named as they are set; code reads them by subject through the groups
(``settings.slack.bot_token``, see ``bot.config.groups``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.budget.policy import Value
from bot.catalog import Catalog, Tier
from bot.config.groups import (
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
    view,
)
from bot.config.providers import ProviderConfig, check_models, check_names
from bot.config.sources import SecretFileSource, TomlSource, env_name
from bot.config.tables import IdList, LimitsConfig, ModelConfig
from bot.errors import ConfigError

DEFAULT_SYSTEM_PROMPT = (
    "You are quotabot, a helpful assistant in a team chat. Answer clearly and concisely."
)


def _alias(env: str, field: str) -> AliasChoices:
    # The env name as other tools spell it, and the field name for the TOML file.
    return AliasChoices(env, field)


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "quotabot"


class Settings(BaseSettings):
    """Everything quotabot can be told. The README's settings table documents each field."""

    model_config = SettingsConfigDict(
        env_prefix="QUOTABOT_", extra="ignore", validate_by_name=True, frozen=True
    )

    config: Path | None = None
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "quotabot"
    """Keys of this deployment in Redis; give each deployment sharing one Redis its own."""
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    http_keepalive_timeout: float = Field(15.0, gt=0)
    """Seconds an idle connection stays open, which is also how long a client has to send a
    request's headers. Behind a proxy that keeps connections open, make it longer than the
    proxy's idle timeout."""
    http_read_timeout: float = Field(10.0, gt=0)
    """Seconds a client has to send a request's body once its headers are in (then 408)."""
    public_url: str | None = None
    """Where people reach ``quotabot serve`` (https://quotabot.example.com): dashboard links
    point there. Unset: http://HOST:PORT of the web endpoints."""
    dashboard_link_ttl: float = Field(3600.0, ge=60, le=7 * 86400)
    """Seconds a dashboard sign-in link (and the session it opens) stays valid."""
    dashboard_secret: SecretStr | None = None
    """Signs dashboard links. Unset: a random one kept in the data directory (replicas
    behind one address must share one: set it)."""
    admin_token: SecretStr | None = None
    """A static token for operators: ``Authorization: Bearer ...`` on /api/v1/ and the
    dashboard, every workspace."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    """json: one JSON object per line, with the chat request's id (for log pipelines)."""

    default_model: str = "gpt-3.5-turbo"
    transcription_model: str = "whisper-1"
    """Turns voice messages and audio files into text (see README, Voice messages and audio)."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_tokens: int = Field(512, gt=0)
    temperature: float | None = Field(None, ge=0, le=2)
    provider_tier: Tier = "free"
    request_timeout: float = Field(60.0, gt=0)
    store_message_text: bool = False
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    """The ``[providers."NAME"]`` tables; declared before ``models``, which name them."""
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    provider_down_after: int = Field(3, ge=1)
    """Failed calls in a row (5xx, timeouts, no connection) that mark a provider down."""
    provider_down_for: float = Field(30.0, gt=0)
    """Seconds a provider stays marked down after its last failure, unless a call succeeds."""
    allowed_workspaces: IdList = Field(default_factory=list)
    """Slack workspace / Discord server IDs quotabot answers in; empty: all."""
    allowed_channels: IdList = Field(default_factory=list)
    """Channel IDs quotabot answers in; empty: all (but the denied ones)."""
    denied_channels: IdList = Field(default_factory=list)
    admin_users: IdList = Field(default_factory=list)
    """Platform user IDs that may change budgets, besides the workspace's own admins."""
    discord_admin_roles: IdList = Field(default_factory=list)
    """Discord role IDs that may change budgets, besides members with Manage Server."""
    discord_message_content: bool = False
    """Ask Discord for the privileged Message Content intent (gateway mode)."""
    slack_assistant: bool = True
    """Answer messages in the app's DM threads as Slack's assistant pane: status, title,
    suggested prompts; off: as classic direct messages."""
    discord_streaming: bool = True
    """Edit Discord answers in as they are generated; off: each answer at once, when done."""
    discord_edit_interval: float = Field(1.0, ge=0.2)
    """Seconds between two edits of one Discord message while an answer streams."""
    budgets: dict[str, LimitsConfig] = Field(default_factory=dict)

    shutdown_grace: float = Field(30.0, ge=0)
    """Seconds ``serve`` lets answers under way finish after SIGTERM before stopping them."""
    event_lease: float = Field(30.0, ge=0)
    """Seconds after which a live process answers an event whose process died; 0: never."""
    ack_after_claim: bool = False
    """Acknowledge chat events only once their claim is written (see bot.takeover.claimed)."""
    request_deadline: float = Field(120.0, gt=0)
    """Seconds a request may spend queued and retried before the user is told to try later."""
    max_attempts: int = Field(5, ge=1)
    retry_base: float = Field(1.0, gt=0)
    retry_max: float = Field(60.0, gt=0)
    queue_size: int = Field(1000, ge=1)
    provider_connections: int = Field(100, ge=1)
    """Provider calls in flight per process at most; more wait their turn (see README)."""
    concurrent_answers: int | None = Field(None, ge=1)
    """Chat events one process works on at once (None: as many as provider_connections)."""
    burst_spread: float = Field(2.0, ge=0)
    """Seconds over which a full bucket is handed out, so that a burst is served in fair order."""
    batching: bool = True
    batch_max: int = Field(20, ge=2)
    digest_misfire_grace: float = Field(3600.0, gt=0)
    """Seconds after its time a digest missed while quotabot was down is still sent."""
    usage_retention_days: int | None = Field(None, ge=35)
    """Delete raw usage rows older than this many days (the hourly rollups stay). At least
    35: digests read raw rows for the hours a local day boundary splits, a month back."""
    budget_alerts: bool = True
    """Post to a workspace's digest channel when a budget passes 80% and 100% of its cap."""

    openai_api_key: SecretStr | None = Field(
        None, validation_alias=_alias("OPENAI_API_KEY", "openai_api_key")
    )
    openai_admin_key: SecretStr | None = Field(
        None, validation_alias=_alias("OPENAI_ADMIN_KEY", "openai_admin_key")
    )
    """An OpenAI admin key: the digest then shows the organization's reported cost too."""
    openai_base_url: str | None = Field(
        None, validation_alias=_alias("OPENAI_BASE_URL", "openai_base_url")
    )
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=_alias("SLACK_BOT_TOKEN", "slack_bot_token")
    )
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias=_alias("SLACK_SIGNING_SECRET", "slack_signing_secret")
    )
    slack_app_token: SecretStr | None = Field(
        None, validation_alias=_alias("SLACK_APP_TOKEN", "slack_app_token")
    )
    slack_api_url: str | None = Field(
        None, validation_alias=_alias("SLACK_API_URL", "slack_api_url")
    )
    slack_client_id: str | None = Field(
        None, validation_alias=_alias("SLACK_CLIENT_ID", "slack_client_id")
    )
    slack_client_secret: SecretStr | None = Field(
        None, validation_alias=_alias("SLACK_CLIENT_SECRET", "slack_client_secret")
    )
    slack_redirect_uri: str | None = Field(
        None, validation_alias=_alias("SLACK_REDIRECT_URI", "slack_redirect_uri")
    )
    discord_token: SecretStr | None = Field(
        None, validation_alias=_alias("DISCORD_TOKEN", "discord_token")
    )
    discord_public_key: str | None = Field(
        None, validation_alias=_alias("DISCORD_PUBLIC_KEY", "discord_public_key")
    )
    discord_application_id: str | None = Field(
        None, validation_alias=_alias("DISCORD_APPLICATION_ID", "discord_application_id")
    )
    discord_api_url: str | None = Field(
        None, validation_alias=_alias("DISCORD_API_URL", "discord_api_url")
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            SecretFileSource(settings_cls),
            TomlSource(settings_cls),
        )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _database(cls, url: str | None) -> str | None:
        # The URL itself is never repeated: it may hold a password.
        if url is None:
            return url
        try:
            backend = make_url(url).get_backend_name()
        except ArgumentError:
            raise ValueError(
                "not a database URL: write sqlite:///path/to/quotabot.db or "
                "postgresql://user@host/dbname"
            ) from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(
                f"quotabot stores usage in SQLite or PostgreSQL, not {backend}: write "
                "sqlite:///path/to/quotabot.db or postgresql://user@host/dbname"
            )
        return url

    @field_validator("dashboard_secret", "admin_token")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Guessable or short keys would let anyone sign in; the value is never repeated.
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("use at least 16 random characters, e.g. from `openssl rand -hex 32`")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("write the address people open, e.g. https://quotabot.example.com")
        return url

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "write redis://host:6379/0 (or rediss:// for TLS, unix:// for a socket)"
            )
        return url

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, providers: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        check_names(providers)
        return providers

    @field_validator("models")
    @classmethod
    def _model_providers(
        cls, models: dict[str, ModelConfig], info: ValidationInfo
    ) -> dict[str, ModelConfig]:
        # Only when the providers themselves were valid: their own errors are reported then.
        if "providers" in info.data:
            check_models(models, info.data["providers"])
        return models

    @field_validator("budgets")
    @classmethod
    def _scopes(cls, budgets: dict[str, LimitsConfig]) -> dict[str, LimitsConfig]:
        for name in budgets:
            scope, _, instance = name.partition(":")
            if scope not in ("model", "workspace", "channel", "user") or (_ and not instance):
                raise ValueError(
                    f"[budgets.{name!r}]: name a scope (model, workspace, channel, user), "
                    "optionally with an ID, e.g. channel:C0123"
                )
            if budgets[name].models is not None and scope not in ("workspace", "channel"):
                raise ValueError(
                    f"[budgets.{name!r}]: models are chosen per workspace or channel, "
                    f"not per {scope}"
                )
            if budgets[name].fallbacks is not None and scope not in ("workspace", "channel"):
                raise ValueError(
                    f"[budgets.{name!r}]: fallbacks are chosen per workspace or channel, "
                    f"not per {scope}"
                )
            if budgets[name].timezone is not None and scope not in ("workspace", "model"):
                raise ValueError(
                    f"[budgets.{name!r}]: a time zone is set per workspace (its channels and "
                    f"users count its days) or per model, not per {scope}"
                )
        return budgets

    # The groups: built on each read (cheap), so that a ``model_copy(update=...)`` shows too.

    @property
    def store(self) -> StoreSettings:
        return view(StoreSettings, self)

    @property
    def provider(self) -> ProviderSettings:
        return view(ProviderSettings, self)

    @property
    def defaults(self) -> DefaultsSettings:
        return view(DefaultsSettings, self)

    @property
    def voice(self) -> VoiceSettings:
        return view(VoiceSettings, self)

    @property
    def budget(self) -> BudgetSettings:
        return view(BudgetSettings, self)

    @property
    def events(self) -> EventsSettings:
        return view(EventsSettings, self)

    @property
    def access(self) -> AccessSettings:
        return view(AccessSettings, self)

    @property
    def digests(self) -> DigestsSettings:
        return view(DigestsSettings, self)

    @property
    def web(self) -> WebSettings:
        return view(WebSettings, self)

    @property
    def logs(self) -> LogsSettings:
        return view(LogsSettings, self)

    @property
    def slack(self) -> SlackSettings:
        return view(SlackSettings, self)

    @property
    def discord(self) -> DiscordSettings:
        return view(DiscordSettings, self)

    # Flat helpers of before the groups, kept while code outside bot/ still reads them.

    def budget_limits(self) -> dict[str, dict[str, Value]]:
        return self.budget.limit_values()

    @property
    def provider_configured(self) -> bool:
        return self.provider.configured

    @property
    def provider_base_url(self) -> str:
        return self.provider.base_url

    @property
    def sqlalchemy_url(self) -> str:
        return self.store.sqlalchemy_url

    def catalog(self) -> Catalog:
        return self.provider.catalog()


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and config file; errors become one readable ConfigError
    that names each setting as it is written (the environment variable, or the TOML key)."""
    try:
        return Settings(**overrides)
    except SettingsError as exc:  # a value the environment source could not even parse
        raise ConfigError(f"Invalid settings: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{_setting_name(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"Invalid settings: {problems}") from exc


def _setting_name(loc: tuple[int | str, ...]) -> str:
    """``QUOTABOT_ADMIN_USERS`` for a setting the environment gives (else its TOML key)."""
    field = str(loc[0]) if loc else ""
    info = Settings.model_fields.get(field)
    if info is None or len(loc) > 1:
        return ".".join(str(p) for p in loc)
    env = env_name(field, info)
    return env if env in os.environ else field
