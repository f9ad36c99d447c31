"""The TOML file's ``[providers."NAME"]`` tables, and each provider as quotabot calls it.

    [providers."azure"]
    kind = "azure"                                   # or "openai", "openai-compatible"
    base_url = "https://example.openai.azure.com"
    api_key_env = "AZURE_OPENAI_API_KEY"             # the key is read from this variable
    api_version = "2024-10-21"

    [models."gpt-4o"]
    provider = "azure"
    deployment = "gpt-4o-prod"                       # Azure only; default: the model's name

The provider named ``default`` is the one of ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` (the
built-in sandbox when nothing at all is configured): models that name no provider go there.

Tables are checked when the settings load; keys are read only by :func:`resolve`, when a
process that calls models starts (``chat``, ``serve``): ``quotabot usage`` needs no key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bot.config.tables import ModelConfig
from bot.errors import ConfigError

ProviderKind = Literal["openai", "azure", "openai-compatible"]
DEFAULT_PROVIDER = "default"
"""The provider of OPENAI_BASE_URL / OPENAI_API_KEY; not a name a table may take."""
OPENAI_URL = "https://api.openai.com/v1"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_KEY_HEADERS = frozenset({"authorization", "api-key"})


class ProviderConfig(BaseModel):
    """A ``[providers."NAME"]`` table: where a provider is, and how to sign in to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ProviderKind
    base_url: str | None = Field(
        None,
        description="the API root (.../v1), or for azure the resource's endpoint "
        "(https://NAME.openai.azure.com)",
    )
    api_key_env: str | None = Field(
        None, description="the environment variable that holds the key (or <VARIABLE>_FILE)"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every call")
    api_version: str | None = Field(None, description="azure: the api-version of each call")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        # Never repeated: a key pasted here by mistake must not be printed.
        if name is not None and not _ENV_NAME.fullmatch(name):
            raise ValueError(
                "api_key_env is the name of the environment variable that holds the key "
                '(e.g. api_key_env = "AZURE_OPENAI_API_KEY"), not the key itself'
            )
        return name

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name) or "\n" in value or "\r" in value:
                raise ValueError(f"headers: {name!r} cannot be sent as an HTTP header")
            if name.lower() in _KEY_HEADERS:
                raise ValueError(
                    f"headers: the key is not written in the file: leave {name} out and "
                    "name the variable that holds the key with api_key_env"
                )
        return headers

    @field_validator("base_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and (
            not url.startswith(("http://", "https://")) or not urlsplit(url).hostname
        ):
            raise ValueError(
                "base_url must be an http:// or https:// URL, e.g. http://localhost:11434/v1"
            )
        return url.rstrip("/") if url is not None else None

    @model_validator(mode="after")
    def _kind(self) -> ProviderConfig:
        if self.kind == "azure":
            if self.api_version is None:
                raise ValueError(
                    'kind = "azure" needs api_version, e.g. api_version = "2024-10-21" '
                    "(Azure answers 404 without one)"
                )
            if self.base_url is None:
                raise ValueError(
                    'kind = "azure" needs base_url, the resource\'s endpoint: '
                    'base_url = "https://NAME.openai.azure.com"'
                )
            if "/deployments" in self.base_url:
                raise ValueError(
                    "base_url is the resource's endpoint (https://NAME.openai.azure.com): "
                    "quotabot adds /openai/deployments/<deployment> itself; set each model's "
                    'deployment = "..." instead'
                )
        elif self.api_version is not None:
            raise ValueError('api_version is for kind = "azure" only: remove it')
        if self.kind == "openai-compatible" and self.base_url is None:
            raise ValueError(
                'kind = "openai-compatible" needs base_url, e.g. '
                'base_url = "http://localhost:11434/v1" (Ollama) or "http://vllm:8000/v1"'
            )
        if self.kind in ("openai", "azure") and self.api_key_env is None:
            raise ValueError(
                f'kind = "{self.kind}" needs a key: name the environment variable that '
                'holds it, e.g. api_key_env = "AZURE_OPENAI_API_KEY"'
            )
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSpec:
    """One provider, ready to be called: its key read, its models' deployments known."""

    name: str
    kind: ProviderKind
    base_url: str
    api_key: SecretStr | None = None
    key_name: str = "OPENAI_API_KEY"
    """Where the key comes from, for messages that tell an operator what to check."""
    headers: Mapping[str, str] = field(default_factory=dict)
    api_version: str | None = None
    deployments: Mapping[str, str] = field(default_factory=dict)
    """Model -> Azure deployment, for the models whose deployment is not their name."""


