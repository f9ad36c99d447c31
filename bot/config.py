"""Settings: one typed object, from environment variables and an optional TOML file.

Precedence: environment, then the file named by ``QUOTABOT_CONFIG``, then the defaults below.
Secrets come from the environment only (a file is easy to commit by mistake) and are
``SecretStr``s, so they print as ``**********`` in reprs, logs and tracebacks.
"""

from __future__ import annotations

import json
import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.budget.policy import Value
from bot.catalog import Catalog, ModelOverride, Tier
from bot.errors import ConfigError
from bot.models import Endpoint

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
SECRETS = frozenset(
    {
        "openai_api_key",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "slack_client_secret",
        "discord_token",
        "openai_admin_key",
    }
)

DEFAULT_SYSTEM_PROMPT = (
    "You are quotabot, a helpful assistant in a team chat. Answer clearly and concisely."
)


def _id_list(value: object) -> object:
    """``U1,U2`` (or ``U1 U2``) as well as the JSON list ``["U1", "U2"]``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError(
                    'write a JSON list such as ["U0123", "U0456"], or U0123,U0456'
                ) from None
        return [v for v in text.replace(",", " ").split() if v]
    return value


IdList = Annotated[list[str], NoDecode, BeforeValidator(_id_list)]
"""Platform IDs: a comma-separated list or a JSON list in the environment, a list in TOML."""


def _alias(env: str, field: str) -> AliasChoices:
    # The env name as other tools spell it, and the field name for the TOML file.
    return AliasChoices(env, field)


class ModelConfig(BaseModel):
    """A ``[models."name"]`` table: override a built-in model or declare a self-hosted one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: Endpoint | None = None
    encoding: Literal["cl100k_base", "o200k_base"] | None = None
    context_window: int | None = Field(None, gt=0)
    input_price: Decimal | None = Field(None, ge=0, description="USD per 1,000 prompt tokens")
    cached_input_price: Decimal | None = Field(
        None, ge=0, description="USD per 1,000 prompt tokens read from the provider's cache"
    )
    output_price: Decimal | None = Field(None, ge=0, description="USD per 1,000 completion tokens")
    audio_price: Decimal | None = Field(None, ge=0, description="USD per minute of audio")
    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)
    rpd: int | None = Field(None, gt=0)
    reasoning: bool | None = Field(
        None, description="takes max_completion_tokens, bills hidden reasoning tokens"
    )
    fixed_temperature: bool | None = Field(None, description="refuses a non-default temperature")
    reasoning_budget: int | None = Field(
        None, ge=0, description="reasoning tokens allowed on top of max_tokens"
    )


class LimitsConfig(BaseModel):
    """A ``[budgets."SCOPE"]`` table. SCOPE is ``model``, ``workspace``, ``channel`` or
    ``user`` (the default for each one of them), or one of them by ID: ``channel:C0123``,
    ``model:gpt-4``. Every limit is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: int | None = Field(None, gt=0, description="requests per minute")
    tpm: int | None = Field(None, gt=0, description="tokens per minute")
    rpd: int | None = Field(None, gt=0, description="requests per day")
    tokens_day: int | None = Field(None, gt=0)
    tokens_month: int | None = Field(None, gt=0)
    spend_day: Decimal | None = Field(None, ge=0, description="USD")
    spend_month: Decimal | None = Field(None, ge=0, description="USD")
    weight: float | None = Field(None, gt=0, description="share of the queue (channels)")
    models: list[str] | None = Field(
        None, min_length=1, description="the models allowed (workspace and channel scopes)"
    )


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base) / "quotabot"


class _TomlSource(PydanticBaseSettingsSource):
    """Reads ``QUOTABOT_CONFIG``; refuses secrets and unknown keys with a message that says why."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)
        path = os.environ.get("QUOTABOT_CONFIG")
        self.data: dict[str, Any] = {}
        if not path:
            return
        try:
            with open(path, "rb") as f:
                self.data = tomllib.load(f)
        except FileNotFoundError as exc:
            raise ConfigError(f"QUOTABOT_CONFIG names {path}, which does not exist.") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        if leaked := SECRETS & self.data.keys():
            raise ConfigError(
                f"{path} sets {', '.join(sorted(leaked))}: secrets are read from the environment "
                "only. Remove them from the file and set the environment variables instead."
            )
        if unknown := self.data.keys() - settings_cls.model_fields.keys():
            raise ConfigError(f"{path} has unknown settings: {', '.join(sorted(unknown))}.")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


