"""Every retry rule, against a fake provider at the HTTP boundary that speaks OpenAI's errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from bot.alerts import Alerts
from bot.app import channel_defaults
from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy
from bot.config import load_settings
from bot.errors import (
    AuthenticationFailed,
    BadRequest,
    ProviderTimeout,
    QuotaExhausted,
    RequestTooLarge,
    ServerError,
)
from bot.models import ChatRequest, Message
from bot.provider import OpenAIClient
from bot.retry import RetryPolicy
from bot.service import Service
from bot.store import ChannelStore, Database, UsageStore

OK = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-3.5-turbo",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21},
}


def error(
    status: int,
    code: str | None,
    message: str,
    type_: str = "server_error",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return httpx.Response(status, json=body, headers=headers or {})


RATE_LIMITED = error(
    429,
    "rate_limit_exceeded",
    "Rate limit reached for gpt-3.5-turbo",
    "requests",
    {"retry-after-ms": "300"},
)
QUOTA = error(429, "insufficient_quota", "You exceeded your current quota", "insufficient_quota")
TOO_LARGE = error(429, "rate_limit_exceeded", "Request too large for gpt-3.5-turbo", "tokens")
SERVER = error(500, None, "The server had an error while processing your request.")
OVERLOADED = error(503, None, "The engine is currently overloaded, please try again later.")
AUTH = error(401, "invalid_api_key", "Incorrect API key provided", "invalid_request_error")
BAD = error(400, None, "Invalid 'messages'", "invalid_request_error")


class Script:
    """Answers each call with the next scripted response (or raises the scripted error)."""

    def __init__(self, *steps: httpx.Response | Exception):
        self.steps = list(steps)
        self.calls: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(time.monotonic())
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        return step


@pytest.fixture
async def make(db: Database) -> AsyncIterator[Callable[..., Service]]:
    clients: list[httpx.AsyncClient] = []

    def build(
        script: Script, *, attempts: int = 5, deadline: float = 30.0, alerts: Alerts | None = None
    ) -> Service:
        http = httpx.AsyncClient(transport=httpx.MockTransport(script))
        clients.append(http)
        settings = load_settings()
        return Service(
            provider=OpenAIClient(base_url="https://api.example.com/v1", api_key="k", http=http),
            catalog=settings.catalog(),
            usage=UsageStore(db),
            channels=ChannelStore(db, channel_defaults(settings)),
            budget=Budget(MemoryBackend(), Policy({"model": {"rpm": 1000}})),
            retry=RetryPolicy(max_attempts=attempts, base=0.01, cap=0.05),
            alerts=alerts,
            deadline=deadline,
        )

    yield build
    for http in clients:
        await http.aclose()


def ask(text: str = "hello") -> ChatRequest:
    return ChatRequest(
        platform="slack", workspace="T", channel="C", user="U", messages=(Message("user", text),)
    )


@pytest.mark.parametrize(
    "failure",
    [
        SERVER,
        OVERLOADED,
        error(502, None, "Bad gateway"),
        error(504, None, "Gateway timeout"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("Server disconnected"),
    ],
    ids=["500", "503", "502", "504", "timeout", "dropped"],
)
async def test_transient_failures_are_retried(
    make: Callable[..., Service], failure: object
) -> None:
    script = Script(failure, failure, httpx.Response(200, json=OK))  # type: ignore[arg-type]
    service = make(script)
    reply = await service.handle(ask())
    assert reply.text == "fine"
    assert len(script.calls) == 3
    rows = await service.usage.rows()
    assert [r.outcome for r in rows][-1] == "ok"
    assert [r.retries for r in rows] == [0, 1, 2]
    assert sum(r.prompt_tokens for r in rows) == 20  # failed calls cost nothing


async def test_a_429_waits_as_long_as_the_server_says_and_blocks_the_model(
    make: Callable[..., Service],
) -> None:
    script = Script(RATE_LIMITED, httpx.Response(200, json=OK))
    service = make(script)
    await service.handle(ask())
    assert script.calls[1] - script.calls[0] >= 0.3  # retry-after-ms: 300
    state = await service.budget.backend.rate_state(
        service.budget.policy.model_rates(service.catalog.get("gpt-3.5-turbo"))[0]
    )
    assert state.blocked_for == 0  # the block is over once the retry went through


@pytest.mark.parametrize(
    ("failure", "exc"),
    [
        (QUOTA, QuotaExhausted),
        (TOO_LARGE, RequestTooLarge),
        (AUTH, AuthenticationFailed),
        (BAD, BadRequest),
        (error(403, None, "Forbidden"), AuthenticationFailed),
    ],
    ids=["quota", "too-large", "401", "400", "403"],
)
async def test_failures_that_cannot_improve_are_not_retried(
    make: Callable[..., Service], failure: httpx.Response, exc: type[Exception]
) -> None:
    script = Script(failure)
    service = make(script)
    with pytest.raises(exc):
        await service.handle(ask())
    assert len(script.calls) == 1


async def test_quota_and_auth_alert_the_admins_once(make: Callable[..., Service]) -> None:
    alerts = Alerts()
    heard: list[str] = []

    async def admin(message: str) -> None:
        heard.append(message)

    alerts.sinks.append(admin)
    service = make(Script(QUOTA), alerts=alerts)
    for _ in range(3):
        with pytest.raises(QuotaExhausted):
            await service.handle(ask())
    assert len(heard) == 1
    assert "quota" in heard[0]


async def test_attempts_are_bounded(make: Callable[..., Service]) -> None:
    script = Script(SERVER)
    service = make(script, attempts=3)
    with pytest.raises(ServerError):
        await service.handle(ask())
    assert len(script.calls) == 3
    assert [r.outcome for r in await service.usage.rows()] == ["ServerError"] * 3


async def test_the_deadline_bounds_the_retries(make: Callable[..., Service]) -> None:
    script = Script(httpx.ReadTimeout("slow"))
    service = make(script, attempts=100, deadline=0.3)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        await service.handle(ask())
    assert time.monotonic() - started < 1.0
    assert 1 < len(script.calls) < 100


def test_backoff_is_exponential_with_full_jitter_and_honours_hints() -> None:
    import random

    from bot.errors import RateLimited

    policy = RetryPolicy(max_attempts=10, base=1.0, cap=8.0, rng=random.Random(1))
    server = ServerError("boom", status=500)
    for attempt in range(6):
        delays = [policy.delay(server, attempt) for _ in range(200)]
        assert all(d is not None and 0 <= d <= min(8.0, 2**attempt) for d in delays)
        assert max(d for d in delays if d is not None) > 0.8 * min(8.0, 2**attempt)  # spread
    assert policy.delay(server, 9) is None  # the 10th attempt was the last
    hinted = RateLimited("slow down", retry_after=20.0)
    assert policy.delay(hinted, 0) == 20.0  # never before the server said
    assert policy.delay(BadRequest("no", status=400), 0) is None


async def test_an_unreachable_provider_is_said_at_once_and_costs_no_budget(db: Database) -> None:
    """No connection at all (refused): not retried, the user told so in one sentence, and none
    of the model's 3 requests a minute spent on calls that never left."""
    from bot import messages
    from bot.errors import ProviderDown

    script = Script(httpx.ConnectError("[Errno 111] Connection refused"))
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    settings = load_settings()  # the free tier: gpt-3.5-turbo at 3 requests a minute
    service = Service(
        provider=OpenAIClient(base_url="http://127.0.0.1:9/v1", api_key="k", http=http),
        catalog=settings.catalog(),
        usage=UsageStore(db),
        channels=ChannelStore(db, channel_defaults(settings)),
        budget=Budget(MemoryBackend(), Policy({})),
    )
    for _ in range(5):  # more than 3: each would have waited for the next minute
        started = time.monotonic()
        with pytest.raises(ProviderDown) as failed:
            await service.handle(ask())
        assert time.monotonic() - started < 1.0
    await http.aclose()
    assert len(script.calls) == 5  # one attempt each
    assert "cannot reach the model provider" in messages.explain(failed.value)
    rpm = service.budget.policy.model_rates(service.catalog.get("gpt-3.5-turbo"))[0]
    assert (await service.budget.backend.rate_state(rpm)).level == pytest.approx(3, abs=0.1)
