"""The OpenAI-compatible client against a fake provider at the HTTP boundary.

The fake speaks OpenAI's real shapes (bodies from the API reference, the x-ratelimit-* and
x-request-id headers) plus the quirks of vLLM, llama.cpp and Ollama, and counts every request
so that a hidden retry would show.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from bot.errors import (
    AuthenticationFailed,
    BadRequest,
    ConfigError,
    ModelNotFound,
    ProviderDown,
    ProviderError,
    ProviderTimeout,
    ProviderUnreachable,
    QuotaExhausted,
    RateLimited,
    RequestTooLarge,
    ServerError,
)
from bot.models import Message, Usage
from bot.provider import (
    ChatStream,
    Choice,
    Completion,
    OpenAIClient,
    RateLimitInfo,
    parse_duration,
)
from fakes.ports import free_port

BASE_URL = "https://api.openai.com/v1"
KEY = "sk-proj-Zq3VtX9secretKEYdoNotLeak0123456789"
MESSAGES = [Message("system", "You are terse."), Message("user", "Say hello", name="ada")]

OPENAI_HEADERS = {
    "content-type": "application/json",
    "openai-organization": "user-abc123",
    "openai-processing-ms": "312",
    "openai-version": "2020-10-01",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "30000000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "29999975",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "0s",
    "x-request-id": "req_8b2f1a0c9e0d4c3b9a7f6e5d4c3b2a10",
}

CHAT_BODY: dict[str, Any] = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
}

COMPLETIONS_BODY: dict[str, Any] = {
    "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
    "object": "text_completion",
    "created": 1589478378,
    "model": "gpt-3.5-turbo-instruct",
    "system_fingerprint": "fp_44709d6fcb",
    "choices": [
        {
            "text": "\n\nThis is indeed a test",
            "index": 0,
            "logprobs": None,
            "finish_reason": "length",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}


class FakeOpenAI:
    """Answers every request with ``respond(request)`` and keeps the requests it saw."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)

    @property
    def last_json(self) -> Any:
        return json.loads(self.requests[-1].content)


def answer(
    status: int = 200, body: Any = None, headers: dict[str, str] | None = None, **kw: Any
) -> Callable[[httpx.Request], httpx.Response]:
    """The same response to every request."""
    hdrs = dict(OPENAI_HEADERS) if headers is None else headers

    def respond(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=hdrs, **kw)
        return httpx.Response(status, headers=hdrs, json=body)

    return respond


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., tuple[OpenAIClient, FakeOpenAI]]]:
    """Client + fake provider pairs; the injected httpx clients are closed afterwards."""
    https: list[httpx.AsyncClient] = []

    def make(
        respond: Callable[[httpx.Request], httpx.Response] | FakeOpenAI,
        **kw: Any,
    ) -> tuple[OpenAIClient, FakeOpenAI]:
        fake = respond if isinstance(respond, FakeOpenAI) else FakeOpenAI(respond)
        http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
        https.append(http)
        kw.setdefault("base_url", BASE_URL)
        kw.setdefault("api_key", KEY)
        return OpenAIClient(http=http, **kw), fake

    yield make
    for http in https:
        await http.aclose()


# --- requests sent ------------------------------------------------------------------------------


async def test_chat_sends_openai_request_with_bearer_key(make_client):
    client, fake = make_client(answer(body=CHAT_BODY))

    await client.chat(model="gpt-4.1", messages=MESSAGES, max_tokens=50, temperature=0.2)

    (request,) = fake.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert fake.last_json == {
        "model": "gpt-4.1",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello", "name": "ada"},
        ],
        "max_tokens": 50,
        "temperature": 0.2,
    }


async def test_unset_options_are_left_out_of_the_body(make_client):
    client, fake = make_client(answer(body=CHAT_BODY))

    await client.chat(model="gpt-4.1", messages=MESSAGES)

    assert set(fake.last_json) == {"model", "messages"}


async def test_temperature_zero_is_sent(make_client):
    client, fake = make_client(answer(body=CHAT_BODY))

    await client.chat(model="gpt-4.1", messages=MESSAGES, temperature=0.0)

    assert fake.last_json["temperature"] == 0.0


async def test_self_hosted_server_without_key_gets_no_authorization_header(make_client):
    client, fake = make_client(
        answer(body=CHAT_BODY), base_url="http://127.0.0.1:8000/v1/", api_key=None
    )

    await client.chat(model="llama3", messages=MESSAGES)

    (request,) = fake.requests
    assert str(request.url) == "http://127.0.0.1:8000/v1/chat/completions"
    assert "authorization" not in request.headers


