"""The core: one chat request in, one reply out, with its usage recorded.

    adapter -> Service.handle(request) -> [budget] -> provider -> usage store -> Reply

Adapters call :meth:`Service.handle`; they never talk to the provider or the store directly.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from bot import tokens
from bot.catalog import Catalog, ModelInfo
from bot.errors import ChannelDisabled, PromptTooLong, ProviderError, StoreError
from bot.models import ChatRequest, Message, Reply, Usage
from bot.provider import Completion, OpenAIClient
from bot.store.channels import ChannelStore
from bot.store.usage import UsageRow, UsageStore

log = logging.getLogger(__name__)

OnDelta = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Prepared:
    info: ModelInfo
    messages: tuple[Message, ...]
    prompt_tokens: int
    max_tokens: int
    temperature: float | None


class Service:
    def __init__(
        self,
        *,
        provider: OpenAIClient,
        catalog: Catalog,
        usage: UsageStore,
        channels: ChannelStore,
        store_message_text: bool = False,
    ):
        self.provider = provider
        self.catalog = catalog
        self.usage = usage
        self.channels = channels
        self.store_message_text = store_message_text
        self._warned_unpriced: set[str] = set()

    async def handle(self, request: ChatRequest, *, on_delta: OnDelta | None = None) -> Reply:
        """Answer ``request``. With ``on_delta`` the answer is streamed to it as it arrives.

        Raises RequestRejected (nothing was sent) or ProviderError (the call failed and was
        recorded as such); both carry a message fit for the user (see bot.messages).
        """
        prep = await self._prepare(request)
        started = time.monotonic()
        call_id = uuid.uuid4().hex
        try:
            completion = await self._call(prep, on_delta)
        except ProviderError as exc:
            await self._record_failure(request, prep, call_id, exc, time.monotonic() - started)
            raise
        return await self._finish(request, prep, call_id, completion)

    async def _prepare(self, request: ChatRequest) -> _Prepared:
        ch = await self.channels.get(request.platform, request.workspace, request.channel)
        if not ch.enabled:
            raise ChannelDisabled(request.channel)
        info = self.catalog.get(request.model or ch.model)
        max_tokens = request.max_tokens or ch.max_tokens
        messages = request.messages
        if not any(m.role == "system" for m in messages) and ch.system_prompt:
            messages = (Message("system", ch.system_prompt), *messages)
        if info.context_window is not None:
            limit = info.context_window - max_tokens
            messages = tokens.trim_messages(messages, limit=limit, encoding=info.encoding)
        prompt_tokens = self._count_prompt(info, messages)
        if info.context_window is not None and prompt_tokens + max_tokens > info.context_window:
            raise PromptTooLong(
                model=info.name,
                prompt_tokens=prompt_tokens,
                max_tokens=max_tokens,
                context_window=info.context_window,
            )
        temperature = request.temperature if request.temperature is not None else ch.temperature
        return _Prepared(info, messages, prompt_tokens, max_tokens, temperature)

    @staticmethod
    def _count_prompt(info: ModelInfo, messages: tuple[Message, ...]) -> int:
        if info.endpoint == "completions":
            return tokens.count_text(tokens.render_prompt(messages), info.encoding)
        return tokens.count_messages(messages, info.encoding)

    async def _call(self, prep: _Prepared, on_delta: OnDelta | None) -> Completion:
        model, max_tokens, temperature = prep.info.name, prep.max_tokens, prep.temperature
        if prep.info.endpoint == "completions":
            prompts = [tokens.render_prompt(prep.messages)]
            return await self.provider.complete(
                model=model, prompts=prompts, max_tokens=max_tokens, temperature=temperature
            )
        if on_delta is None:
            return await self.provider.chat(
                model=model, messages=prep.messages, max_tokens=max_tokens, temperature=temperature
            )
        stream = self.provider.stream_chat(
            model=model, messages=prep.messages, max_tokens=max_tokens, temperature=temperature
        )
        async with stream:
            async for delta in stream:
                await on_delta(delta)
        assert stream.completion is not None  # set once the stream has ended
        return stream.completion

    async def _finish(
        self, request: ChatRequest, prep: _Prepared, call_id: str, completion: Completion
    ) -> Reply:
        usage = completion.usage
        estimated = usage is None
        if usage is None:
            # Some self-hosted servers send no usage (notably in streams): count it ourselves.
            usage = Usage(
                prep.prompt_tokens, tokens.count_text(completion.text, prep.info.encoding)
            )
        cost = prep.info.cost(usage)
        if cost is None and prep.info.name not in self._warned_unpriced:
            self._warned_unpriced.add(prep.info.name)
            log.warning(
                "model %s has no price: its usage is recorded as unpriced. Declare input_price "
                "and output_price under [models.%r] in the config file to count its cost.",
                prep.info.name,
                prep.info.name,
            )
        reply = Reply(
            text=completion.text,
            model=prep.info.name,
            usage=usage,
            cost=cost,
            finish_reason=completion.finish_reason,
            latency=completion.latency,
            request_id=request.request_id,
            usage_estimated=estimated,
        )
        await self._record(
            replace(
                self._row(request, prep, call_id, outcome="ok"),
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost=cost,
                usage_estimated=estimated,
                latency_ms=round(completion.latency * 1000),
                provider_request_id=completion.request_id,
                reply_text=completion.text if self.store_message_text else None,
            )
        )
        return reply

    async def _record_failure(
        self,
        request: ChatRequest,
        prep: _Prepared,
        call_id: str,
        exc: ProviderError,
        elapsed: float,
    ) -> None:
        row = self._row(request, prep, call_id, outcome=type(exc).__name__)
        await self._record(
            replace(row, latency_ms=round(elapsed * 1000), provider_request_id=exc.request_id)
        )

    def _row(
        self, request: ChatRequest, prep: _Prepared, call_id: str, *, outcome: str
    ) -> UsageRow:
        prompt = request.messages[-1].content if request.messages else ""
        return UsageRow(
            call_id=call_id,
            request_id=request.request_id,
            created_at=datetime.now(UTC),
            platform=request.platform,
            workspace=request.workspace,
            channel=request.channel,
            thread=request.thread,
            user=request.user,
            model=prep.info.name,
            endpoint=prep.info.endpoint,
            prompt_tokens=0,
            completion_tokens=0,
            cost=None,
            outcome=outcome,
            prompt_text=prompt if self.store_message_text else None,
        )

    async def _record(self, row: UsageRow) -> None:
        try:
            await self.usage.record(row)
        except StoreError:
            # The answer was paid for: deliver it, and leave every figure in the log so the row
            # can be restored. (A durable spool for this case is planned.)
            log.exception(
                "usage row NOT stored: %s", replace(row, prompt_text=None, reply_text=None)
            )
