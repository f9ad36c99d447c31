"""Platform-neutral values that flow through the core: what was asked, answered and spent.

Adapters build a :class:`ChatRequest` from a platform event and render a :class:`Reply` back;
nothing here knows about Slack or Discord.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from bot.audio import AudioClip

Role = Literal["system", "user", "assistant"]
Endpoint = Literal["chat", "completions", "transcriptions"]
Detail = Literal["low", "high"]


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    """An image a question shows the model; its size was read from its bytes (bot.images),
    which its tokens are estimated from."""

    media_type: str
    """image/png, image/jpeg, image/gif or image/webp."""
    data: bytes = field(repr=False)
    width: int
    height: int
    detail: Detail = "high"
    """Sent as is: "high" is what the estimate counts (OpenAI's "auto" lets the model pick)."""

    @property
    def data_url(self) -> str:
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"

    def to_openai(self) -> dict[str, object]:
        return {"type": "image_url", "image_url": {"url": self.data_url, "detail": self.detail}}


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    name: str | None = None
    images: tuple[Image, ...] = ()
    """Shown to a vision model after the text, as content parts."""

    def to_openai(self) -> dict[str, object]:
        content: object = self.content
        if self.images:
            parts: list[object] = [{"type": "text", "text": self.content}] if self.content else []
            content = parts + [i.to_openai() for i in self.images]
        out: dict[str, object] = {"role": self.role, "content": content}
        if self.name:
            out["name"] = self.name
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """One question from chat. ``model``/``max_tokens``/``temperature`` left as None take the
    channel's settings, then the configured defaults."""

    platform: str
    workspace: str
    channel: str
    user: str
    messages: tuple[Message, ...]
    thread: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    request_id: str = field(default_factory=new_request_id)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call, as the provider bills them."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    """Of ``prompt_tokens``, those read from the provider's prompt cache (billed at a discount:
    ``usage.prompt_tokens_details.cached_tokens``)."""
    reasoning_tokens: int = 0
    """Of ``completion_tokens``, those a reasoning model spent thinking (billed as output, never
    shown: ``usage.completion_tokens_details.reasoning_tokens``)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    text: str
    model: str
    usage: Usage
    cost: Decimal | None
    """USD; None when the model has no price configured (it is still recorded, as unpriced)."""
    finish_reason: str
    latency: float
    request_id: str
    usage_estimated: bool = False
    """True when the provider reported no usage and the counts are quotabot's own."""
    fallback: str = ""
    """The line that says another model than the one asked for answered, and why ("answered
    by gpt-4o-mini instead of gpt-4o: this channel's spend per day is used up until 00:00
    UTC"); empty when the one asked for did."""


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """Effective settings for one channel: stored overrides on top of the configured defaults."""

    model: str
    system_prompt: str
    max_tokens: int
    temperature: float | None
    enabled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptionRequest:
    """One recording to turn into text. ``model`` None takes the configured transcription
    model. The clip's duration was measured from the file (bot.audio)."""

    platform: str
    workspace: str
    channel: str
    user: str
    clip: AudioClip
    thread: str | None = None
    model: str | None = None
    prompt: str | None = None
    """Words the recording is likely to hold (names, jargon), passed on as Whisper's prompt."""
    request_id: str = field(default_factory=new_request_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript:
    text: str
    model: str
    seconds: int
    """Audio seconds billed: the provider's figure when it gives one, else the measured one."""
    cost: Decimal | None
    latency: float
    request_id: str