async def test_base_url_query_survives_the_path(make_client):
    client, fake = make_client(
        answer(body=CHAT_BODY),
        base_url="https://example.openai.azure.com/openai/deployments/gpt4?api-version=2024-06-01",
    )

    await client.chat(model="gpt-4", messages=MESSAGES)

    url = fake.requests[0].url
    assert url.path == "/openai/deployments/gpt4/chat/completions"
    assert url.params["api-version"] == "2024-06-01"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {"connect": 10.0, "read": 60.0, "write": 60.0, "pool": 60.0}),
        (
            {"timeout": 5.0, "connect_timeout": 1.5},
            {"connect": 1.5, "read": 5.0, "write": 5.0, "pool": 5.0},
        ),
    ],
)
async def test_every_call_carries_the_timeouts(make_client, kwargs, expected):
    client, fake = make_client(answer(body=CHAT_BODY), **kwargs)

    await client.chat(model="gpt-4.1", messages=MESSAGES)
    async with client.stream_chat(model="gpt-4.1", messages=MESSAGES) as stream:
        async for _ in stream:
            pass

    assert [r.extensions["timeout"] for r in fake.requests] == [expected, expected]


@pytest.mark.parametrize("base_url", ["localhost:8000/v1", KEY, "ftp://x/v1", "http://", ""])
def test_unusable_base_url_is_a_config_error_that_does_not_echo_it(base_url):
    with pytest.raises(ConfigError, match="http:// or https://") as info:
        OpenAIClient(base_url=base_url)

    assert KEY not in str(info.value)


def test_repr_never_shows_the_key():
    client = OpenAIClient(base_url=BASE_URL, api_key=KEY, http=httpx.AsyncClient())

    assert KEY not in repr(client)
    assert "api.openai.com" in repr(client)


# --- successful answers -------------------------------------------------------------------------


async def test_chat_answer_is_parsed(make_client):
    client, _ = make_client(answer(body=CHAT_BODY))

    completion = await client.chat(model="gpt-4.1", messages=MESSAGES)

    assert completion.text == "Hello! How can I assist you today?"
    assert completion.finish_reason == "stop"
    assert completion.choices == (Choice(0, "Hello! How can I assist you today?", "stop"),)
    assert completion.model == "gpt-4.1-2025-04-14"
    assert completion.usage == Usage(19, 10)
    assert completion.request_id == "req_8b2f1a0c9e0d4c3b9a7f6e5d4c3b2a10"
    assert completion.rate_limits == RateLimitInfo(
        limit_requests=10000,
        limit_tokens=30000000,
        remaining_requests=9999,
        remaining_tokens=29999975,
        reset_requests=0.006,
        reset_tokens=0.0,
    )
    assert 0 <= completion.latency < 5


def _quirky(choice: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"id": "cmpl-1", "object": "chat.completion", "choices": [choice], **top}


@pytest.mark.parametrize(
    ("body", "text", "finish_reason", "model"),
    [
        pytest.param(
            _quirky(
                {"message": {"role": "assistant", "content": None}, "finish_reason": None},
                model="",
            ),
            "",
            "unknown",
            "llama3",
            id="content-null-finish-null-no-index-empty-model",
        ),
        pytest.param(
            _quirky({"index": 0, "message": {"role": "assistant"}, "finish_reason": "stop"}),
            "",
            "stop",
            "llama3",
            id="no-content-no-model",
        ),
        pytest.param(
            _quirky(
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": None, "refusal": "I can't."},
                    "finish_reason": "stop",
                }
            ),
            "I can't.",
            "stop",
            "llama3",
            id="refusal-shown-instead-of-empty",
        ),
        pytest.param(
            _quirky(
                {
                    "index": 0,
                    "message": {"content": [{"type": "text", "text": "Hi"}, {"type": "x"}]},
                    "finish_reason": "length",
                    "stop_reason": None,
                    "tokens": [1, 2],
                },
                model="/models/llama-3-8b.gguf",
                timings={"predicted_ms": 12.5},
            ),
            "Hi",
            "length",
            "/models/llama-3-8b.gguf",
            id="content-parts-and-extra-fields",
        ),
    ],
)
async def test_quirky_servers_never_break_a_reply(make_client, body, text, finish_reason, model):
    client, _ = make_client(answer(body=body, headers={}), api_key=None)

    completion = await client.chat(model="llama3", messages=MESSAGES)

    assert completion.text == text
    assert completion.finish_reason == finish_reason
    assert completion.model == model
    assert completion.usage is None
    assert completion.request_id is None
    assert completion.rate_limits == RateLimitInfo()


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}, Usage(9, 3)),
        ({"prompt_tokens": 9, "total_tokens": 12}, Usage(9, 3)),
        (None, None),
        ({}, None),
        ({"prompt_tokens": "9", "completion_tokens": 3}, None),
        ({"prompt_tokens": -1, "completion_tokens": 3}, None),
    ],
)
async def test_usage_is_taken_only_when_usable(make_client, usage, expected):
    client, _ = make_client(answer(body={**CHAT_BODY, "usage": usage}))

    completion = await client.chat(model="gpt-4.1", messages=MESSAGES)

    assert completion.usage == expected


async def test_complete_sends_one_prompt_as_a_string(make_client):
    client, fake = make_client(answer(body=COMPLETIONS_BODY))

    completion = await client.complete(
        model="gpt-3.5-turbo-instruct", prompts=["Say this is a test"], max_tokens=7
    )

    assert str(fake.requests[0].url) == "https://api.openai.com/v1/completions"
    assert fake.last_json == {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": "Say this is a test",
        "max_tokens": 7,
    }
    assert completion.text == "\n\nThis is indeed a test"
    assert completion.finish_reason == "length"
    assert completion.usage == Usage(5, 7)


