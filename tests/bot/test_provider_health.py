"""A provider is marked down after failed calls in a row (5xx, timeouts, no connection) and
counted up again after a while, or at once when a call succeeds."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from bot.errors import ProviderDown, ProviderTimeout, RateLimited, ServerError
from bot.models import Message
from bot.provider import Health, OpenAIClient
from fakes.openai_api import FakeOpenAI

MESSAGES = [Message("user", "hi")]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_failures_in_a_row_mark_it_down_until_a_quiet_while_has_passed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "bot.provider.health")
    clock = Clock()
    health = Health("azure", after=3, down_for=30, clock=clock)
    health.answered(500)
    health.unanswered(httpx.ConnectError("refused"))
    assert health.up and health.failures == 2
    health.answered(503)
    assert not health.up
    assert "provider azure is down: 3 failed calls in a row, the latest HTTP 503" in caplog.text

    clock.now += 20
    health.unanswered(httpx.ReadTimeout("slow"))  # still failing: down for longer
    clock.now += 20
    assert not health.up
    clock.now += 10
    assert health.up and health.failures == 0
    assert "provider azure is counted up again" in caplog.text
    assert [r.levelno for r in caplog.records].count(logging.WARNING) == 1


def test_any_answer_but_a_5xx_shows_it_up() -> None:
    clock = Clock()
    health = Health("default", after=2, down_for=30, clock=clock)
    for status in (500, 429, 502, 404, 503, 401):
        health.answered(status)
    assert health.up  # never two failures in a row
    health.answered(500)
    health.answered(500)
    assert not health.up
    health.answered(200)  # a call it answered: up at once, without waiting
    assert health.up and health.failures == 0


def test_a_full_pool_of_our_own_is_not_the_providers_fault() -> None:
    health = Health(after=1)
    health.unanswered(httpx.PoolTimeout("no free connection"))
    assert health.up


async def test_the_client_tells_its_health_how_each_call_went() -> None:
    async with FakeOpenAI(key="k") as server:
        health = Health("openai", after=3, down_for=0.3)
        async with OpenAIClient(
            base_url=server.url, api_key="k", health=health, timeout=0.2
        ) as client:
            server.fail(503)
            server.fail(429)  # busy, but up
            with pytest.raises(ServerError):
                await client.chat(model="m", messages=MESSAGES)
            with pytest.raises(RateLimited):
                await client.chat(model="m", messages=MESSAGES)
            assert health.failures == 0

            server.fail(502, times=2)
            for _ in range(2):
                with pytest.raises(ServerError):
                    await client.chat(model="m", messages=MESSAGES)
            server.delay = 0.5
            with pytest.raises(ProviderTimeout):
                await client.chat(model="m", messages=MESSAGES)
            assert not health.up
            server.delay = 0

            await client.chat(model="m", messages=MESSAGES)
            assert health.up

            await server.stop()
            for _ in range(3):
                with pytest.raises(ProviderDown):
                    async with client.stream_chat(model="m", messages=MESSAGES):
                        pass
            assert not health.up
            await server.start()
            await asyncio.sleep(0.35)  # no call, no failure: back after down_for
            assert health.up
