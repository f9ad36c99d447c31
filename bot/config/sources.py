"""Where settings come from besides the environment: the TOML file named by
``QUOTABOT_CONFIG``, and ``<VARIABLE>_FILE`` files for secrets."""

from __future__ import annotations

import os
import tomllib
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from bot.errors import ConfigError

SECRETS = frozenset(
    {
        "openai_api_key",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "slack_client_secret",
        "discord_token",
        "openai_admin_key",
        "dashboard_secret",
        "admin_token",
    }
)


def env_name(field: str, info: FieldInfo) -> str:
    """The environment variable that sets ``field``: ``OPENAI_API_KEY`` as other tools spell
    it, else ``QUOTABOT_<FIELD>``."""
    alias = info.validation_alias
    return str(alias.choices[0] if isinstance(alias, AliasChoices) else f"QUOTABOT_{field.upper()}")


class TomlSource(PydanticBaseSettingsSource):
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


class SecretFileSource(PydanticBaseSettingsSource):
    """``OPENAI_API_KEY_FILE=/run/secrets/openai`` and the like, for every secret: the value
    is the file's content (one trailing newline dropped), as Docker and Kubernetes secrets are
    mounted. The variable itself, when set too, wins."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)
        self.data: dict[str, Any] = {}
        for name in SECRETS:
            env = env_name(name, settings_cls.model_fields[name])
            path = os.environ.get(f"{env}_FILE")
            if not path or os.environ.get(env):
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
