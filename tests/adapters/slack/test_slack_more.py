"""Asking for more budget in Slack, end to end through the signed endpoint: the "Request more"
button under a refusal for a cap, its form, the admins' DM with Grant and Deny, the grant
recorded and applied, the asker told. The fake Slack API records every call."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from adapters.slack import blocks as bk
from adapters.slack import more
from bot import messages
from bot.budget.limits import local_time, window_end
from bot.chat.surface import MoreBudget
from fakes import slack_events as ev
from fakes import slack_views as views
from fakes.slack_workspace import DEFAULT_CHANNEL, DEFAULT_USER
from tests.adapters.slack import test_slack_http
from tests.adapters.slack.test_slack_home import interact, opened
from tests.adapters.slack.test_slack_http import Rig, answered, wait_for

rig = test_slack_http.rig
ADMIN = "UADMIN0001"  # configured in the rig
Json = dict[str, Any]


async def ask(rig: Rig, words: str) -> str:
    mention = rig.api.seed_event(ev.app_mention(words))
    await rig.post(mention)
    ts = str(mention["event"]["ts"])  # type: ignore[index]
    await wait_for(lambda: len(rig.api.messages(DEFAULT_CHANNEL, ts)) >= 2)
    await rig.settle()
    return ts


def button(rig: Rig, ts: str, action: str) -> Json:
    """The message with ``action``'s button in the thread ``ts``, and the button."""
    for m in rig.api.history(DEFAULT_CHANNEL, ts):
        for block in m.blocks or []:
            for element in block.get("elements", []):
                if element.get("action_id") == action:
                    return {
                        "ts": m.ts,
                        "value": element.get("value", ""),
                        "channel": DEFAULT_CHANNEL,
                    }
    raise AssertionError(f"no {action} button in {rig.api.messages(DEFAULT_CHANNEL, ts)}")


def click(action: str, value: str, user: str, channel: str, ts: str) -> Json:
    payload = views.block_actions(action, value, user=user)
    payload["container"] = {"type": "message", "channel_id": channel, "message_ts": ts}
    payload["channel"] = {"id": channel}
    del payload["view"]
    return payload


async def test_a_refused_user_asks_and_an_admin_grants_more(rig: Rig) -> None:
    await rig.app.limits.set(f"channel:{DEFAULT_CHANNEL}", "rpd", "1", by="test")
    await rig.app.budget.reload()
    assert "Sandbox" in " ".join(answered(rig, DEFAULT_CHANNEL, await ask(rig, "first")))
    refused_ts = await ask(rig, "second")
    thread = rig.api.messages(DEFAULT_CHANNEL, refused_ts)
    assert any("requests per day" in m for m in thread), thread
    offer = button(rig, refused_ts, more.ASK)

    # Someone else's click on the button opens nothing.
    await interact(rig, click(more.ASK, offer["value"], "UOTHER0001", DEFAULT_CHANNEL, offer["ts"]))
    await wait_for(lambda: rig.api.ephemerals(DEFAULT_CHANNEL))
    assert rig.api.ephemerals(DEFAULT_CHANNEL)[-1].text == messages.MORE_ONLY_ASKER
    assert rig.api.calls_to("views.open") == []

    await interact(rig, click(more.ASK, offer["value"], DEFAULT_USER, DEFAULT_CHANNEL, offer["ts"]))
    await rig.api.wait_for_calls("views.open")
    form = opened(rig)
    assert bk.problems(form) == [] and form["callback_id"] == more.FORM

    bad = await interact(
        rig,
        views.view_submission(form, {"amount": views.typed("lots"), "reason": views.typed("x")}),
    )
    assert "not an amount" in bad.json()["errors"]["amount"]
    sent = await interact(
        rig,
        views.view_submission(
            form, {"amount": views.typed("2"), "reason": views.typed("a demo at 3pm")}
        ),
    )
    assert sent.status_code == 200 and not sent.content.strip(b"{} \n")
    await wait_for(lambda: rig.api.messages(f"D{ADMIN[1:]}"))
    (dm,) = rig.api.history(f"D{ADMIN[1:]}")
    assert f"<@{DEFAULT_USER}> asks for 2 requests more of this channel's requests per day" in (
        dm.visible_text
    )
    assert "a demo at 3pm" in dm.visible_text
    # The asker hears it after the admins do: wait for it too.
    await wait_for(
        lambda: any(e.text.startswith("Your request for 2 requests") for e in rig.api.ephemerals())
    )
    (request,) = [b for b in dm.blocks or [] if b.get("type") == "actions"]
    grant = request["elements"][0]
    assert grant["action_id"] == more.GRANT

    # A non-admin's Grant does nothing; the admin's does, once.
    dm_channel = f"D{ADMIN[1:]}"
    await interact(rig, click(more.GRANT, grant["value"], DEFAULT_USER, dm_channel, dm.ts))
    await wait_for(lambda: any(e.text == messages.MORE_NOT_ADMIN for e in rig.api.ephemerals()))
    assert await rig.app.requests.in_force() == {}
    await interact(rig, click(more.GRANT, grant["value"], ADMIN, dm_channel, dm.ts))
    key = f"ch:slack:{rig.api.workspace.team_id}:{DEFAULT_CHANNEL}:rpd"
    await wait_for(lambda: rig.api.messages(DEFAULT_CHANNEL)[-1].startswith(f"<@{ADMIN}> granted"))
    assert await rig.app.requests.in_force() == {key: Decimal(2)}
    assert rig.api.message(dm_channel, dm.ts).visible_text.startswith(f"<@{ADMIN}> granted 2")
    await interact(rig, click(more.DENY, grant["value"], ADMIN, dm_channel, dm.ts))
    await wait_for(lambda: any("already granted" in e.text for e in rig.api.ephemerals()))

    # The cap is 1 + 2 today: two more answers, then refused again.
    for words in ("third", "fourth"):
        assert any("Sandbox" in m for m in answered(rig, DEFAULT_CHANNEL, await ask(rig, words)))
    over = await ask(rig, "fifth")
    assert any("requests per day" in m for m in rig.api.messages(DEFAULT_CHANNEL, over))
    await rig.command(ev.slash_command("/budget", response_url=rig.api.response_url("b")))
    (shown,) = await rig.api.wait_for_responses("b")
    assert "Granted on request" in shown["text"]
    assert f"+2 requests on this channel's requests per day for <@{DEFAULT_USER}>" in shown["text"]


def test_an_offer_keeps_its_cap_s_zone_through_the_form() -> None:
    """The form carries the offer in its private_metadata; the reset is still told in the
    cap's zone when the form comes back."""
    ends = window_end("day", datetime.now(UTC), "Europe/Paris")
    offer = MoreBudget(
        platform="slack",
        workspace="T1",
        channel="C1",
        user="U1",
        cap_key="ws:slack:T1:spend_day",
        label="this workspace's spend per day",
        unit="usd",
        resets_at=ends,
    )
    back = more._decode(more._encode(offer))
    assert back == offer and local_time(back.resets_at) == "00:00 Europe/Paris"