async def test_complete_sends_several_prompts_as_an_array_and_orders_choices(make_client):
    body = {
        **COMPLETIONS_BODY,
        "choices": [
            {"text": " second", "index": 1, "logprobs": None, "finish_reason": "stop"},
            {"text": " third", "index": 2, "logprobs": None, "finish_reason": None},
            {"text": " first", "index": 0, "logprobs": None, "finish_reason": "length"},
        ],
    }
    client, fake = make_client(answer(body=body))

    completion = await client.complete(model="davinci-002", prompts=["a", "b", "c"])

    assert fake.last_json["prompt"] == ["a", "b", "c"]
    assert completion.choices == (
        Choice(0, " first", "length"),
        Choice(1, " second", "stop"),
        Choice(2, " third", "unknown"),
    )
    assert completion.text == " first"


async def test_complete_refuses_a_bare_string_instead_of_sending_its_letters(make_client):
    client, fake = make_client(answer(body=COMPLETIONS_BODY))

    with pytest.raises(TypeError, match="wrap a single prompt"):
        await client.complete(model="davinci-002", prompts="hello")

    assert fake.requests == []


# One row per case reads as a table; the formatter would spread each over eight lines.
# fmt: off
BAD_BODIES = [
    pytest.param(200, b"<html><body>Welcome</body></html>", {"content-type": "text/html"},
                 "HTML page", id="html-200"),
    pytest.param(200, b"OK", {"content-type": "text/plain"}, "not JSON", id="text-200"),
    pytest.param(200, b"", {}, "empty body", id="empty-200"),
    pytest.param(200, b'{"object": "list", "data": []}', {"content-type": "application/json"},
                 "no choices", id="json-without-choices"),
    pytest.param(200, b'{"choices": []}', {"content-type": "application/json"},
                 "no choices", id="empty-choices"),
    pytest.param(200, b"[1, 2]", {"content-type": "application/json"}, "no choices",
                 id="json-array"),
    pytest.param(200, b'{"choices": ["hi"]}', {"content-type": "application/json"},
                 "not an object", id="choice-not-object"),
    pytest.param(201, b'{"id": "x"}', {"content-type": "application/json"}, "no choices",
                 id="201"),
]
# fmt: on


@pytest.mark.parametrize(("status", "content", "headers", "says"), BAD_BODIES)
async def test_success_status_with_an_unexpected_body_is_a_provider_error(
    make_client, status, content, headers, says
):
    client, _ = make_client(
        answer(status, headers={**headers, "x-request-id": "req_1"}, content=content)
    )

    with pytest.raises(ProviderError) as info:
        await client.chat(model="gpt-4.1", messages=MESSAGES)

    exc = info.value
    assert type(exc) is ProviderError
    assert exc.status == status
    assert exc.request_id == "req_1"
    assert says in exc.message
    assert "api.openai.com" in exc.message


# --- rate-limit headers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("7.66s", 7.66),
        ("2m59.367s", 179.367),
        ("500us", 0.0005),
        ("12", 12.0),
        ("0.5", 0.5),
        (" 3s ", 3.0),
        ("soon", None),
        ("", None),
        ("-1s", None),
        ("1x", None),
        ("s", None),
        ("1s2", None),
        ("inf", None),
        ("nan", None),
        ("1e3", None),
    ],
)
def test_parse_duration(value, seconds):
    result = parse_duration(value)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


def test_rate_limit_info_from_every_header():
    info = RateLimitInfo.from_headers(
        httpx.Headers(
            {
                "X-RateLimit-Limit-Requests": "500",
                "X-RateLimit-Limit-Tokens": "200000",
                "X-RateLimit-Remaining-Requests": "0",
                "X-RateLimit-Remaining-Tokens": "199580",
                "X-RateLimit-Reset-Requests": "1m26.4s",
                "X-RateLimit-Reset-Tokens": "126ms",
            }
        )
    )

    assert info.limit_requests == 500
    assert info.limit_tokens == 200000
    assert info.remaining_requests == 0
    assert info.remaining_tokens == 199580
    assert info.reset_requests == pytest.approx(86.4)
    assert info.reset_tokens == pytest.approx(0.126)


def test_rate_limit_info_from_a_plain_mapping_ignores_case():
    info = RateLimitInfo.from_headers({"X-RateLimit-Limit-Requests": "60"})

    assert info == RateLimitInfo(limit_requests=60)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "application/json"},
        {
            "x-ratelimit-limit-requests": "lots",
            "x-ratelimit-limit-tokens": "1.5",
            "x-ratelimit-remaining-requests": "-3",
            "x-ratelimit-remaining-tokens": "",
            "x-ratelimit-reset-requests": "later",
            "x-ratelimit-reset-tokens": "-1s",
        },
        {"x-ratelimit-limit-requests": "١٢"},  # Arabic-Indic digits: isdigit() but not ASCII
    ],
)
def test_rate_limit_info_is_all_none_when_headers_are_absent_or_malformed(headers):
    assert RateLimitInfo.from_headers(headers) == RateLimitInfo()


