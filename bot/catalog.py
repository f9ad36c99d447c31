"""The models quotabot knows: endpoint, tokenizer, context window, price and default limits.

Prices are USD per 1,000 tokens (per minute of audio for the transcription models), as
``Decimal`` so that costs add up exactly; prompt tokens read from the provider's cache have a
price of their own. Reasoning models (o-series, gpt-5) are flagged: they take
``max_completion_tokens`` instead of ``max_tokens`` and bill hidden reasoning tokens as output.

Limits are the provider account's defaults (requests and tokens per minute, requests per day)
for the configured tier; the budgets learn the real ones from the provider's ``x-ratelimit-*``
headers. Models that see images are flagged ``vision``, with the figures OpenAI publishes for
counting an image's tokens (:class:`ImageTokens`, used by bot.images). Every figure can be
overridden, and models added, in the ``[models."name"]`` tables of
the config file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal, TypeVar

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
class ImageTokens:
    """How a vision model counts an image, after OpenAI's published rules: 512 px tiles
    (``base`` + ``tile`` per tile; "low" detail is ``base`` alone), or, when ``patch`` is set,
    32 px patches (at most 1,536) times ``patch``."""

    base: int = 85
    tile: int = 170
    patch: Decimal | None = None


TILES = ImageTokens()
"""gpt-4o, gpt-4.1, gpt-5, o-series: 85 + 170 per tile."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    name: str
    endpoint: Endpoint = "chat"
    encoding: str = "cl100k_base"
    context_window: int | None = None
    input_price: Decimal | None = None
    cached_input_price: Decimal | None = None
    """USD per 1,000 prompt tokens read from the provider's prompt cache; None: no discount
    (billed at ``input_price``)."""
    output_price: Decimal | None = None
    limits: RateLimits = RateLimits()
    audio_price: Decimal | None = None
    """USD per minute of audio (transcription models)."""
    reasoning: bool = False
    """A reasoning model (o-series, gpt-5): it takes ``max_completion_tokens``, which bounds
    the hidden reasoning tokens and the answer together, and refuses ``max_tokens``."""
    fixed_temperature: bool = False
    """True for models that refuse any temperature but their default: none is sent."""
    reasoning_budget: int = 0
    """Tokens allowed for reasoning on top of an answer's ``max_tokens`` (reasoning models):
    what is sent as ``max_completion_tokens``, and reserved in the budgets, is the sum."""
    vision: bool = False
    """Takes images as input (``image_url`` content parts)."""
    image_tokens: ImageTokens = TILES
    known: bool = True
    """False for a model that is neither built in nor configured (a self-hosted one, say)."""
    provider: str = "default"
    """The ``[providers."NAME"]`` that serves it (bot.provider.router), "default" for
    OPENAI_BASE_URL: its limits are that provider account's."""

    @property
    def priced(self) -> bool:
        if self.endpoint == "transcriptions":
            return self.audio_price is not None
        return self.input_price is not None and self.output_price is not None

    @property
    def free(self) -> bool:
        """Priced at nothing (a self-hosted model declared with prices "0"): no spend cap
        applies to it, however spent the budget is."""
        if self.endpoint == "transcriptions":
            return self.audio_price == 0
        cached = self.cached_input_price or 0
        return self.input_price == 0 and self.output_price == 0 and cached == 0

    def completion_limit(self, max_tokens: int) -> int:
        """The most completion tokens one answer of ``max_tokens`` visible tokens may take."""
        return max_tokens + (self.reasoning_budget if self.reasoning else 0)

    def audio_cost(self, seconds: int) -> Decimal | None:
        """USD for ``seconds`` of audio (whole seconds, as OpenAI bills them), or None."""
        if self.audio_price is None:
            return None
        return self.audio_price * seconds / _MINUTE

    def cost(self, usage: Usage) -> Decimal | None:
        """Exact USD cost of ``usage``, or None when the model has no price. Cached prompt
        tokens are billed at ``cached_input_price``; reasoning tokens are part of
        ``completion_tokens`` and billed as output, as OpenAI bills them."""
        if self.input_price is None or self.output_price is None:
            return None
        cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
        cached_price = (
            self.input_price if self.cached_input_price is None else self.cached_input_price
        )
        return (
            self.input_price * (usage.prompt_tokens - cached)
            + cached_price * cached
            + self.output_price * usage.completion_tokens
        ) / _THOUSAND


@dataclass(frozen=True, slots=True)
class _Entry:
    endpoint: Endpoint
    encoding: str
    window: int
    prices: tuple[str, str | None, str]
    """USD per 1M tokens: input, cached input (None: no discount), output."""
    limits: dict[Tier, tuple[int, int, int | None]]
    """(RPM, TPM, RPD) per tier; a tier not listed takes the paid figures."""
    reasoning: bool = False
    images: ImageTokens | None = None
    """None: the model does not see images."""


