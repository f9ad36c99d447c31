"""Request bodies checked the way OpenAI checks them, turned into a :class:`Job`.

Unknown fields are ignored, as OpenAI does; known ones are checked for type and range, and the
first problem found is the 400 the client gets, with ``param`` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import cast

from bot import images
from bot.catalog import Catalog, ModelInfo
from bot.errors import ImageRejected
from bot.models import Endpoint, Image, Message, Role
from bot.sandbox import errors
from bot.tokens import count_messages, count_text

ROLES: tuple[Role, ...] = ("system", "assistant", "user")
LEGACY_DEFAULT_MAX_TOKENS = 16
"""OpenAI's default for v1/completions; chat completions run to the natural end instead."""

Body = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Prompt:
    key: str
    """Everything about the prompt that changes the reply."""
    echo: str
    """The text the reply quotes a few words of."""
    tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    model: str
    info: ModelInfo
    prompts: tuple[Prompt, ...]
    """One for chat; one per prompt of a legacy completion, each answered as a choice."""
    max_completion_tokens: int | None
    """``max_tokens`` or ``max_completion_tokens``: the most completion tokens of one choice,
    a reasoning model's hidden reasoning tokens included."""
    stream: bool
    include_usage: bool
    messages: tuple[Message, ...] = ()
    """A chat prompt's messages (for the prompt cache); none for legacy completions."""

    @property
    def prompt_tokens(self) -> int:
        return sum(p.tokens for p in self.prompts)


def parse_body(raw: bytes) -> Body:
    try:
        body = json.loads(raw)
    except ValueError as exc:  # also UnicodeDecodeError
        raise errors.not_json() from exc
    if not isinstance(body, dict):
        raise errors.body_not_object(body)
    return cast(Body, body)


def parse_model(body: Body) -> str:
    model = body.get("model")
    if model is None or model == "":
        raise errors.no_model()
    if not isinstance(model, str):
        raise errors.wrong_type("model", "a string", model)
    return model


def resolve_model(catalog: Catalog, name: str, endpoint: Endpoint) -> ModelInfo:
    info = catalog.get(name)
    if not info.known:
        raise errors.model_not_found(name)
    if info.endpoint != endpoint:
        raise (
            errors.not_a_chat_model() if endpoint == "chat" else errors.chat_model_on_completions()
        )
    return info


def parse_chat(body: Body, model: str, info: ModelInfo) -> Job:
    """A chat request. Reasoning models refuse ``max_tokens`` (``max_completion_tokens``
    bounds their reasoning and answer together), and models with a fixed temperature any but
    the default 1, with OpenAI's 400s; every chat model takes ``max_completion_tokens``.
    Images (``image_url`` parts, data URLs only: the sandbox fetches nothing) are counted as
    bot.images counts them, and refused by a model that cannot see them."""
    messages = _messages(body.get("messages"))
    for i, m in enumerate(messages):
        if m.images and not info.vision:
            raise errors.no_vision(f"messages.[{i}].content")
    max_tokens = _max_tokens(body, "max_tokens")
    if max_tokens is not None and info.reasoning:
        raise errors.unsupported_parameter("max_tokens", instead="max_completion_tokens")
    if max_tokens is None:
        max_tokens = _max_tokens(body, "max_completion_tokens")
    temperature = _temperature(body)
    if temperature is not None and temperature != 1 and info.fixed_temperature:
        raise errors.unsupported_temperature(temperature)
    stream, include_usage = _stream(body)
    tokens = count_messages(messages, info.encoding) + images.message_tokens(info, messages)
    window = info.context_window
    if window is not None and tokens + (max_tokens or 0) > window:
        raise errors.context_length_chat(window, tokens, max_tokens)
    users = [m for m in messages if m.role == "user"] or list(messages)
    key = json.dumps([[m.role, m.content, m.name, *_digests(m)] for m in messages])
    return Job(
        model=model,
        info=info,
        prompts=(Prompt(key=key, echo=users[-1].content, tokens=tokens),),
        max_completion_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        messages=messages,
    )


def parse_legacy(body: Body, model: str, info: ModelInfo) -> Job:
    texts = _prompts(body.get("prompt", _MISSING))
    max_tokens = _max_tokens(body, "max_tokens")
    if max_tokens is None:
        max_tokens = LEGACY_DEFAULT_MAX_TOKENS
    _temperature(body)
    stream, include_usage = _stream(body)
    prompts = tuple(Prompt(key=t, echo=t, tokens=count_text(t, info.encoding)) for t in texts)
    window = info.context_window
    for p in prompts:
        if window is not None and p.tokens + max_tokens > window:
            raise errors.context_length_legacy(window, p.tokens, max_tokens)
    return Job(
        model=model,
        info=info,
        prompts=prompts,
        max_completion_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
    )


