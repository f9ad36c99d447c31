"""Service: what the adapters call. Each request is prepared (bot.service.prepare, or the
transcription checks), then driven by the one attempt loop (bot.service.attempts) as a job:
bot.service.chat.ChatJob or bot.service.transcription.TranscriptionJob."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import NoReturn

from bot import logs, messages
from bot.access import Access
from bot.admission import Admission, Turn
from bot.alerts import Alerts
from bot.budget.limits import local_time
from bot.budget.manager import Budget
from bot.budget.policy import Who
from bot.budget.tickets import OnQueued
from bot.catalog import Catalog
from bot.errors import (
    AudioOverBudget,
    BudgetExceeded,
    ProviderDown,
    ProviderError,
    ProviderTimeout,
    ProviderUnreachable,
    QueueFull,
    RequestRejected,
    ServerError,
    WaitTooLong,
)
from bot.messages import format_cost
from bot.metrics import Metrics
from bot.models import ChatRequest, Reply, Transcript, TranscriptionRequest
from bot.provider import OpenAIClient, Providers
from bot.retry import RetryPolicy
from bot.service import transcription
from bot.service.attempts import Attempts
from bot.service.chat import ChatJob, OnDelta
from bot.service.prepare import Prepared, prepare
from bot.service.transcription import TranscriptionJob
from bot.store.channels import ChannelStore
from bot.store.digests import RequestEvents
from bot.store.usage import UsageStore

log = logging.getLogger(__name__)


class Service:
    """``provider``: the one client every model is sent to, or the Providers that give each
    model its provider's client."""

    def __init__(
        self,
        *,
        provider: OpenAIClient | Providers,
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
        self.providers = provider if isinstance(provider, Providers) else Providers.one(provider)
        """Each model's provider: a request's calls go to the client of its model's."""
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
        stop: asyncio.Event | None = None,
    ) -> Reply:
        """Answer ``request``: wait for budget, call the provider, retry what is worth it.

        With ``on_delta`` the answer is streamed to it as it arrives; ``on_queued`` hears the
        queue position and expected wait when the request has to wait for budget. ``turn``
        (from ``self.admission``) is given back while the request waits for budget. ``stop``,
        once set, ends a streamed answer where it is (finish reason "stopped").
        Raises RequestRejected (refused; nothing more was sent) or ProviderError (the last
        failure); both carry a message fit for the user (see bot.messages).
        """
        with self._measured(request):
            who = _who(request)
            prep = await self._prepare(request)
            attempts = self._attempts()
            try:
                return await self._down_the_list(
                    request, prep, who, attempts, on_delta, on_queued, turn, stop
                )
            except BudgetExceeded:  # counted once for the digest, on the model asked for
                await attempts.note(who, prep.info, "refused")
                raise

    async def _down_the_list(
        self,
        request: ChatRequest,
        prep: Prepared,
        who: Who,
        attempts: Attempts,
        on_delta: OnDelta | None,
        on_queued: OnQueued | None,
        turn: Turn | None,
        stop: asyncio.Event | None,
    ) -> Reply:
        """The model asked for, then each fallback that can take the request, until one
        answers; raises the asked model's reason when none does."""
        deadline = time.monotonic() + self.deadline
        asked = prep.info
        chain = await self._fallbacks(who, asked.name)
        first: RequestRejected | ProviderError | None = None
        why = ""
        for n, name in enumerate((asked.name, *chain)):
            last = n == len(chain)
            if n:
                try:
                    prep = await self._prepare(replace(request, model=name))
                except RequestRejected as exc:  # cannot see the images, too long for it...
                    log.info("fallback %s cannot take this request: %s", name, exc)
                    continue
            client = self.providers.client(prep.info.name)
            if not last and not client.health.up:
                first = first or ProviderDown(messages.PROVIDER_DOWN)  # kept if all fail
                why = why or messages.FALLBACK_DOWN
                continue
            job = ChatJob(
                request,
                prep,
                provider=client,
                budget=self.budget,
                batching=self.batching,
                store_message_text=self.store_message_text,
                on_delta=on_delta,
                stop=stop,
            )
            try:
                reply = await attempts.run(
                    job,
                    who,
                    deadline=deadline,
                    turn=turn,
                    on_queued=on_queued,
                    give_up=None if last else _down(client),
                    count_refusal=False,
                )
            except (BudgetExceeded, WaitTooLong, QueueFull) as exc:
                if last:
                    _reraise(first, exc)
                first, why = first or exc, why or _why(exc)
                continue
            except (ServerError, ProviderTimeout, ProviderUnreachable) as exc:
                if last or not job.retryable:  # shown in part: sent again, shown twice
                    _reraise(first, exc)
                first, why = first or exc, why or messages.FALLBACK_DOWN
                continue
            self._warn_if_unpriced(reply)
            if n:
                line = messages.FALLBACK.format(model=reply.model, asked=asked.name, why=why)
                log.info("%s", line)
                self.metrics.fallbacks.labels(asked.name, reply.model).inc()
                await attempts.note(who, asked, "fallback")
                reply = replace(reply, fallback=line)
            return reply
        # Every fallback declined the request before asking for budget.
        raise first or RuntimeError("no model was tried")

    async def _prepare(self, request: ChatRequest) -> Prepared:
        return await prepare(
            request,
            access=self.access,
            channels=self.channels,
            catalog=self.catalog,
            budget=self.budget,
        )

    async def _fallbacks(self, who: Who, model: str) -> tuple[str, ...]:
        """The models to try after ``model`` here, in order: those of the fallback list that
        quotabot knows and this channel may use."""
        names, allowed = await self.budget.fallbacks(who, model)
        base = self.catalog.base_name
        return tuple(
            n for n in names if n in self.catalog and (allowed is None or {n, base(n)} & allowed)
        )

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
                provider=self.providers.client(info.name),
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

    def _warn_if_unpriced(self, reply: Reply) -> None:
        """Once per model: its usage is recorded, but no cap or report can count its cost."""
        if reply.cost is not None or reply.model in self._warned_unpriced:
            return
        self._warned_unpriced.add(reply.model)
        log.warning(
            "model %s has no price: its usage is recorded as unpriced. Declare input_price "
            "and output_price under [models.%r] in the config file to count its cost.",
            reply.model,
            reply.model,
        )


def _reraise(first: Exception | None, exc: Exception) -> NoReturn:
    """When the last model fails too: the asked model's own reason (its cap, with the way to
    ask for more), else this one."""
    if first is None:
        raise exc
    raise first from exc


def _down(client: OpenAIClient) -> Callable[[], bool]:
    return lambda: not client.health.up


def _why(exc: RequestRejected) -> str:
    """Why the model asked for did not answer, in a few words for the line under the answer."""
    if isinstance(exc, BudgetExceeded):
        return messages.FALLBACK_CAP.format(label=exc.label, at=local_time(exc.resets_at))
    return messages.FALLBACK_WAIT


def _who(request: ChatRequest | TranscriptionRequest) -> Who:
    return Who(request.platform, request.workspace, request.channel, request.user)
