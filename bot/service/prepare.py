"""A chat request made ready to send, before any budget is asked for: its channel's settings,
a model it may use, and its context trimmed to the model's window and counted, images included
(bot.images: a model that cannot see them refuses the question's own, and the thread's older
ones are left out, as they are first when the context is too long)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from bot import images, tokens
from bot.access import Access
from bot.budget.manager import Budget
from bot.budget.policy import Who
from bot.catalog import Catalog, ModelInfo
from bot.errors import ChannelDisabled, ModelNotAllowed, NotAChatModel, NoVision, PromptTooLong
from bot.models import ChatRequest, Message
from bot.store.channels import ChannelStore

COUNT_IN_THREAD = 16 * 1024
"""Characters of prompt above which it is counted (and trimmed) in a worker thread. tiktoken
takes up to 6 ms for 16 KiB, 35 ms for 64 KiB of one word and about a second for 1 MiB, all
of it a stall of every other chat on the loop; it releases the GIL, so in a thread it does not."""


@dataclass(frozen=True, slots=True)
class Prepared:
    info: ModelInfo
    messages: tuple[Message, ...]
    prompt_tokens: int
    max_tokens: int
    """What the answer may take: for a reasoning model, its reasoning included (sent as
    ``max_completion_tokens``)."""
    temperature: float | None

    @property
    def prompt(self) -> str:
        """The legacy-completions prompt."""
        return tokens.render_prompt(self.messages)


async def prepare(
    request: ChatRequest,
    *,
    access: Access,
    channels: ChannelStore,
    catalog: Catalog,
    budget: Budget,
) -> Prepared:
    """Raises ChannelDisabled, NotAChatModel, ModelNotAllowed, NoVision or PromptTooLong:
    refusals that cost nothing, since nothing was reserved or sent."""
    if not access.allows(request.workspace, request.channel):
        raise ChannelDisabled(request.channel)
    ch = await channels.get(request.platform, request.workspace, request.channel)
    if not ch.enabled:
        raise ChannelDisabled(request.channel)
    info = catalog.get(request.model or ch.model)
    if info.endpoint == "transcriptions":
        raise NotAChatModel(info.name)
    who = Who(request.platform, request.workspace, request.channel, request.user)
    allowed, where = await budget.allowed_models(who)
    if allowed is not None and not {info.name, catalog.base_name(info.name)} & allowed:
        raise ModelNotAllowed(model=info.name, allowed=allowed, where=where)
    max_tokens = info.completion_limit(request.max_tokens or ch.max_tokens)
    messages = request.messages
    if not info.vision and any(m.images for m in messages):
        if messages[-1].images:
            raise NoVision(model=info.name, vision_models=catalog.vision_models())
        messages = tuple(replace(m, images=()) for m in messages)
    if not any(m.role == "system" for m in messages) and ch.system_prompt:
        messages = (Message("system", ch.system_prompt), *messages)
    limit = None if info.context_window is None else info.context_window - max_tokens
    if sum(len(m.content) for m in messages) > COUNT_IN_THREAD:
        messages, prompt_tokens = await asyncio.to_thread(_fit, info, messages, limit)
    else:
        messages, prompt_tokens = _fit(info, messages, limit)
    if info.context_window is not None and prompt_tokens + max_tokens > info.context_window:
        raise PromptTooLong(
            model=info.name,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            context_window=info.context_window,
        )
    temperature = request.temperature if request.temperature is not None else ch.temperature
    if info.fixed_temperature:
        temperature = None  # the model refuses any but its default
    return Prepared(info, messages, prompt_tokens, max_tokens, temperature)


def _fit(
    info: ModelInfo, messages: tuple[Message, ...], limit: int | None
) -> tuple[tuple[Message, ...], int]:
    """The messages trimmed to ``limit`` tokens (older turns' images go first, then the
    oldest turns), and their count."""
    if limit is not None:
        messages = _without_old_images(info, messages, limit)
        pictures = images.message_tokens(info, messages)
        messages = tokens.trim_messages(messages, limit=limit - pictures, encoding=info.encoding)
    return messages, _count_prompt(info, messages)


def _without_old_images(
    info: ModelInfo, messages: tuple[Message, ...], limit: int
) -> tuple[Message, ...]:
    """The images of turns before the question left out, oldest first, until it all fits."""
    out = list(messages)
    total = _count_prompt(info, messages)
    for i, m in enumerate(out[:-1]):
        if total <= limit:
            break
        if m.images:
            total -= images.message_tokens(info, [m])
            out[i] = replace(m, images=())
    return tuple(out)


def _count_prompt(info: ModelInfo, messages: tuple[Message, ...]) -> int:
    """Tokens of the prompt as the model's endpoint is sent it."""
    if info.endpoint == "completions":
        return tokens.count_text(tokens.render_prompt(messages), info.encoding)
    return tokens.count_messages(messages, info.encoding) + images.message_tokens(info, messages)
