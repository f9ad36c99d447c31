"""Figures you can bill against: cached prompt tokens at their discount, reasoning models sent
what they accept and charged for their reasoning, unpriced models kept out of spend caps, and
the models each workspace and channel may use.

The provider here is a fake at the HTTP boundary that answers as OpenAI does and records what
it was sent (the sandbox's own behaviour is tested in tests/bot/sandbox).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy, Who
from bot.catalog import Catalog, ModelOverride
from bot.chat.commands import Commands
from bot.config import load_settings
from bot.errors import ModelNotAllowed, TooLargeForLimit, UnpricedModel
from bot.messages import usage_line
from bot.models import ChannelSettings, ChatRequest, Message
from bot.provider import OpenAIClient
from bot.service import Service
from bot.store import ChannelStore, Database, UsageStore
from bot.store.budgets import BudgetLimitStore

DEFAULTS = ChannelSettings(
    model="gpt-4o-mini", system_prompt="", max_tokens=300, temperature=0.2, enabled=True
)


class FakeOpenAI:
    """Answers every chat completion with ``usage``; keeps the bodies it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.usage: dict[str, Any] = {"prompt_tokens": 10, "completion_tokens": 5}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if "max_tokens" in body and body["model"].startswith(("gpt-5", "o3", "o4")):
            return httpx.Response(
                400,
                json={
                    "error": {
                        "message": "Unsupported parameter: 'max_tokens' is not supported with "
                        "this model. Use 'max_completion_tokens' instead.",
                        "type": "invalid_request_error",
                        "param": "max_tokens",
                        "code": "unsupported_parameter",
                    }
                },
            )
        return httpx.Response(
            200,
            json={
                "model": body["model"],
                "choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
                "usage": self.usage,
            },
        )


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[OpenAIClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    async with OpenAIClient(base_url="http://openai.test/v1", api_key="sk-x", http=http) as c:
        yield c
    await http.aclose()


def service(
    db: Database,
    client: OpenAIClient,
    limits: dict[str, dict[str, object]] | None = None,
    catalog: Catalog | None = None,
) -> Service:
    store = BudgetLimitStore(db)
    budget = Budget(MemoryBackend(), Policy(limits or {}), overrides=store.all)  # type: ignore[arg-type]
    return Service(
        provider=client,
        catalog=catalog or Catalog.build(tier="paid"),
        usage=UsageStore(db),
        channels=ChannelStore(db, DEFAULTS),
        budget=budget,
    )


def ask(model: str | None = None, channel: str = "C1", text: str = "hi") -> ChatRequest:
    return ChatRequest(
        platform="slack",
        workspace="T1",
        channel=channel,
        user="U1",
        messages=(Message("user", text),),
        model=model,
    )


async def test_cached_prompt_tokens_are_recorded_and_billed_at_their_discount(
    db: Database, client: OpenAIClient, fake: FakeOpenAI
) -> None:
    fake.usage = {
        "prompt_tokens": 2_006,
        "completion_tokens": 300,
        "total_tokens": 2_306,
        "prompt_tokens_details": {"cached_tokens": 1_920},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    svc = service(db, client)
    reply = await svc.handle(ask("gpt-4o-mini"))
    # gpt-4o-mini: $0.15 per 1M input, $0.075 cached, $0.60 output
    expected = (86 * Decimal("0.15") + 1_920 * Decimal("0.075") + 300 * Decimal("0.60")) / 10**6
    assert reply.cost == expected == Decimal("0.000336900")
    assert "(1920 cached)" in usage_line(reply)
    (row,) = await svc.usage.rows()
    assert (row.prompt_tokens, row.cached_tokens, row.cost) == (2_006, 1_920, expected)
    (line,) = await svc.usage.report(by="model")
    assert (line.cached_tokens, line.cost) == (1_920, expected)


async def test_a_reasoning_model_gets_max_completion_tokens_and_pays_for_its_reasoning(
    db: Database, client: OpenAIClient, fake: FakeOpenAI
) -> None:
    fake.usage = {
        "prompt_tokens": 40,
        "completion_tokens": 900,
        "completion_tokens_details": {"reasoning_tokens": 832},
    }
    svc = service(db, client)
    reply = await svc.handle(ask("gpt-5-mini"))
    sent = fake.bodies[-1]
    # The channel's 300 tokens of answer, plus the model's allowance for reasoning; the
    # channel's temperature is left out (gpt-5 models refuse anything but their default).
    assert sent["max_completion_tokens"] == 300 + 4_096
    assert "max_tokens" not in sent and "temperature" not in sent
    assert reply.cost == (40 * Decimal("0.25") + 900 * Decimal("2")) / 10**6
    assert "(832 reasoning)" in usage_line(reply)
    (row,) = await svc.usage.rows()
    assert (row.completion_tokens, row.reasoning_tokens) == (900, 832)

    # Other models keep max_tokens and the temperature (servers that imitate OpenAI may not
    # know max_completion_tokens).
    await svc.handle(ask("gpt-4o-mini"))
    assert fake.bodies[-1]["max_tokens"] == 300 and fake.bodies[-1]["temperature"] == 0.2


async def test_a_reasoning_models_reservation_includes_its_reasoning(
    db: Database, client: OpenAIClient
) -> None:
    # 2,000 tokens a minute hold a 300-token answer, not 300 + 4,096 with reasoning.
    svc = service(db, client, {"channel": {"tpm": 2_000}})
    await svc.handle(ask("gpt-4o-mini"))
    with pytest.raises(TooLargeForLimit, match="may take 4,4"):
        await svc.handle(ask("gpt-5-mini"))


async def test_reasoning_flags_can_be_declared_for_a_self_hosted_model(
    db: Database, client: OpenAIClient, fake: FakeOpenAI
) -> None:
    catalog = Catalog.build(
        overrides={
            "my-r1": ModelOverride(
                input_price=Decimal(0), output_price=Decimal(0), reasoning=True, reasoning_budget=50
            )
        }
    )
    await service(db, client, catalog=catalog).handle(ask("my-r1"))
    sent = fake.bodies[-1]
    assert sent["max_completion_tokens"] == 350 and "temperature" not in sent


async def test_an_unpriced_model_is_refused_where_a_spend_cap_applies(
    db: Database, client: OpenAIClient, fake: FakeOpenAI
) -> None:
    settings = load_settings(
        models={"llama3": {"endpoint": "chat"}, "free": {"input_price": "0", "output_price": "0"}}
    )
    svc = service(db, client, {"channel:C1": {"spend_day": Decimal("1")}}, settings.catalog())
    with pytest.raises(UnpricedModel) as refused:
        await svc.handle(ask("llama3"))
    message = str(refused.value)
    assert "llama3 has no price" in message and "this channel's spend per day" in message
    assert '[models."llama3"]' in message and '"0" for a free, self-hosted model' in message
    assert fake.bodies == []  # nothing was sent

    # Elsewhere no spend cap applies: it is answered (and recorded as unpriced).
    assert (await svc.handle(ask("llama3", channel="C2"))).cost is None
    # A model declared free is counted at $0 under the cap.
    assert (await svc.handle(ask("free"))).cost == 0
    # An unknown name is no way around the cap either.
    with pytest.raises(UnpricedModel):
        await svc.handle(ask("some-model-nobody-priced"))


async def test_admins_choose_the_models_a_workspace_and_a_channel_may_use(
    db: Database, client: OpenAIClient, fake: FakeOpenAI
) -> None:
    svc = service(db, client, {"workspace": {"models": ["gpt-4o-mini", "gpt-5-mini", "gpt-4o"]}})
    commands = Commands(
        usage=svc.usage, budget=svc.budget, limits=BudgetLimitStore(db), catalog=svc.catalog
    )
    here = Who("slack", "T1", "C1", "U1")
    with pytest.raises(ValueError, match="unknown model gpt-9"):
        await commands.budget_set("channel", "models", "gpt-4o,gpt-9", by="U0", who=here)
    with pytest.raises(ValueError, match="per workspace or channel"):
        await commands.budget_set("user", "models", "gpt-4o", by="U0", who=here)
    await commands.budget_set("channel", "models", "gpt-4o-mini, gpt-4o", by="U0", who=here)

    with pytest.raises(ModelNotAllowed) as refused:
        await svc.handle(ask("gpt-5-mini"))
    assert "Models allowed here: gpt-4o, gpt-4o-mini" in str(refused.value)
    assert fake.bodies == []
    await svc.handle(ask("gpt-4o-2024-08-06"))  # a dated snapshot is its base model
    await svc.handle(ask("gpt-5-mini", channel="C2"))  # only the workspace's list applies there
    with pytest.raises(ModelNotAllowed, match="not allowed in this workspace"):
        await svc.handle(ask("o3", channel="C2"))

    model = svc.catalog.get("gpt-4o-mini")
    assert "Models allowed here: gpt-4o, gpt-4o-mini." in await commands.budget_text(here, model)
    assert await commands.models_here(here, svc.catalog.chat_models()) == ["gpt-4o", "gpt-4o-mini"]
    await commands.budget_set("channel", "models", "off", by="U0", who=here)
    await svc.budget.reload()
    await svc.handle(ask("gpt-5-mini"))


def test_a_model_list_is_set_per_workspace_or_channel_in_the_config_file() -> None:
    from bot.errors import ConfigError

    settings = load_settings(budgets={"channel:C1": {"models": ["gpt-4o-mini"]}})
    assert settings.budget_limits()["channel:C1"]["models"] == ["gpt-4o-mini"]
    with pytest.raises(ConfigError, match="per workspace or channel"):
        load_settings(budgets={"user": {"models": ["gpt-4o-mini"]}})


async def test_an_answer_lost_to_reasoning_says_how_to_get_one(
    db: Database, client: OpenAIClient, fake: FakeOpenAI
) -> None:
    fake.usage = {
        "prompt_tokens": 40,
        "completion_tokens": 4_396,
        "completion_tokens_details": {"reasoning_tokens": 4_396},
    }

    def cut(request: httpx.Request) -> httpx.Response:
        response = fake(request)
        body = response.json()
        body["choices"][0].update(message={"content": ""}, finish_reason="length")
        return httpx.Response(200, json=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(cut))
    async with OpenAIClient(base_url="http://openai.test/v1", api_key="sk", http=http) as c:
        reply = await service(db, c).handle(ask("gpt-5-mini"))
    await http.aclose()
    assert "spent all 4,396 tokens it may use on reasoning" in reply.text
    assert "reasoning_budget" in reply.text
    assert reply.cost == (40 * Decimal("0.25") + 4_396 * Decimal("2")) / 10**6  # still billed