# --- HTTP errors --------------------------------------------------------------------------------


def _err(message: str, type_: str | None, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


TPM_429 = _err(
    "Rate limit reached for gpt-4o-mini in organization org-abc123 on tokens per min (TPM): "
    "Limit 200000, Used 199580, Requested 1200. Please try again in 234ms. Visit "
    "https://platform.openai.com/account/rate-limits to learn more.",
    "tokens",
    "rate_limit_exceeded",
)
RPM_429 = _err(
    "Rate limit reached for gpt-4 in organization org-abc123 on requests per min (RPM): "
    "Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
    "https://platform.openai.com/account/rate-limits to learn more.",
    "requests",
    "rate_limit_exceeded",
)
QUOTA_429 = _err(
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    "insufficient_quota",
    "insufficient_quota",
)
TOO_LARGE_429 = _err(
    "Request too large for gpt-4 in organization org-abc123 on tokens per min (TPM): Limit "
    "10000, Requested 12000. The input or output tokens must be reduced in order to run "
    "successfully. Visit https://platform.openai.com/account/rate-limits to learn more.",
    "tokens",
    "rate_limit_exceeded",
)
RESETS = {"x-ratelimit-reset-requests": "20s", "x-ratelimit-reset-tokens": "234ms"}
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
    b"Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


# fmt: off
HTTP_ERRORS = [
    pytest.param(429, TPM_429, RESETS, RateLimited, "rate_limit_exceeded", 0.234,
                 id="429-tokens-uses-token-reset"),
    pytest.param(429, RPM_429, RESETS, RateLimited, "rate_limit_exceeded", 20.0,
                 id="429-requests-uses-request-reset"),
    pytest.param(429, _err("Too many requests", None, None), RESETS, RateLimited, None, 20.0,
                 id="429-unknown-window-uses-the-later-reset"),
    pytest.param(429, _err("Rate limit reached on tokens per min (TPM)", None, None), RESETS,
                 RateLimited, None, 0.234, id="429-window-from-the-message"),
    pytest.param(429, TPM_429, {"x-ratelimit-reset-requests": "20s"}, RateLimited,
                 "rate_limit_exceeded", 20.0, id="429-known-window-without-its-header"),
    pytest.param(429, TPM_429, {**RESETS, "retry-after-ms": "1500", "retry-after": "2"},
                 RateLimited, "rate_limit_exceeded", 1.5, id="429-retry-after-ms-first"),
    pytest.param(429, TPM_429, {**RESETS, "retry-after": "7"}, RateLimited,
                 "rate_limit_exceeded", 7.0, id="429-retry-after-seconds"),
    pytest.param(429, TPM_429, {"retry-after-ms": "soon", "retry-after": "3"}, RateLimited,
                 "rate_limit_exceeded", 3.0, id="429-bad-retry-after-ms-skipped"),
    pytest.param(429, TPM_429, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},
                 RateLimited, "rate_limit_exceeded", 0.0, id="429-retry-after-past-date"),
    pytest.param(429, TPM_429, {}, RateLimited, "rate_limit_exceeded", None,
                 id="429-no-hint"),
    pytest.param(429, {"error": "rate limited"}, {}, RateLimited, None, None,
                 id="429-plain-string-error"),
    pytest.param(429, QUOTA_429, RESETS, QuotaExhausted, "insufficient_quota", None,
                 id="429-insufficient-quota"),
    pytest.param(429, _err("Billing hard limit has been reached", "invalid_request_error",
                           "billing_hard_limit_reached"), {}, QuotaExhausted,
                 "billing_hard_limit_reached", None, id="429-billing-hard-limit"),
    pytest.param(429, _err("Out of credit", "credit_balance_exhausted", None), {},
                 QuotaExhausted, "credit_balance_exhausted", None, id="429-quota-type-only"),
    pytest.param(429, _err("Spend limit", "organization_spend_limit_exceeded", None), {},
                 QuotaExhausted, "organization_spend_limit_exceeded", None,
                 id="429-org-spend-limit"),
    pytest.param(429, _err("Limit", None, "spend_limit_exceeded"), {}, QuotaExhausted,
                 "spend_limit_exceeded", None, id="429-spend-limit"),
    pytest.param(429, _err("Limit", None, "quota_exceeded"), {}, QuotaExhausted,
                 "quota_exceeded", None, id="429-quota-exceeded"),
    pytest.param(429, _err("You exceeded your current quota", "insufficient_quota", "over_quota"),
                 {}, QuotaExhausted, "over_quota", None, id="429-quota-by-type-other-code"),
    pytest.param(429, TOO_LARGE_429, RESETS, RequestTooLarge, "rate_limit_exceeded", None,
                 id="429-request-too-large"),
    pytest.param(401, _err("Incorrect API key provided: sk-proj-***6789. You can find your "
                           "API key at https://platform.openai.com/account/api-keys.",
                           "invalid_request_error", "invalid_api_key"), {},
                 AuthenticationFailed, "invalid_api_key", None, id="401"),
    pytest.param(403, {"error": {"code": "unsupported_country_region_territory",
                                 "message": "Country, region, or territory not supported",
                                 "param": None, "type": "request_forbidden"}}, {},
                 AuthenticationFailed, "unsupported_country_region_territory", None,
                 id="403"),
    pytest.param(404, _err("The model `gpt-5-turbo` does not exist or you do not have "
                           "access to it.", "invalid_request_error", "model_not_found"), {},
                 ModelNotFound, "model_not_found", None, id="404"),
    pytest.param(404, _err('model "llama9" not found, try pulling it first', "api_error",
                           None), {}, ModelNotFound, "api_error", None,
                 id="404-ollama-code-null-uses-type"),
    pytest.param(400, _err("This model's maximum context length is 8192 tokens. However, "
                           "your messages resulted in 9000 tokens. Please reduce the length "
                           "of the messages.", "invalid_request_error",
                           "context_length_exceeded", "messages"), {}, BadRequest,
                 "context_length_exceeded", None, id="400"),
    pytest.param(400, {"object": "error", "message": "max_tokens must be at least 1",
                       "type": "BadRequestError", "param": None, "code": 400}, {},
                 BadRequest, "BadRequestError", None, id="400-vllm-int-code"),
    pytest.param(409, _err("Conflict", "invalid_request_error", None), {}, BadRequest,
                 "invalid_request_error", None, id="409"),
    pytest.param(413, _err("Request entity too large", None, None), {}, BadRequest, None,
                 None, id="413"),
    pytest.param(422, {"detail": [{"loc": ["body", "messages"], "msg": "field required",
                                   "type": "missing"}]}, {}, BadRequest, None, None,
                 id="422-fastapi-detail"),
    pytest.param(500, _err("The server had an error while processing your request. Sorry "
                           "about that!", "server_error", None), {}, ServerError,
                 "server_error", None, id="500"),
    pytest.param(503, _err("The engine is currently overloaded, please try again later.",
                           "server_error", None), {}, ServerError, "server_error", None,
                 id="503"),
    pytest.param(418, _err("I'm a teapot", None, None), {}, ProviderError, None, None,
                 id="418-other"),
]
# fmt: on


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "code", "retry_after"), HTTP_ERRORS
)
async def test_http_errors_map_to_the_error_tree(
    make_client, status, body, headers, expected, code, retry_after
):
    headers = {**headers, "x-request-id": "req_err_42"}
    client, fake = make_client(answer(status, body=body, headers=headers))

    with pytest.raises(ProviderError) as info:
        await client.chat(model="gpt-4o-mini", messages=MESSAGES)

    exc = info.value
    assert type(exc) is expected
    assert exc.status == status
    assert exc.code == code
    assert exc.request_id == "req_err_42"
    assert exc.message == str(exc)
    assert "api.openai.com" in exc.message
    assert KEY not in exc.message
    assert isinstance(exc.__cause__, httpx.HTTPStatusError)
    assert exc.__cause__.response.status_code == status
    if expected is RateLimited:
        assert exc.retry_after == pytest.approx(retry_after)
    assert len(fake.requests) == 1


