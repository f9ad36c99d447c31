"""Asking the admins for more budget from chat: a refusal for a cap offers it, the request is
kept, an admin grants it once, and the cap is that much higher until its window ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.app import App, open_app
from bot.budget.policy import Who
from bot.chat.answers import Chat
from bot.chat.surface import MoreBudget
from bot.config import load_settings
from bot.sandbox import SandboxServer
from bot.store.grants import AlreadyDecided
from tests.bot.chat.test_answers import Recorder, ask


@dataclass
class Offering(Recorder):
    offers: list[MoreBudget] = field(default_factory=list)

    async def offer_more(self, offer: MoreBudget) -> None:
        self.offers.append(offer)


@pytest.fixture
async def app(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[App]:
    monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    async with open_app(load_settings()) as app:
        await app.limits.set("channel:C1", "rpd", "1", by="test")
        await app.budget.reload()
        yield app


async def yes() -> bool:
    return True


async def no() -> bool:
    return False


async def test_a_grant_raises_the_cap_that_refused_until_its_window_ends(app: App) -> None:
    chat = Chat("slack", service=app.service, commands=app.commands(), events=app.events)
    await chat.answer(ask("first"), Offering())
    refused = Offering()
    await chat.answer(ask("second"), refused)
    assert "requests per day" in refused.said("fail")[0] and refused.said("finish") == []
    (offer,) = refused.offers
    assert offer.cap_key == "ch:slack:T1:C1:rpd" and offer.user == "U1"
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert offer.resets_at == datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC)

    with pytest.raises(ValueError, match="not an amount"):
        await chat.request_more(offer, "lots", "a demo")
    with pytest.raises(ValueError, match="whole"):
        await chat.request_more(offer, "1.5", "a demo")
    request = await chat.request_more(offer, "2", "a customer demo at 3pm")
    assert request.status == "pending" and request.amount == Decimal(2)

    with pytest.raises(PermissionError):
        await chat.decide(request.id, grant=True, by="UNOBODY", is_admin=no)
    still = Offering()
    await chat.answer(ask("third"), still)
    assert still.said("finish") == []  # nothing granted yet

    granted = await chat.decide(request.id, grant=True, by="UADMIN", is_admin=yes)
    assert granted.status == "granted" and granted.decided_by == "UADMIN"
    with pytest.raises(AlreadyDecided):
        await chat.decide(request.id, grant=False, by="UOTHER", is_admin=yes)
    for n in range(2):  # 1 + 2 granted: two more today
        answered = Offering()
        await chat.answer(ask(f"after {n}"), answered)
        assert answered.said("finish"), answered.calls
    over = Offering()
    await chat.answer(ask("one too many"), over)
    assert over.said("finish") == [] and over.offers

    who = Who("slack", "T1", "C1", "U1")
    shown = await chat.command("budget", [], who, is_admin=no, channel_id=lambda v: None)
    assert "*Granted on request*" in shown
    assert "+2 requests on this channel's requests per day for <@U1>, granted by <@UADMIN>" in shown
    # Once the window is over the grant lapses: in force only while its cap's day lasts.
    assert await app.requests.in_force(offer.resets_at + timedelta(seconds=1)) == {}
    assert await app.requests.in_force() == {"ch:slack:T1:C1:rpd": Decimal(2)}


async def test_a_denied_request_grants_nothing(app: App) -> None:
    chat = Chat("slack", service=app.service, commands=app.commands(), events=app.events)
    await chat.answer(ask("first"), Offering())
    refused = Offering()
    await chat.answer(ask("second"), refused)
    request = await chat.request_more(refused.offers[0], "5", "please")
    denied = await chat.decide(request.id, grant=False, by="UADMIN", is_admin=yes)
    assert denied.status == "denied"
    again = Offering()
    await chat.answer(ask("third"), again)
    assert again.said("finish") == [] and await app.requests.in_force() == {}


async def test_surfaces_without_buttons_get_the_refusal_only(app: App) -> None:
    chat = Chat("slack", service=app.service, commands=app.commands(), events=app.events)
    await chat.answer(ask("first"), Recorder())
    plain = Recorder()
    await chat.answer(ask("second"), plain)
    assert [k for k, _ in plain.calls] == ["placeholder", "fail"]
