"""A cheaper answer instead of a refusal: per channel, an ordered list of models to answer
with when a cap, an outage or a long wait stops the one asked for. Two fake providers (the
default one OpenAI-shaped, "azure" Azure-shaped) and a sandbox serving a free model, all
behind the real app; every call is counted once, on the model that made it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App, open_app
from bot.budget.policy import Who
from bot.config import load_settings
from bot.errors import BudgetExceeded
from bot.models import ChatRequest, Message
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.schema import RequestEvent, UsageRecord
from fakes.openai_api import FakeAzureOpenAI, FakeOpenAI

OPENAI_KEY = "sk-openai-fallback-test"
AZURE_KEY = "azure-fallback-test"
WHO = Who("slack", "T1", "C1", "U1")


def ask(model: str = "gpt-4o", text: str = "hello there") -> ChatRequest:
    return ChatRequest(
        platform=WHO.platform,
        workspace=WHO.workspace,
        channel=WHO.channel,
        user=WHO.user,
        messages=(Message("user", text),),
        model=model,
    )


@dataclass
class Rig:
    openai: FakeOpenAI
    azure: FakeAzureOpenAI
    local: SandboxServer
    config: Path

    def write(self, budgets: str, **env: str) -> None:
        self.config.write_text(
            f"""
[providers."azure"]
kind = "azure"
base_url = "{self.azure.url}"
api_key_env = "AZURE_OPENAI_API_KEY"
api_version = "2024-10-21"

[providers."local"]
kind = "openai-compatible"
base_url = "{self.local.base_url}"

[models."gpt-4o"]
provider = "azure"

[models."gpt-4.1-nano"]        # self-hosted: free
provider = "local"
input_price = "0"
output_price = "0"
cached_input_price = "0"

