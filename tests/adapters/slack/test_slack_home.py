"""Slack's App Home tab end to end: signed ``app_home_opened`` events, ``block_actions`` and
``view_submission`` payloads posted to quotabot's HTTP endpoint, the fake Slack API recording
views.publish and views.open. What is asserted is what a person sees on their Home tab and in
its forms, what a refused form says beside its field, and the channel settings, budget limits
and usage rows in the database. Every view published or opened passes Block Kit's limits."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml

from adapters.slack import blocks as bk
from adapters.slack import modals, screen
from bot import messages
from bot.budget.policy import Who
from fakes import slack_events as ev
from fakes import slack_views as views
from fakes.slack_state import blocks_text, parse_json_param
from fakes.slack_workspace import DEFAULT_CHANNEL, DEFAULT_USER, DEFAULT_WORKSPACE
from tests.adapters.slack import test_slack_http
from tests.adapters.slack.test_slack_http import SECRET, Rig, usage_rows

rig = test_slack_http.rig  # the same rig: quotabot on HTTP, the fake Slack API, the sandbox
TEAM = DEFAULT_WORKSPACE.team_id
ADMIN = "UADMIN0001"  # configured in the rig
Json = dict[str, Any]


async def open_home(rig: Rig, user: str = DEFAULT_USER) -> Json:
    """The Home view ``user`` sees on opening the tab: as published, and within Block Kit's
    limits."""
    before = len(rig.api.calls_to("views.publish"))
    response = await rig.post(ev.event_callback(views.app_home_opened(user)))
    assert response.status_code == 200
    return await published(rig, before + 1, user)


async def published(rig: Rig, count: int, user: str) -> Json:
    await rig.api.wait_for_calls("views.publish", count)
    call = rig.api.calls_to("views.publish")[count - 1]
    assert call["user_id"] == user
    view: Json = parse_json_param(call["view"])
    assert view["type"] == "home"
    assert bk.problems(view) == []
    return view


def opened(rig: Rig) -> Json:
    """The modal the last views.open showed, as Slack answered it (with its ID and state)."""
    (exchange,) = [e for e in rig.api.exchanges if e.call.method == "views.open"][-1:]
    assert exchange.response is not None and exchange.response["ok"], exchange.response
    view: Json = exchange.response["view"]
    assert bk.problems(view) == []
    return view


async def interact(rig: Rig, payload: Json) -> httpx.Response:
    return await ev.post_interactivity(rig.http, rig.url, payload, SECRET)


def buttons(view: Json) -> list[tuple[str, str]]:
    out = []
    for block in view["blocks"]:
        acc = block.get("accessory") or {}
        if acc.get("type") == "button":
            out.append((acc["action_id"], acc.get("value", "")))
    return out


def text(view: Json) -> str:
    return blocks_text(view["blocks"])


def errors(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors", body
    return dict(body["errors"])


async def edit_channel(rig: Rig, user: str, channel: str = DEFAULT_CHANNEL) -> Json:
    home = await open_home(rig, user)
    assert (modals.EDIT_CHANNEL, channel) in buttons(home)
    click = views.block_actions(modals.EDIT_CHANNEL, channel, user=user, view=home)
    assert (await interact(rig, click)).status_code == 200
    await rig.api.wait_for_calls("views.open")
    assert rig.api.calls_to("views.open")[-1]["trigger_id"] == click["trigger_id"]
    return opened(rig)


def channel_form(model: str | None, prompt: str | None, on: str = "on") -> dict[str, Json]:
    return {
        modals.MODEL: views.chosen(model) if model else {},
        modals.PROMPT: views.typed(prompt),
        modals.ENABLED: views.chosen(on, "radio_buttons"),
    }


# -- what everyone sees ------------------------------------------------------------------------


async def test_the_home_tab_shows_the_askers_own_usage_and_what_their_budgets_leave(
    rig: Rig,
) -> None:
    await rig.post(rig.api.seed_event(ev.app_mention("what is a token bucket?")))
    (row,) = await usage_rows(rig, 1)
    tokens = row.prompt_tokens + row.completion_tokens

    home = await open_home(rig)
    shown = text(home)
    assert f"Today (since 00:00 UTC): 1 request, {tokens:,} tokens" in shown
    assert f"This month (since the 1st, UTC): 1 request, {tokens:,} tokens" in shown
    # The account's per-minute limits of the default model, and Whisper's, less what was used.
    assert "Your budgets for gpt-3.5-turbo" in shown
    assert "gpt-3.5-turbo requests per minute: " in shown and "refills continuously" in shown
    assert "Your budgets for whisper-1 (voice messages)" in shown
    assert "For admins" not in shown and buttons(home) == []  # not an admin

    # Someone who asked nothing sees nothing of the other's usage.
    other = await open_home(rig, "U0SOMEONE1")
    assert "Today (since 00:00 UTC): no requests yet" in text(other)


async def test_a_daily_cap_shows_what_is_left_and_when_it_resets(rig: Rig) -> None:
    await rig.app.limits.set(f"user:{DEFAULT_USER}", "rpd", "10")
    await rig.app.limits.set("workspace", "spend_month", "20")
    await rig.post(rig.api.seed_event(ev.app_mention("count me")))
    await usage_rows(rig, 1)
    await rig.settle()

    shown = text(await open_home(rig))
    assert "this user's requests per day: 9 requests left of 10 requests, resets " in shown
    assert "this workspace's spend per month: $" in shown and "left of $20.00, resets " in shown
    assert " 00:00 UTC" in shown


async def test_a_question_waiting_for_budget_shows_its_place_in_line(rig: Rig) -> None:
    await rig.app.limits.set("model:gpt-3.5-turbo", "rpm", "1")
    await rig.app.budget.reload()
    m = rig.app.catalog.get("gpt-3.5-turbo")
    rpm, *_ = rig.app.budget.policy.model_rates(m)
    await rig.app.budget.backend.adjust([(rpm, 1)], [])  # used up: the next one waits a minute
    asker = Who("slack", TEAM, DEFAULT_CHANNEL, DEFAULT_USER)
    waiting = asyncio.create_task(
        rig.app.budget.acquire(asker, m, tokens=10, cost=None, deadline=time.monotonic() + 120)
    )
    while not rig.app.budget.queued(m.name):  # noqa: ASYNC110  # until it is in line
        await asyncio.sleep(0.01)
    try:
        assert "*Waiting:* your question is number 1 in line for gpt-3.5-turbo." in text(
            await open_home(rig)
        )
        assert "Waiting" not in text(await open_home(rig, "U0SOMEONE1"))
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)


async def test_the_messages_tab_publishes_nothing(rig: Rig) -> None:
    response = await rig.post(ev.event_callback(views.app_home_opened(tab="messages")))
    assert response.status_code == 200
    await rig.settle()
    assert rig.api.calls_to("views.publish") == []


# -- admins: channel settings ------------------------------------------------------------------


async def test_an_admin_changes_a_channels_settings_from_the_home_tab(rig: Rig) -> None:
    await rig.app.channels.set("slack", TEAM, DEFAULT_CHANNEL, system_prompt="Be brief & kind.")
    rig.api.add_user("U0BOSS0001", is_admin=True)  # a workspace admin, by users.info

    form = await edit_channel(rig, "U0BOSS0001")
    assert form["callback_id"] == modals.CHANNEL
    assert form["private_metadata"] == DEFAULT_CHANNEL
    fields = {b.get("block_id"): b for b in form["blocks"]}
    assert fields[modals.PROMPT]["element"]["initial_value"] == "Be brief & kind."
    assert fields[modals.MODEL]["element"]["initial_option"]["value"] == "gpt-3.5-turbo"
    models = [o["value"] for o in fields[modals.MODEL]["element"]["options"]]
    assert "gpt-4o-mini" in models and "whisper-1" not in models

    sent = views.view_submission(
        form, channel_form("gpt-4o-mini", "Answer in French.", "off"), user="U0BOSS0001"
    )
    response = await interact(rig, sent)
    assert response.status_code == 200 and not response.content  # the modal closes

    now = await rig.app.channels.get("slack", TEAM, DEFAULT_CHANNEL)
    assert (now.model, now.system_prompt, now.enabled) == (
        "gpt-4o-mini",
        "Answer in French.",
        False,
    )
    home = await published(rig, 2, "U0BOSS0001")  # republished with the change
    assert "model `gpt-4o-mini`, switched off" in text(home)
    assert "Answer in French." in text(home)


async def test_a_refused_channel_change_is_said_beside_its_field_and_changes_nothing(
    rig: Rig,
) -> None:
    await rig.app.channels.set("slack", TEAM, DEFAULT_CHANNEL, system_prompt="Be brief.")
    await rig.app.limits.set(f"channel:{DEFAULT_CHANNEL}", "models", "gpt-3.5-turbo,gpt-4o")
    form = await edit_channel(rig, ADMIN)

    unknown = await interact(
        rig, views.view_submission(form, channel_form("gpt-9-turbo", "x"), user=ADMIN)
    )
    assert errors(unknown)[modals.MODEL].startswith("unknown model gpt-9-turbo: choose among")

    not_here = await interact(
        rig, views.view_submission(form, channel_form("gpt-4o-mini", "x"), user=ADMIN)
    )
    assert errors(not_here) == {
        modals.MODEL: messages.MODEL_NOT_ALLOWED_HERE.format(
            model="gpt-4o-mini", allowed="gpt-3.5-turbo, gpt-4o"
        )
    }

    long = "x" * 3001
    too_long = await interact(
        rig, views.view_submission(form, channel_form("gpt-4o", long), user=ADMIN)
    )
    assert errors(too_long) == {
        modals.PROMPT: messages.PROMPT_TOO_LONG.format(most=3000, length=3001)
    }

    no_model = await interact(rig, views.view_submission(form, channel_form(None, "x"), user=ADMIN))
    assert errors(no_model) == {modals.MODEL: messages.MODAL_REQUIRED}

    now = await rig.app.channels.get("slack", TEAM, DEFAULT_CHANNEL)
    assert (now.model, now.system_prompt, now.enabled) == ("gpt-3.5-turbo", "Be brief.", True)
    assert len(rig.api.calls_to("views.publish")) == 1  # only the opening


async def test_a_non_admin_cannot_open_or_forge_a_channel_form(rig: Rig) -> None:
    await rig.app.channels.set("slack", TEAM, DEFAULT_CHANNEL, system_prompt="Be brief.")
    form = await edit_channel(rig, ADMIN)

    # The Edit button is not on a non-admin's Home; a click forged anyway opens nothing.
    click = views.block_actions(modals.EDIT_CHANNEL, DEFAULT_CHANNEL, user=DEFAULT_USER)
    assert (await interact(rig, click)).status_code == 200
    await rig.settle()
    assert len(rig.api.calls_to("views.open")) == 1

    forged = views.view_submission(form, channel_form("gpt-4o-mini", "Obey me."), user=DEFAULT_USER)
    assert errors(await interact(rig, forged)) == {modals.MODEL: messages.NOT_ADMIN["slack"]}
    now = await rig.app.channels.get("slack", TEAM, DEFAULT_CHANNEL)
    assert (now.model, now.system_prompt) == ("gpt-3.5-turbo", "Be brief.")


# -- admins: budget limits ---------------------------------------------------------------------


async def set_limit_form(rig: Rig, user: str) -> Json:
    home = await open_home(rig, user)
    assert (modals.SET_LIMIT, "") in buttons(home)
    await interact(rig, views.block_actions(modals.SET_LIMIT, user=user, view=home))
    await rig.api.wait_for_calls("views.open")
    return opened(rig)


def limit(scope: str, kind: str, value: str) -> dict[str, Json]:
    return {
        modals.SCOPE: views.typed(scope),
        modals.KIND: views.chosen(kind),
        modals.VALUE: views.typed(value),
    }


async def test_an_admin_sets_a_budget_limit_from_the_home_tab(rig: Rig) -> None:
    form = await set_limit_form(rig, ADMIN)
    assert form["callback_id"] == modals.LIMIT
    assert messages.HOME_NO_LIMITS in text(await published(rig, 1, ADMIN))

    response = await interact(
        rig, views.view_submission(form, limit("workspace", "spend_day", "$5"), user=ADMIN)
    )
    assert response.status_code == 200 and not response.content
    assert await rig.app.limits.all() == {f"workspace:{TEAM}": {"spend_day": Decimal(5)}}
    home = await published(rig, 2, ADMIN)
    assert f"`workspace:{TEAM}` `spend_day` 5" in text(home)


async def test_a_refused_budget_limit_is_said_beside_its_field(rig: Rig) -> None:
    form = await set_limit_form(rig, ADMIN)
    cases = [
        (limit("galaxy", "rpm", "5"), modals.SCOPE, "unknown scope"),
        (limit("user:U1", "models", "gpt-4o"), modals.SCOPE, "models are chosen per"),
        (limit("workspace", "rpm", "1.5"), modals.VALUE, "rpm is a whole number"),
        (limit("workspace", "spend_day", "lots"), modals.VALUE, "'lots' is not a number"),
        (limit("workspace", "models", "gpt-9"), modals.VALUE, "unknown model gpt-9"),
        (limit("workspace", "tokens", "5"), modals.KIND, "unknown limit 'tokens'"),
    ]
    for values, field, said in cases:
        refused = errors(await interact(rig, views.view_submission(form, values, user=ADMIN)))
        assert list(refused) == [field] and refused[field].startswith(said), refused
    forged = views.view_submission(form, limit("workspace", "rpm", "1"), user=DEFAULT_USER)
    assert errors(await interact(rig, forged)) == {modals.SCOPE: messages.NOT_ADMIN["slack"]}
    assert await rig.app.limits.all() == {}


# -- Block Kit's limits ------------------------------------------------------------------------


async def test_many_channels_long_prompts_and_many_limits_stay_within_block_kits_limits(
    rig: Rig,
) -> None:
    prompt = "Answer <carefully> & briefly. " * 100  # 3,000 characters
    for n in range(55):
        await rig.app.channels.set("slack", TEAM, f"C{n:09d}", system_prompt=prompt)
    for n in range(60):
        await rig.app.limits.set(f"user:U{n:09d}", "spend_month", f"{n + 1}")

    home = await open_home(rig, ADMIN)  # within the limits: checked by open_home
    assert len(home["blocks"]) <= bk.MAX_BLOCKS
    shown = text(home)
    assert "…and 15 more: `quotabot channel CHANNEL`" in shown
    assert "…and 20 more: `quotabot budget list`" in shown
    assert "Answer &lt;carefully&gt; &amp; briefly." in shown  # escaped, not a Slack link

    click = views.block_actions(modals.EDIT_CHANNEL, "C000000000", user=ADMIN, view=home)
    await interact(rig, click)
    await rig.api.wait_for_calls("views.open")
    form = opened(rig)  # the whole prompt in its field, within the input's limit
    (field,) = [b for b in form["blocks"] if b.get("block_id") == modals.PROMPT]
    assert field["element"]["initial_value"] == prompt


def test_the_checker_names_what_slack_would_refuse() -> None:
    fine = {"type": "home", "blocks": [bk.header("quotabot"), bk.section("*hi*")]}
    assert bk.problems(fine) == []
    too_many = {"type": "home", "blocks": [bk.divider()] * 101}
    assert bk.problems(too_many) == ["101 blocks, more than 100"]
    long_header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    assert bk.problems({"type": "home", "blocks": [long_header]}) == [
        "block 0 (header) text: 151 characters, more than 150"
    ]
    modal = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "A title of twenty-five ch"},
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11},
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "action_id": "a", "text": {"type": "mrkdwn", "text": "b"}}
                ],
            },
        ],
    }
    assert bk.problems(modal) == [
        "view title: 25 characters, more than 24",
        "block 0 (section) text: 3001 characters, more than 3000",
        "block 1 (context): 11 elements, not 1 to 10",
        "block 2 (actions) element text: not a plain_text text object",
    ]
    # What the builders make of texts too long: cut, within the limits.
    assert (
        bk.problems({"type": "home", "blocks": [bk.header("h" * 500), bk.section("s" * 9000)]})
        == []
    )


# -- what reaches bolt -------------------------------------------------------------------------


async def test_clicks_of_other_shapes_or_other_apps_buttons_reach_nothing(rig: Rig) -> None:
    no_user = {**views.block_actions(modals.SET_LIMIT), "user": "UADMIN0001"}
    assert (await interact(rig, no_user)).status_code == 400
    no_view = {**views.view_submission({"callback_id": modals.LIMIT}, {}), "view": []}
    assert (await interact(rig, no_view)).status_code == 400
    theirs = views.block_actions("somebody_elses_button", user=ADMIN)
    assert (await interact(rig, theirs)).status_code == 200
    await rig.settle()
    assert rig.api.calls_to("views.open") == []
    assert rig.api.calls_to("users.info") == []  # nobody's rights looked up for them


def test_the_manifest_turns_the_home_tab_on_and_sends_what_it_listens_to() -> None:
    manifest = yaml.safe_load(
        (Path(__file__).parents[3] / "deploy" / "slack-app-manifest.yaml").read_text()
    )
    assert manifest["features"]["app_home"]["home_tab_enabled"]
    assert set(screen.HOME_EVENTS) <= set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert manifest["settings"]["interactivity"]["is_enabled"]
