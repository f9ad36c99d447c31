"""The budgeted attempt loop, the same for a chat answer and a transcription:

    acquire budget (waiting, or refused) -> one provider call -> settle, or release
      -> one usage row -> on failure: learn, back off, alert, and maybe try again

What differs between the two is a :class:`Job`: what to reserve, how to call, how to write
the row. Implemented by ``bot.service.chat.ChatJob`` and
``bot.service.transcription.TranscriptionJob``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

from bot.admission import Turn
from bot.alerts import Alerts
from bot.batching import BatchUnsupported
from bot.budget.limits import Learned
from bot.budget.manager import Budget
from bot.budget.policy import Who
from bot.budget.tickets import OnQueued, QueueInfo, Ticket
from bot.catalog import ModelInfo
from bot.errors import (
    AuthenticationFailed,
    BudgetExceeded,
    ProviderDown,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    StoreError,
)
from bot.metrics import Metrics
from bot.models import Usage
from bot.ratelimits import RateLimitInfo
from bot.retry import RetryPolicy
from bot.service import rows
from bot.store.digests import RequestEvents
from bot.store.rows import UsageRow
from bot.store.usage import UsageStore

log = logging.getLogger(__name__)

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# A 429 without any hint still makes the model pause this long.
_DEFAULT_BACKOFF = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Reserve:
    """What each attempt reserves before its call: the most the call can take."""

    tokens: int
    cost: Decimal | None
    batch_key: Hashable | None = None
    """Legacy completions only: requests with equal keys may share one call."""
    prompt: str | None = None
    """This request's part of such a shared call."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Paid(Generic[R_co]):
    """A call that was answered: what the budget is settled with, the row, the result."""

    result: R_co
    usage: Usage
    cost: Decimal | None
    latency: float
    rate_limits: RateLimitInfo | None
    row: UsageRow
    """The call's usage row, but for ``retries``: the loop counts those."""


