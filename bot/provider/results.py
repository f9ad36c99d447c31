"""What a successful call returns, and the tolerant parsing that builds it.

Servers that imitate OpenAI leave things out (rate-limit headers, ``usage``, ``index``,
``finish_reason``) or send ``null``: each gap gets a neutral value instead of an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from bot.models import Usage
from bot.ratelimits import RateLimitInfo

Kind = Literal["chat", "completions"]


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    text: str
    finish_reason: str
    """"stop", "length", ...; "unknown" when the server sent none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """One answer, with what quotabot needs to account for it."""

    choices: tuple[Choice, ...]
    """Ordered by index; never empty."""
    model: str
    """As the server reported it (a dated snapshot, say); the requested model when it did not."""
    usage: Usage | None
    """None when the server sent no usage: the caller counts tokens itself."""
    request_id: str | None
    rate_limits: RateLimitInfo
    latency: float
    """Seconds from sending the request to the complete body (or the end of the stream)."""

    @property
    def text(self) -> str:
        return self.choices[0].text

    @property
    def finish_reason(self) -> str:
        return self.choices[0].finish_reason


def nonneg_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_usage(raw: object) -> Usage | None:
    """Usage, or None when absent or unusable; a missing completion count is derived from the
    total when the server sent one. Cached prompt tokens and reasoning tokens come from the
    ``prompt_tokens_details`` and ``completion_tokens_details`` objects, 0 when absent."""
    if not isinstance(raw, dict):
        return None
    prompt = nonneg_int(raw.get("prompt_tokens"))
    completion = nonneg_int(raw.get("completion_tokens"))
    total = nonneg_int(raw.get("total_tokens"))
    if prompt is not None and completion is None and total is not None and total >= prompt:
        completion = total - prompt
    if prompt is None or completion is None:
        return None
    cached = _detail(raw, "prompt_tokens_details", "cached_tokens", prompt)
    reasoning = _detail(raw, "completion_tokens_details", "reasoning_tokens", completion)
    return Usage(prompt, completion, cached, reasoning)


def _detail(raw: dict[str, Any], details: str, name: str, most: int) -> int:
    """One of OpenAI's ``*_tokens_details`` counts; 0 when absent, never more than ``most``."""
    found = raw.get(details)
    value = nonneg_int(found.get(name)) if isinstance(found, dict) else None
    return min(value or 0, most)


def choice_index(choice: Mapping[str, Any], position: int) -> int:
    index = nonneg_int(choice.get("index"))
    return position if index is None else index


def finish_reason(choice: Mapping[str, Any]) -> str | None:
    reason = choice.get("finish_reason")
    return reason if isinstance(reason, str) and reason else None


def content_text(value: object) -> str:
    """Message content as text: a string, a list of text parts, or null (-> "")."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            part["text"]
            for part in value
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _choice_text(choice: Mapping[str, Any], kind: Kind) -> str:
    if kind == "chat":
        message = choice.get("message")
        if isinstance(message, dict):
            text = content_text(message.get("content"))
            refusal = message.get("refusal")
            # A refusal comes with content null; showing it beats an empty reply.
            return text or (refusal if isinstance(refusal, str) else "")
    return content_text(choice.get("text"))


class BadBody(Exception):
    """A 2xx answer without the expected JSON; the client turns it into a ProviderError."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcription:
    """One answer of /v1/audio/transcriptions."""

    text: str
    model: str
    seconds: int | None
    """Audio seconds the provider billed (whisper-1 reports them); None when it did not say."""
    usage: Usage | None
    """Tokens in and out, for the models billed by token (gpt-4o-transcribe and its kin)."""
    request_id: str | None
    rate_limits: RateLimitInfo
    latency: float


def parse_transcription(
    payload: object, *, headers: httpx.Headers, model: str, latency: float
) -> Transcription:
    """A ``json`` answer: ``{"text": ..., "usage": {"type": "duration", "seconds": 3}}`` or
    ``{"type": "tokens", "input_tokens": ..., "output_tokens": ...}``; raises BadBody."""
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(text, str):
        raise BadBody("the JSON body has no text")
    raw = payload.get("usage")
    seconds, usage = None, None
    if isinstance(raw, dict):
        if raw.get("type") == "duration":
            value = raw.get("seconds")
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                seconds = math.ceil(value)
        else:
            inp, out = nonneg_int(raw.get("input_tokens")), nonneg_int(raw.get("output_tokens"))
            if inp is not None and out is not None:
                usage = Usage(inp, out)
    return Transcription(
        text=text,
        model=model,
        seconds=seconds,
        usage=usage,
        request_id=headers.get("x-request-id"),
        rate_limits=RateLimitInfo.from_headers(headers),
        latency=latency,
    )


def parse_completion(
    payload: object, *, headers: httpx.Headers, kind: Kind, model: str, latency: float
) -> Completion:
    """A non-streamed answer; raises BadBody when it has no usable choices."""
    choices_raw = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(payload, dict) or not isinstance(choices_raw, list) or not choices_raw:
        raise BadBody("the JSON body has no choices")
    choices = []
    for position, raw in enumerate(choices_raw):
        if not isinstance(raw, dict):
            raise BadBody(f"choice {position} of the JSON body is not an object")
        reason = finish_reason(raw) or "unknown"
        choices.append(Choice(choice_index(raw, position), _choice_text(raw, kind), reason))
    reported = payload.get("model")
    return Completion(
        choices=tuple(sorted(choices, key=lambda c: c.index)),
        model=reported if isinstance(reported, str) and reported else model,
        usage=parse_usage(payload.get("usage")),
        request_id=headers.get("x-request-id"),
        rate_limits=RateLimitInfo.from_headers(headers),
        latency=latency,
    )
