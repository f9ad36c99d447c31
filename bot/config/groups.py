"""The settings by subject: typed, frozen views of the flat ``Settings`` fields.

The flat fields stay what the environment and the TOML file set (their names are the
documented ones); code reads a group instead, e.g. ``settings.slack.bot_token``. Each field
here names the flat field it shows (``setting("slack_bot_token")``), so that one table says
where everything comes from: ``Settings`` builds the views from it, ``quotabot config`` prints
its headings from it, and the tests check that every flat field is in exactly one group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import SecretStr

from bot.budget.policy import Value
from bot.catalog import Catalog, ModelOverride, Tier
from bot.config.providers import (
    DEFAULT_PROVIDER,
    ProviderConfig,
    ProviderSpec,
    resolve,
    routes,
)
from bot.config.tables import LimitsConfig, ModelConfig
from bot.config.urls import async_database_url

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


def setting(name: str, convert: Callable[[Any], Any] | None = None) -> Any:
    """A group's field that shows the flat field ``name`` (through ``convert``, if given)."""
    return field(metadata={"setting": name, "convert": convert})


class Group(Protocol):
    """One of the dataclasses below."""

    TITLE: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Any]]


G = TypeVar("G", bound=Group)


def view(group: type[G], source: object) -> G:
    """The ``group`` of the flat fields of ``source`` (a ``Settings``)."""
    values = {}
    for f in fields(group):
        value = getattr(source, f.metadata["setting"])
        convert = f.metadata["convert"]
        values[f.name] = convert(value) if convert is not None and value is not None else value
    return group(**values)


def flat_names(group: type[Group]) -> dict[str, str]:
    """The group's field -> the flat field it shows."""
    return {f.name: f.metadata["setting"] for f in fields(group)}


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings:
    TITLE: ClassVar[str] = "Storage"

    data_dir: Path = setting("data_dir")
    database_url: str | None = setting("database_url")
    """As written; None: SQLite in ``data_dir``. ``sqlalchemy_url`` is the one to connect to."""
    message_text: bool = setting("store_message_text")
    """Also store prompts and answers in the usage rows."""
    retention_days: int | None = setting("usage_retention_days")
    """Delete raw usage rows older than this (the hourly rollups stay); None: keep all."""

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with an asyncio driver, whatever driver the user wrote."""
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'quotabot.db'}"
        return async_database_url(url)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    """The OpenAI-compatible server, how it is called, and the models it serves."""

    TITLE: ClassVar[str] = "Provider and models"

    api_key: SecretStr | None = setting("openai_api_key")
    admin_key: SecretStr | None = setting("openai_admin_key")
    """An OpenAI admin key: the digest then shows the organization's reported cost too."""
    url: str | None = setting("openai_base_url")
    """As written; ``base_url`` is the one to call."""
    tier: Tier = setting("provider_tier")
    timeout: float = setting("request_timeout")
    connections: int = setting("provider_connections")
    """Provider calls in flight per process at most; more wait their turn."""
    max_attempts: int = setting("max_attempts")
    retry_base: float = setting("retry_base")
    retry_max: float = setting("retry_max")
    models: Mapping[str, ModelConfig] = setting("models")
    providers: Mapping[str, ProviderConfig] = setting("providers")
    """The ``[providers."NAME"]`` tables, besides the default provider (see
    bot.config.providers)."""
    down_after: int = setting("provider_down_after")
    """Failed calls in a row (5xx, timeouts, no connection) that mark a provider down."""
    down_for: float = setting("provider_down_for")
    """Seconds a provider stays marked down after its last failure (unless a call succeeds)."""

    @property
    def configured(self) -> bool:
        """False means: nothing says where a model lives, so the built-in sandbox answers."""
        return self.api_key is not None or self.url is not None or bool(self.providers)

    @property
    def base_url(self) -> str:
        return (self.url or OPENAI_DEFAULT_BASE_URL).rstrip("/")

    def routes(self) -> dict[str, str]:
        """Model -> its provider's name, for the models that name one (the others: the
        default provider)."""
        return routes(self.models)

    def specs(
        self, *, default_url: str | None = None, keys: bool = True
    ) -> dict[str, ProviderSpec]:
        """Every provider, the default first (at ``default_url`` when given: the sandbox),
        keys read from the environment. Raises ConfigError for a key that is not set, unless
        ``keys`` is False (commands that call no model): then that key is None."""
        named = resolve(self.providers, self.models, keys=keys)
        return {DEFAULT_PROVIDER: self._default(default_url), **named}

    def spec(self, name: str) -> ProviderSpec:
        """One provider as :meth:`specs` has it (only its own key is read)."""
        if name == DEFAULT_PROVIDER:
            return self._default(None)
        return resolve({name: self.providers[name]}, self.models)[name]

    def _default(self, url: str | None) -> ProviderSpec:
        key = self.api_key if url is None else SecretStr("sandbox")
        url = url or self.base_url
        return ProviderSpec(
            name=DEFAULT_PROVIDER,
            kind="openai" if url == OPENAI_DEFAULT_BASE_URL else "openai-compatible",
            base_url=url,
            api_key=key,
        )

    def catalog(self) -> Catalog:
        overrides = {
            name: ModelOverride(**m.model_dump(exclude={"deployment"}))
            for name, m in self.models.items()
        }
        return Catalog.build(tier=self.tier, overrides=overrides)


