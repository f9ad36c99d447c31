"""Streamed chat: server-sent events in, text deltas out, a Completion at the end.

Tolerant of what OpenAI-compatible servers do: no usage chunk (usage stays None), usage
repeated on every chunk (the last wins), comments and unknown fields, events not separated by
blank lines, a server that ignores ``"stream": true`` and answers with one JSON body, and a
stream that ends without ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any

import httpx

from bot.errors import ProviderError
from bot.models import Usage
from bot.provider.failures import ErrorMapper, describe_body, sentence, snippet, status_cause
from bot.provider.health import Health
from bot.provider.results import (
    BadBody,
    Choice,
    Completion,
    choice_index,
    content_text,
    finish_reason,
    parse_completion,
    parse_usage,
)
from bot.ratelimits import RateLimitInfo


async def _sse_payloads(lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The JSON payloads of a stream, up to ``[DONE]``."""
    async with contextlib.aclosing(_sse_events(lines)) as events:
        async for data in events:
            for payload in _split(data):
                if payload.strip() == "[DONE]":
                    return
                yield payload


async def _sse_events(lines: AsyncIterator[str]) -> AsyncGenerator[list[str], None]:
    """The data lines of each event; comments, other fields and blank lines are skipped."""
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
        elif not line and data:
            yield data
            data = []
    if data:
        yield data


def _split(data: list[str]) -> list[str]:
    """One event's payloads. A multi-line event is one JSON text by the SSE rules, unless the
    server skipped the blank lines between events: then each line is its own."""
    if len(data) <= 1:
        return data
    joined = "\n".join(data)
    try:
        json.loads(joined)
    except ValueError:
        return [line for line in data if line.strip()]
    return [joined]


