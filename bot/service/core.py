"""The core: one chat request in, one reply out, with its usage recorded.

    adapter -> Service.handle(request) -> budget -> provider -> usage store -> Reply
    adapter -> Service.transcribe(request) -> the same budget, provider and store -> Transcript

Adapters call :meth:`Service.handle`; they never talk to the provider or the store directly.
quotabot owns every retry: the provider client sends each call exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from bot import logs, tokens
from bot.access import Access
from bot.admission import Admission, Turn
from bot.alerts import Alerts
from bot.batching import BatchUnsupported, split
from bot.budget.limits import Learned
from bot.budget.manager import Budget
from bot.budget.policy import Who
from bot.budget.tickets import OnQueued, QueueInfo, Ticket
from bot.catalog import Catalog, ModelInfo
from bot.errors import (
    AudioOverBudget,
    AuthenticationFailed,
    BadRequest,
    BudgetExceeded,
    ProviderDown,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    ServerError,
    StoreError,
)
from bot.messages import REASONING_SPENT, format_cost
from bot.metrics import Metrics
from bot.models import ChatRequest, Reply, Transcript, TranscriptionRequest, Usage
from bot.provider import Completion, OpenAIClient, RateLimitInfo
from bot.retry import RetryPolicy
from bot.service import transcription
from bot.service.attempts import Attempts
from bot.service.prepare import Prepared, prepare
from bot.service.transcription import TranscriptionJob
from bot.store.channels import ChannelStore
from bot.store.digests import RequestEvents
from bot.store.rows import UsageRow
from bot.store.usage import UsageStore

log = logging.getLogger(__name__)

OnDelta = Callable[[str], Awaitable[None]]

# A 429 without any hint still makes the model pause this long.
_DEFAULT_BACKOFF = 1.0


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


class Service:
    def __init__(
        self,
        *,
        provider: OpenAIClient,
        catalog: Catalog,
        usage: UsageStore,
        channels: ChannelStore,
        budget: Budget,
        retry: RetryPolicy | None = None,
        alerts: Alerts | None = None,
        deadline: float = 120.0,
        batching: bool = True,
        store_message_text: bool = False,
        access: Access | None = None,
        metrics: Metrics | None = None,
        events: RequestEvents | None = None,
        admission: Admission | None = None,
        transcription_model: str = "whisper-1",
    ):
        self.provider = provider
        self.catalog = catalog
        self.usage = usage
        self.channels = channels
        self.budget = budget
        self.retry = retry or RetryPolicy()
        self.alerts = alerts or Alerts()
        self.deadline = deadline
        self.batching = batching
        self.store_message_text = store_message_text
        self.access = access or Access()
        self.metrics = metrics or Metrics()
        self.events = events
        """Where requests that waited or were refused by a cap are counted (for the digest)."""
        self.admission = admission or Admission()
        """Shared by the adapters: how many chat events this process works on at once."""
        self.transcription_model = transcription_model
        """What voice messages and audio files are sent to, unless a request names another."""
        self._warned_unpriced: set[str] = set()

    async def handle(
        self,
        request: ChatRequest,
        *,
        on_delta: OnDelta | None = None,
        on_queued: OnQueued | None = None,
        turn: Turn | None = None,
    ) -> Reply:
        """Answer ``request``: wait for budget, call the provider, retry what is worth it.

        With ``on_delta`` the answer is streamed to it as it arrives; ``on_queued`` hears the
        queue position and expected wait when the request has to wait for budget. ``turn``
        (from ``self.admission``) is given back while the request waits for budget.
        Raises RequestRejected (refused; nothing more was sent) or ProviderError (the last
        failure); both carry a message fit for the user (see bot.messages).
        """
        with self._measured(request):
            return await self._handle(request, on_delta=on_delta, on_queued=on_queued, turn=turn)

    @contextmanager
    def _measured(self, request: ChatRequest | TranscriptionRequest) -> Iterator[None]:
        """Counts the request by outcome and times it, for /metrics; from here on this task's
        log lines carry its id."""
        started = time.monotonic()
        outcome = "failed"
        logs.request_id.set(request.request_id)
        try:
            yield
            outcome = "ok"
        except RequestRejected:
            outcome = "refused"
            raise
        finally:
            self.metrics.requests.labels(request.platform, outcome).inc()
            self.metrics.request_seconds.labels(request.platform).observe(
                time.monotonic() - started
            )

    async def _handle(
        self,
        request: ChatRequest,
        *,
        on_delta: OnDelta | None,
        on_queued: OnQueued | None,
        turn: Turn | None,
    ) -> Reply:
        prep = await prepare(
            request,
            access=self.access,
            channels=self.channels,
            catalog=self.catalog,
            budget=self.budget,
        )
        who = Who(request.platform, request.workspace, request.channel, request.user)
        deadline = time.monotonic() + self.deadline
        worst_cost = prep.info.cost(Usage(prep.prompt_tokens, prep.max_tokens))
        batchable = self.batching and prep.info.endpoint == "completions" and on_delta is None
        attempt = 0
        queued = self._queued(who, prep.info, turn, on_queued)

        while True:
            waiting = time.monotonic()
            try:
                ticket = await self.budget.acquire(
                    who,
                    prep.info,
                    tokens=prep.prompt_tokens + prep.max_tokens,
                    cost=worst_cost,
                    deadline=deadline,
                    on_queued=queued,
                    batch_key=(prep.max_tokens, prep.temperature) if batchable else None,
                    prompt=prep.prompt if batchable else None,
                )
            except BudgetExceeded:
                await self._note(who, prep.info, "refused")
                raise
            started = time.monotonic()
            self.metrics.queue_wait.labels(prep.info.name).observe(started - waiting)
            streamed = False

            async def relay(delta: str) -> None:
                nonlocal streamed
                streamed = True
                assert on_delta is not None
                await on_delta(delta)

            try:
                answer = await self._attempt(prep, ticket, relay if on_delta else None)
            except BatchUnsupported:
                await self.budget.release(ticket)
                continue  # the model is now sent one prompt per call: not a failed attempt
            except ProviderError as exc:
                result = "rate_limited" if isinstance(exc, RateLimited) else "error"
                self.metrics.provider_calls.labels(prep.info.name, result).inc()
                await self.budget.release(ticket, reached=not isinstance(exc, ProviderDown))
                await self._record_failure(request, prep, exc, time.monotonic() - started, attempt)
                delay = None if streamed else self.retry.delay(exc, attempt)
                await self._after_failure(prep.info, exc, ticket, retrying=delay is not None)
                if delay is None or time.monotonic() + delay > deadline:
                    raise
                log.info("retrying %s after %s in %.2f s", request.request_id, exc, delay)
                self.metrics.retries.labels(prep.info.name).inc()
                if not isinstance(exc, RateLimited):
                    await asyncio.sleep(delay)  # a 429 blocks the whole model instead
                attempt += 1
                continue
            except BaseException:
                await self.budget.release(ticket)
                raise
            cost = prep.info.cost(answer.usage)
            self.metrics.provider_calls.labels(prep.info.name, "ok").inc()
            self.metrics.provider_seconds.labels(prep.info.name).observe(answer.latency)
            await self.budget.settle(ticket, tokens=answer.usage.total_tokens, cost=cost)
            # After settling: the headers' "remaining" already counts the unused tokens given
            # back, so learning first would give them back twice.
            await self.budget.observe(prep.info, _learned(answer.rate_limits), ticket)
            return await self._finish(request, prep, answer, cost, attempt)

    def _queued(
        self, who: Who, info: ModelInfo, turn: Turn | None, on_queued: OnQueued | None
    ) -> OnQueued:
        """What the budget calls while a request waits: its turn goes back (waiting for budget
        costs nothing: let another event start), the wait is counted once, the asker told."""
        noted = False

        async def queued(queue: QueueInfo) -> None:
            nonlocal noted
            if turn is not None:
                turn.release()
            if not noted:
                noted = True
                await self._note(who, info, "queued")
            if on_queued is not None:
                await on_queued(queue)

        return queued

    async def transcribe(
        self,
        request: TranscriptionRequest,
        *,
        on_queued: OnQueued | None = None,
        turn: Turn | None = None,
    ) -> Transcript:
        """Turn a recording into text under the same budgets as a question (see
        bot.service.transcription). Raises RequestRejected or ProviderError, as :meth:`handle`
        does; a spend cap without room for it raises AudioOverBudget. ``turn``: as for
        :meth:`handle`, given back while the recording waits for budget."""
        with self._measured(request):
            await transcription.allowed(
                self.access, self.channels, request.platform, request.workspace, request.channel
            )
            info = self.catalog.get(request.model or self.transcription_model)
            job = TranscriptionJob(
                request,
                info,
                provider=self.provider,
                store_message_text=self.store_message_text,
            )
            deadline = time.monotonic() + self.deadline
            transcript = await self._attempts().run(
                job, _who(request), deadline=deadline, turn=turn, on_queued=on_queued
            )
            self.metrics.audio_seconds.labels(info.name).inc(transcript.seconds)
            return transcript

    async def check_transcription(
        self, who: Who, *, seconds: float | None = None, model: str | None = None
    ) -> None:
        """Refuse a recording before it is downloaded when it could not be transcribed
        anyway: its channel is off, or a cap has no room for ``seconds`` of audio (the length
        the platform states, rounded down; else one second). Reserves nothing: the recording
        is then measured and reserved for by :meth:`transcribe`, which checks again."""
        await transcription.allowed(
            self.access, self.channels, who.platform, who.workspace, who.channel
        )
        info = self.catalog.get(model or self.transcription_model)
        stated = max(1, math.floor(seconds)) if seconds and math.isfinite(seconds) else None
        cost = info.audio_cost(stated or 1)
        try:
            await self.budget.check(who, info, cost=cost)
        except BudgetExceeded as exc:
            await self._attempts().note(who, info, "refused")
            if stated is None:
                raise
            raise AudioOverBudget(
                exc, seconds=stated, cost=format_cost(cost), model=info.name
            ) from exc

    def _attempts(self) -> Attempts:
        """Built for each request: tests replace ``budget`` and others on a running service."""
        return Attempts(
            budget=self.budget,
            retry=self.retry,
            alerts=self.alerts,
            metrics=self.metrics,
            usage=self.usage,
            events=self.events,
        )

    async def _note(self, who: Who, model: ModelInfo, kind: str) -> None:
        """Count a queued or refused request; never fails the request itself."""
        if self.events is None:
            return
        try:
            await self.events.note(
                platform=who.platform,
                workspace=who.workspace,
                channel=who.channel,
                user=who.user,
                model=model.name,
                kind=kind,
            )
        except StoreError as exc:
            log.warning("could not count a %s request: %s", kind, exc)

    async def _attempt(self, prep: Prepared, ticket: Ticket, on_delta: OnDelta | None) -> _Answer:
        if ticket.batch is not None:
            return await self._batched(prep, ticket)
        completion = await self._call(prep, ticket, on_delta)
        usage, estimated = completion.usage, completion.usage is None
        if usage is None:
            # Some self-hosted servers send no usage (notably in streams): count it ourselves.
            answer_tokens = tokens.count_text(completion.text, prep.info.encoding)
            usage = Usage(prep.prompt_tokens, answer_tokens)
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

    async def _call(self, prep: Prepared, ticket: Ticket, on_delta: OnDelta | None) -> Completion:
        model, max_tokens, temperature = prep.info.name, prep.max_tokens, prep.temperature
        sent = ticket.sending
        if prep.info.endpoint == "completions":
            return await self.provider.complete(
                model=model,
                prompts=[prep.prompt],
                max_tokens=max_tokens,
                temperature=temperature,
                on_send=sent,
            )
        # Reasoning models refuse max_tokens; other servers may not know its successor.
        reasoning = prep.info.reasoning
        if on_delta is None:
            return await self.provider.chat(
                model=model,
                messages=prep.messages,
                max_tokens=None if reasoning else max_tokens,
                max_completion_tokens=max_tokens if reasoning else None,
                temperature=temperature,
                on_send=sent,
            )
        stream = self.provider.stream_chat(
            model=model,
            messages=prep.messages,
            max_tokens=None if reasoning else max_tokens,
            max_completion_tokens=max_tokens if reasoning else None,
            temperature=temperature,
            on_send=sent,
        )
        async with stream:
            async for delta in stream:
                await on_delta(delta)
        assert stream.completion is not None  # set once the stream has ended
        return stream.completion

    async def _batched(self, prep: Prepared, ticket: Ticket) -> _Answer:
        """One call for the whole batch, made by its first member; the others wait for it."""
        batch = ticket.batch
        assert batch is not None
        if ticket.index == 0:
            try:
                completion = await self.provider.complete(
                    model=prep.info.name,
                    prompts=batch.prompts,
                    max_tokens=prep.max_tokens,
                    temperature=prep.temperature,
                    on_send=ticket.sending,
                )
            except (BadRequest, ServerError) as exc:
                # Single prompts may well work where the array failed: try them before
                # failing anyone.
                self._stop_batching(
                    prep.info, f"the call with {len(batch.prompts)} prompts failed: {exc}"
                )
                batch.result.set_exception(BatchUnsupported(str(exc)))
            except BaseException as exc:
                batch.result.set_exception(exc)
            else:
                batch.result.set_result(completion)
        completion = await asyncio.shield(batch.result)
        try:
            parts, problem = split(completion, batch.prompts, prep.info.encoding)
        except BatchUnsupported as exc:
            self._stop_batching(prep.info, str(exc))
            raise
        if problem is not None:
            self._stop_batching(prep.info, problem)
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

    def _stop_batching(self, model: ModelInfo, why: str) -> None:
        if self.budget.stop_batching(model.name):
            log.warning(
                "prompt arrays do not work with %s (%s): sending one prompt per call from now on",
                model.name,
                why,
            )

    async def _after_failure(
        self, model: ModelInfo, exc: ProviderError, ticket: Ticket, *, retrying: bool
    ) -> None:
        await self.budget.observe(model, _learned(exc.rate_limits), ticket)
        if isinstance(exc, RateLimited):
            await self.budget.backoff(model, exc.retry_after or _DEFAULT_BACKOFF)
        elif isinstance(exc, QuotaExhausted):
            await self.alerts.send("quota", f"The provider says the account is out of quota: {exc}")
        elif isinstance(exc, AuthenticationFailed):
            await self.alerts.send("auth", f"The provider refused quotabot's API key: {exc}")

    async def _finish(
        self,
        request: ChatRequest,
        prep: Prepared,
        answer: _Answer,
        cost: Decimal | None,
        retries: int,
    ) -> Reply:
        if cost is None and prep.info.name not in self._warned_unpriced:
            self._warned_unpriced.add(prep.info.name)
            log.warning(
                "model %s has no price: its usage is recorded as unpriced. Declare input_price "
                "and output_price under [models.%r] in the config file to count its cost.",
                prep.info.name,
                prep.info.name,
            )
        self.metrics.answered(
            prep.info.name, answer.usage.prompt_tokens, answer.usage.completion_tokens, cost
        )
        await self._record(
            replace(
                self._row(request, prep, answer.call_id, outcome="ok"),
                prompt_tokens=answer.usage.prompt_tokens,
                completion_tokens=answer.usage.completion_tokens,
                cached_tokens=answer.usage.cached_tokens,
                reasoning_tokens=answer.usage.reasoning_tokens,
                cost=cost,
                usage_estimated=answer.estimated,
                latency_ms=round(answer.latency * 1000),
                retries=retries,
                provider_request_id=answer.provider_request_id,
                reply_text=answer.text if self.store_message_text else None,
            )
        )
        text = answer.text
        if not text.strip() and answer.finish_reason == "length" and answer.usage.reasoning_tokens:
            text = REASONING_SPENT.format(model=prep.info.name, tokens=prep.max_tokens)
        return Reply(
            text=text,
            model=prep.info.name,
            usage=answer.usage,
            cost=cost,
            finish_reason=answer.finish_reason,
            latency=answer.latency,
            request_id=request.request_id,
            usage_estimated=answer.estimated,
        )

    async def _record_failure(
        self,
        request: ChatRequest,
        prep: Prepared,
        exc: ProviderError,
        elapsed: float,
        retries: int,
    ) -> None:
        row = self._row(request, prep, uuid.uuid4().hex, outcome=type(exc).__name__)
        await self._record(
            replace(
                row,
                latency_ms=round(elapsed * 1000),
                retries=retries,
                provider_request_id=exc.request_id,
            )
        )

    def _row(self, request: ChatRequest, prep: Prepared, call_id: str, *, outcome: str) -> UsageRow:
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
            safe = replace(row, prompt_text=None, reply_text=None)
            log.exception("usage row NOT stored: %s", safe)


def _learned(info: RateLimitInfo | None) -> Learned | None:
    """What the provider's headers said, as the budgets take it: the per-minute buckets for
    which it gave both the limit and what remains."""
    if info is None:
        return None
    requests = _pair(info.limit_requests, info.remaining_requests)
    tokens = _pair(info.limit_tokens, info.remaining_tokens)
    return None if requests is None and tokens is None else Learned(requests, tokens)


def _pair(limit: int | None, remaining: int | None) -> tuple[int, int] | None:
    return None if limit is None or remaining is None else (limit, remaining)


def _who(request: ChatRequest | TranscriptionRequest) -> Who:
    return Who(request.platform, request.workspace, request.channel, request.user)
