"""The core against a real sandbox server (and, for server quirks, a fake at the HTTP boundary)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest

from bot import tokens
from bot.app import channel_defaults
from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy
from bot.catalog import Catalog, ModelOverride
from bot.config import load_settings
from bot.errors import ChannelDisabled, PromptTooLong, WaitTooLong
from bot.models import ChatRequest, Message
from bot.provider import OpenAIClient
from bot.retry import RetryPolicy
from bot.sandbox import SandboxConfig, SandboxServer
from bot.service import Service
from bot.store import ChannelStore, Database, UsageStore


def ask(text: str, **kw: object) -> ChatRequest:
    fields: dict[str, object] = {
        "platform": "slack",
        "workspace": "T1",
        "channel": "C1",
        "user": "U1",
        "messages": (Message("user", text),),
    }
    fields.update(kw)
    return ChatRequest(**fields)  # type: ignore[arg-type]


def make_service(
    db: Database,
    provider: OpenAIClient,
    catalog: Catalog | None = None,
    *,
    retry: RetryPolicy | None = None,
    limits: dict[str, dict[str, object]] | None = None,
) -> Service:
    settings = load_settings()
    return Service(
        provider=provider,
        catalog=catalog or settings.catalog(),
        usage=UsageStore(db),
        channels=ChannelStore(db, channel_defaults(settings)),
        budget=Budget(MemoryBackend(), Policy(limits or {})),  # type: ignore[arg-type]
        retry=retry,
    )


async def test_an_answer_is_recorded_with_the_providers_figures(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    reply = await service.handle(ask("What is a token bucket?"))

    served = sandbox.stats.total
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        served.prompt_tokens,
        served.completion_tokens,
    )
    assert (
        reply.cost
        == (
            Decimal("0.0015") * reply.usage.prompt_tokens
            + Decimal("0.002") * reply.usage.completion_tokens
        )
        / 1000
    )
    (row,) = await service.usage.rows()
    assert (row.outcome, row.model, row.channel, row.user) == ("ok", "gpt-3.5-turbo", "C1", "U1")
    assert (row.prompt_tokens, row.completion_tokens, row.cost) == (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
        reply.cost,
    )
    assert row.request_id == reply.request_id
    assert row.prompt_text is None and row.reply_text is None  # text is not stored by default


async def test_streamed_answers_still_record_the_providers_usage(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    deltas: list[str] = []

    async def collect(delta: str) -> None:
        deltas.append(delta)

    reply = await service.handle(ask("Stream this, please"), on_delta=collect)
    assert len(deltas) > 1
    assert "".join(deltas) == reply.text
    assert not reply.usage_estimated
    assert reply.usage.completion_tokens == sandbox.stats.total.completion_tokens
    (row,) = await service.usage.rows()
    assert row.completion_tokens == reply.usage.completion_tokens


async def test_completion_models_go_to_the_legacy_endpoint(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    reply = await service.handle(ask("Say something", model="gpt-3.5-turbo-instruct", max_tokens=5))
    assert reply.usage.completion_tokens <= 5
    assert sandbox.stats.models["gpt-3.5-turbo-instruct"].requests == 1
    (row,) = await service.usage.rows()
    assert row.endpoint == "completions"


async def test_channel_settings_choose_model_and_system_prompt(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    await service.channels.set("slack", "T1", "C1", model="gpt-4o", max_tokens=7)
    reply = await service.handle(ask("hi"))
    assert reply.model == "gpt-4o" and reply.usage.completion_tokens <= 7
    assert sandbox.stats.models["gpt-4o"].requests == 1

    await service.channels.set("slack", "T1", "C1", enabled=False)
    with pytest.raises(ChannelDisabled):
        await service.handle(ask("hi again"))
    assert sandbox.stats.total.requests == 1  # nothing was sent


async def test_an_over_long_prompt_is_refused_before_sending(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    with pytest.raises(PromptTooLong) as info:
        await service.handle(ask("word " * 9_000, model="gpt-4"))
    assert info.value.excess > 0
    assert f"at least {info.value.excess:,} tokens" in str(info.value)
    assert sandbox.stats.total.requests == 0
    assert await service.usage.rows() == []


async def test_a_huge_prompt_is_counted_off_the_event_loop(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    """1 MiB of one word took tiktoken 0.35-1.1 s: on the loop, every other chat (and every
    Slack acknowledgement) waited that long. The loop must keep ticking meanwhile."""
    service = make_service(db, provider)
    tokens.get_encoding("cl100k_base")  # loaded once per process, not what is measured
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    try:
        with pytest.raises(PromptTooLong) as info:
            await service.handle(ask("a" * (1 << 20), model="gpt-4"))
    finally:
        took = time.perf_counter() - started
        await asyncio.sleep(0.02)  # the ticker's last gap is measured too
        ticker.cancel()
    assert took > 0.1  # there was something to wait for
    assert max(gaps) < 0.05, (max(gaps), took)
    assert info.value.prompt_tokens > 8_192  # counted, and refused for what it is
    assert "shorten the prompt" in str(info.value)
    assert sandbox.stats.total.requests == 0


async def test_long_conversations_are_trimmed_to_fit(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    history = []
    for i in range(60):
        history += [Message("user", f"old question {i} " * 30), Message("assistant", "ok " * 30)]
    reply = await service.handle(
        ask("x", model="gpt-4", messages=(*history, Message("user", "now?")))
    )
    assert reply.usage.prompt_tokens + 512 <= 8_192


async def test_header_learning_avoids_429s_when_the_config_is_too_high(db: Database) -> None:
    """The config claims 600 RPM; the account has 6. After 6 answers the budget knows, and the
    7th request is refused at once (its wait is past its deadline) instead of drawing a 429."""
    async with (
        SandboxServer(SandboxConfig(rpm=6)) as server,
        OpenAIClient(base_url=server.base_url, api_key="k") as client,
    ):
        service = make_service(db, client, limits={"model": {"rpm": 600}})
        service.deadline = 2.0
        for i in range(6):
            await service.handle(ask(f"question {i}"))
        with pytest.raises(WaitTooLong):
            await service.handle(ask("one too many"))
        assert server.stats.total.rate_limited == 0


async def test_header_learning_uses_capacity_the_config_did_not_know(db: Database) -> None:
    """The catalog says 3 RPM (free tier); the account really has 600: no idle waiting."""
    async with (
        SandboxServer(SandboxConfig(rpm=600)) as server,
        OpenAIClient(base_url=server.base_url, api_key="k") as client,
    ):
        service = make_service(db, client)
        service.deadline = 5.0
        for i in range(10):
            await service.handle(ask(f"question {i}"))
        assert server.stats.total.requests == 10


async def test_self_hosted_quirks_never_break_a_reply(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A llama.cpp-style server: unknown model, no usage, no rate-limit headers, extra fields."""
    seen: list[dict[str, object]] = []

    def llama(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": "Hello from llama"}, "finish_reason": None}],
                "timings": {"predicted_ms": 12.5},
            },
        )

    http = httpx.AsyncClient(transport=httpx.MockTransport(llama))
    async with OpenAIClient(base_url="http://llama:8080/v1", http=http) as client:
        service = make_service(db, client)
        with caplog.at_level(logging.WARNING):
            first = await service.handle(ask("hi", model="llama3"))
            await service.handle(ask("again", model="llama3"))
    await http.aclose()

    assert first.text == "Hello from llama"
    assert first.usage_estimated and first.cost is None
    assert first.usage.completion_tokens == 3  # counted by quotabot: "Hello| from| llama"
    assert seen[0]["model"] == "llama3"
    assert seen[0]["messages"][0]["role"] == "system"  # type: ignore[index]
    warnings = [r for r in caplog.records if "no price" in r.getMessage()]
    assert len(warnings) == 1  # once, not once per message
    rows = await service.usage.rows()
    assert [(r.cost, r.usage_estimated) for r in rows] == [(None, True), (None, True)]


