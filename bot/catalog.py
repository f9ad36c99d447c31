"""The models quotabot knows: endpoint, tokenizer, context window, price and default limits.

Prices are USD per 1,000 tokens (per minute of audio for the transcription models), as
``Decimal`` so that costs add up to the cent. Limits are the provider account's defaults
(requests and tokens per minute, requests per day) for the configured tier; the budgets learn
the real ones from the provider's ``x-ratelimit-*`` headers. Every figure can be overridden,
and models added, in the ``[models."name"]`` tables of the config file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from bot.models import Endpoint, Usage

Tier = Literal["free", "paid"]
_THOUSAND = Decimal(1000)
_MINUTE = Decimal(60)


@dataclass(frozen=True, slots=True)
class RateLimits:
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    name: str
    endpoint: Endpoint = "chat"
    encoding: str = "cl100k_base"
    context_window: int | None = None
    input_price: Decimal | None = None
    output_price: Decimal | None = None
    limits: RateLimits = RateLimits()
    audio_price: Decimal | None = None
    """USD per minute of audio (transcription models)."""
    known: bool = True
    """False for a model that is neither built in nor configured (a self-hosted one, say)."""

    @property
    def priced(self) -> bool:
        if self.endpoint == "transcriptions":
            return self.audio_price is not None
        return self.input_price is not None and self.output_price is not None

    def audio_cost(self, seconds: int) -> Decimal | None:
        """USD for ``seconds`` of audio (whole seconds, as OpenAI bills them), or None."""
        if self.audio_price is None:
            return None
        return self.audio_price * seconds / _MINUTE

    def cost(self, usage: Usage) -> Decimal | None:
        """Exact USD cost of ``usage``, or None when the model has no price."""
        if self.input_price is None or self.output_price is None:
            return None
        return (
            self.input_price * usage.prompt_tokens + self.output_price * usage.completion_tokens
        ) / _THOUSAND


def _d(value: str) -> Decimal:
    return Decimal(value)


# name: (endpoint, encoding, context window, input, output, {tier: (rpm, tpm, rpd)})
# The gpt-3.5-turbo and gpt-4 figures are the ones this project was specified with; the others
# are OpenAI's published list prices and usage-tier-1 limits.
_BUILTIN: dict[
    str, tuple[Endpoint, str, int, str, str, dict[Tier, tuple[int, int, int | None]]]
] = {
    "gpt-3.5-turbo": (
        "chat",
        "cl100k_base",
        16_385,
        "0.0015",
        "0.002",
        {"free": (3, 40_000, 200), "paid": (60, 150_000, 6_000)},
    ),
    "gpt-4": ("chat", "cl100k_base", 8_192, "0.03", "0.06", {"paid": (20, 40_000, 1_000)}),
    "gpt-4-32k": ("chat", "cl100k_base", 32_768, "0.06", "0.12", {"paid": (20, 40_000, 1_000)}),
    "gpt-4-turbo": ("chat", "cl100k_base", 128_000, "0.01", "0.03", {"paid": (500, 30_000, None)}),
    "gpt-4o": ("chat", "o200k_base", 128_000, "0.0025", "0.01", {"paid": (500, 30_000, None)}),
    "gpt-4o-mini": (
        "chat",
        "o200k_base",
        128_000,
        "0.00015",
        "0.0006",
        {"free": (3, 40_000, 200), "paid": (500, 200_000, 10_000)},
    ),
    "gpt-4.1": ("chat", "o200k_base", 1_047_576, "0.002", "0.008", {"paid": (500, 30_000, None)}),
    "gpt-4.1-mini": (
        "chat",
        "o200k_base",
        1_047_576,
        "0.0004",
        "0.0016",
        {"paid": (500, 200_000, None)},
    ),
    "gpt-4.1-nano": (
        "chat",
        "o200k_base",
        1_047_576,
        "0.0001",
        "0.0004",
        {"paid": (500, 200_000, None)},
    ),
    "gpt-3.5-turbo-instruct": (
        "completions",
        "cl100k_base",
        4_096,
        "0.0015",
        "0.002",
        {"paid": (3_500, 90_000, None)},
    ),
    "davinci-002": (
        "completions",
        "cl100k_base",
        16_384,
        "0.002",
        "0.002",
        {"paid": (3_000, 250_000, None)},
    ),
    "babbage-002": (
        "completions",
        "cl100k_base",
        16_384,
        "0.0004",
        "0.0004",
        {"paid": (3_000, 250_000, None)},
    ),
}

# name: (USD per minute of audio, {tier: (rpm, rpd)}). OpenAI's list prices; its free tier
# allows Whisper 3 requests per minute and 200 per day, usage tier 1 allows 50 per minute.
_AUDIO: dict[str, tuple[str, dict[Tier, tuple[int, int | None]]]] = {
    "whisper-1": ("0.006", {"free": (3, 200), "paid": (50, None)}),
    "gpt-4o-transcribe": ("0.006", {"free": (3, 200), "paid": (50, None)}),
    "gpt-4o-mini-transcribe": ("0.003", {"free": (3, 200), "paid": (50, None)}),
}

# OpenAI answers with dated snapshot names ("gpt-4o-2024-08-06", "gpt-3.5-turbo-0125"): they are
# priced as their base model. Anything else after the base name is a different model.
_SNAPSHOT = re.compile(r"-(\d{4}|\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelOverride:
    """What a config file may say about one model; None keeps the built-in value."""

    endpoint: Endpoint | None = None
    encoding: str | None = None
    context_window: int | None = None
    input_price: Decimal | None = None
    output_price: Decimal | None = None
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    audio_price: Decimal | None = None


def builtin_models(tier: Tier) -> dict[str, ModelInfo]:
    out = {}
    for name, (endpoint, encoding, window, inp, outp, limits) in _BUILTIN.items():
        rpm, tpm, rpd = limits.get(tier) or limits.get("paid") or (None, None, None)
        out[name] = ModelInfo(
            name=name,
            endpoint=endpoint,
            encoding=encoding,
            context_window=window,
            input_price=_d(inp),
            output_price=_d(outp),
            limits=RateLimits(rpm=rpm, tpm=tpm, rpd=rpd),
        )
    for name, (per_minute, audio_limits) in _AUDIO.items():
        rpm, rpd = audio_limits.get(tier) or audio_limits["paid"]
        out[name] = ModelInfo(
            name=name,
            endpoint="transcriptions",
            context_window=None,
            audio_price=_d(per_minute),
            limits=RateLimits(rpm=rpm, rpd=rpd),
        )
    return out


class Catalog:
    """Built-in models with the config's overrides applied. Unknown names still resolve."""

    def __init__(self, models: Mapping[str, ModelInfo]):
        self._models = dict(models)

    @classmethod
    def build(cls, *, tier: Tier = "free", overrides: Mapping[str, ModelOverride] = {}) -> Catalog:
        models = builtin_models(tier)
        for name, o in overrides.items():
            base = models.get(name) or ModelInfo(name=name)
            limits = RateLimits(
                rpm=o.rpm if o.rpm is not None else base.limits.rpm,
                tpm=o.tpm if o.tpm is not None else base.limits.tpm,
                rpd=o.rpd if o.rpd is not None else base.limits.rpd,
            )
            models[name] = replace(
                base,
                endpoint=o.endpoint or base.endpoint,
                encoding=o.encoding or base.encoding,
                context_window=o.context_window or base.context_window,
                input_price=o.input_price if o.input_price is not None else base.input_price,
                output_price=o.output_price if o.output_price is not None else base.output_price,
                audio_price=o.audio_price if o.audio_price is not None else base.audio_price,
                limits=limits,
                known=True,
            )
        return cls(models)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._models.values())

    def names(self) -> list[str]:
        return sorted(self._models)

    def get(self, name: str) -> ModelInfo:
        """The model's entry; an unknown model gets chat completions, cl100k and no price."""
        found = self._find(name)
        return found if found is not None else ModelInfo(name=name, known=False)

    def _find(self, name: str) -> ModelInfo | None:
        if name in self._models:
            return self._models[name]
        base = _SNAPSHOT.sub("", name)
        if base != name and base in self._models:
            return replace(self._models[base], name=name)
        return None