async def test_error_message_carries_the_servers_words_and_what_to_do(make_client):
    body = _err(
        "Incorrect API key provided: sk-proj-***6789.", "invalid_request_error", "invalid_api_key"
    )
    client, _ = make_client(answer(401, body=body))

    with pytest.raises(AuthenticationFailed) as info:
        await client.chat(model="gpt-4o-mini", messages=MESSAGES)

    assert info.value.message == (
        "The provider at api.openai.com refused the API key (401): Incorrect API key provided: "
        "sk-proj-***6789. Check OPENAI_API_KEY."
    )


async def test_401_without_a_key_says_none_is_configured(make_client):
    client, _ = make_client(
        answer(401, body={"error": "unauthorized"}),
        base_url="http://10.0.0.5:11434/v1",
        api_key=None,
    )

    with pytest.raises(AuthenticationFailed) as info:
        await client.chat(model="llama3", messages=MESSAGES)

    assert "10.0.0.5:11434" in info.value.message
    assert "none is configured" in info.value.message


async def test_rate_limited_exposes_the_rate_limit_headers(make_client):
    headers = {**OPENAI_HEADERS, "x-ratelimit-remaining-tokens": "0", **RESETS}
    client, _ = make_client(answer(429, body=TPM_429, headers=headers))

    with pytest.raises(RateLimited) as info:
        await client.chat(model="gpt-4o-mini", messages=MESSAGES)

    limits = info.value.rate_limits  # type: ignore[attr-defined]
    assert limits.remaining_tokens == 0
    assert limits.limit_tokens == 30000000
    assert limits.reset_requests == pytest.approx(20.0)
    assert "0.234s" in info.value.message


async def test_retry_after_http_date_in_the_future(make_client):
    when = datetime.now(UTC) + timedelta(seconds=30)
    client, _ = make_client(
        answer(429, body=TPM_429, headers={"retry-after": format_datetime(when, usegmt=True)})
    )

    with pytest.raises(RateLimited) as info:
        await client.chat(model="gpt-4o-mini", messages=MESSAGES)

    assert 25 < info.value.retry_after <= 30