class _Accumulator:
    """Chunks added up into the final Completion."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.reported_model: str | None = None
        self.texts: dict[int, list[str]] = {}
        self.finish: dict[int, str] = {}
        self.usage: Usage | None = None
        self.shown: int | None = None

    def add(self, chunk: Mapping[str, Any]) -> list[str]:
        """Record a chunk; return the deltas of the choice being shown (the first one seen)."""
        reported = chunk.get("model")
        if self.reported_model is None and isinstance(reported, str) and reported:
            self.reported_model = reported
        self.usage = parse_usage(chunk.get("usage")) or self.usage
        choices = chunk.get("choices")
        out: list[str] = []
        for position, choice in enumerate(choices if isinstance(choices, list) else ()):
            if not isinstance(choice, dict):
                continue
            index = choice_index(choice, position)
            delta = choice.get("delta")
            text = content_text(delta.get("content")) if isinstance(delta, dict) else ""
            text = text or content_text(choice.get("text"))  # legacy-style chunks
            self.texts.setdefault(index, []).append(text)
            if (reason := finish_reason(choice)) is not None:
                self.finish[index] = reason
            if self.shown is None:
                self.shown = index
            if index == self.shown and text:
                out.append(text)
        return out

    def result(self, headers: httpx.Headers, latency: float) -> Completion:
        indexes = sorted(self.texts) or [0]
        return Completion(
            choices=tuple(
                Choice(i, "".join(self.texts.get(i, ())), self.finish.get(i, "unknown"))
                for i in indexes
            ),
            model=self.reported_model or self.model,
            usage=self.usage,
            request_id=headers.get("x-request-id"),
            rate_limits=RateLimitInfo.from_headers(headers),
            latency=latency,
        )


class ChatStream:
    """async context manager; iterate for text deltas; .completion is set when the stream ends.

    ``async with`` sends the request, so a refused call (429, 401, ...) raises there, before
    any text; failures while reading raise from the iteration.
    """

    completion: Completion | None

    def __init__(
        self,
        http: httpx.AsyncClient,
        request: httpx.Request,
        *,
        model: str,
        errors: ErrorMapper,
        slots: asyncio.Semaphore | None = None,
        on_send: Callable[[], object] | None = None,
        health: Health | None = None,
    ) -> None:
        self._http = http
        self._health = health or Health()
        self._slots = slots or asyncio.Semaphore(1_000_000)
        self._holding = False
        self._on_send = on_send
        self._request = request
        self._model = model
        self._errors = errors
        self._response: httpx.Response | None = None
        self._deltas: AsyncGenerator[str, None] | None = None
        self._acc = _Accumulator(model)
        self._started = 0.0
        self.completion = None

    async def __aenter__(self) -> ChatStream:
        self._started = time.monotonic()
        await self._slots.acquire()  # held until the stream is closed
        self._holding = True
        try:
            if self._on_send is not None:
                self._on_send()
            try:
                response = await self._http.send(self._request, stream=True)
            except httpx.RequestError as exc:
                self._health.unanswered(exc)
                raise self._errors.transport(exc) from exc
            self._health.answered(response.status_code)
            if not response.is_success:
                try:
                    await response.aread()
                except httpx.RequestError as exc:
                    raise self._errors.transport(exc) from exc
                finally:
                    await response.aclose()
                raise self._errors.status(response, model=self._model) from status_cause(response)
        except BaseException:
            self._free()
            raise
        self._response = response
        return self

    def _free(self) -> None:
        if self._holding:
            self._holding = False
            self._slots.release()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._deltas is not None:
                await self._deltas.aclose()
            if self._response is not None:
                await self._response.aclose()
        finally:
            self._free()

    def __aiter__(self) -> AsyncIterator[str]:
        if self._response is None:
            raise RuntimeError("use `async with client.stream_chat(...) as stream` to iterate")
        if self._deltas is None:
            self._deltas = self._read(self._response)
        return self._deltas

    def cut(self) -> Completion:
        """What came before the asker stopped the answer: the text so far, finish reason
        "stopped", and no usage (a stream reports it at its end): the caller counts it."""
        if self._response is None:
            raise RuntimeError("nothing was sent")
        whole = self._acc.result(self._response.headers, time.monotonic() - self._started)
        first = whole.choices[0]
        return replace(whole, choices=(replace(first, finish_reason="stopped"),), usage=None)

    async def _read(self, response: httpx.Response) -> AsyncGenerator[str, None]:
        acc = self._acc
        try:
            if response.headers.get("content-type", "").startswith("application/json"):
                await response.aread()
                self.completion = self._whole(response)
                if self.completion.text:
                    yield self.completion.text
                return
            async with contextlib.aclosing(_sse_payloads(response.aiter_lines())) as payloads:
                async for payload in payloads:
                    for text in acc.add(self._chunk(response, payload)):
                        yield text
        except httpx.RequestError as exc:
            self._health.unanswered(exc)
            raise self._errors.transport(exc) from exc
        self.completion = acc.result(response.headers, time.monotonic() - self._started)

    def _whole(self, response: httpx.Response) -> Completion:
        """The answer of a server that ignored ``"stream": true``."""
        latency = time.monotonic() - self._started
        try:
            return parse_completion(
                response.json(),
                headers=response.headers,
                kind="chat",
                model=self._model,
                latency=latency,
            )
        except ValueError as exc:
            raise self._errors.bad_body(response, describe_body(response)) from exc
        except BadBody as exc:
            raise self._errors.bad_body(response, str(exc)) from exc

    def _chunk(self, response: httpx.Response, payload: str) -> Mapping[str, Any]:
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            why = f"sent a stream event that is not JSON: {snippet(payload)!r}"
            raise self._errors.bad_body(response, why) from exc
        if not isinstance(chunk, dict):
            raise self._errors.bad_body(response, "sent a stream event that is not an object")
        error = chunk.get("error")
        if error is not None and not chunk.get("choices"):
            # OpenAI and vLLM report a failure after the 200 status as an event of its own.
            fields = error if isinstance(error, dict) else {"message": error}
            code = fields.get("code") or fields.get("type")
            raise ProviderError(
                f"The provider at {self._errors.where} broke off the answer with an error: "
                f"{sentence(str(fields.get('message') or 'no message'))}",
                status=response.status_code,
                code=code if isinstance(code, str) else None,
                request_id=response.headers.get("x-request-id"),
            )
        return chunk
