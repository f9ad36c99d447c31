"""Injected faults, latency and the stats endpoint."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


async def outcome(client: httpx.AsyncClient) -> str:
    """What a client sees: the status code, or "drop" for a connection closed unanswered."""
    try:
        r = await client.post("/chat/completions", json=BODY)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return "drop"
    return str(r.status_code)


async def test_500_fault(serve: Any) -> None:
    server, client = await serve(failure_rate=1.0, failures=("500",), rpm=2)
    for _ in range(3):  # more than the RPM limit: faults spend no budget
        r = await client.post("/chat/completions", json=BODY)
        assert r.status_code == 500
        assert r.json() == {
            "error": {
                "message": "The server had an error while processing your request. "
                "Sorry about that!",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
        assert r.headers["x-ratelimit-remaining-requests"] == "2"
    assert server.stats.models["gpt-4o"].failures == 3
    assert server.stats.total.requests == 0
    assert server.stats.total.total_tokens == 0


async def test_503_fault(serve: Any) -> None:
    _, client = await serve(failure_rate=1.0, failures=("503",))
    r = await client.post("/chat/completions", json=BODY)
    assert r.status_code == 503
    assert r.json()["error"] == {
        "message": "The engine is currently overloaded, please try again later.",
        "type": "server_error",
        "param": None,
        "code": None,
    }


async def test_drop_fault_closes_the_connection_unanswered(serve: Any) -> None:
    server, client = await serve(failure_rate=1.0, failures=("drop",))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        await client.post("/chat/completions", json=BODY)
    assert await outcome(client) == "drop"  # the client's next connection is dropped too
    assert server.stats.total.failures == 2


async def test_faults_follow_the_seed(serve: Any) -> None:
    runs = []
    for seed in (7, 7, 8):
        server, client = await serve(failure_rate=0.5, seed=seed)
        runs.append([await outcome(client) for _ in range(16)])
        failed = sum(o != "200" for o in runs[-1])
        assert server.stats.total.failures == failed
        assert server.stats.total.requests == 16 - failed
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    seen = set(runs[0]) | set(runs[2])
    assert seen == {"200", "500", "503", "drop"}


async def test_faults_apply_to_legacy_completions_too(serve: Any) -> None:
    _, client = await serve(failure_rate=1.0, failures=("503",))
    r = await client.post("/completions", json={"model": "davinci-002", "prompt": "hi"})
    assert r.status_code == 503


async def test_latency_delays_answers(serve: Any) -> None:
    _, client = await serve(latency=0.15)
    started = time.perf_counter()
    r = await client.post("/chat/completions", json=BODY)
    assert r.status_code == 200
    assert time.perf_counter() - started >= 0.15


async def test_stats_endpoint_reports_what_was_served(serve: Any) -> None:
    server, client = await serve(rpm=2)
    a = (await client.post("/chat/completions", json=BODY)).json()["usage"]
    b = (
        await client.post(
            "/completions", json={"model": "davinci-002", "prompt": ["x", "y"], "max_tokens": 3}
        )
    ).json()["usage"]
    await client.post("/chat/completions", json=BODY)
    await client.post("/chat/completions", json=BODY)  # the third in a minute: 429

    async with httpx.AsyncClient(trust_env=False) as anonymous:  # no key needed
        r = await anonymous.get(server.base_url.removesuffix("/v1") + "/sandbox/stats")

    assert r.status_code == 200
    stats = r.json()
    assert stats["models"]["gpt-4o"] == {
        "requests": 2,
        "prompt_tokens": 2 * a["prompt_tokens"],
        "completion_tokens": 2 * a["completion_tokens"],
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 2 * a["total_tokens"],
        "rate_limited": 1,
        "failures": 0,
        "audio_seconds": 0,
        "images": 0,
    }
    assert stats["models"]["davinci-002"]["completion_tokens"] == 6
    assert stats["total"]["requests"] == 3
    assert stats["total"]["total_tokens"] == 2 * a["total_tokens"] + b["total_tokens"]
    assert stats == server.stats.to_json()


async def test_responses_endpoint_lists_each_served_completion_by_request_id(serve: Any) -> None:
    """What fault tests match usage rows against: one entry per 200, none for faults."""
    server, client = await serve(failure_rate=0.5, failures=("500",), seed=3)
    began = time.time()
    served = []
    for _ in range(8):
        r = await client.post("/chat/completions", json={**BODY, "stream": False})
        if r.status_code == 200:
            usage = r.json()["usage"]
            served.append(
                {
                    "request_id": r.headers["x-request-id"],
                    "model": "gpt-4o",
                    "prompt_tokens": usage["prompt_tokens"],
                    "completion_tokens": usage["completion_tokens"],
                    "cached_tokens": 0,
                    "reasoning_tokens": 0,
                }
            )
    r = await client.post(
        "/chat/completions",
        json={**BODY, "stream": True, "stream_options": {"include_usage": True}},
    )
    if r.status_code == 200:
        served.append(r.headers["x-request-id"])
    assert 0 < server.stats.total.failures < 9
    async with httpx.AsyncClient(trust_env=False) as anonymous:
        got = (await anonymous.get(server.url + "/sandbox/responses")).json()["data"]
    assert len(got) == server.stats.total.requests == len(served)
    admitted = [entry.pop("admitted_at") for entry in got]
    assert began <= admitted[0] and admitted == sorted(admitted) and admitted[-1] <= time.time()
    for entry, want in zip(got, served, strict=True):
        if isinstance(want, str):  # the stream: its id in the headers, its tokens counted
            assert entry["request_id"] == want and entry["completion_tokens"] > 0
        else:
            assert entry == want
