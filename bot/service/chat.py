"""One chat request's provider calls, as the attempt loop makes them: chat, streamed chat, a
legacy completion alone or as one prompt of a batch; and the reply and row of the answer."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypedDict

from bot import tokens
from bot.batching import BatchUnsupported, split
from bot.budget.manager import Budget
from bot.budget.tickets import Ticket
from bot.catalog import ModelInfo
from bot.errors import BadRequest, BudgetExceeded, RequestRejected, ServerError
from bot.messages import REASONING_SPENT
from bot.models import ChatRequest, Message, Reply, Usage
from bot.provider import Completion, OpenAIClient, RateLimitInfo
from bot.service import rows
from bot.service.attempts import Paid, Reserve
from bot.service.prepare import Prepared
from bot.store.rows import UsageRow

log = logging.getLogger(__name__)

OnDelta = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Answer:
    text: str
    finish_reason: str
    usage: Usage
    estimated: bool
    latency: float
    provider_request_id: str | None
    call_id: str
    rate_limits: RateLimitInfo | None
    """What the answer's headers said of the account's limits (one member of a batch only)."""


class _ChatArgs(TypedDict):
    model: str
    messages: Sequence[Message]
    max_tokens: int | None
    max_completion_tokens: int | None
    temperature: float | None
    on_send: Callable[[], object]


class ChatJob:
    """A :class:`bot.service.attempts.Job` answering one prepared chat request."""

    def __init__(
        self,
        request: ChatRequest,
        prep: Prepared,
        *,
        provider: OpenAIClient,
        budget: Budget,
        batching: bool,
        store_message_text: bool,
        on_delta: OnDelta | None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.request = request
        self.prep = prep
        self.provider = provider
        self.budget = budget
        """Told when a model's server mishandles prompt arrays."""
        self.store_message_text = store_message_text
        self.on_delta = on_delta
        self.stop = stop
        """Set when the asker stops a streamed answer: the stream ends there, and what came
        is kept, shown and counted (outcome "stopped")."""
        self.streamed = False
        """Part of the answer reached ``on_delta``: it must not be sent again."""
        info = prep.info
        # Legacy completions come whole (never streamed), so whether or not the asker's surface
        # streams (Slack's do), one that has to wait may join a batch.
        batchable = batching and info.endpoint == "completions"
        self.reserve = Reserve(
            tokens=prep.prompt_tokens + prep.max_tokens,
            cost=info.cost(Usage(prep.prompt_tokens, prep.max_tokens)),
            batch_key=(prep.max_tokens, prep.temperature) if batchable else None,
            prompt=prep.prompt if batchable else None,
        )

    @property
    def model(self) -> ModelInfo:
        return self.prep.info

    @property
    def retryable(self) -> bool:
        return not self.streamed

    def refused(self, exc: BudgetExceeded) -> RequestRejected | None:
        return None

    def row(self, call_id: str, outcome: str) -> UsageRow:
        messages = self.request.messages
        prompt = messages[-1].content if messages else ""
        text = prompt if self.store_message_text else None
        return rows.row(self.request, self.prep.info, call_id, outcome, prompt_text=text)

    async def call(self, ticket: Ticket) -> Paid[Reply]:
        prep, answer = self.prep, await self._answer(ticket)
        cost = prep.info.cost(answer.usage)
        stopped = answer.finish_reason == "stopped"
        row = replace(
            self.row(answer.call_id, "stopped" if stopped else "ok"),
            prompt_tokens=answer.usage.prompt_tokens,
            completion_tokens=answer.usage.completion_tokens,
            cached_tokens=answer.usage.cached_tokens,
            reasoning_tokens=answer.usage.reasoning_tokens,
            cost=cost,
            usage_estimated=answer.estimated,
            latency_ms=round(answer.latency * 1000),
            provider_request_id=answer.provider_request_id,
            reply_text=answer.text if self.store_message_text else None,
        )
        text = answer.text
        if not text.strip() and answer.finish_reason == "length" and answer.usage.reasoning_tokens:
            text = REASONING_SPENT.format(model=prep.info.name, tokens=prep.max_tokens)
        reply = Reply(
            text=text,
            model=prep.info.name,
            usage=answer.usage,
            cost=cost,
            finish_reason=answer.finish_reason,
            latency=answer.latency,
            request_id=self.request.request_id,
            usage_estimated=answer.estimated,
        )
        return Paid(
            result=reply,
            usage=answer.usage,
            cost=cost,
            latency=answer.latency,
            rate_limits=answer.rate_limits,
            row=row,
        )

    async def _answer(self, ticket: Ticket) -> _Answer:
        if ticket.batch is not None:
            return await self._batched(ticket)
        completion = await self._send(ticket)
        usage, estimated = completion.usage, completion.usage is None
        if usage is None:
            # Some self-hosted servers send no usage (notably in streams): count it ourselves.
            answer_tokens = tokens.count_text(completion.text, self.prep.info.encoding)
            usage = Usage(self.prep.prompt_tokens, answer_tokens)
        return _Answer(
            completion.text,
            completion.finish_reason,
            usage,
            estimated,
            completion.latency,
            completion.request_id,
            uuid.uuid4().hex,
            completion.rate_limits,
        )

    async def _send(self, ticket: Ticket) -> Completion:
        if self.prep.info.endpoint == "completions":
            return await self._complete([self.prep.prompt], ticket)
        if self.on_delta is None:
            return await self.provider.chat(**self._chat_args(ticket))
        stream = self.provider.stream_chat(**self._chat_args(ticket))
        async with stream:
            async for delta in stream:
                self.streamed = True
                await self.on_delta(delta)
                if self.stop is not None and self.stop.is_set():
                    return stream.cut()  # leaving the block closes the connection
        assert stream.completion is not None  # set once the stream has ended
        return stream.completion

    def _chat_args(self, ticket: Ticket) -> _ChatArgs:
        prep = self.prep
        # Reasoning models refuse max_tokens; other servers may not know its successor.
        reasoning = prep.info.reasoning
        return _ChatArgs(
            model=prep.info.name,
            messages=prep.messages,
            max_tokens=None if reasoning else prep.max_tokens,
            max_completion_tokens=prep.max_tokens if reasoning else None,
            temperature=prep.temperature,
            on_send=ticket.sending,
        )

    async def _complete(self, prompts: Sequence[str], ticket: Ticket) -> Completion:
        return await self.provider.complete(
            model=self.prep.info.name,
            prompts=prompts,
            max_tokens=self.prep.max_tokens,
            temperature=self.prep.temperature,
            on_send=ticket.sending,
        )

    async def _batched(self, ticket: Ticket) -> _Answer:
        """One call for the whole batch, made by its first member; the others wait for it."""
        batch, info = ticket.batch, self.prep.info
        assert batch is not None
        if ticket.index == 0:
            try:
                completion = await self._complete(batch.prompts, ticket)
            except (BadRequest, ServerError) as exc:
                # Single prompts may well work where the array failed: try them before
                # failing anyone.
                self._stop_batching(f"the call with {len(batch.prompts)} prompts failed: {exc}")
                batch.result.set_exception(BatchUnsupported(str(exc)))
            except BaseException as exc:
                batch.result.set_exception(exc)
            else:
                batch.result.set_result(completion)
        completion = await asyncio.shield(batch.result)
        try:
            parts, problem = split(completion, batch.prompts, info.encoding)
        except BatchUnsupported as exc:
            self._stop_batching(str(exc))
            raise
        if problem is not None:
            self._stop_batching(problem)
        choice, usage = parts[ticket.index]
        return _Answer(
            choice.text,
            choice.finish_reason,
            usage,
            problem is not None,
            completion.latency,
            completion.request_id,
            f"{completion.request_id or id(batch)}-{ticket.index}",
            completion.rate_limits if ticket.index == 0 else None,
        )

    def _stop_batching(self, why: str) -> None:
        name = self.prep.info.name
        if self.budget.stop_batching(name):
            log.warning(
                "prompt arrays do not work with %s (%s): sending one prompt per call from now on",
                name,
                why,
            )
