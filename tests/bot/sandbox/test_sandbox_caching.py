"""Prompt caching as OpenAI reports it: ``usage.prompt_tokens_details.cached_tokens`` counts
the prompt's longest prefix (1,024 tokens and more, in steps of 128) that the same model saw in
the last 10 minutes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bot.models import Message
from bot.sandbox.cache import PromptCache, prompt_ids
from bot.tokens import count_messages, count_text
from tests.bot.sandbox.conftest import FakeClock, Serve

ONE_MESSAGE = 7  # count_messages of one user message of n tokens: n + 3 priming + 3 framing + 1


def words(n: int, word: str = "apple") -> str:
    """A text of exactly ``n`` tokens in both encodings ("apple apple ...")."""
    text = " ".join([word] * n)
    assert count_text(text, "o200k_base") == count_text(text, "cl100k_base") == n
    return text


def user(n: int, word: str = "apple") -> list[dict[str, Any]]:
    """One user message making a prompt of exactly ``n`` tokens."""
    return [{"role": "user", "content": words(n - ONE_MESSAGE, word)}]


def cacheable(tokens: int) -> int:
    """What OpenAI caches of a shared prefix of ``tokens``: 1,024 + a multiple of 128, or 0."""
    return 0 if tokens < 1024 else 1024 + (tokens - 1024) // 128 * 128


async def ask(client: httpx.AsyncClient, messages: list[dict[str, Any]], **extra: Any) -> Any:
    body = {"model": "gpt-4o", "messages": messages, **extra}
    r = await client.post("/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def last_chunk(stream: str) -> Any:
    *_, last, done = stream.strip().split("\n\n")
    assert done == "data: [DONE]"
    return json.loads(last.removeprefix("data: "))


def cached(body: Any) -> int:
    return int(body["usage"]["prompt_tokens_details"]["cached_tokens"])


async def test_a_prompt_sent_again_has_its_first_1024_tokens_cached(
    client: httpx.AsyncClient,
) -> None:
    messages = user(1_100)
    first = await ask(client, messages)
    second = await ask(client, messages)

    assert first["usage"]["prompt_tokens"] == second["usage"]["prompt_tokens"] == 1_100
    assert first["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert second["usage"]["prompt_tokens_details"] == {"cached_tokens": 1024, "audio_tokens": 0}
    # The cache changes the bill, not the answer.
    assert second["usage"]["completion_tokens"] == first["usage"]["completion_tokens"]
    assert second["choices"] == first["choices"]


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [(1_023, 0), (1_024, 1_024), (1_151, 1_024), (1_152, 1_152), (1_300, 1_280), (5_000, 4_992)],
)
async def test_cached_tokens_come_in_steps_of_128_from_1024(
    client: httpx.AsyncClient, tokens: int, expected: int
) -> None:
    messages = user(tokens)
    assert cached(await ask(client, messages)) == 0
    again = await ask(client, messages)
    assert again["usage"]["prompt_tokens"] == tokens
    assert cached(again) == expected


async def test_a_short_prompt_is_never_cached(client: httpx.AsyncClient) -> None:
    messages = user(1_000)
    for _ in range(3):
        assert cached(await ask(client, messages)) == 0


async def test_a_growing_thread_has_its_previous_prompt_cached(
    client: httpx.AsyncClient,
) -> None:
    """Each turn's prompt begins with the whole previous prompt (the reply's priming is the
    head of the assistant message that follows), so that much is cached, in 128-token steps."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": words(1_100, "pear")},
        {"role": "user", "content": "What is a token bucket?", "name": "alice"},
    ]
    previous = 0
    for turn in range(4):
        body = await ask(client, messages)
        prompt = body["usage"]["prompt_tokens"]
        assert prompt == count_messages([Message(**m) for m in messages], "o200k_base")
        assert cached(body) == cacheable(previous)
        if turn:
            assert cached(body) >= 1024
        previous = prompt
        reply = body["choices"][0]["message"]["content"]
        messages += [
            {"role": "assistant", "content": reply},
            {"role": "user", "content": f"And then {words(60 * turn + 30)}?"},
        ]


async def test_only_a_shared_beginning_is_cached(client: httpx.AsyncClient) -> None:
    tail = {"role": "user", "content": words(1_200)}
    await ask(client, [{"role": "system", "content": "Be brief."}, tail])
    other_start = await ask(client, [{"role": "system", "content": "Be long."}, tail])
    assert cached(other_start) == 0
    same_start = await ask(client, [{"role": "system", "content": "Be brief."}, tail])
    assert cached(same_start) == 1_152


