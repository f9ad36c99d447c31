"""Batching legacy-completions prompts while they wait on the request-per-minute limit."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from bot.app import channel_defaults
from bot.batching import apportion
from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy
from bot.config import load_settings
from bot.models import ChatRequest, Message
from bot.provider import OpenAIClient
from bot.sandbox import SandboxConfig, SandboxServer
from bot.service import Service
from bot.store import ChannelStore, Database, UsageStore

MODEL = "gpt-3.5-turbo-instruct"


def test_apportion_adds_up_exactly() -> None:
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(100, [10, 30, 60]) == [10, 30, 60]
    assert apportion(7, [0, 0]) == [4, 3]
    for total in range(50):
        assert sum(apportion(total, [3, 5, 7, 11])) == total


def make_service(db: Database, client: OpenAIClient) -> Service:
    settings = load_settings()
    return Service(
        provider=client,
        catalog=settings.catalog(),
        usage=UsageStore(db),
        channels=ChannelStore(db, channel_defaults(settings)),
        budget=Budget(MemoryBackend(), Policy({f"model:{MODEL}": {"rpm": 60}})),
        deadline=20.0,
    )


async def empty_request_bucket(service: Service) -> None:
    """As if this minute's requests were spent: whatever arrives now has to wait."""
    rpm = service.budget.policy.model_rates(service.catalog.get(MODEL))[0]
    await service.budget.backend.adjust([(rpm, 60)], [])


def ask(channel: str, text: str) -> ChatRequest:
    return ChatRequest(
        platform="slack",
        workspace="T",
        channel=channel,
        user=f"U-{channel}",
        messages=(Message("user", text),),
        model=MODEL,
        max_tokens=12,
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with SandboxServer(SandboxConfig(rpm=600, tpm=1_000_000)) as server:
        yield server


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_waiting_prompts_share_one_call_and_each_gets_its_own_answer(
    db: Database, sandbox: SandboxServer, streamed: bool
) -> None:
    """Also where the asker's surface streams (Slack's do): legacy completions come whole
    anyway, and batching was off for them there."""
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    async with OpenAIClient(base_url=sandbox.base_url, api_key="k") as client:
        service = make_service(db, client)
        await empty_request_bucket(service)
        requests = [ask(f"C{i % 4}", f"question number {i}") for i in range(10)]
        replies = await asyncio.gather(
            *(service.handle(r, on_delta=on_delta if streamed else None) for r in requests)
        )
        assert deltas == []

        served = dataclasses.replace(sandbox.stats.models[MODEL])  # before the checks below
        assert served.requests <= 2  # ten answers from one or two calls, not ten
        # Every user got the answer to their own prompt: the same as asking alone.
        for request, reply in zip(requests, replies, strict=True):
            alone = await client.complete(
                model=MODEL, prompts=[service_prompt(request)], max_tokens=12
            )
            assert reply.text == alone.text
        rows = await service.usage.rows()
        assert len(rows) == 10
        assert len({r.call_id for r in rows}) == 10
        assert sum(r.prompt_tokens for r in rows) == served.prompt_tokens
        assert sum(r.completion_tokens for r in rows) == served.completion_tokens
        assert not any(r.usage_estimated for r in rows)


def service_prompt(request: ChatRequest) -> str:
    from bot import tokens

    system = Message("system", load_settings().system_prompt)
    return tokens.render_prompt((system, *request.messages))


def fake_server(*, arrays: str) -> tuple[httpx.AsyncClient, list[object]]:
    """A server that answers single prompts well and prompt arrays badly: ``arrays`` is
    "error" (400 for any array) or "first-usage" (usage covers only the first prompt)."""
    seen: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        seen.append(body["prompt"])
        if isinstance(body["prompt"], list) and arrays == "error":
            return httpx.Response(
                400,
                json={
                    "error": {"message": "prompt must be a string", "type": "invalid_request_error"}
                },
            )
        choices = [
            {"index": i, "text": f"answer to {p[-12:]}", "finish_reason": "stop"}
            for i, p in enumerate(prompts)
        ]
        usage = {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}  # one prompt's
        return httpx.Response(200, json={"choices": choices, "usage": usage})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


@pytest.mark.parametrize("arrays", ["error", "first-usage"])
async def test_servers_that_mishandle_arrays_fall_back_to_single_prompts(
    db: Database, arrays: str, caplog: pytest.LogCaptureFixture
) -> None:
    http, seen = fake_server(arrays=arrays)
    async with OpenAIClient(base_url="http://local:8000/v1", http=http) as client:
        service = make_service(db, client)
        await empty_request_bucket(service)
        with caplog.at_level(logging.WARNING):
            replies = await asyncio.gather(
                *(service.handle(ask(f"C{i}", f"q{i}")) for i in range(4))
            )
            await service.handle(ask("C9", "later"))
    await http.aclose()

    for i, reply in enumerate(replies):  # everyone got the answer to their own prompt
        assert reply.text == f"answer to {service_prompt(ask('', f'q{i}'))[-12:]}"
    assert MODEL in service.budget.no_batch
    assert any("prompt arrays do not work" in r.getMessage() for r in caplog.records)
    assert not isinstance(seen[-1], list)  # afterwards: one prompt per call
    rows = await service.usage.rows()
    assert [r.outcome for r in rows].count("ok") == 5
    if arrays == "first-usage":
        batched = [r for r in rows if r.usage_estimated]
        assert len(batched) >= 2  # their usage is quotabot's own count, not the server's