class Job(Protocol[R_co]):
    """One request's provider calls, as the loop drives them. Implemented by
    ``bot.service.chat.ChatJob`` and ``bot.service.transcription.TranscriptionJob``."""

    @property
    def model(self) -> ModelInfo: ...

    @property
    def reserve(self) -> Reserve: ...

    @property
    def retryable(self) -> bool:
        """False once the failed call showed the user part of an answer: sent again, it
        would show it twice."""
        ...

    async def call(self, ticket: Ticket) -> Paid[R_co]:
        """One call under ``ticket``. Raises ProviderError, or BatchUnsupported when a shared
        call failed in a way its prompts alone may not: those are sent again, not failed."""
        ...

    def row(self, call_id: str, outcome: str) -> UsageRow:
        """A row for one of its calls, nothing counted yet (see :func:`rows.row`)."""
        ...

    def refused(self, exc: BudgetExceeded) -> RequestRejected | None:
        """What to raise instead of ``exc`` when a cap refuses the request; None: ``exc``."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempts:
    """The parts of the service the loop works with. Built for each request from the
    service's attributes, so that one replaced on the service (a test's budget) is used."""

    budget: Budget
    retry: RetryPolicy
    alerts: Alerts
    metrics: Metrics
    usage: UsageStore
    events: RequestEvents | None
    counted: set[str] = field(default_factory=set)
    """The kinds :meth:`note` has counted: a request counts once, however many models try it."""

    async def run(
        self,
        job: Job[R],
        who: Who,
        *,
        deadline: float,
        turn: Turn | None,
        on_queued: OnQueued | None,
        give_up: Callable[[], bool] | None = None,
        count_refusal: bool = True,
    ) -> R:
        """Call until a call is answered, the retry policy gives up, ``deadline`` (on the
        monotonic clock) would pass or, after a failure, ``give_up()`` says another model
        would do better (its provider is down and there is a fallback). Raises
        RequestRejected or the last ProviderError. ``count_refusal=False``: the caller counts
        a cap's refusal for the digest, since another model may still answer."""
        model, reserve = job.model, job.reserve
        queued = self.queued(who, model, turn, on_queued)
        attempt = 0
        while True:
            waiting = time.monotonic()
            try:
                ticket = await self.budget.acquire(
                    who,
                    model,
                    tokens=reserve.tokens,
                    cost=reserve.cost,
                    deadline=deadline,
                    on_queued=queued,
                    batch_key=reserve.batch_key,
                    prompt=reserve.prompt,
                )
            except BudgetExceeded as exc:
                if count_refusal:
                    await self.note(who, model, "refused")
                instead = job.refused(exc)
                if instead is None:
                    raise
                raise instead from exc
            started = time.monotonic()
            self.metrics.queue_wait.labels(model.name).observe(started - waiting)
            try:
                paid = await job.call(ticket)
            except BatchUnsupported:
                await self.budget.release(ticket)
                continue  # the model is now sent one prompt per call: not a failed attempt
            except ProviderError as exc:
                result = "rate_limited" if isinstance(exc, RateLimited) else "error"
                self.metrics.provider_calls.labels(model.name, result).inc()
                await self.budget.release(ticket, reached=not isinstance(exc, ProviderDown))
                failed = job.row(uuid.uuid4().hex, type(exc).__name__)
                await rows.record(
                    self.usage,
                    replace(
                        failed,
                        latency_ms=round((time.monotonic() - started) * 1000),
                        retries=attempt,
                        provider_request_id=exc.request_id,
                    ),
                )
                delay = self.retry.delay(exc, attempt) if job.retryable else None
                await self._after_failure(model, exc, ticket)
                if give_up is not None and give_up():
                    raise
                if delay is None or time.monotonic() + delay > deadline:
                    raise
                log.info("retrying %s after %s in %.2f s", failed.request_id, exc, delay)
                self.metrics.retries.labels(model.name).inc()
                if not isinstance(exc, RateLimited):
                    await asyncio.sleep(delay)  # a 429 blocks the whole model instead
                attempt += 1
                continue
            except BaseException:
                await self.budget.release(ticket)
                raise
            self.metrics.provider_calls.labels(model.name, "ok").inc()
            self.metrics.provider_seconds.labels(model.name).observe(paid.latency)
            await self.budget.settle(ticket, tokens=paid.usage.total_tokens, cost=paid.cost)
            # After settling: the headers' "remaining" already counts the unused tokens given
            # back, so learning first would give them back twice.
            await self.budget.observe(model, learned(paid.rate_limits), ticket)
            usage = paid.usage
            self.metrics.answered(
                model.name, usage.prompt_tokens, usage.completion_tokens, paid.cost
            )
            await rows.record(self.usage, replace(paid.row, retries=attempt))
            return paid.result

    def queued(
        self, who: Who, model: ModelInfo, turn: Turn | None, on_queued: OnQueued | None
    ) -> OnQueued:
        """What the budget calls while a request waits: its turn goes back (waiting for budget
        costs nothing: let another event start), the wait is counted once, the asker told."""

        async def queued(queue: QueueInfo) -> None:
            if turn is not None:
                turn.release()
            await self.note(who, model, "queued")
            if on_queued is not None:
                await on_queued(queue)

        return queued

    async def note(self, who: Who, model: ModelInfo, kind: str) -> None:
        """Count a queued, refused or fallen-back request for the digest, once; never fails the
        request itself."""
        if self.events is None or kind in self.counted:
            return
        self.counted.add(kind)
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

    async def _after_failure(self, model: ModelInfo, exc: ProviderError, ticket: Ticket) -> None:
        await self.budget.observe(model, learned(exc.rate_limits), ticket)
        if isinstance(exc, RateLimited):
            await self.budget.backoff(model, exc.retry_after or _DEFAULT_BACKOFF)
        elif isinstance(exc, QuotaExhausted):
            await self.alerts.send("quota", f"The provider says the account is out of quota: {exc}")
        elif isinstance(exc, AuthenticationFailed):
            await self.alerts.send("auth", f"The provider refused quotabot's API key: {exc}")


def learned(info: RateLimitInfo | None) -> Learned | None:
    """What the provider's headers said, as the budgets take it: the per-minute buckets for
    which it gave both the limit and what remains."""
    if info is None:
        return None
    requests = _pair(info.limit_requests, info.remaining_requests)
    tokens = _pair(info.limit_tokens, info.remaining_tokens)
    return None if requests is None and tokens is None else Learned(requests, tokens)


def _pair(limit: int | None, remaining: int | None) -> tuple[int, int] | None:
    return None if limit is None or remaining is None else (limit, remaining)
