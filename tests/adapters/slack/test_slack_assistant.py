"""Slack's assistant pane end to end: signed ``assistant_thread_started`` and ``message.im``
events posted to quotabot's HTTP endpoint, the fake Slack API recording the
``assistant.threads.*`` calls. What is asserted is what a person sees in the pane: the
suggested prompts, the thread's title and status, the answer; and the usage rows."""

from __future__ import annotations

from typing import Any

import pytest

from bot import messages
from fakes import slack_assistant as pane
from fakes.slack_state import parse_json_param
from fakes.slack_workspace import DEFAULT_DM, new_ts
from tests.adapters.slack import test_slack_http
from tests.adapters.slack.test_slack_http import Rig, answered, open_rig, usage_rows, wait_for

rig = test_slack_http.rig
Json = dict[str, Any]


async def start_thread(rig: Rig) -> str:
    thread_ts = new_ts()
    started = rig.api.seed_event(pane.thread_started(thread_ts=thread_ts))
    assert (await rig.post(started)).status_code == 200
    return thread_ts


async def ask(rig: Rig, thread_ts: str, text: str) -> Json:
    message = rig.api.seed_event(pane.thread_message(text, thread_ts=thread_ts))
    assert (await rig.post(message)).status_code == 200
    return message


def statuses(rig: Rig, thread_ts: str) -> list[str]:
    return [
        str(c["status"])
        for c in rig.api.calls_to("assistant.threads.setStatus")
        if c["thread_ts"] == thread_ts
    ]


async def test_a_new_thread_gets_suggested_prompts_and_a_greeting(rig: Rig) -> None:
    thread_ts = await start_thread(rig)
    await rig.api.wait_for_calls("assistant.threads.setSuggestedPrompts")
    (call,) = rig.api.calls_to("assistant.threads.setSuggestedPrompts")
    assert (call["channel_id"], call["thread_ts"]) == (DEFAULT_DM, thread_ts)
    titles = [p["title"] for p in parse_json_param(call["prompts"])]
    assert titles == [t for t, _ in messages.ASSISTANT_PROMPTS]
    await wait_for(lambda: messages.ASSISTANT_GREETING in rig.api.messages(DEFAULT_DM, thread_ts))
    assert rig.sandbox.stats.total.requests == 0  # a greeting costs nothing


async def test_a_question_is_titled_shown_as_thinking_and_answered_in_its_thread(
    rig: Rig,
) -> None:
    thread_ts = await start_thread(rig)
    await ask(rig, thread_ts, "What is a   token\nbucket?")
    await wait_for(lambda: answered(rig, DEFAULT_DM, thread_ts))
    await ask(rig, thread_ts, "and a leaky bucket?")
    await wait_for(lambda: len(answered(rig, DEFAULT_DM, thread_ts)) == 2)

    # Titled once, after the first question; "thinking" shown as the status, not a message.
    titles = [c["title"] for c in rig.api.calls_to("assistant.threads.setTitle")]
    assert titles == ["What is a token bucket?"]
    assert statuses(rig, thread_ts) == [messages.ASSISTANT_THINKING] * 2
    assert messages.THINKING not in rig.api.messages(DEFAULT_DM, thread_ts)
    first, second = await usage_rows(rig, 2)
    assert first.thread == second.thread == thread_ts
    # The follow-up was asked with the thread (not the greeting) as context.
    assert second.prompt_tokens > first.prompt_tokens + 10


async def test_a_question_waiting_for_budget_shows_its_place_as_the_status(rig: Rig) -> None:
    await rig.app.limits.set(f"channel:{DEFAULT_DM}", "rpm", "1", by="test")
    await rig.app.budget.reload()
    thread_ts = await start_thread(rig)
    await ask(rig, thread_ts, "first")
    await wait_for(lambda: answered(rig, DEFAULT_DM, thread_ts))
    await ask(rig, thread_ts, "second")
    await wait_for(lambda: len(statuses(rig, thread_ts)) == 3)
    waiting = statuses(rig, thread_ts)[-1]
    assert waiting.startswith("is waiting for budget: position 1 for "), waiting
    assert waiting.endswith(" s"), waiting
    await rig.adapter.chat.drain(0)  # not the minute it waits: the asker is told to ask again


async def test_where_the_app_has_no_assistant_pane_dm_threads_get_a_placeholder(
    rig: Rig,
) -> None:
    vars(rig.api.state)["assistant_enabled"] = False  # Slack: missing_scope assistant:write
    dm = rig.api.seed_event(pane.thread_message("hello", thread_ts=new_ts()))
    thread_ts = str(dm["event"]["thread_ts"])
    rig.api.state.add_message(DEFAULT_DM, "earlier", user=None, ts=thread_ts)
    await rig.post(dm)
    await wait_for(lambda: answered(rig, DEFAULT_DM, thread_ts))
    again = rig.api.seed_event(pane.thread_message("again", thread_ts=thread_ts))
    await rig.post(again)
    await wait_for(lambda: len(answered(rig, DEFAULT_DM, thread_ts)) == 2)
    # Tried once, then left alone for the workspace; each answer had its placeholder.
    assert len(rig.api.calls_to("assistant.threads.setStatus")) == 1
    posted = [c["text"] for c in rig.api.calls_to("chat.postMessage")]
    assert posted.count(messages.THINKING) == 2


async def test_with_the_pane_off_dm_threads_are_answered_as_classic_dms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with open_rig(monkeypatch, assistant=False) as rig:
        thread_ts = await start_thread(rig)
        await ask(rig, thread_ts, "hello")
        await wait_for(lambda: answered(rig, DEFAULT_DM, thread_ts))
        calls = [c.method for c in rig.api.calls]
    assert not [m for m in calls if m.startswith("assistant.")], calls


@pytest.mark.parametrize(
    "thread", [None, "a string", {"channel_id": 5, "thread_ts": "1.2"}, {"channel_id": "D1"}]
)
async def test_a_malformed_thread_start_is_refused_before_bolt(rig: Rig, thread: Any) -> None:
    started = pane.thread_started()
    started["event"]["assistant_thread"] = thread
    assert (await rig.post(started)).status_code == 400
    await rig.settle()
    assert not [c for c in rig.api.calls if c.method.startswith(("assistant.", "chat."))]