_MISSING = object()


def _messages(value: object) -> tuple[Message, ...]:
    if value is None:
        raise errors.missing("messages")
    if not isinstance(value, list):
        raise errors.wrong_type("messages", "an array", value)
    if not value:
        raise errors.empty_array("messages")
    return tuple(_message(m, f"messages[{i}]") for i, m in enumerate(value))


def _message(value: object, param: str) -> Message:
    if not isinstance(value, dict):
        raise errors.wrong_type(param, "an object", value)
    role = value.get("role")
    if role is None:
        raise errors.missing(f"{param}.role")
    if not isinstance(role, str):
        raise errors.wrong_type(f"{param}.role", "a string", role)
    if role not in ROLES:
        raise errors.bad_value(f"{param}.role", role, ROLES)
    name = value.get("name")
    if name is not None and not isinstance(name, str):
        raise errors.wrong_type(f"{param}.name", "a string", name)
    content, pictures = _content(value.get("content"), f"{param}.content")
    return Message(role=role, content=content, name=name or None, images=pictures)


def _content(value: object, param: str) -> tuple[str, tuple[Image, ...]]:
    """A string, or an array of text parts, which OpenAI reads as their concatenation, and
    image parts."""
    if value is None:
        raise errors.missing(param)
    if isinstance(value, str):
        return value, ()
    if not isinstance(value, list):
        raise errors.wrong_type(param, "one of a string or array of objects", value)
    texts, pictures = [], []
    for j, part in enumerate(value):
        if not isinstance(part, dict):
            raise errors.wrong_type(f"{param}[{j}]", "an object", part)
        if part.get("type") == "image_url":
            pictures.append(_image(part.get("image_url"), f"{param}[{j}].image_url"))
            continue
        if part.get("type") != "text":
            raise errors.bad_value(f"{param}[{j}].type", part.get("type"), ("text", "image_url"))
        text = part.get("text")
        if not isinstance(text, str):
            raise errors.wrong_type(f"{param}[{j}].text", "a string", text)
        texts.append(text)
    return "".join(texts), tuple(pictures)


_DETAILS: tuple[str, ...] = ("low", "high", "auto")


def _image(value: object, param: str) -> Image:
    """An image part: a data URL, read as bot.images reads a download. "auto" is counted as
    "high", as quotabot counts what it sends."""
    if not isinstance(value, dict):
        raise errors.wrong_type(param, "an object", value)
    url, detail = value.get("url"), value.get("detail", "auto")
    if not isinstance(url, str):
        raise errors.wrong_type(f"{param}.url", "a string", url)
    if detail not in _DETAILS:
        raise errors.bad_value(f"{param}.detail", detail, _DETAILS)
    head, comma, data = url.partition(",")
    if not (head.startswith("data:") and head.endswith(";base64") and comma):
        raise errors.invalid_image_url()
    try:
        raw = base64.b64decode(data, validate=True)
        image = images.read("image", raw)
    except (binascii.Error, ImageRejected):
        raise errors.invalid_image() from None
    return replace(image, detail="low" if detail == "low" else "high")


def _digests(m: Message) -> list[str]:
    """What tells one image from another in a prompt's key."""
    return [hashlib.sha256(i.data).hexdigest()[:16] + i.detail for i in m.images]


def _prompts(value: object) -> tuple[str, ...]:
    if value is _MISSING or value is None:
        raise errors.missing("prompt")
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and not value:
        raise errors.empty_array("prompt")
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return tuple(cast(list[str], value))
    raise errors.wrong_type("prompt", "one of a string or array of strings", value)


def _max_tokens(body: Body, param: str) -> int | None:
    value = body.get(param)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.wrong_type(param, "an integer", value)
    if value < 1:
        raise errors.below_min(param, 1, value, integer=True)
    return value


def _temperature(body: Body) -> float | None:
    """Checked though unused: the reply is deterministic whatever the temperature."""
    value = body.get("temperature")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.wrong_type("temperature", "a decimal", value)
    if value < 0:
        raise errors.below_min("temperature", 0, value, integer=False)
    if value > 2:
        raise errors.above_max("temperature", 2, value)
    return value


def _stream(body: Body) -> tuple[bool, bool]:
    stream = body.get("stream")
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise errors.wrong_type("stream", "a boolean", stream)
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict):
        raise errors.wrong_type("stream_options", "an object", options)
    if not stream:
        raise errors.stream_options_without_stream()
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise errors.wrong_type("stream_options.include_usage", "a boolean", include)
    return stream, include
