"""Completion bodies as a client sees them: shapes, token counts, determinism, truncation."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import pytest

from bot.catalog import Catalog, ModelOverride
from bot.models import Message
from bot.tokens import count_messages, count_text
from tests.bot.sandbox.conftest import Serve


def chat_body(content: str = "hi", model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def sse_events(text: str) -> list[str]:
    """The ``data:`` payloads of a server-sent-events body, checking its framing."""
    assert text.endswith("\n\n")
    events = text.split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events), events
    return [e.removeprefix("data: ") for e in events]


def sse_chunks(text: str) -> list[dict[str, Any]]:
    events = sse_events(text)
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


TEXT = "Wie geht es dir heute, mein Freund? Ça va très bien!"  # counts differ per encoding


@pytest.mark.parametrize(
    ("model", "encoding"), [("gpt-4o", "o200k_base"), ("gpt-3.5-turbo", "cl100k_base")]
)
async def test_chat_completion_body_and_usage(
    client: httpx.AsyncClient, model: str, encoding: str
) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is a token bucket?", "name": "alice"},
        {"role": "assistant", "content": "A rate limiter."},
        {"role": "user", "content": TEXT},
    ]
    r = await client.post("/chat/completions", json={"model": model, "messages": messages})

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == model
    assert isinstance(body["created"], int)
    assert body["system_fingerprint"].startswith("fp_")
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    content = choice["message"]["content"]
    assert content.startswith('Sandbox answer: you said "Wie geht es dir heute mein".')
    assert content.isascii()
    expected_prompt = count_messages([Message(**m) for m in messages], encoding)
    assert body["usage"] == {
        "prompt_tokens": expected_prompt,
        "completion_tokens": count_text(content, encoding),
        "total_tokens": expected_prompt + count_text(content, encoding),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


async def test_snapshot_names_are_served_and_echoed(client: httpx.AsyncClient) -> None:
    r = await client.post("/chat/completions", json=chat_body(model="gpt-4o-2024-08-06"))
    assert r.status_code == 200
    assert r.json()["model"] == "gpt-4o-2024-08-06"


async def test_content_parts_count_as_their_text(client: httpx.AsyncClient) -> None:
    parts = [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]
    r1 = await client.post(
        "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": parts}]},
    )
    r2 = await client.post("/chat/completions", json=chat_body("Hello there"))
    assert r1.status_code == 200
    assert r1.json()["usage"] == r2.json()["usage"]


async def test_legacy_array_prompt_gets_one_choice_per_prompt(client: httpx.AsyncClient) -> None:
    prompts = ["Say hello", TEXT, "Count to three:"]
    r = await client.post(
        "/completions",
        json={"model": "gpt-3.5-turbo-instruct", "prompt": prompts, "unknown_field": 1},
    )

    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["model"] == "gpt-3.5-turbo-instruct"
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    texts = [c["text"] for c in body["choices"]]
    assert texts[0].startswith('Sandbox answer: you said "Say hello"')
    assert texts[2].startswith('Sandbox answer: you said "Count to three"')
    # No max_tokens: OpenAI's default of 16 applies, and every reply is longer than that.
    assert [count_text(t) for t in texts] == [16, 16, 16]
    assert [c["finish_reason"] for c in body["choices"]] == ["length"] * 3
    prompt_tokens = sum(count_text(p) for p in prompts)
    assert body["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 48,
        "total_tokens": prompt_tokens + 48,
    }


async def test_legacy_string_prompt(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/completions", json={"model": "davinci-002", "prompt": "Once upon", "max_tokens": 200}
    )
    body = r.json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == count_text("Once upon")
    assert body["usage"]["completion_tokens"] == count_text(choice["text"])


async def test_same_request_same_reply(serve: Any) -> None:
    _, a = await serve(seed=1)
    _, b = await serve(seed=1)
    _, other_seed = await serve(seed=2)
    body = chat_body("Tell me about rate limits")

    first = (await a.post("/chat/completions", json=body)).json()
    again = (await a.post("/chat/completions", json=body)).json()
    elsewhere = (await b.post("/chat/completions", json=body)).json()
    reseeded = (await other_seed.post("/chat/completions", json=body)).json()
    other_prompt = (await a.post("/chat/completions", json=chat_body("Something else"))).json()
    other_model = (await a.post("/chat/completions", json={**body, "model": "gpt-4"})).json()

    content = first["choices"][0]["message"]["content"]
    assert again["choices"][0]["message"]["content"] == content
    assert elsewhere["choices"][0]["message"]["content"] == content
    assert again["usage"] == first["usage"]
    assert again["id"] != first["id"]
    for different in (reseeded, other_prompt, other_model):
        assert different["choices"][0]["message"]["content"] != content


async def test_reply_lengths_vary_between_20_and_about_80_tokens(
    client: httpx.AsyncClient,
) -> None:
    lengths = set()
    for i in range(12):
        r = await client.post("/chat/completions", json=chat_body(f"question number {i}"))
        lengths.add(r.json()["usage"]["completion_tokens"])
    assert all(20 <= n <= 100 for n in lengths), lengths
    assert len(lengths) > 3


async def test_max_tokens_cuts_the_reply_to_exactly_that_many_tokens(
    client: httpx.AsyncClient,
) -> None:
    full = (await client.post("/chat/completions", json=chat_body("Explain budgets"))).json()
    text = full["choices"][0]["message"]["content"]
    natural = full["usage"]["completion_tokens"]

    cut = await client.post("/chat/completions", json=chat_body("Explain budgets", max_tokens=7))
    body = cut.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 7
    assert count_text(body["choices"][0]["message"]["content"], "o200k_base") == 7
    assert text.startswith(body["choices"][0]["message"]["content"])

    roomy = chat_body("Explain budgets", max_completion_tokens=natural)
    body = (await client.post("/chat/completions", json=roomy)).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == text


async def test_without_max_tokens_a_reply_stops_at_the_context_window(serve: Any) -> None:
    catalog = Catalog.build(overrides={"tiny": ModelOverride(context_window=20)})
    _, client = await serve(catalog=catalog)
    r = await client.post("/chat/completions", json=chat_body("hi", model="tiny"))
    body = r.json()
    assert body["usage"]["prompt_tokens"] == 8
    assert body["usage"]["completion_tokens"] == 12
    assert body["choices"][0]["finish_reason"] == "length"


async def test_chat_stream_with_usage_matches_the_plain_answer(client: httpx.AsyncClient) -> None:
    request = chat_body("Stream me something", max_tokens=30)
    plain = (await client.post("/chat/completions", json=request)).json()

    streamed = {**request, "stream": True, "stream_options": {"include_usage": True}}
    r = await client.post("/chat/completions", json=streamed)

    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "x-ratelimit-remaining-requests" in r.headers
    chunks = sse_chunks(r.text)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[0]["choices"][0]["delta"]["content"] == ""
    content_chunks = chunks[1:-2]
    assert len(content_chunks) > 3  # a few tokens per chunk, not all at once
    text = "".join(c["choices"][0]["delta"]["content"] for c in content_chunks)
    assert text == plain["choices"][0]["message"]["content"]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-2])
    finish = chunks[-2]["choices"][0]
    assert finish["delta"] == {}
    assert finish["finish_reason"] == plain["choices"][0]["finish_reason"] == "length"
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == plain["usage"]


async def test_chat_stream_without_usage_has_no_usage_chunk(client: httpx.AsyncClient) -> None:
    r = await client.post("/chat/completions", json=chat_body("hello", stream=True))
    chunks = sse_chunks(r.text)
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert sse_events(r.text)[-1] == "[DONE]"


async def test_legacy_stream(client: httpx.AsyncClient) -> None:
    request = {"model": "gpt-3.5-turbo-instruct", "prompt": ["one", "two"], "max_tokens": 9}
    plain = (await client.post("/completions", json=request)).json()
    streamed = {**request, "stream": True, "stream_options": {"include_usage": True}}
    chunks = sse_chunks((await client.post("/completions", json=streamed)).text)

    assert {c["object"] for c in chunks} == {"text_completion"}
    for index in (0, 1):
        mine = [
            c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["index"] == index
        ]
        assert "".join(c["text"] for c in mine) == plain["choices"][index]["text"]
        assert mine[-1]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == plain["usage"]


async def test_models_lists_the_catalog(client: httpx.AsyncClient) -> None:
    r = await client.get("/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids == Catalog.build().names()
    assert all(m["object"] == "model" for m in body["data"])

    one = await client.get("/models/gpt-4o")
    assert one.json()["id"] == "gpt-4o"
    missing = await client.get("/models/gpt-9")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


async def test_request_ids_look_like_openais(client: httpx.AsyncClient) -> None:
    r1 = await client.post("/chat/completions", json=chat_body())
    r2 = await client.post("/chat/completions", json=chat_body())
    assert re.fullmatch(r"req_[0-9a-f]{32}", r1.headers["x-request-id"])
    assert r1.headers["x-request-id"] != r2.headers["x-request-id"]
    assert int(r1.headers["openai-processing-ms"]) >= 0


async def test_a_paced_stream_arrives_over_time_and_a_fixed_length(serve: Serve) -> None:
    """``chunk_interval`` spaces a stream's chunks as a hosted model's; ``reply_tokens`` fixes
    the answer's length (what streaming benchmarks measure)."""
    _, client = await serve(chunk_interval=0.02, reply_tokens=120, rpm=None, tpm=None, rpd=None)
    request = {**chat_body("pace me"), "stream": True, "stream_options": {"include_usage": True}}
    arrivals: list[float] = []
    async with client.stream("POST", "/chat/completions", json=request) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.monotonic())
    assert arrivals[-1] - arrivals[0] >= 0.02 * (len(arrivals) - 1) * 0.9
    assert len(arrivals) >= 40  # three tokens a chunk
    started = time.monotonic()
    plain = (await client.post("/chat/completions", json=chat_body("pace me"))).json()
    assert time.monotonic() - started >= 0.02 * 40  # a whole answer takes as long to come
    assert 120 <= plain["usage"]["completion_tokens"] <= 135  # whole sentences