async def test_html_502_from_a_proxy_reads_as_a_server_error(make_client):
    client, _ = make_client(
        answer(502, headers={"content-type": "text/html", "server": "cloudflare"}, content=HTML_502)
    )

    with pytest.raises(ServerError) as info:
        await client.chat(model="gpt-4o-mini", messages=MESSAGES)

    exc = info.value
    assert exc.status == 502
    assert exc.code is None
    assert exc.request_id is None
    assert "502 Bad Gateway" in exc.message
    assert "HTML" in exc.message
    assert "<" not in exc.message


async def test_redirect_is_not_followed_and_points_to_the_new_address(make_client):
    client, fake = make_client(
        answer(
            301, headers={"location": "https://api.example.com/v1/chat/completions"}, content=b""
        )
    )

    with pytest.raises(ProviderError) as info:
        await client.chat(model="gpt-4o-mini", messages=MESSAGES)

    assert type(info.value) is ProviderError
    assert info.value.status == 301
    assert "https://api.example.com/v1" in info.value.message
    assert len(fake.requests) == 1


# --- transport failures -------------------------------------------------------------------------


def _raise(exc_type: type[httpx.RequestError], text: str) -> Callable[[httpx.Request], Any]:
    def respond(request: httpx.Request) -> httpx.Response:
        raise exc_type(text, request=request)

    return respond


@pytest.mark.parametrize(
    ("raised", "expected", "says"),
    [
        (httpx.ConnectTimeout, ProviderTimeout, "within 10s"),
        (httpx.ReadTimeout, ProviderTimeout, "for 60s"),
        (httpx.WriteTimeout, ProviderTimeout, "60s"),
        (httpx.PoolTimeout, ProviderTimeout, "No free connection"),
        (httpx.ConnectError, ProviderDown, "Could not connect"),
        (httpx.RemoteProtocolError, ProviderUnreachable, "broke"),
        (httpx.ReadError, ProviderUnreachable, "broke"),
        (httpx.WriteError, ProviderUnreachable, "broke"),
        (httpx.ProxyError, ProviderUnreachable, "Could not reach"),
        (httpx.UnsupportedProtocol, ProviderUnreachable, "Could not reach"),
    ],
)
async def test_transport_failures_map_to_timeout_or_unreachable(
    make_client, raised, expected, says
):
    client, fake = make_client(_raise(raised, "[Errno 104] Connection reset by peer"))

    with pytest.raises(ProviderError) as info:
        await client.chat(model="gpt-4o-mini", messages=MESSAGES)

    exc = info.value
    assert type(exc) is expected
    assert exc.status is None
    assert exc.retryable is (expected is not ProviderDown)  # no connection: said at once
    assert says in exc.message
    assert "api.openai.com" in exc.message
    assert KEY not in exc.message
    assert type(exc.__cause__) is raised
    assert len(fake.requests) == 1


async def test_transport_failure_when_opening_a_stream(make_client):
    client, fake = make_client(_raise(httpx.ConnectTimeout, "timed out"))

    with pytest.raises(ProviderTimeout):
        await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))

    assert len(fake.requests) == 1


async def test_refused_connection_on_the_clients_own_transport():
    port = free_port()
    async with OpenAIClient(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY) as client:
        with pytest.raises(ProviderUnreachable) as info:
            await client.chat(model="gpt-4o-mini", messages=MESSAGES)

    assert f"127.0.0.1:{port}" in info.value.message
    assert isinstance(info.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize(
    "respond",
    [
        answer(500, body=_err("The server had an error", "server_error", None)),
        answer(502, headers={"content-type": "text/html"}, content=HTML_502),
        answer(503, body=_err("overloaded", "server_error", None), headers={"retry-after": "1"}),
        answer(429, body=TPM_429, headers={"retry-after-ms": "10"}),
        _raise(httpx.ConnectError, "refused"),
        _raise(httpx.ReadTimeout, "timed out"),
    ],
    ids=["500", "502-html", "503-retry-after", "429", "connect-error", "read-timeout"],
)
async def test_the_client_never_retries(make_client, respond):
    client, fake = make_client(respond)

    with pytest.raises(ProviderError):
        await client.chat(model="gpt-4o-mini", messages=MESSAGES)
    with pytest.raises(ProviderError):
        await client.complete(model="davinci-002", prompts=["x"])
    with pytest.raises(ProviderError):
        await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))

    assert len(fake.requests) == 3


# --- lifecycle ----------------------------------------------------------------------------------


async def test_an_injected_http_client_is_left_open():
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer(body=CHAT_BODY))) as http:
        async with OpenAIClient(base_url=BASE_URL, http=http) as client:
            await client.chat(model="gpt-4.1", messages=MESSAGES)

        assert not http.is_closed
        assert (
            await OpenAIClient(base_url=BASE_URL, http=http).chat(
                model="gpt-4.1", messages=MESSAGES
            )
        ).text


