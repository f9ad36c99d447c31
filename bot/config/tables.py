"""The shapes of structured settings: the TOML file's ``[models."NAME"]`` and
``[budgets."SCOPE"]`` tables, and lists of platform IDs."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_settings import NoDecode

from bot.models import Endpoint


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


def zone_name(value: str) -> str:
    """An IANA zone name (``Europe/Berlin``, ``UTC``); raises ValueError with a message."""
    name = value.strip()
    try:
        # IANA names are short; a long one would reach the file system ("name too long").
        if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
            raise ZoneInfoNotFoundError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"{value[:64]!r} is not a time zone quotabot knows: use an IANA name such as "
            "Europe/Berlin, America/New_York, Asia/Kolkata or UTC."
        ) from None
    return name


IdList = Annotated[list[str], NoDecode, BeforeValidator(_id_list)]
"""Platform IDs: a comma-separated list or a JSON list in the environment, a list in TOML."""


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
    vision: bool | None = Field(None, description="takes images as input")
    image_base_tokens: int | None = Field(None, ge=0, description="tokens per image (tiles)")
    image_tile_tokens: int | None = Field(None, ge=0, description="tokens per 512 px tile")
    image_patch_multiplier: Decimal | None = Field(
        None, gt=0, description="tokens per 32 px patch (patch-counting models)"
    )
    provider: str | None = Field(
        None, description='the [providers."NAME"] that serves it; unset: the default provider'
    )
    deployment: str | None = Field(
        None, min_length=1, description="Azure: the deployment's name; unset: the model's name"
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
    tokens_week: int | None = Field(None, gt=0, description="Monday to Sunday")
    tokens_month: int | None = Field(None, gt=0)
    spend_day: Decimal | None = Field(None, ge=0, description="USD")
    spend_week: Decimal | None = Field(None, ge=0, description="USD, Monday to Sunday")
    spend_month: Decimal | None = Field(None, ge=0, description="USD")
    weight: float | None = Field(None, gt=0, description="share of the queue (channels)")
    models: list[str] | None = Field(
        None, min_length=1, description="the models allowed (workspace and channel scopes)"
    )
    fallbacks: list[str] | None = Field(
        None,
        min_length=1,
        description="the models to answer with instead, in order, when a cap, an outage or a "
        "long wait stops the one asked for (workspace and channel scopes)",
    )
    timezone: Annotated[str, AfterValidator(zone_name)] | None = Field(
        None,
        description="IANA zone whose days, weeks and months the caps count (workspace and "
        "model scopes; UTC by default)",
    )