def _chat(
    window: int,
    prices: tuple[str, str | None, str],
    limits: dict[Tier, tuple[int, int, int | None]],
    *,
    encoding: str = "o200k_base",
    reasoning: bool = False,
    images: ImageTokens | None = TILES,
) -> _Entry:
    return _Entry("chat", encoding, window, prices, limits, reasoning, images)


def _patches(multiplier: str) -> ImageTokens:
    return ImageTokens(patch=Decimal(multiplier))


def _legacy(window: int, price: str, limits: tuple[int, int, int | None]) -> _Entry:
    return _Entry(
        "completions", "cl100k_base", window, (price, None, price), {"paid": limits}, images=None
    )


# Per-1M-token list prices (input, cached input, output) and usage-tier-1 limits (RPM, TPM,
# RPD) from OpenAI's published model pages (https://developers.openai.com/api/docs/models/NAME)
# and pricing page (https://developers.openai.com/api/docs/pricing), read 2026-12-04; "paid" is
# usage tier 1. The pages list no tier-1 limits for gpt-5, gpt-5.1, o3 and gpt-4.1-nano: theirs
# are their siblings' (gpt-5-mini, gpt-4.1) until the account's x-ratelimit-* headers say
# otherwise, as they do on the first answer. The gpt-3.5-turbo and gpt-4 family figures are the
# ones this project was specified with (per 1K tokens: 0.0015/0.002, 0.03/0.06, 0.06/0.12,
# 0.01/0.03), kept as they were. Dated snapshots ("gpt-4o-2024-08-06") are priced as their base
# model (see Catalog.get). Image tokens: OpenAI's "Images and vision" guide
# (https://platform.openai.com/docs/guides/images-vision, "Calculating costs"), same date.
_BUILTIN: dict[str, _Entry] = {
    "gpt-3.5-turbo": _chat(
        16_385,
        ("1.5", None, "2"),
        {"free": (3, 40_000, 200), "paid": (60, 150_000, 6_000)},
        encoding="cl100k_base",
        images=None,
    ),
    "gpt-4": _chat(
        8_192,
        ("30", None, "60"),
        {"paid": (20, 40_000, 1_000)},
        encoding="cl100k_base",
        images=None,
    ),
    "gpt-4-32k": _chat(
        32_768,
        ("60", None, "120"),
        {"paid": (20, 40_000, 1_000)},
        encoding="cl100k_base",
        images=None,
    ),
    "gpt-4-turbo": _chat(
        128_000, ("10", None, "30"), {"paid": (500, 30_000, None)}, encoding="cl100k_base"
    ),
    "gpt-4o": _chat(128_000, ("2.5", "1.25", "10"), {"paid": (500, 30_000, None)}),
    "gpt-4o-mini": _chat(
        128_000,
        ("0.15", "0.075", "0.6"),
        {"free": (3, 40_000, 200), "paid": (500, 200_000, 10_000)},
        images=ImageTokens(base=2_833, tile=5_667),
    ),
    "gpt-4.1": _chat(1_047_576, ("2", "0.5", "8"), {"paid": (500, 30_000, None)}),
    "gpt-4.1-mini": _chat(
        1_047_576,
        ("0.4", "0.1", "1.6"),
        {"paid": (500, 200_000, 10_000)},
        images=_patches("1.62"),
    ),
    "gpt-4.1-nano": _chat(
        1_047_576, ("0.1", "0.025", "0.4"), {"paid": (500, 200_000, None)}, images=_patches("2.46")
    ),
    "gpt-5": _chat(
        400_000, ("1.25", "0.125", "10"), {"paid": (500, 500_000, None)}, reasoning=True
    ),
    "gpt-5-mini": _chat(
        400_000,
        ("0.25", "0.025", "2"),
        {"paid": (500, 500_000, None)},
        reasoning=True,
        images=_patches("1.62"),
    ),
    "gpt-5-nano": _chat(
        400_000,
        ("0.05", "0.005", "0.4"),
        {"paid": (500, 200_000, None)},
        reasoning=True,
        images=_patches("2.46"),
    ),
    "gpt-5.1": _chat(
        400_000, ("1.25", "0.125", "10"), {"paid": (500, 500_000, None)}, reasoning=True
    ),
    "o3": _chat(200_000, ("2", "0.5", "8"), {"paid": (500, 30_000, None)}, reasoning=True),
    "o4-mini": _chat(
        200_000,
        ("1.1", "0.275", "4.4"),
        {"paid": (1_000, 100_000, None)},
        reasoning=True,
        images=_patches("1.72"),
    ),
    "gpt-3.5-turbo-instruct": _legacy(4_096, "1.5", (3_500, 90_000, None)),
    "davinci-002": _legacy(16_384, "2", (3_000, 250_000, None)),
    "babbage-002": _legacy(16_384, "0.4", (3_000, 250_000, None)),
}
REASONING_BUDGET = 4_096
"""Reasoning tokens allowed per answer of a reasoning model unless configured: medium effort
on a chat question takes a few hundred to a few thousand."""

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
    cached_input_price: Decimal | None = None
    output_price: Decimal | None = None
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    audio_price: Decimal | None = None
    reasoning: bool | None = None
    fixed_temperature: bool | None = None
    reasoning_budget: int | None = None
    vision: bool | None = None
    image_base_tokens: int | None = None
    image_tile_tokens: int | None = None
    image_patch_multiplier: Decimal | None = None
    provider: str | None = None