async def test_an_owned_http_client_is_closed():
    async with OpenAIClient(base_url="http://127.0.0.1:9/v1") as client:
        pass

    with pytest.raises(RuntimeError, match="closed"):
        await client.chat(model="gpt-4.1", messages=MESSAGES)


# --- streaming ----------------------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish: str | None = None, **top: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None,
        **top,
    }


OPENAI_STREAM = [
    _chunk({"role": "assistant", "content": "", "refusal": None}),
    _chunk({"content": "Hello"}),
    _chunk({"content": "!"}),
    _chunk({"content": " How can I help?"}),
    _chunk({}, "stop"),
    {
        **_chunk({}),
        "choices": [],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 6,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    },
]


def sse(events: Iterable[Any], *, done: bool = True, sep: str = "\n\n") -> bytes:
    lines = [f"data: {json.dumps(e)}" for e in events]
    if done:
        lines.append("data: [DONE]")
    return (sep.join(lines) + sep).encode()


def stream_answer(
    content: bytes | Callable[[], AsyncIterator[bytes]], headers: dict[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    hdrs = {**OPENAI_HEADERS, "content-type": "text/event-stream; charset=utf-8"}
    hdrs.update(headers or {})

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers=hdrs, content=content if isinstance(content, bytes) else content()
        )

    return respond


async def _collect(stream: ChatStream) -> tuple[list[str], Completion | None]:
    async with stream as s:
        deltas = [d async for d in s]
    return deltas, stream.completion


async def test_stream_sends_stream_options_and_yields_deltas_in_order(make_client):
    client, fake = make_client(stream_answer(sse(OPENAI_STREAM)))

    deltas, completion = await _collect(
        client.stream_chat(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
    )

    (request,) = fake.requests
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(request.content)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 20
    assert "temperature" not in body
    assert deltas == ["Hello", "!", " How can I help?"]
    assert completion is not None
    assert completion.text == "Hello! How can I help?"
    assert completion.finish_reason == "stop"
    assert completion.usage == Usage(9, 6)
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.request_id == "req_8b2f1a0c9e0d4c3b9a7f6e5d4c3b2a10"
    assert completion.rate_limits.remaining_requests == 9999
    assert completion.latency >= 0


async def test_stream_from_a_server_that_sends_no_usage(make_client):
    # llama.cpp / older vLLM: no usage chunk, no usage keys, no index, finish_reason only at end.
    events = [
        {"choices": [{"delta": {"content": "Hi"}, "finish_reason": None}], "model": "local"},
        {"choices": [{"delta": {"content": None}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": " there"}, "finish_reason": "length"}]},
    ]
    client, _ = make_client(stream_answer(sse(events), headers={}), api_key=None)

    deltas, completion = await _collect(client.stream_chat(model="llama3", messages=MESSAGES))

    assert deltas == ["Hi", " there"]
    assert completion is not None
    assert completion.usage is None
    assert completion.text == "Hi there"
    assert completion.finish_reason == "length"
    assert completion.model == "local"


async def test_stream_keeps_the_latest_usage_reported(make_client):
    # vLLM with continuous usage stats repeats running totals; a later chunk may say null.
    events = [
        _chunk({"content": "a"}, usage={"prompt_tokens": 9, "completion_tokens": 1}),
        _chunk({"content": "b"}, usage={"prompt_tokens": 9, "completion_tokens": 2}),
        _chunk({}, "stop", usage=None),
    ]
    client, _ = make_client(stream_answer(sse(events)))

    _, completion = await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))

    assert completion is not None
    assert completion.usage == Usage(9, 2)


async def test_stream_ignores_comments_other_fields_and_crlf(make_client):
    body = (
        ": OPENROUTER PROCESSING\r\n\r\n"
        "event: message\r\nid: 1\r\n"
        f"data: {json.dumps(_chunk({'content': 'a'}))}\r\n\r\n"
        "retry: 1000\r\n\r\n"
        ":\r\n"
        f"data:{json.dumps(_chunk({'content': 'b'}, 'stop', extra={'x': 1}))}\r\n\r\n"
        "data: [DONE]\r\n\r\n"
    ).encode()
    client, _ = make_client(stream_answer(body))

    deltas, completion = await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))

    assert deltas == ["a", "b"]
    assert completion is not None
    assert completion.finish_reason == "stop"


async def test_stream_split_at_arbitrary_byte_boundaries(make_client):
    data = sse(OPENAI_STREAM)

    async def trickle() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 7):
            yield data[i : i + 7]

    client, _ = make_client(stream_answer(trickle))

    deltas, completion = await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))

    assert deltas == ["Hello", "!", " How can I help?"]
    assert completion is not None
    assert completion.usage == Usage(9, 6)


async def test_stream_stops_at_done(make_client):
    body = sse(OPENAI_STREAM) + b'data: {"choices": [{"delta": {"content": "ghost"}}]}\n\n'
    client, _ = make_client(stream_answer(body))

    deltas, completion = await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))

    assert "ghost" not in deltas
    assert completion is not None
    assert completion.text == "Hello! How can I help?"