class _SecretFileSource(PydanticBaseSettingsSource):
    """``OPENAI_API_KEY_FILE=/run/secrets/openai`` and the like, for every secret: the value
    is the file's content (one trailing newline dropped), as Docker and Kubernetes secrets are
    mounted. The variable itself, when set too, wins."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)
        self.data: dict[str, Any] = {}
        for name in SECRETS:
            alias = settings_cls.model_fields[name].validation_alias
            env = alias.choices[0] if isinstance(alias, AliasChoices) else name.upper()
            path = os.environ.get(f"{env}_FILE")
            if not path or os.environ.get(str(env)):
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    value = f.read()
            except OSError as exc:
                raise ConfigError(f"{env}_FILE names {path}, which cannot be read: {exc}") from exc
            self.data[name] = value.removesuffix("\n").removesuffix("\r")

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


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
    models: dict[str, ModelConfig] = Field(default_factory=dict)
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
    budgets: dict[str, LimitsConfig] = Field(default_factory=dict)

    shutdown_grace: float = Field(30.0, ge=0)
    event_lease: float = Field(30.0, ge=0)
    """Seconds after which a live process answers an event whose process died; 0: never."""
    ack_after_claim: bool = False
    """Acknowledge chat events only once their claim is written (see bot.takeover.claimed)."""
    """Seconds ``serve`` lets answers under way finish after SIGTERM before stopping them."""
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
            _SecretFileSource(settings_cls),
            _TomlSource(settings_cls),
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

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "write redis://host:6379/0 (or rediss:// for TLS, unix:// for a socket)"
            )
        return url

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
        return budgets

    def budget_limits(self) -> dict[str, dict[str, Value]]:
        return {name: limits.model_dump() for name, limits in self.budgets.items()}

    @property
    def provider_configured(self) -> bool:
        """False means: nothing says where a model lives, so the built-in sandbox answers."""
        return self.openai_api_key is not None or self.openai_base_url is not None

    @property
    def provider_base_url(self) -> str:
        return (self.openai_base_url or OPENAI_DEFAULT_BASE_URL).rstrip("/")

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with an asyncio driver, whatever driver the user wrote."""
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'quotabot.db'}"
        return async_database_url(url)

    def catalog(self) -> Catalog:
        overrides = {name: ModelOverride(**m.model_dump()) for name, m in self.models.items()}
        return Catalog.build(tier=self.provider_tier, overrides=overrides)


def async_database_url(url: str) -> str:
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql+psycopg2://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def sync_database_url(url: str) -> str:
    """The same database with a blocking driver, for APScheduler 3's job store (which has no
    asyncio variant): psycopg for PostgreSQL, the standard library's sqlite3 for SQLite."""
    for prefix, driver in (
        ("postgresql+asyncpg://", "postgresql+psycopg://"),
        ("postgresql://", "postgresql+psycopg://"),
        ("postgres://", "postgresql+psycopg://"),
        ("postgresql+psycopg2://", "postgresql+psycopg://"),
        ("sqlite+aiosqlite://", "sqlite://"),
    ):
        if url.startswith(prefix):
            return driver + url[len(prefix) :]
    return url


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
    alias = info.validation_alias
    env = alias.choices[0] if isinstance(alias, AliasChoices) else f"QUOTABOT_{field.upper()}"
    return str(env) if str(env) in os.environ else field
