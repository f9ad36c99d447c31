"""OPENAI_ADMIN_KEY: the provider's reported cost beside quotabot's, from the sandbox's
organization costs endpoint, which reports what the sandbox served."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from bot.app import open_app
from bot.config import load_settings
from bot.digest.render import to_text
from bot.digest.window import local_today
from bot.messages import format_cost
from bot.models import ChatRequest, Message
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.digests import DigestConfig


async def test_the_digest_shows_the_providers_cost_and_the_difference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox:
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-test")
        async with open_app(load_settings()) as app:
            costs = []
            for n in range(3):
                reply = await app.service.handle(
                    ChatRequest(
                        platform="slack",
                        workspace="T1",
                        channel="C1",
                        user="U1",
                        model="gpt-4o",
                        messages=(Message("user", f"question number {n}, " * (n + 1)),),
                    )
                )
                assert reply.cost is not None
                costs.append(reply.cost)
            # A call quotabot never saw (another tool on the same account): drift to show.
            async with httpx.AsyncClient() as http:
                missed = await http.post(
                    f"{sandbox.base_url}/chat/completions",
                    headers={"Authorization": "Bearer sk-other"},
                    json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                )
            usage = missed.json()["usage"]
            extra = (
                Decimal("0.0025") * usage["prompt_tokens"]
                + Decimal("0.01") * usage["completion_tokens"]
            ) / 1000
            cfg = DigestConfig("slack", "T1", "C9", tz="UTC")
            message = await app.digests.compose(cfg, local_today(cfg.zone))

    p = message.digest.provider_cost
    assert p is not None
    ours = sum(costs, Decimal(0))
    assert p.ours == ours
    assert p.amount == ours + extra
    assert p.window == f"UTC day {datetime.now(UTC):%Y-%m-%d}"
    assert f"the provider reports {format_cost(ours + extra)}" in message.text
    assert f"difference +{format_cost(extra)}" in message.text
    assert to_text(message.digest) == message.text


async def test_a_refused_admin_key_leaves_the_digest_without_the_figure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with SandboxServer(SandboxConfig(api_key="sk-test")) as sandbox:
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-wrong")
        async with open_app(load_settings()) as app:
            cfg = DigestConfig("slack", "T1", "C9")
            message = await app.digests.compose(cfg, local_today(cfg.zone))
    assert message.digest.provider_cost is None
    assert "HTTP 401" in caplog.text and "OPENAI_ADMIN_KEY must be an admin key" in caplog.text