[budgets.channel]
fallbacks = ["gpt-4o", "gpt-4o-mini", "gpt-4.1-nano"]
{budgets}
"""
        )


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    async with (
        FakeOpenAI(key=OPENAI_KEY, models={"gpt-4o-mini"}) as openai,
        FakeAzureOpenAI(key=AZURE_KEY, deployments={"gpt-4o": "gpt-4o"}) as azure,
        SandboxServer(SandboxConfig(require_key=False)) as local,
    ):
        config = tmp_path / "quotabot.toml"
        monkeypatch.setenv("QUOTABOT_CONFIG", str(config))
        monkeypatch.setenv("OPENAI_BASE_URL", openai.url)
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
        monkeypatch.setenv("QUOTABOT_RETRY_BASE", "0.01")
        monkeypatch.setenv("QUOTABOT_MAX_ATTEMPTS", "8")
        monkeypatch.setenv("QUOTABOT_REQUEST_DEADLINE", "20")
        yield Rig(openai, azure, local, config)


async def rows(app: App) -> list[tuple[str, str]]:
    async with app.db.session() as s:
        found = (await s.scalars(select(UsageRecord).order_by(UsageRecord.id))).all()
    return [(r.model, r.outcome) for r in found]


async def events(app: App) -> list[tuple[str, str]]:
    """What the digest counts besides usage rows: (model asked, kind) per request."""
    async with app.db.session() as s:
        found = (await s.scalars(select(RequestEvent).order_by(RequestEvent.id))).all()
    return [(e.model, e.kind) for e in found]


async def test_a_spent_cap_sends_the_question_to_the_next_model_that_fits(rig: Rig) -> None:
    rig.write('[budgets."model:gpt-4o"]\nspend_day = "0.000001"')
    async with open_app(load_settings()) as app:
        reply = await app.service.handle(ask())
        assert reply.model == "gpt-4o-mini" and reply.text == "openai answers gpt-4o-mini"
        assert reply.fallback == (
            "answered by gpt-4o-mini instead of gpt-4o: gpt-4o's spend per day is used up "
            "until 00:00 UTC"
        )
        assert await rows(app) == [("gpt-4o-mini", "ok")]  # one call, on the model used
        assert rig.azure.calls == []
        # For the digest: answered by a fallback, not "refused by a cap" (it was answered).
        assert await events(app) == [("gpt-4o", "fallback")]
        metric = app.metrics.fallbacks.labels("gpt-4o", "gpt-4o-mini")._value.get()
        assert metric == 1


async def test_free_models_are_never_blocked_by_spend_caps(rig: Rig) -> None:
    """The whole workspace's spend is used up: the priced models are refused, the free
    self-hosted one still answers, asked for directly or as the last fallback."""
    rig.write('[budgets.workspace]\nspend_day = "0.000001"')
    async with open_app(load_settings()) as app:
        direct = await app.service.handle(ask("gpt-4.1-nano"))
        assert direct.model == "gpt-4.1-nano" and not direct.fallback
        fallen = await app.service.handle(ask("gpt-4o"))
        assert fallen.model == "gpt-4.1-nano"
        assert fallen.fallback.startswith("answered by gpt-4.1-nano instead of gpt-4o: ")
        assert "this workspace's spend per day is used up until 00:00 UTC" in fallen.fallback
        assert await rows(app) == [("gpt-4.1-nano", "ok"), ("gpt-4.1-nano", "ok")]
        assert rig.openai.calls == [] and rig.azure.calls == []
        assert rig.local.stats.total.requests == 2


async def test_when_every_model_is_refused_the_asked_model_s_refusal_is_told(rig: Rig) -> None:
    rig.write(
        '[budgets.workspace]\nspend_day = "0.000001"\n'
        '[budgets."channel:C1"]\nfallbacks = ["gpt-4o-mini"]'
    )
    async with open_app(load_settings()) as app:
        with pytest.raises(BudgetExceeded) as refused:
            await app.service.handle(ask())
        assert "this workspace's spend per day" in str(refused.value)
        assert refused.value.cap_key  # so that "Request more" is offered for it
        assert await rows(app) == []
        assert await events(app) == [("gpt-4o", "refused")]  # one request, refused once


async def test_an_outage_mid_retry_falls_back_once_the_provider_is_down(rig: Rig) -> None:
    """gpt-4o's provider fails 503 again and again: once it is marked down (3 failures in a
    row) the retries stop and gpt-4o-mini answers. The failed calls are recorded as failed,
    their tokens given back: the channel's daily tokens count only the answer's."""
    rig.write('[budgets."channel:C1"]\ntokens_day = 100000')
    rig.azure.fail(503, times=20)
    async with open_app(load_settings()) as app:
        reply = await app.service.handle(ask())
        assert reply.model == "gpt-4o-mini"
        assert reply.fallback == (
            "answered by gpt-4o-mini instead of gpt-4o: its provider is not answering"
        )
        assert len(rig.azure.calls) == 3  # not the 8 attempts allowed: it was down
        by_provider = {line.key: line for line in await app.usage.report(by="provider")}
        assert (by_provider["azure"].calls, by_provider["azure"].failed) == (3, 3)
        assert (by_provider["default"].calls, by_provider["default"].failed) == (1, 0)
        assert await rows(app) == [
            ("gpt-4o", "ServerError"),
            ("gpt-4o", "ServerError"),
            ("gpt-4o", "ServerError"),
            ("gpt-4o-mini", "ok"),
        ]
        standings = await app.budget.status(WHO, app.catalog.get("gpt-4o-mini"))
        (tokens_day,) = [s for s in standings if s.label == "this channel's tokens per day"]
        assert tokens_day.used == reply.usage.total_tokens  # no double spend

        again = await app.service.handle(ask(text="and now?"))  # down: not even tried
        assert again.model == "gpt-4o-mini" and len(rig.azure.calls) == 3
        assert app.providers.states()["azure"] is False


async def test_a_long_wait_for_the_asked_model_falls_back(rig: Rig) -> None:
    """gpt-4o has one request a minute at its provider (Azure says no limits in its headers):
    the second question would wait a minute, longer than the deadline."""
    rig.write('[budgets."model:gpt-4o"]\nrpm = 1')
    async with open_app(load_settings()) as app:
        (rpm, *_) = app.budget.policy.model_rates(app.catalog.get("gpt-4o"))
        assert rpm.key == "model:azure/gpt-4o:rpm"  # the Azure account's bucket, its own
        first = await app.service.handle(ask())
        assert first.model == "gpt-4o" and not first.fallback
        second = await app.service.handle(ask(text="again"))
        assert second.model == "gpt-4o-mini"
        assert second.fallback == (
            "answered by gpt-4o-mini instead of gpt-4o: its queue would have kept you waiting "
            "too long"
        )
        assert await rows(app) == [("gpt-4o", "ok"), ("gpt-4o-mini", "ok")]


async def test_without_a_list_nothing_changes(rig: Rig) -> None:
    rig.write(
        '[budgets."channel:C1"]\nfallbacks = ["gpt-4o-mini"]\n'
        '[budgets."model:gpt-4o-mini"]\nspend_day = "0.000001"'
    )
    async with open_app(load_settings()) as app:
        # gpt-4o-mini is the end of its list: refused as before, nothing else tried.
        with pytest.raises(BudgetExceeded):
            await app.service.handle(ask("gpt-4o-mini"))
        assert rig.azure.calls == [] and rig.local.stats.total.requests == 0
        assert await rows(app) == []
