"""The aiohttp application: every /v1 call goes auth -> latency -> body -> model -> quota ->
fault -> rate limits -> reply, and leaves with OpenAI's headers whatever its answer.
Transcriptions take the same path (their body: bot.sandbox.audio)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.catalog import Catalog
from bot.models import Endpoint, Usage
from bot.sandbox import audio, errors
from bot.sandbox.bodies import (
    Answer,
    Choice,
    JsonObject,
    chat_chunks,
    chat_completion,
    text_chunks,
    text_completion,
)
from bot.sandbox.cache import PromptCache
from bot.sandbox.config import SandboxConfig
from bot.sandbox.costs import CostLedger
from bot.sandbox.errors import ApiError
from bot.sandbox.faults import FaultPicker
from bot.sandbox.limits import Limiter
from bot.sandbox.parsing import (
    Job,
    parse_body,
    parse_chat,
    parse_legacy,
    parse_model,
    resolve_model,
)
from bot.sandbox.replies import reasoning_tokens, reply_text, truncate
from bot.sandbox.stats import SandboxStats
from bot.tokens import count_text

# Large enough for prompts that overflow a 128k-token context window.
_MAX_BODY = 32 * 1024 * 1024
# OpenAI's /v1/models has a creation time per model; ours are all the same made-up one.
_MODEL_CREATED = 1_700_000_000


@dataclass
class _Call:
    """What one API call has learnt so far, for the headers of whatever answer it gets."""

    started: float = field(default_factory=time.perf_counter)
    request_id: str = field(default_factory=lambda: f"req_{uuid.uuid4().hex}")
    authenticated: bool = False
    model: str | None = None


_Inner = Callable[[web.Request, _Call], Awaitable[web.StreamResponse]]


class Sandbox:
    """The state of one sandbox: its limits, fault sequence and counters."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self.stats = SandboxStats()
        self.costs = CostLedger()
        """USD served per UTC day, for GET /v1/organization/costs."""
        self.limiter = Limiter(rpm=config.rpm, tpm=config.tpm, rpd=config.rpd, clock=config.clock)
        self.faults = FaultPicker(config)
        self.prompt_cache = PromptCache(config.clock)
        """Chat prompts' prefixes per model, for ``prompt_tokens_details.cached_tokens``."""

    @property
    def catalog(self) -> Catalog:
        return self.config.catalog

    def api(self, inner: _Inner) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            call = _Call()
            try:
                self._authenticate(request)
                call.authenticated = True
                if self.config.latency > 0:
                    await asyncio.sleep(self.config.latency)
                response = await inner(request, call)
            except ApiError as exc:
                response = exc.response()
            if not response.prepared:
                self._decorate(response, call)
            return response

        return handle

    def _authenticate(self, request: web.Request) -> None:
        scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
        key = key.strip()
        if not key and not self.config.require_key and self.config.api_key is None:
            return
        if scheme.lower() != "bearer" or not key:
            raise errors.no_api_key()
        if self.config.api_key is not None and key != self.config.api_key:
            raise errors.wrong_api_key(key)

    def _decorate(self, response: web.StreamResponse, call: _Call) -> None:
        """OpenAI's headers; the rate-limit ones only once the caller is known, as at OpenAI."""
        response.headers["x-request-id"] = call.request_id
        elapsed_ms = round((time.perf_counter() - call.started) * 1000)
        response.headers["openai-processing-ms"] = str(elapsed_ms)
        if call.authenticated:
            response.headers.update(self.limiter.headers(call.model))

    async def chat(self, request: web.Request, call: _Call) -> web.StreamResponse:
        return await self._complete(request, call, "chat")

    async def completions(self, request: web.Request, call: _Call) -> web.StreamResponse:
        return await self._complete(request, call, "completions")

    async def _complete(
        self, request: web.Request, call: _Call, endpoint: Endpoint
    ) -> web.StreamResponse:
        """Answer one completion request.

        The TPM bucket is charged before answering with the prompt plus ``max_tokens`` or
        ``max_completion_tokens`` (OpenAI counts a request's maximum against the limit up
        front), and the tokens the reply did not use are given back afterwards. OpenAI does not
        document a refund; we give it so that a generous maximum costs throughput only while a
        request is in flight, and the bucket tracks the tokens actually served, which is what
        benchmarks compare. Cached prompt tokens count against TPM like any others, as at
        OpenAI; a chat prompt is looked up in (and added to) the prompt cache only once it is
        answered.
        """
        body = parse_body(await request.read())
        model = parse_model(body)
        info = resolve_model(self.catalog, model, endpoint)
        call.model = model
        limits = self.limiter.for_model(model)
        job = (
            parse_chat(body, model, info) if endpoint == "chat" else parse_legacy(body, model, info)
        )
        stats = self.stats.model(model)
        quota = self.config.quota_tokens
        if quota is not None and self.stats.total.total_tokens >= quota:
            stats.rate_limited += 1
            raise errors.quota_exceeded()
        fault = self.faults.pick()
        if fault is not None:
            stats.failures += 1
            return _fail(request, fault)
        answer = self._answer(job)
        most = job.max_completion_tokens
        outputs = answer.completion_tokens if most is None else most * len(job.prompts)
        reserved = job.prompt_tokens + outputs
        refusal = limits.refusal(reserved)
        if refusal is not None:
            stats.rate_limited += 1
            raise errors.rate_limited(model, refusal)
        limits.take(reserved)
        admitted_at = time.time()
        if job.messages:
            cached = self.prompt_cache.serve(model, job.messages, info.encoding, job.prompt_tokens)
            answer = replace(answer, cached_tokens=cached)
        usage = Usage(
            answer.prompt_tokens,
            answer.completion_tokens,
            cached_tokens=answer.cached_tokens,
            reasoning_tokens=answer.reasoning_tokens,
        )
        try:
            if not job.stream:
                if self.config.chunk_interval:  # as long as the stream would have taken
                    await asyncio.sleep(
                        self.config.chunk_interval * -(-usage.completion_tokens // 3)
                    )
                render = chat_completion if endpoint == "chat" else text_completion
                return web.json_response(render(answer))
            stream = chat_chunks if endpoint == "chat" else text_chunks
            chunks = stream(answer, info.encoding, include_usage=job.include_usage)
            return await self._stream(request, call, chunks)
        finally:
            limits.refund_tokens(reserved - usage.total_tokens)
            self.stats.serve(call.request_id, model, usage, admitted_at=admitted_at)
            stats.images += sum(len(m.images) for m in job.messages)
            self.costs.add(info.cost(usage), model)

    async def transcriptions(self, request: web.Request, call: _Call) -> web.StreamResponse:
        """One transcription: one request of the model's RPM and RPD buckets (not the
        sandbox-wide ones: OpenAI limits Whisper apart, 3 RPM and 200 RPD on its free tier)."""
        job = await audio.read_form(request, self.catalog)
        call.model = job.model
        rpm = self.config.audio_rpm or job.info.limits.rpm
        rpd = self.config.audio_rpd or job.info.limits.rpd
        limits = self.limiter.for_model(job.model, rpm=rpm, rpd=rpd)
        stats = self.stats.model(job.model)
        duration = audio.measure(job)
        fault = self.faults.pick()
        if fault is not None:
            stats.failures += 1
            return _fail(request, fault)
        refusal = limits.refusal(0)
        if refusal is not None:
            stats.rate_limited += 1
            raise errors.rate_limited(job.model, refusal)
        limits.take(0)
        text = audio.transcript(job.data, duration, job.prompt)
        payload, seconds = audio.body(job, text, duration)
        stats.requests += 1
        stats.audio_seconds += seconds
        self.costs.add(job.info.audio_cost(seconds), job.model)
        if job.response_format == "text":
            return web.Response(text=text + "\n", content_type="text/plain")
        return web.json_response(payload)

    def _answer(self, job: Job) -> Answer:
        """The reply to each prompt. A reasoning model first spends its reasoning tokens, then
        writes the text, both within ``max_completion_tokens``: if reasoning takes them all,
        the text is empty and ``finish_reason`` is "length", as at OpenAI."""
        encoding = job.info.encoding
        window = job.info.context_window
        seed = self.config.seed
        choices = []
        for prompt in job.prompts:
            text = reply_text(
                seed=seed,
                model=job.model,
                prompt_key=prompt.key,
                echo=prompt.echo,
                encoding=encoding,
                tokens=self.config.reply_tokens,
            )
            # Without a maximum a reply runs to its end, or to the end of the context window.
            cap = job.max_completion_tokens
            if cap is None and window is not None:
                cap = window - prompt.tokens
            reasoning = 0
            if job.info.reasoning:
                reasoning = reasoning_tokens(seed=seed, model=job.model, prompt_key=prompt.key)
                if cap is not None:
                    reasoning = min(reasoning, cap)
                    cap -= reasoning
            cut = False
            if cap is not None:
                text, cut = truncate(text, cap, encoding)
            finish = "length" if cut else "stop"
            choices.append(Choice(text, finish, count_text(text, encoding), reasoning))
        return Answer(
            id=f"{'chatcmpl' if job.info.endpoint == 'chat' else 'cmpl'}-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=job.model,
            fingerprint=f"fp_{hashlib.sha256(job.model.encode()).hexdigest()[:10]}",
            choices=tuple(choices),
            prompt_tokens=job.prompt_tokens,
        )

    async def _stream(
        self, request: web.Request, call: _Call, chunks: Iterator[JsonObject]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        self._decorate(response, call)
        await response.prepare(request)
        pace = self.config.chunk_interval
        for n, chunk in enumerate(chunks):
            if n and pace:
                await asyncio.sleep(pace)
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(self, request: web.Request, call: _Call) -> web.StreamResponse:
        return web.json_response(
            {"object": "list", "data": [_model_entry(n) for n in self.catalog.names()]}
        )

    async def model(self, request: web.Request, call: _Call) -> web.StreamResponse:
        name = request.match_info["model"]
        if not self.catalog.get(name).known:
            raise errors.model_not_found(name)
        return web.json_response(_model_entry(name))

    async def stats_json(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats.to_json())

    async def responses_json(self, request: web.Request) -> web.StreamResponse:
        """Every completion served (the latest 100,000), oldest first: its ``x-request-id``,
        model and tokens. Counted when served, whether or not the caller was still there to
        read it (a caller killed mid-call leaves a response here and no usage anywhere)."""
        return web.json_response({"data": [r.to_json() for r in self.stats.responses]})


def _model_entry(name: str) -> JsonObject:
    return {"id": name, "object": "model", "created": _MODEL_CREATED, "owned_by": "sandbox"}


def _fail(request: web.Request, fault: str) -> web.StreamResponse:
    if fault == "500":
        raise errors.server_error()
    if fault == "503":
        raise errors.overloaded()
    # "drop": close the connection; aiohttp then finds it gone and sends nothing.
    if request.transport is not None:
        request.transport.close()
    return web.Response()


@web.middleware
async def _json_routing_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and methods get OpenAI's JSON errors instead of aiohttp's plain text."""
    failure = request.match_info.http_exception
    if failure is None:
        return await handler(request)
    if failure.status == 405:
        return errors.invalid_method(request.method, request.path).response()
    return errors.invalid_url(request.method, request.path).response()


SANDBOX = web.AppKey("quotabot_sandbox", Sandbox)


def create_app(config: SandboxConfig) -> web.Application:
    sandbox = Sandbox(config)
    app = web.Application(middlewares=[_json_routing_errors], client_max_size=_MAX_BODY)
    app[SANDBOX] = sandbox
    app.router.add_post("/v1/chat/completions", sandbox.api(sandbox.chat))
    app.router.add_post("/v1/completions", sandbox.api(sandbox.completions))
    app.router.add_post("/v1/audio/transcriptions", sandbox.api(sandbox.transcriptions))
    app.router.add_get("/v1/models", sandbox.api(sandbox.models))
    app.router.add_get("/v1/models/{model}", sandbox.api(sandbox.model))
    app.router.add_get("/v1/organization/costs", sandbox.api(sandbox.costs.handle))
    app.router.add_get("/sandbox/stats", sandbox.stats_json)
    app.router.add_get("/sandbox/responses", sandbox.responses_json)
    return app
