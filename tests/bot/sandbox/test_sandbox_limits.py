"""Rate limits, their headers and their 429s, as a client of OpenAI would meet them."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from bot.sandbox.limits import format_duration

DOCS = "Visit https://platform.openai.com/account/rate-limits to learn more."
DURATION = re.compile(r"(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)")
PROMPT_HI = 8  # count_messages of one user message "hi": 3 priming + 3 framing + 1 + 1


def chat_body(content: str = "hi", model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


async def chat(client: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    return await client.post("/chat/completions", json=chat_body(**extra))


def limit_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("x-ratelimit-")}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "1ms"),
        (0.02, "20ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (20.0000000001, "20s"),
        (360, "6m0s"),
        (3723, "1h2m3s"),
        (43_200, "12h0m0s"),
    ],
)
def test_durations_use_openais_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


async def test_every_answer_carries_consistent_limit_headers(serve: Any) -> None:
    _, client = await serve(rpm=60, tpm=150_000)

    first = await chat(client)
    second = await chat(client)

    used = first.json()["usage"]["total_tokens"]
    assert limit_headers(first) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",  # one request back per second at 60 RPM
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-tokens": str(150_000 - used),
        "x-ratelimit-reset-tokens": format_duration(used / 2500),  # 2,500 tokens a second
    }
    assert second.headers["x-ratelimit-remaining-requests"] == "58"
    assert second.headers["x-ratelimit-reset-requests"] == "2s"
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 150_000 - 2 * used
    for r in (first, second):
        assert DURATION.fullmatch(r.headers["x-ratelimit-reset-tokens"])
        assert r.headers["x-request-id"].startswith("req_")
        assert r.headers["openai-processing-ms"].isdigit()


async def test_headers_follow_the_clock(serve: Any, clock: Any) -> None:
    _, client = await serve(rpm=60)
    await chat(client)
    await chat(client)
    clock.advance(1.5)
    r = await client.post("/chat/completions", json={"model": "gpt-4o"})  # a 400 still reports
    assert r.status_code == 400
    assert r.headers["x-ratelimit-remaining-requests"] == "59"
    assert r.headers["x-ratelimit-reset-requests"] == "500ms"


async def test_a_limit_switched_off_has_no_headers(serve: Any) -> None:
    _, client = await serve(rpm=None, tpm=1000, rpd=None)
    r = await chat(client)
    assert r.status_code == 200
    assert set(limit_headers(r)) == {
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    }


async def test_rpm_limit_refuses_like_openai(serve: Any) -> None:
    server, client = await serve(rpm=3)
    for _ in range(3):
        assert (await chat(client)).status_code == 200

    r = await chat(client)

    assert r.status_code == 429
    assert r.json() == {
        "error": {
            "message": "Rate limit reached for gpt-4o in organization org-sandbox on requests per "
            "min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. " + DOCS,
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert r.headers["retry-after"] == "20"
    assert r.headers["retry-after-ms"] == "20000"
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert r.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert server.stats.models["gpt-4o"].rate_limited == 1
    assert server.stats.models["gpt-4o"].requests == 3


async def test_rpm_bucket_refills_continuously(serve: Any, clock: Any) -> None:
    _, client = await serve(rpm=3)
    for _ in range(3):
        await chat(client)
    assert (await chat(client)).status_code == 429

    clock.advance(19.9)
    early = await chat(client)
    assert early.status_code == 429
    assert "Please try again in 100ms." in early.json()["error"]["message"]
    assert early.headers["retry-after"] == "1"  # whole seconds, at least one
    assert early.headers["retry-after-ms"] == "100"

    clock.advance(0.1)  # 20 s in all: exactly one request is back
    assert (await chat(client)).status_code == 200
    assert (await chat(client)).status_code == 429

    clock.advance(3600)  # an idle hour refills the bucket, but never beyond its size
    assert [(await chat(client)).status_code for _ in range(4)] == [200, 200, 200, 429]


async def test_limits_are_per_model(serve: Any) -> None:
    _, client = await serve(rpm=1)
    assert (await chat(client, model="gpt-4o")).status_code == 200
    assert (await chat(client, model="gpt-4o-mini")).status_code == 200
    assert (await chat(client, model="gpt-4o")).status_code == 429


async def test_tpm_limit_counts_prompt_and_max_tokens(serve: Any, clock: Any) -> None:
    _, client = await serve(rpm=None, rpd=None, tpm=100)
    first = await chat(client, max_tokens=20)  # replies run 20+ tokens: exactly 20 served
    assert first.json()["usage"]["total_tokens"] == PROMPT_HI + 20
    assert first.headers["x-ratelimit-remaining-tokens"] == str(100 - PROMPT_HI - 20)

    # 72 left; this asks for 8 + 69 = 77, 5 more than there is: 3 s at 100 tokens a minute.
    r = await chat(client, max_tokens=69)

    assert r.status_code == 429
    assert r.json()["error"] == {
        "message": "Rate limit reached for gpt-4o in organization org-sandbox on tokens per min "
        "(TPM): Limit 100, Used 28, Requested 77. Please try again in 3s. " + DOCS,
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert r.headers["retry-after"] == "3"
    assert r.headers["x-ratelimit-remaining-tokens"] == "72"  # the refusal took nothing

    clock.advance(3)
    assert (await chat(client, max_tokens=69)).status_code == 200


async def test_unused_max_tokens_are_given_back(serve: Any) -> None:
    _, client = await serve(tpm=10_000)
    r = await chat(client, max_tokens=5_000)
    usage = r.json()["usage"]
    assert usage["completion_tokens"] < 100
    assert r.headers["x-ratelimit-remaining-tokens"] == str(10_000 - usage["total_tokens"])


async def test_rpd_limit(serve: Any) -> None:
    _, client = await serve(rpm=None, rpd=2)
    assert (await chat(client)).status_code == 200
    assert (await chat(client)).status_code == 200
    r = await chat(client)
    assert r.status_code == 429
    error = r.json()["error"]
    assert error["type"] == "requests"
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"] == (
        "Rate limit reached for gpt-4o in organization org-sandbox on requests per day (RPD): "
        "Limit 2, Used 2, Requested 1. Please try again in 12h0m0s. " + DOCS
    )
    assert r.headers["retry-after"] == "43200"


async def test_the_longest_wait_is_reported(serve: Any) -> None:
    _, client = await serve(rpm=1, rpd=1)
    await chat(client)
    r = await chat(client)
    assert "requests per day (RPD)" in r.json()["error"]["message"]
    assert r.headers["retry-after"] == "86400"


async def test_a_request_bigger_than_the_tpm_limit_can_never_run(serve: Any) -> None:
    server, client = await serve(tpm=50)
    r = await chat(client, max_tokens=100)
    assert r.status_code == 429
    assert r.json()["error"] == {
        "message": "Request too large for gpt-4o in organization org-sandbox on tokens per min "
        f"(TPM): Limit 50, Requested {PROMPT_HI + 100}. The input or output tokens must be "
        "reduced in order to run successfully. " + DOCS,
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert r.headers["x-ratelimit-remaining-tokens"] == "50"
    assert r.headers["x-ratelimit-remaining-requests"] == "60"
    assert server.stats.total.rate_limited == 1


async def test_exhausted_quota_refuses_every_call(serve: Any) -> None:
    server, client = await serve(quota_tokens=50)
    first = await chat(client)
    assert first.status_code == 200
    assert first.json()["usage"]["total_tokens"] >= 50

    for model in ("gpt-4o", "gpt-4"):
        r = await chat(client, model=model)
        assert r.status_code == 429
        assert r.json() == {
            "error": {
                "message": "You exceeded your current quota, please check your plan and billing "
                "details. For more information on this error, read the docs: "
                "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "type": "insufficient_quota",
                "param": None,
                "code": "insufficient_quota",
            }
        }
        assert "retry-after" not in r.headers
    legacy = await client.post(
        "/completions", json={"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}
    )
    assert legacy.json()["error"]["code"] == "insufficient_quota"
    assert server.stats.total.requests == 1


async def test_quota_is_not_spent_before_it_is_reached(serve: Any) -> None:
    _, client = await serve(quota_tokens=10_000)
    for _ in range(5):
        assert (await chat(client)).status_code == 200