async def test_stream_ending_without_done_still_completes(make_client):
    client, _ = make_client(stream_answer(sse(OPENAI_STREAM, done=False)))

    deltas, completion = await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))

    assert deltas == ["Hello", "!", " How can I help?"]
    assert completion is not None
    assert completion.usage == Usage(9, 6)


async def test_stream_events_without_blank_lines_between_them(make_client):
    client, _ = make_client(stream_answer(sse(OPENAI_STREAM, sep="\n")))

    deltas, completion = await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))

    assert deltas == ["Hello", "!", " How can I help?"]
    assert completion is not None
    assert completion.usage == Usage(9, 6)


async def test_stream_yields_each_delta_as_it_arrives(make_client):
    more = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield sse(OPENAI_STREAM[:2], done=False)
        await more.wait()
        yield sse(OPENAI_STREAM[2:])

    client, _ = make_client(stream_answer(slow))
    deltas = []
    async with asyncio.timeout(5), client.stream_chat(model="m", messages=MESSAGES) as stream:
        async for delta in stream:
            deltas.append(delta)
            more.set()

    assert deltas == ["Hello", "!", " How can I help?"]


async def test_stream_answered_as_one_json_body(make_client):
    # Some proxies and servers ignore "stream": true.
    client, _ = make_client(answer(body=CHAT_BODY))

    deltas, completion = await _collect(client.stream_chat(model="gpt-4.1", messages=MESSAGES))

    assert deltas == ["Hello! How can I assist you today?"]
    assert completion is not None
    assert completion.usage == Usage(19, 10)


async def test_stream_refused_at_open_raises_before_any_text(make_client):
    client, fake = make_client(answer(429, body=RPM_429, headers=RESETS))
    stream = client.stream_chat(model="gpt-4", messages=MESSAGES)

    with pytest.raises(RateLimited) as info:
        await stream.__aenter__()

    assert info.value.retry_after == pytest.approx(20.0)
    assert info.value.code == "rate_limit_exceeded"
    assert stream.completion is None
    assert len(fake.requests) == 1


async def test_stream_error_event_mid_stream(make_client):
    events = [
        _chunk({"content": "Partial"}),
        {
            "error": {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        },
    ]
    client, _ = make_client(stream_answer(sse(events)))

    with pytest.raises(ProviderError) as info:
        await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))

    assert "The server had an error" in info.value.message
    assert info.value.code == "server_error"


async def test_stream_event_that_is_not_json(make_client):
    client, _ = make_client(stream_answer(b"data: <html>oops</html>\n\n"))

    with pytest.raises(ProviderError) as info:
        await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))

    assert type(info.value) is ProviderError
    assert "not JSON" in info.value.message


async def test_stream_connection_dropped_mid_answer(make_client):
    async def dropped() -> AsyncIterator[bytes]:
        yield sse(OPENAI_STREAM[:2], done=False)
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    client, _ = make_client(stream_answer(dropped))
    seen: list[str] = []

    async def consume() -> None:
        async with client.stream_chat(model="gpt-4o-mini", messages=MESSAGES) as stream:
            async for delta in stream:
                seen.append(delta)

    with pytest.raises(ProviderUnreachable) as info:
        await consume()

    assert seen == ["Hello"]
    assert "broke" in info.value.message
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)


async def test_stream_read_timeout_mid_answer(make_client):
    async def stalled() -> AsyncIterator[bytes]:
        yield sse(OPENAI_STREAM[:2], done=False)
        raise httpx.ReadTimeout("timed out")

    client, _ = make_client(stream_answer(stalled), timeout=30.0)

    with pytest.raises(ProviderTimeout, match="30s"):
        await _collect(client.stream_chat(model="gpt-4o-mini", messages=MESSAGES))


async def test_stream_left_early_has_no_completion(make_client):
    client, _ = make_client(stream_answer(sse(OPENAI_STREAM)))

    async with client.stream_chat(model="gpt-4o-mini", messages=MESSAGES) as stream:
        async for delta in stream:
            assert delta == "Hello"
            break

    assert stream.completion is None


def test_stream_must_be_entered_before_iterating():
    client = OpenAIClient(base_url=BASE_URL, http=httpx.AsyncClient())
    stream = client.stream_chat(model="gpt-4o-mini", messages=MESSAGES)

    with pytest.raises(RuntimeError, match="async with"):
        aiter(stream)


async def test_calls_beyond_the_connection_limit_wait_their_turn() -> None:
    """More calls than connections: the rest wait (outside httpcore's pool, whose queue is
    slow), all are answered, and each is reported as sent only when it really leaves."""
    active = peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return httpx.Response(200, headers=OPENAI_HEADERS, json=CHAT_BODY)

    sent: list[int] = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as http:
        client = OpenAIClient(base_url=BASE_URL, api_key=KEY, http=http, max_connections=3)

        async def one(i: int) -> None:
            def on_send() -> None:
                assert active < 3  # a free connection is there when it is reported sent
                sent.append(i)

            await client.chat(model="gpt-4.1", messages=MESSAGES, on_send=on_send)

        await asyncio.gather(*(one(i) for i in range(10)))
    assert peak == 3
    assert sorted(sent) == list(range(10))