def builtin_models(tier: Tier) -> dict[str, ModelInfo]:
    out = {}
    for name, e in _BUILTIN.items():
        rpm, tpm, rpd = e.limits.get(tier) or e.limits.get("paid") or (None, None, None)
        inp, cached, outp = (None if p is None else Decimal(p) / _THOUSAND for p in e.prices)
        out[name] = ModelInfo(
            name=name,
            endpoint=e.endpoint,
            encoding=e.encoding,
            context_window=e.window,
            input_price=inp,
            cached_input_price=cached,
            output_price=outp,
            limits=RateLimits(rpm=rpm, tpm=tpm, rpd=rpd),
            reasoning=e.reasoning,
            fixed_temperature=e.reasoning,
            reasoning_budget=REASONING_BUDGET if e.reasoning else 0,
            vision=e.images is not None,
            image_tokens=e.images or TILES,
        )
    for name, (per_minute, audio_limits) in _AUDIO.items():
        rpm, rpd = audio_limits.get(tier) or audio_limits["paid"]
        out[name] = ModelInfo(
            name=name,
            endpoint="transcriptions",
            context_window=None,
            audio_price=Decimal(per_minute),
            limits=RateLimits(rpm=rpm, rpd=rpd),
        )
    return out


_T = TypeVar("_T")


def _pick(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _image_tokens(o: ModelOverride, base: ImageTokens) -> ImageTokens:
    """Tile figures given in the config make a tile-counting model of it."""
    tiles = o.image_base_tokens is not None or o.image_tile_tokens is not None
    return ImageTokens(
        base=_pick(o.image_base_tokens, base.base),
        tile=_pick(o.image_tile_tokens, base.tile),
        patch=_pick(o.image_patch_multiplier, None if tiles else base.patch),
    )


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
                rpm=_pick(o.rpm, base.limits.rpm),
                tpm=_pick(o.tpm, base.limits.tpm),
                rpd=_pick(o.rpd, base.limits.rpd),
            )
            reasoning = _pick(o.reasoning, base.reasoning)
            models[name] = replace(
                base,
                endpoint=o.endpoint or base.endpoint,
                encoding=o.encoding or base.encoding,
                context_window=o.context_window or base.context_window,
                input_price=_pick(o.input_price, base.input_price),
                cached_input_price=_pick(o.cached_input_price, base.cached_input_price),
                output_price=_pick(o.output_price, base.output_price),
                audio_price=_pick(o.audio_price, base.audio_price),
                limits=limits,
                reasoning=reasoning,
                # Declaring a model a reasoning one implies the usual for those, unless said.
                fixed_temperature=_pick(
                    o.fixed_temperature, reasoning if o.reasoning else base.fixed_temperature
                ),
                reasoning_budget=_pick(
                    o.reasoning_budget,
                    base.reasoning_budget or (REASONING_BUDGET if reasoning else 0),
                ),
                vision=_pick(o.vision, base.vision),
                image_tokens=_image_tokens(o, base.image_tokens),
                known=True,
                provider=o.provider or base.provider,
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

    def vision_models(self) -> list[str]:
        """The names that can see images, sorted."""
        return sorted(n for n, m in self._models.items() if m.vision)

    def chat_models(self) -> list[str]:
        """The names that can answer a question (chat and legacy completions), sorted."""
        return sorted(n for n, m in self._models.items() if m.endpoint != "transcriptions")

    @staticmethod
    def base_name(name: str) -> str:
        """``gpt-4o-2024-08-06`` -> ``gpt-4o``: a dated snapshot is its base model here."""
        return _SNAPSHOT.sub("", name)

    def _find(self, name: str) -> ModelInfo | None:
        if name in self._models:
            return self._models[name]
        base = _SNAPSHOT.sub("", name)
        if base != name and base in self._models:
            return replace(self._models[base], name=name)
        return None
