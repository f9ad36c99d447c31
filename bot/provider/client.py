"""OpenAIClient: builds each request and sends it exactly once (see the package docstring)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import httpx

from bot.errors import ConfigError
from bot.lifecycle import AsyncResource
from bot.models import Message
from bot.provider.failures import ErrorMapper, describe_body, status_cause
from bot.provider.health import Health
from bot.provider.results import (
    BadBody,
    Completion,
    Kind,
    Transcription,
    parse_completion,
    parse_transcription,
)
from bot.provider.stream import ChatStream
from bot.provider.wire import OpenAIWire, Wire


def _body(model: str, **fields: Any) -> dict[str, Any]:
    """The JSON body; unset options (None) are left out so that the server's defaults apply."""
    return {"model": model, **{k: v for k, v in fields.items() if v is not None}}


_KEEPALIVE = 40

OnSend = Callable[[], object]
"""Called as a call leaves (after any wait for a free connection): the budgets compare it with
when rate-limit headers came back."""


class OpenAIClient(AsyncResource):
    """Calls one OpenAI-compatible server, one attempt per call; an async context manager.

    ``wire`` says how that kind of server is addressed (OpenAI's URLs and bearer key by
    default; ``bot.provider.azure.AzureWire`` for Azure OpenAI); ``headers`` go with every
    call; ``health`` hears how each call went; ``key_name`` is where the key comes from, for
    the messages that ask an operator to check it."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_connections: int = 100,
        wire: Wire | None = None,
        headers: Mapping[str, str] | None = None,
        health: Health | None = None,
        key_name: str = "OPENAI_API_KEY",
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except httpx.InvalidURL:
            url = httpx.URL()
        if url.scheme not in ("http", "https") or not url.host:
            # The value is not echoed: a key pasted into the wrong setting must not be printed.
            raise ConfigError(
                "base_url must be an http:// or https:// URL such as https://api.openai.com/v1"
            )
        host = f"[{url.host}]" if ":" in url.host else url.host
        where = host if url.port is None else f"{host}:{url.port}"
        self._base_url = url
        self._api_key = api_key
        self.wire = wire or OpenAIWire()
        self.health = health or Health()
        """Whether the server answers, from this client's calls."""
        self._headers = {**(headers or {}), **(self.wire.auth(api_key) if api_key else {})}
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._owns_http = http is None
        if http is None:
            # httpx keeps 20 idle connections by default: fewer than the calls a chat bot has
            # in flight when the model is slow, so most calls would open a new one. Not many
            # more either: httpcore's pool scans idle x all connections on every request.
            limits = httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=_KEEPALIVE
            )
            http = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(retries=0, limits=limits), limits=limits
            )
        self._http = http
        # Calls beyond the pool wait here, not in httpcore's pool, whose queue costs
        # O(queued x connections) per request: a burst of 500 calls took seconds of CPU
        # (bench.budgets).
        self._slots = asyncio.Semaphore(max_connections)
        self._errors = ErrorMapper(
            where,
            api_key is not None,
            timeout,
            connect_timeout,
            key_name=key_name,
            not_found=self.wire.not_found,
        )

    def __repr__(self) -> str:
        shown = self._base_url.copy_with(username=None, password=None)
        key = "None" if self._api_key is None else "'***'"
        return f"OpenAIClient(base_url={str(shown)!r}, api_key={key})"

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it; an injected one is its owner's."""
        if self._owns_http:
            await self._http.aclose()

    async def chat(
        self,
        *,
        model: str,
        messages: Sequence[Message],
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        temperature: float | None = None,
        on_send: OnSend | None = None,
    ) -> Completion:
        """``max_completion_tokens`` is what reasoning models take instead of ``max_tokens``."""
        body = _body(
            model,
            messages=[m.to_openai() for m in messages],
            max_tokens=max_tokens,
            max_completion_tokens=max_completion_tokens,
            temperature=temperature,
        )
        return await self._call(
            "/chat/completions", body, kind="chat", model=model, on_send=on_send
        )

    def stream_chat(
        self,
        *,
        model: str,
        messages: Sequence[Message],
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        temperature: float | None = None,
        on_send: OnSend | None = None,
    ) -> ChatStream:
        """Nothing is sent until ``async with``; ``include_usage`` asks for a final usage chunk."""
        body = _body(
            model,
            messages=[m.to_openai() for m in messages],
            max_tokens=max_tokens,
            max_completion_tokens=max_completion_tokens,
            temperature=temperature,
            stream=True,
            stream_options={"include_usage": True},
        )
        request = self._request("/chat/completions", body, model=model, accept="text/event-stream")
        return ChatStream(
            self._http,
            request,
            model=model,
            errors=self._errors,
            slots=self._slots,
            on_send=on_send,
            health=self.health,
        )

    async def complete(
        self,
        *,
        model: str,
        prompts: Sequence[str],
        max_tokens: int | None = None,
        temperature: float | None = None,
        on_send: OnSend | None = None,
    ) -> Completion:
        """Legacy /completions; several prompts go in one request and get one choice each."""
        if isinstance(prompts, str):
            raise TypeError("prompts is a sequence of prompts: wrap a single prompt in a list")
        if not prompts:
            raise ValueError("complete() needs at least one prompt")
        prompt: str | list[str] = prompts[0] if len(prompts) == 1 else list(prompts)
        body = _body(model, prompt=prompt, max_tokens=max_tokens, temperature=temperature)
        return await self._call(
            "/completions", body, kind="completions", model=model, on_send=on_send
        )

    async def transcribe(
        self,
        *,
        model: str,
        file: tuple[str, bytes | IO[bytes], str],
        prompt: str | None = None,
        language: str | None = None,
        on_send: OnSend | None = None,
    ) -> Transcription:
        """/audio/transcriptions with ``file`` (name, content, media type), as multipart form
        data, read from the file object in pieces as it is sent; the answer is asked for as
        ``json``, which carries the usage."""
        fields = {"model": model, "response_format": "json"}
        if prompt:
            fields["prompt"] = prompt
        if language:
            fields["language"] = language
        request = self._request(
            "/audio/transcriptions",
            None,
            model=model,
            accept="application/json",
            data=fields,
            files=file,
        )
        payload, response, latency = await self._json(request, model=model, on_send=on_send)
        try:
            return parse_transcription(
                payload, headers=response.headers, model=model, latency=latency
            )
        except BadBody as exc:
            raise self._errors.bad_body(response, str(exc)) from exc

    def _request(
        self,
        path: str,
        body: dict[str, Any] | None,
        *,
        model: str,
        accept: str,
        data: dict[str, str] | None = None,
        files: tuple[str, bytes | IO[bytes], str] | None = None,
    ) -> httpx.Request:
        headers = {"Accept": accept, **self._headers}
        url = self.wire.url(self._base_url, path, model)
        if files is not None:
            return self._http.build_request(
                "POST",
                url,
                data=data,
                files={"file": files},
                headers=headers,
                timeout=self._timeout,
            )
        return self._http.build_request(
            "POST", url, json=body, headers=headers, timeout=self._timeout
        )

    async def _send(
        self, request: httpx.Request, on_send: OnSend | None
    ) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        try:
            async with self._slots:
                if on_send is not None:
                    on_send()
                response = await self._http.send(request)
        except httpx.RequestError as exc:
            self.health.unanswered(exc)
            raise self._errors.transport(exc) from exc
        self.health.answered(response.status_code)
        return response, time.monotonic() - started

    async def _json(
        self, request: httpx.Request, *, model: str, on_send: OnSend | None
    ) -> tuple[Any, httpx.Response, float]:
        """The answer's JSON, the response and the latency; an error status or a body that is
        not JSON is raised as the ProviderError it maps to."""
        response, latency = await self._send(request, on_send)
        if not response.is_success:
            raise self._errors.status(response, model=model) from status_cause(response)
        try:
            return response.json(), response, latency
        except ValueError as exc:
            raise self._errors.bad_body(response, describe_body(response)) from exc

    async def _call(
        self,
        path: str,
        body: dict[str, Any],
        *,
        kind: Kind,
        model: str,
        on_send: OnSend | None,
    ) -> Completion:
        request = self._request(path, body, model=model, accept="application/json")
        payload, response, latency = await self._json(request, model=model, on_send=on_send)
        try:
            return parse_completion(
                payload, headers=response.headers, kind=kind, model=model, latency=latency
            )
        except BadBody as exc:
            raise self._errors.bad_body(response, str(exc)) from exc