async def test_a_configured_price_makes_a_self_hosted_model_priced(db: Database) -> None:
    def llama(request: httpx.Request) -> httpx.Response:
        body = {
            "choices": [{"message": {"content": "ok"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
        return httpx.Response(200, json=body)

    catalog = Catalog.build(
        overrides={
            "llama3": ModelOverride(input_price=Decimal("0.001"), output_price=Decimal("0.002"))
        }
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(llama))
    async with OpenAIClient(base_url="http://llama:8080/v1", http=http) as client:
        reply = await make_service(db, client, catalog).handle(ask("hi", model="llama3"))
    await http.aclose()
    assert reply.cost == Decimal("0.000014")
    assert not reply.usage_estimated


async def test_configured_allow_and_deny_lists_decide_where_quotabot_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.app import open_app

    monkeypatch.setenv("QUOTABOT_ALLOWED_WORKSPACES", '["T1"]')
    monkeypatch.setenv("QUOTABOT_ALLOWED_CHANNELS", '["C1", "C3"]')
    monkeypatch.setenv("QUOTABOT_DENIED_CHANNELS", '["C3"]')
    async with open_app(load_settings()) as app:
        assert (await app.service.handle(ask("hi"))).text
        for where in ({"channel": "C2"}, {"channel": "C3"}, {"workspace": "T2"}):
            with pytest.raises(ChannelDisabled, match="switched off"):
                await app.service.handle(ask("hi", **where))
        assert app.sandbox is not None
        assert app.sandbox.stats.total.requests == 1  # nothing sent for the refused ones
        assert len(await app.usage.rows()) == 1


async def test_a_model_the_provider_does_not_serve_is_named_in_the_message(db: Database) -> None:
    def missing(request: httpx.Request) -> httpx.Response:
        error = {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}
        return httpx.Response(404, json={"error": error})

    from bot import messages
    from bot.errors import ModelNotFound

    settings = load_settings(default_model="gpt-9")
    http = httpx.AsyncClient(transport=httpx.MockTransport(missing))
    async with OpenAIClient(base_url="http://openai.test/v1", api_key="sk", http=http) as client:
        service = make_service(db, client, settings.catalog())
        service.channels.defaults = replace(service.channels.defaults, model="gpt-9")
        with pytest.raises(ModelNotFound) as failed:
            await service.handle(ask("hi"))  # the channel's model: the request names none
    await http.aclose()
    said = messages.explain(failed.value)  # as the adapters call it, without a model
    assert "'gpt-9' does not exist at the provider" in said and "?" not in said