def check_names(providers: Mapping[str, ProviderConfig]) -> None:
    """Raises ValueError for a table that takes the default provider's name."""
    if DEFAULT_PROVIDER in providers:
        raise ValueError(
            f'[providers."{DEFAULT_PROVIDER}"]: that name is the provider of OPENAI_BASE_URL '
            "and OPENAI_API_KEY; give this table another name"
        )


def check_models(
    models: Mapping[str, ModelConfig], providers: Mapping[str, ProviderConfig]
) -> None:
    """Raises ValueError for a model that names a provider no table declares, or that has a
    deployment but no Azure provider."""
    for model, config in models.items():
        name = config.provider
        if name is not None and name != DEFAULT_PROVIDER and name not in providers:
            declared = ", ".join(f'"{p}"' for p in sorted(providers)) or "none yet"
            raise ValueError(
                f'[models."{model}"] names provider = "{name}", which no [providers."{name}"] '
                f"table declares (declared: {declared}): add that table, or leave provider "
                "out to use the default provider (OPENAI_BASE_URL)"
            )
        kind = providers[name].kind if name is not None and name in providers else None
        if config.deployment is not None and kind != "azure":
            raise ValueError(
                f'[models."{model}"]: deployment is for models of a kind = "azure" provider: '
                "remove it, or set provider to an Azure one"
            )


def routes(models: Mapping[str, ModelConfig]) -> dict[str, str]:
    """Model -> the provider that serves it, for the models that name one."""
    return {model: config.provider for model, config in models.items() if config.provider}


def resolve(
    tables: Mapping[str, ProviderConfig],
    models: Mapping[str, ModelConfig],
    *,
    keys: bool = True,
    environ: Mapping[str, str] | None = None,
) -> dict[str, ProviderSpec]:
    """Each declared provider with its key read from the environment (or ``<VARIABLE>_FILE``,
    as secrets are mounted); ConfigError, naming the table and the variable but never a
    value, for a key that is not set. ``keys=False``: a key that is not there is None (for
    commands that call no model)."""
    env = os.environ if environ is None else environ
    specs = {}
    for name, table in tables.items():
        key = None
        if table.api_key_env is not None:
            try:
                key = _read_key(name, table.api_key_env, env)
            except ConfigError:
                if keys:
                    raise
        specs[name] = ProviderSpec(
            name=name,
            kind=table.kind,
            base_url=table.base_url or OPENAI_URL,
            api_key=key,
            key_name=table.api_key_env or f'api_key_env of [providers."{name}"]',
            headers=dict(table.headers),
            api_version=table.api_version,
            deployments={
                model: config.deployment
                for model, config in models.items()
                if config.provider == name and config.deployment is not None
            },
        )
    return specs


def _read_key(provider: str, variable: str, env: Mapping[str, str]) -> SecretStr:
    if value := env.get(variable):
        return SecretStr(value)
    path = env.get(f"{variable}_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read().removesuffix("\n").removesuffix("\r")
        except OSError as exc:
            raise ConfigError(
                f'[providers."{provider}"]: {variable}_FILE names {path}, which cannot be '
                f"read: {exc.strerror or exc}"
            ) from exc
        if value:
            return SecretStr(value)
        raise ConfigError(
            f'[providers."{provider}"]: {variable}_FILE names {path}, which is empty.'
        )
    said = "is empty" if variable in env else "is not set"
    raise ConfigError(
        f'[providers."{provider}"] reads its key from {variable}, which {said}: export '
        f"{variable}=<the key> (or {variable}_FILE=<a file holding it>) before starting "
        "quotabot, or remove api_key_env for a server that takes no key."
    )
