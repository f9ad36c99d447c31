"""The demand every system faces, and what the sandbox's limits allow in the run window.

A workload is a seeded list of requests from 8 channels of unequal demand: half of each
channel's requests arrive at t=0 (the burst), the rest at evenly spaced times over the first
quarter of the window (the trickle). Each request carries what the sandbox will charge for it,
computed with the sandbox's own code, so the theoretical maximum is exact for this workload.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass

from bot.config import DEFAULT_SYSTEM_PROMPT
from bot.models import Endpoint, Message
from bot.sandbox.replies import reply_text, truncate
from bot.tokens import count_messages, count_text, render_prompt

CHANNEL_WEIGHTS = (8, 4, 2, 1, 1, 1, 1, 1)
"""Relative demand of channels C0..C7."""
DEMAND_FACTOR = 3
"""Requests in all, as a multiple of what the RPM limit alone lets through in the window."""
BURST_SHARE = 0.5
"""Share of each channel's requests that arrive at t=0; the rest trickle in."""
TRICKLE_SHARE = 0.25
"""The trickle ends at this fraction of the window."""
ENCODING = "cl100k_base"

_TEXT = (
    "how do we keep the monthly token budget under control when several teams share one "
    "account and the model answers slowly during the afternoon peak please summarise the "
    "incident report draft a reply to the customer explain this stack trace list the risks "
    "of the migration plan compare both proposals and suggest next steps for the release"
)
_WORDS = _TEXT.split()


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """One request of the workload."""

    index: int
    channel: int
    user: str
    at: float
    """Seconds after the start of the run at which it arrives."""
    messages: tuple[Message, ...]
    max_tokens: int
    prompt_tokens: int
    completion_tokens: int
    """The length of the sandbox's (deterministic) answer, after the max_tokens cut."""

    @property
    def channel_name(self) -> str:
        return f"C{self.channel}"

    @property
    def reserved(self) -> int:
        """What the sandbox takes from the TPM bucket at admission: prompt + max_tokens."""
        return self.prompt_tokens + self.max_tokens

    @property
    def cost(self) -> int:
        """What it finally takes once the unused part of max_tokens is refunded."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    """What the limits allow in the window, from full buckets at t=0.

    Requests: ``rpm * (1 + window / 60)`` (the RPM bucket holds ``rpm`` and refills ``rpm``
    per 60 s). Tokens: ``tpm * (1 + window / 60)`` tokens, divided by the mean final cost
    (prompt + answer tokens, after the refund) of the workload's requests. The maximum is the
    smaller of both, and never more than the demand.
    """

    requests: float
    tokens: float
    mean_cost: float
    by_tokens: float
    demand: int

    @property
    def maximum(self) -> int:
        return math.floor(min(self.requests, self.by_tokens, self.demand))

    @property
    def binding(self) -> str:
        if self.demand <= min(self.requests, self.by_tokens):
            return "demand"
        return "RPM" if self.requests <= self.by_tokens else "TPM"


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    name: str
    model: str
    endpoint: Endpoint
    rpm: int
    tpm: int
    window: float
    seed: int
    items: tuple[Item, ...]

    @property
    def channels(self) -> int:
        return len(CHANNEL_WEIGHTS)

    def demand(self) -> list[int]:
        out = [0] * self.channels
        for item in self.items:
            out[item.channel] += 1
        return out

    def capacity(self) -> Capacity:
        scale = 1 + self.window / 60
        mean_cost = sum(i.cost for i in self.items) / len(self.items)
        tokens = self.tpm * scale
        return Capacity(
            requests=self.rpm * scale,
            tokens=tokens,
            mean_cost=mean_cost,
            by_tokens=tokens / mean_cost,
            demand=len(self.items),
        )

    def summary(self) -> dict[str, object]:
        cap = self.capacity()
        return {
            "name": self.name,
            "model": self.model,
            "endpoint": self.endpoint,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "window_s": self.window,
            "seed": self.seed,
            "requests": len(self.items),
            "demand_per_channel": self.demand(),
            "mean_prompt_tokens": _mean([i.prompt_tokens for i in self.items]),
            "mean_max_tokens": _mean([i.max_tokens for i in self.items]),
            "mean_completion_tokens": _mean([i.completion_tokens for i in self.items]),
            "capacity": {
                "requests": cap.requests,
                "tokens": cap.tokens,
                "mean_cost_tokens": cap.mean_cost,
                "requests_by_tokens": cap.by_tokens,
                "maximum": cap.maximum,
                "binding": cap.binding,
            },
        }


def _mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 2)


def sandbox_tokens(
    *, model: str, endpoint: Endpoint, messages: tuple[Message, ...], max_tokens: int, seed: int
) -> tuple[int, int]:
    """Prompt and answer tokens the sandbox (seeded with ``seed``) bills for this request,
    computed as bot.sandbox.parsing and bot.sandbox.app do."""
    if endpoint == "chat":
        prompt_tokens = count_messages(messages, ENCODING)
        users = [m for m in messages if m.role == "user"] or list(messages)
        key = json.dumps([[m.role, m.content, m.name] for m in messages])
        echo = users[-1].content
    else:
        key = echo = render_prompt(messages)
        prompt_tokens = count_text(key, ENCODING)
    text = reply_text(seed=seed, model=model, prompt_key=key, echo=echo, encoding=ENCODING)
    text, _ = truncate(text, max_tokens, ENCODING)
    return prompt_tokens, count_text(text, ENCODING)


def _split(total: int, weights: tuple[int, ...]) -> list[int]:
    """``total`` in proportion to ``weights``, in whole numbers (largest remainder)."""
    whole = sum(weights)
    shares = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def build(
    *,
    name: str,
    model: str,
    endpoint: Endpoint,
    rpm: int,
    tpm: int,
    window: float,
    seed: int,
    total: int,
    words: tuple[int, int],
    max_tokens: tuple[int, int],
) -> Workload:
    """``total`` requests split across the channels by CHANNEL_WEIGHTS; prompts of ``words``
    words (inclusive range) and ``max_tokens`` drawn uniformly from the inclusive range."""
    rng = random.Random(seed)
    per_channel = _split(total, CHANNEL_WEIGHTS)
    burst: list[int] = []
    trickle: list[int] = []
    for channel, count in enumerate(per_channel):
        at_once = round(count * BURST_SHARE)
        burst += [channel] * at_once
        trickle += [channel] * (count - at_once)
    rng.shuffle(burst)
    rng.shuffle(trickle)
    span = window * TRICKLE_SHARE
    arrivals = [(0.0, c) for c in burst]
    arrivals += [((k + 1) * span / len(trickle), c) for k, c in enumerate(trickle)]
    items = []
    asked = [0] * len(CHANNEL_WEIGHTS)
    for index, (at, channel) in enumerate(arrivals):
        asked[channel] += 1
        text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(*words)))
        prompt = f"[C{channel} #{asked[channel]}] {text}?"
        messages = (Message("system", DEFAULT_SYSTEM_PROMPT), Message("user", prompt))
        cap = rng.randint(*max_tokens)
        prompt_tokens, completion_tokens = sandbox_tokens(
            model=model, endpoint=endpoint, messages=messages, max_tokens=cap, seed=seed
        )
        items.append(
            Item(
                index=index,
                channel=channel,
                user=f"U{channel}-{rng.randint(1, 5)}",
                at=at,
                messages=messages,
                max_tokens=cap,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
        )
    return Workload(
        name=name,
        model=model,
        endpoint=endpoint,
        rpm=rpm,
        tpm=tpm,
        window=window,
        seed=seed,
        items=tuple(items),
    )


def chat_workload(*, window: float, seed: int) -> Workload:
    """The main workload: gpt-3.5-turbo at 600 RPM / 60,000 TPM, demand 3x the RPM bound."""
    rpm, tpm = 600, 60_000
    total = round(DEMAND_FACTOR * rpm * (1 + window / 60))
    return build(
        name="chat",
        model="gpt-3.5-turbo",
        endpoint="chat",
        rpm=rpm,
        tpm=tpm,
        window=window,
        seed=seed,
        total=total,
        words=(3, 60),
        max_tokens=(50, 100),
    )


def batching_workload(*, window: float, seed: int, batch_max: int) -> Workload:
    """gpt-3.5-turbo-instruct at 60 RPM / 1,000,000 TPM: requests per minute bind.

    Demand is twice what batching could answer at best in the window (the full RPM bucket,
    then ``batch_max`` prompts per call), so RPM binds with batching on too. One max_tokens for
    all, as one channel setting gives: only requests with equal settings can share a call.
    """
    rpm, tpm = 60, 1_000_000
    total = round(2 * (rpm + batch_max * rpm * window / 60))
    return build(
        name="batching",
        model="gpt-3.5-turbo-instruct",
        endpoint="completions",
        rpm=rpm,
        tpm=tpm,
        window=window,
        seed=seed,
        total=total,
        words=(3, 12),
        max_tokens=(48, 48),
    )
