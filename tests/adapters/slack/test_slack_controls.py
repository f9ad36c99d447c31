"""Stop, 👍 and 👎 on answers in Slack, end to end through the signed endpoint: the buttons
as the fake Slack API recorded them, clicks posted as Slack posts them, and what the asker
sees, the usage rows and the ratings in the database afterwards."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from adapters.slack import blocks as bk
from adapters.slack import controls
from bot import messages
from bot.chat.stops import Stops
from bot.digest.render import to_text
from bot.sandbox import SandboxConfig
from bot.store.digests import DigestConfig
from bot.store.events import EventLog
from bot.store.schema import AnswerFeedback
from fakes import slack_events as ev
from fakes.slack_workspace import DEFAULT_CHANNEL, DEFAULT_USER, DEFAULT_WORKSPACE
from tests.adapters.slack import test_slack_http
from tests.adapters.slack.test_slack_home import interact
from tests.adapters.slack.test_slack_http import Rig, open_rig, usage_rows, wait_for
from tests.adapters.slack.test_slack_more import click

rig = test_slack_http.rig
Json = dict[str, Any]
SLOW = SandboxConfig(rpm=None, tpm=None, rpd=None, chunk_interval=0.03, reply_tokens=600)
"""About 6 s per answer, streamed three tokens at a time: time to click Stop."""


def find_button(rig: Rig, thread: str, action: str) -> Json | None:
    bot = DEFAULT_WORKSPACE.bot_id
    for m in rig.api.history(DEFAULT_CHANNEL, thread):
        if m.bot_id == bot and m.blocks:
            assert bk.problems({"blocks": m.blocks}) == [], m.blocks
        for block in m.blocks or []:
            for element in block.get("elements", []):
                if element.get("action_id") == action:
                    return {"ts": m.ts, "value": element.get("value", "")}
    return None


async def mention(rig: Rig, words: str) -> str:
    payload = rig.api.seed_event(ev.app_mention(words))
    assert (await rig.post(payload)).status_code == 200
    return str(payload["event"]["ts"])  # type: ignore[index]


def bot_texts(rig: Rig, thread: str) -> list[str]:
    bot = DEFAULT_WORKSPACE.bot_id
    return [m.text for m in rig.api.history(DEFAULT_CHANNEL, thread) if m.bot_id == bot]


@pytest.mark.parametrize("streaming", [False, True], ids=["edits", "streaming"])
async def test_the_asker_stops_an_answer_and_what_came_is_kept_and_counted(
    monkeypatch: pytest.MonkeyPatch, streaming: bool
) -> None:
    async with open_rig(monkeypatch, streaming=streaming, sandbox=SLOW) as rig:
        thread = await mention(rig, "tell me a long story")
        await wait_for(lambda: find_button(rig, thread, controls.STOP) is not None)
        stop = find_button(rig, thread, controls.STOP)
        assert stop is not None

        # Someone else's click stops nothing.
        other = click(controls.STOP, stop["value"], "UOTHER0001", DEFAULT_CHANNEL, stop["ts"])
        await interact(rig, other)
        await wait_for(lambda: rig.api.ephemerals(DEFAULT_CHANNEL))
        assert rig.api.ephemerals(DEFAULT_CHANNEL)[-1].text == messages.STOP_ONLY_ASKER

        mine = click(controls.STOP, stop["value"], DEFAULT_USER, DEFAULT_CHANNEL, stop["ts"])
        assert (await interact(rig, mine)).status_code == 200
        await wait_for(lambda: any(messages.STOPPED in t for t in bot_texts(rig, thread)))
        await rig.settle()
        (row,) = await usage_rows(rig, 1)
        shown = [t for t in bot_texts(rig, thread) if t.startswith("Sandbox")]

    # One message, the answer so far, marked; no Stop left, 👍 / 👎 under it.
    assert len(shown) == 1 and shown[0].endswith(messages.STOPPED), bot_texts(rig, thread)
    assert find_button(rig, thread, controls.STOP) is None
    assert find_button(rig, thread, controls.GOOD) is not None
    # The tokens that came are counted: fewer than the whole answer's 600.
    assert row.outcome == "stopped" and row.usage_estimated
    assert 0 < row.completion_tokens < 500, row.completion_tokens
    assert row.prompt_tokens > 0 and row.cost is not None and row.cost > 0


async def test_a_stop_clicked_on_another_replica_reaches_the_one_streaming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with open_rig(monkeypatch, sandbox=SLOW) as rig:
        thread = await mention(rig, "tell me a long story")
        await wait_for(lambda: find_button(rig, thread, controls.STOP) is not None)
        stop = find_button(rig, thread, controls.STOP)
        assert stop is not None
        answer = stop["value"].split()[0]
        # Another replica: its own Stops, the same database; nothing streams there.
        elsewhere = Stops(EventLog(rig.app.db))
        await elsewhere.stop(answer)
        await wait_for(lambda: any(messages.STOPPED in t for t in bot_texts(rig, thread)), within=4)
        (row,) = await usage_rows(rig, 1)
    assert row.outcome == "stopped" and row.completion_tokens < 500


async def test_ratings_are_kept_once_per_person_and_counted_in_the_digest(rig: Rig) -> None:
    thread = await mention(rig, "what is a token bucket?")
    await wait_for(lambda: find_button(rig, thread, controls.GOOD) is not None)
    good = find_button(rig, thread, controls.GOOD)
    bad = find_button(rig, thread, controls.BAD)
    assert good is not None and bad is not None and good["value"] == bad["value"]
    # The answer's text is the message's, in its blocks too: Slack shows the blocks.
    (answer,) = [m for m in rig.api.history(DEFAULT_CHANNEL, thread) if m.ts == good["ts"]]
    assert answer.text.startswith("Sandbox") and answer.text in str(answer.blocks)

    for user, which in [
        (DEFAULT_USER, good),
        (DEFAULT_USER, bad),  # a changed mind replaces the first rating
        ("UOTHER0001", good),
    ]:
        action = controls.GOOD if which is good else controls.BAD
        await interact(rig, click(action, which["value"], user, DEFAULT_CHANNEL, which["ts"]))
    await wait_for(lambda: len(rig.api.ephemerals(DEFAULT_CHANNEL)) == 3)
    told = [e.text for e in rig.api.ephemerals(DEFAULT_CHANNEL)]
    assert told == [messages.RATED[1], messages.RATED[-1], messages.RATED[1]]

    async with rig.app.db.session() as s:
        rows = {(r.user, r.rating) for r in await s.scalars(select(AnswerFeedback))}
    assert rows == {(DEFAULT_USER, -1), ("UOTHER0001", 1)}

    cfg = DigestConfig("slack", DEFAULT_WORKSPACE.team_id, DEFAULT_CHANNEL)
    digest = await rig.app.digests.builder.build(cfg, datetime.now(UTC).date())
    assert (digest.thumbs_up, digest.thumbs_down) == (1, 1)
    assert "answers rated 👍 1 · 👎 1" in to_text(digest)


async def test_a_long_answer_carries_its_ratings_on_its_last_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    long = SandboxConfig(rpm=None, tpm=None, rpd=None, reply_tokens=1500)
    monkeypatch.setenv("QUOTABOT_MAX_TOKENS", "2000")  # about 8,000 characters: 3 messages
    async with open_rig(monkeypatch, sandbox=long) as rig:
        thread = await mention(rig, "a very long answer please")
        await wait_for(lambda: find_button(rig, thread, controls.GOOD) is not None)
        await rig.settle()
        answer = [
            m for m in rig.api.history(DEFAULT_CHANNEL, thread) if m.bot_id and m.ts != thread
        ]
    assert len(answer) >= 2, [m.text[:30] for m in answer]
    assert [bool(m.blocks) for m in answer] == [False] * (len(answer) - 1) + [True]
    assert find_button(rig, thread, controls.STOP) is None
