"""Reasoning models (o-series, gpt-5) as OpenAI serves them: hidden reasoning tokens billed as
completion tokens, ``max_completion_tokens`` for both, and 400s for ``max_tokens`` and for a
temperature other than the default."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bot.tokens import count_text
from tests.bot.sandbox.conftest import Serve

HI = [{"role": "user", "content": "Why is the sky blue?"}]
NO_MAX_TOKENS = {
    "error": {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead.",
        "type": "invalid_request_error",
        "param": "max_tokens",
        "code": "unsupported_parameter",
    }
}


def temperature_refused(value: str) -> dict[str, Any]:
    return {
        "error": {
            "message": f"Unsupported value: 'temperature' does not support {value} with this "
            "model. Only the default (1) value is supported.",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "unsupported_value",
        }
    }


async def chat(client: httpx.AsyncClient, model: str = "o4-mini", **extra: Any) -> httpx.Response:
    return await client.post("/chat/completions", json={"model": model, "messages": HI, **extra})


@pytest.mark.parametrize("model", ["o4-mini", "o3", "gpt-5", "gpt-5-mini", "gpt-5-nano"])
async def test_reasoning_models_report_reasoning_tokens(
    client: httpx.AsyncClient, model: str
) -> None:
    r = await chat(client, model)
    assert r.status_code == 200
    body = r.json()
    usage = body["usage"]
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert 64 <= reasoning <= 512 and reasoning % 64 == 0
    content = body["choices"][0]["message"]["content"]
    assert content.startswith('Sandbox answer: you said "Why is the sky blue"')
    assert body["choices"][0]["finish_reason"] == "stop"
    # Reasoning tokens are completion tokens, never shown.
    assert usage["completion_tokens"] == count_text(content, "o200k_base") + reasoning
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert (await chat(client, model)).json()["usage"] == usage  # the same request, the same


async def test_reasoning_tokens_vary_with_the_prompt(client: httpx.AsyncClient) -> None:
    seen = set()
    for i in range(10):
        body = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": f"question {i}"}]}
        usage = (await client.post("/chat/completions", json=body)).json()["usage"]
        seen.add(usage["completion_tokens_details"]["reasoning_tokens"])
    assert len(seen) > 2


async def test_other_models_report_no_reasoning_tokens(client: httpx.AsyncClient) -> None:
    usage = (await chat(client, "gpt-4o")).json()["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


async def test_reasoning_can_use_all_of_max_completion_tokens(client: httpx.AsyncClient) -> None:
    r = await chat(client, "gpt-5-mini", max_completion_tokens=40)
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["message"]["content"] == ""
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 40
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 40


async def test_max_completion_tokens_bounds_reasoning_and_text_together(
    client: httpx.AsyncClient,
) -> None:
    full = (await chat(client)).json()
    reasoning = full["usage"]["completion_tokens_details"]["reasoning_tokens"]
    text = full["choices"][0]["message"]["content"]

    body = (await chat(client, max_completion_tokens=reasoning + 5)).json()
    content = body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "length"
    assert count_text(content, "o200k_base") == 5 and text.startswith(content)
    assert body["usage"]["completion_tokens"] == reasoning + 5
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == reasoning

    roomy = (await chat(client, max_completion_tokens=full["usage"]["completion_tokens"])).json()
    assert roomy["choices"] == full["choices"]


async def test_a_stream_ends_with_the_reasoning_tokens(client: httpx.AsyncClient) -> None:
    plain = (await chat(client, max_completion_tokens=30)).json()
    r = await chat(
        client,
        max_completion_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    events = r.text.strip().split("\n\n")
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert chunks[-1]["usage"] == plain["usage"]
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 30
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert all(c["choices"][0]["delta"].get("content", "") == "" for c in chunks[:-1])


@pytest.mark.parametrize("model", ["gpt-5-mini", "o4-mini", "gpt-5-2025-08-07"])
async def test_max_tokens_is_refused_by_reasoning_models(
    client: httpx.AsyncClient, model: str
) -> None:
    r = await chat(client, model, max_tokens=100)
    assert r.status_code == 400
    assert r.json() == NO_MAX_TOKENS
    both = await chat(client, model, max_tokens=100, max_completion_tokens=100)
    assert both.json() == NO_MAX_TOKENS


@pytest.mark.parametrize(("value", "shown"), [(0.2, "0.2"), (0, "0"), (1.5, "1.5"), (2, "2")])
async def test_other_temperatures_are_refused_by_reasoning_models(
    client: httpx.AsyncClient, value: float, shown: str
) -> None:
    r = await chat(client, "o4-mini", temperature=value)
    assert r.status_code == 400
    assert r.json() == temperature_refused(shown)


@pytest.mark.parametrize("value", [1, 1.0])
async def test_the_default_temperature_is_accepted(client: httpx.AsyncClient, value: float) -> None:
    r = await chat(client, "o4-mini", temperature=value)
    assert r.status_code == 200


async def test_other_models_take_any_temperature_and_max_tokens(
    client: httpx.AsyncClient,
) -> None:
    r = await chat(client, "gpt-4o", temperature=0.2, max_tokens=5)
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 5


async def test_the_tpm_limit_is_charged_with_max_completion_tokens(serve: Serve) -> None:
    _, client = await serve(tpm=1_000)
    prompt = (await chat(client, max_completion_tokens=1)).json()["usage"]["prompt_tokens"]

    r = await chat(client, max_completion_tokens=2_000)
    assert r.status_code == 429
    assert r.json()["error"]["message"].startswith(
        "Request too large for o4-mini in organization org-sandbox on tokens per min (TPM): "
        f"Limit 1000, Requested {prompt + 2_000}."
    )
    too_large = await chat(client, "gpt-4o", max_completion_tokens=2_000)
    assert too_large.status_code == 429
    assert (await chat(client, max_completion_tokens=900)).status_code == 200


async def test_stats_count_reasoning_tokens(serve: Serve) -> None:
    server, client = await serve()
    usage = (await chat(client)).json()["usage"]
    await chat(client, "gpt-4o")
    stats = (await client.get(server.url + "/sandbox/stats")).json()
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert stats["models"]["o4-mini"]["reasoning_tokens"] == reasoning
    assert stats["models"]["o4-mini"]["completion_tokens"] == usage["completion_tokens"]
    assert stats["total"]["reasoning_tokens"] == reasoning
    responses = (await client.get(server.url + "/sandbox/responses")).json()["data"]
    assert [r["reasoning_tokens"] for r in responses] == [reasoning, 0]
