"""GET /metrics: what an operator's Prometheus scrapes, after real requests through the core."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import open_app
from bot.config import load_settings
from bot.errors import ChannelDisabled
from bot.models import ChatRequest, Message
from bot.web import WebServer


def ask(channel: str) -> ChatRequest:
    return ChatRequest(
        platform="slack",
        workspace="T1",
        channel=channel,
        user="U1",
        messages=(Message("user", "how many tokens is this?"),),
    )


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


async def test_metrics_count_requests_tokens_cost_and_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUOTABOT_DENIED_CHANNELS", '["COFF"]')
    async with open_app(load_settings()) as app:
        server = WebServer([], host="127.0.0.1", port=0)
        server.add_metrics(app.metrics)
        await server.start()
        try:
            replies = [await app.service.handle(ask("C1")) for _ in range(2)]
            with pytest.raises(ChannelDisabled):
                await app.service.handle(ask("COFF"))
            m = await scrape(server.url)
        finally:
            await server.aclose()
    model = replies[0].model
    ok = (("outcome", "ok"), ("platform", "slack"))
    refused = (("outcome", "refused"), ("platform", "slack"))
    assert m[("quotabot_requests_total", ok)] == 2
    assert m[("quotabot_requests_total", refused)] == 1
    prompt = sum(r.usage.prompt_tokens for r in replies)
    completion = sum(r.usage.completion_tokens for r in replies)
    assert m[("quotabot_tokens_total", (("kind", "prompt"), ("model", model)))] == prompt
    assert m[("quotabot_tokens_total", (("kind", "completion"), ("model", model)))] == completion
    cost = sum(r.cost for r in replies if r.cost is not None)
    assert m[("quotabot_cost_usd_total", (("model", model),))] == pytest.approx(float(cost))
    assert m[("quotabot_provider_calls_total", (("model", model), ("result", "ok")))] == 2
    assert m[("quotabot_request_seconds_count", (("platform", "slack"),))] == 3
    assert m[("quotabot_queue_depth", (("model", model),))] == 0
    assert m[("quotabot_budget_fallback", ())] == 0