async def test_each_model_has_its_own_cache(client: httpx.AsyncClient) -> None:
    messages = user(2_000)
    await ask(client, messages)
    other = await ask(client, messages, model="gpt-4o-mini")  # the same encoding, tokens
    assert cached(other) == 0
    assert cached(await ask(client, messages)) == 1_920
    assert cached(await ask(client, messages, model="gpt-4o-mini")) == 1_920


async def test_a_cached_prefix_expires_after_10_minutes_unused(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    messages = user(1_500)
    await ask(client, messages)
    clock.advance(590)
    assert cached(await ask(client, messages)) == 1_408  # still there; and used again
    clock.advance(590)
    assert cached(await ask(client, messages)) == 1_408
    clock.advance(600)
    assert cached(await ask(client, messages)) == 0  # gone; cached anew
    assert cached(await ask(client, messages)) == 1_408


async def test_refused_requests_are_not_cached(serve: Serve, clock: FakeClock) -> None:
    _, client = await serve(rpm=1)
    messages = user(1_200)
    await ask(client, user(1_100, "pear"))
    refused = await client.post("/chat/completions", json={"model": "gpt-4o", "messages": messages})
    assert refused.status_code == 429
    clock.advance(60)
    assert cached(await ask(client, messages)) == 0
    clock.advance(60)
    assert cached(await ask(client, messages)) == 1_152


async def test_the_last_stream_chunk_carries_the_details(client: httpx.AsyncClient) -> None:
    messages = user(1_100)
    plain = await ask(client, messages)
    r = await client.post(
        "/chat/completions",
        json={
            "model": "gpt-4o",
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    usage = last_chunk(r.text)["usage"]
    assert usage == {
        **plain["usage"],
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    }
    assert usage["completion_tokens_details"] == {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }


async def test_legacy_completions_are_not_cached(client: httpx.AsyncClient) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": words(1_500), "max_tokens": 5}
    await client.post("/completions", json=body)
    usage = (await client.post("/completions", json=body)).json()["usage"]
    assert usage == {"prompt_tokens": 1_500, "completion_tokens": 5, "total_tokens": 1_505}


async def test_stats_and_responses_count_cached_tokens(serve: Serve) -> None:
    server, client = await serve()
    messages = user(1_300)
    await ask(client, messages)
    await ask(client, messages)
    stats = (await client.get(server.url + "/sandbox/stats")).json()
    assert stats["models"]["gpt-4o"]["cached_tokens"] == 1_280
    assert stats["total"]["cached_tokens"] == 1_280
    assert stats["models"]["gpt-4o"]["prompt_tokens"] == 2_600
    responses = (await client.get(server.url + "/sandbox/responses")).json()["data"]
    assert [r["cached_tokens"] for r in responses] == [0, 1_280]
    assert [r["reasoning_tokens"] for r in responses] == [0, 0]


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_the_cached_token_sequence_is_as_long_as_the_prompt_tokens(encoding: str) -> None:
    messages = [
        Message("system", "You are terse."),
        Message("user", "What is a token bucket?", name="alice"),
        Message("assistant", "A rate limiter."),
        Message("user", "Wie geht es dir heute? Ça va très bien! <|endoftext|>"),
        Message("user", ""),
    ]
    for n in range(1, len(messages) + 1):
        assert len(prompt_ids(messages[:n], encoding)) == count_messages(messages[:n], encoding)


def test_the_cache_keeps_a_bounded_number_of_prefixes() -> None:
    cache = PromptCache(FakeClock(), keep=6)
    a = [Message("user", words(1_300))]
    b = [Message("user", words(1_300, "pear"))]
    c = [Message("system", "Be brief."), *a]

    def send(messages: list[Message]) -> int:  # each has 3 prefixes: 1024, 1152 and 1280
        return cache.serve("m", messages, "o200k_base", count_messages(messages, "o200k_base"))

    assert send(a) == 0
    assert send(a) == 1_280
    assert send(b) == 0
    assert len(cache) == 6
    assert send(c) == 0
    assert len(cache) == 6  # a's prefixes, the least recently used, made room for c's
    assert send(b) == 1_280
    assert send(a) == 0