@dataclass(frozen=True, slots=True, kw_only=True)
class DefaultsSettings:
    """What a channel that has chosen nothing gets."""

    TITLE: ClassVar[str] = "Channel defaults"

    model: str = setting("default_model")
    system_prompt: str = setting("system_prompt")
    max_tokens: int = setting("max_tokens")
    temperature: float | None = setting("temperature")


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceSettings:
    TITLE: ClassVar[str] = "Voice messages and audio"

    transcription_model: str = setting("transcription_model")


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetSettings:
    """Limits, where their counters live, and how requests wait for them."""

    TITLE: ClassVar[str] = "Budgets and queueing"

    limits: Mapping[str, LimitsConfig] = setting("budgets")
    """The ``[budgets."SCOPE"]`` tables."""
    redis_url: str | None = setting("redis_url")
    """Counters shared by every process; None: they live in the process."""
    redis_prefix: str = setting("redis_prefix")
    queue_size: int = setting("queue_size")
    burst_spread: float = setting("burst_spread")
    request_deadline: float = setting("request_deadline")
    """Seconds a request may spend queued and retried before the user is told to try later."""
    batching: bool = setting("batching")
    batch_max: int = setting("batch_max")

    def limit_values(self) -> dict[str, dict[str, Value]]:
        return {name: limits.model_dump() for name, limits in self.limits.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class EventsSettings:
    """The chat events a process takes on, and how it lets go of them."""

    TITLE: ClassVar[str] = "Chat events"

    concurrent_answers: int | None = setting("concurrent_answers")
    """Chat events one process works on at once; None: as many as provider connections."""
    lease: float = setting("event_lease")
    """Seconds after which a live process answers an event whose process died; 0: never."""
    ack_after_claim: bool = setting("ack_after_claim")
    """Acknowledge chat events only once their claim is written (see bot.takeover.claimed)."""
    shutdown_grace: float = setting("shutdown_grace")
    """Seconds ``serve`` lets answers under way finish after SIGTERM before stopping them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessSettings:
    """Where quotabot answers, and who may change budgets (empty allow-lists: everywhere)."""

    TITLE: ClassVar[str] = "Where quotabot answers, and who may change budgets"

    allowed_workspaces: frozenset[str] = setting("allowed_workspaces", frozenset)
    allowed_channels: frozenset[str] = setting("allowed_channels", frozenset)
    denied_channels: frozenset[str] = setting("denied_channels", frozenset)
    admin_users: frozenset[str] = setting("admin_users", frozenset)
    """Besides the workspace's own admins."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestsSettings:
    TITLE: ClassVar[str] = "Daily digests and budget alerts"

    misfire_grace: float = setting("digest_misfire_grace")
    """Seconds after its time a digest missed while quotabot was down is still sent."""
    budget_alerts: bool = setting("budget_alerts")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSettings:
    """The HTTP server of the web endpoints (Slack, Discord, health, metrics, the dashboard)."""

    TITLE: ClassVar[str] = "Web endpoints"

    host: str = setting("http_host")
    port: int = setting("http_port")
    keepalive_timeout: float = setting("http_keepalive_timeout")
    read_timeout: float = setting("http_read_timeout")
    public_url: str | None = setting("public_url")
    dashboard_link_ttl: float = setting("dashboard_link_ttl")
    dashboard_secret: SecretStr | None = setting("dashboard_secret")
    admin_token: SecretStr | None = setting("admin_token")


@dataclass(frozen=True, slots=True, kw_only=True)
class LogsSettings:
    TITLE: ClassVar[str] = "Logs"

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = setting("log_level")
    format: Literal["text", "json"] = setting("log_format")


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackSettings:
    """One workspace (bot token) or many (OAuth client ID and secret); HTTP (signing secret)
    or Socket Mode (app token)."""

    TITLE: ClassVar[str] = "Slack"

    bot_token: SecretStr | None = setting("slack_bot_token")
    signing_secret: SecretStr | None = setting("slack_signing_secret")
    app_token: SecretStr | None = setting("slack_app_token")
    api_url: str | None = setting("slack_api_url")
    client_id: str | None = setting("slack_client_id")
    client_secret: SecretStr | None = setting("slack_client_secret")
    redirect_uri: str | None = setting("slack_redirect_uri")
    assistant: bool = setting("slack_assistant")
    """DM threads answered as the assistant pane's (adapters.slack.assistant)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscordSettings:
    """The gateway (bot token) and/or HTTP interactions (public key and application ID)."""

    TITLE: ClassVar[str] = "Discord"

    token: SecretStr | None = setting("discord_token")
    public_key: str | None = setting("discord_public_key")
    application_id: str | None = setting("discord_application_id")
    api_url: str | None = setting("discord_api_url")
    admin_roles: frozenset[str] = setting("discord_admin_roles", frozenset)
    """Role IDs that may change budgets, besides members with Manage Server."""
    message_content: bool = setting("discord_message_content")
    """Ask for the privileged Message Content intent (gateway mode)."""
    streaming: bool = setting("discord_streaming")
    """Answers edited in as they are generated."""
    edit_interval: float = setting("discord_edit_interval")
    """Seconds between two edits of one message while an answer streams."""


GROUPS: dict[str, type[Group]] = {
    "store": StoreSettings,
    "provider": ProviderSettings,
    "defaults": DefaultsSettings,
    "voice": VoiceSettings,
    "budget": BudgetSettings,
    "events": EventsSettings,
    "access": AccessSettings,
    "digests": DigestsSettings,
    "web": WebSettings,
    "logs": LogsSettings,
    "slack": SlackSettings,
    "discord": DiscordSettings,
}
"""``Settings``' attribute -> its group, in the order of ``quotabot config`` and the README."""
