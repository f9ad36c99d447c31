"""The Slack adapter end to end: real signed Slack payloads posted to quotabot's HTTP endpoint,
a fake Slack Web API that records every call, and the sandbox as the model provider.
What is asserted is what a Slack user would see: the thread, the text, the edits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text

from adapters.slack import SlackAdapter, SlackConfig
from bot import messages, takeover
from bot.admission import Admission
from bot.app import App, open_app
from bot.budget.limits import window_end
from bot.config import load_settings
from bot.dashboard.links import links_for
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.events import EventLog
from bot.store.schema import SeenEvent, UsageRecord
from bot.takeover import Takeover
from bot.web import WebServer
from fakes import slack_events as ev
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from fakes.slack_workspace import DEFAULT_CHANNEL, DEFAULT_DM, DEFAULT_USER, DEFAULT_WORKSPACE
from tests.slow_claims import slow_claims

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT = DEFAULT_WORKSPACE.bot_user_id


@dataclass
class Rig:
    app: App
    api: FakeSlackAPI
    sandbox: SandboxServer
    http: httpx.AsyncClient
    url: str
    adapter: SlackAdapter

    async def post(self, payload: dict[str, object], **kw: object) -> httpx.Response:
        return await ev.post_event(self.http, self.url, payload, SECRET, **kw)  # type: ignore[arg-type]

    async def command(self, form: dict[str, str], **kw: object) -> httpx.Response:
        return await ev.post_command(self.http, self.url, form, SECRET, **kw)  # type: ignore[arg-type]

    async def settle(self) -> None:
        """Wait until every answer under way has been posted."""
        for _ in range(200):
            await asyncio.sleep(0.02)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if not any("listener" in repr(t) or "_answer" in repr(t) for t in tasks):
                break
        await asyncio.sleep(0.1)


@pytest.fixture
async def rig(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    """Slack without its streaming methods, unless parametrized ``indirect`` with True."""
    async with open_rig(monkeypatch, streaming=getattr(request, "param", False)) as rig:
        yield rig


@contextlib.asynccontextmanager
async def open_rig(
    monkeypatch: pytest.MonkeyPatch,
    *,
    streaming: bool = False,
    sandbox: SandboxConfig | None = None,
    assistant: bool = True,
) -> AsyncIterator[Rig]:
    """quotabot on HTTP in front of the fake Slack API (with its streaming methods or not)
    and the sandbox (``sandbox``: its pace, say)."""
    async with (
        SandboxServer(sandbox or SandboxConfig(rpm=None, tpm=None, rpd=None)) as model,
        FakeSlackAPI(streaming_supported=streaming) as api,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", model.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with open_app(load_settings()) as app:
            adapter = SlackAdapter(
                SlackConfig(
                    bot_token=DEFAULT_TOKEN,
                    signing_secret=SECRET,
                    api_url=api.url,
                    admins=frozenset({"UADMIN0001"}),
                    update_interval=0.05,
                    assistant=assistant,
                ),
                service=app.service,
                commands=app.commands(),
                events=EventLog(app.db),
            )
            server = WebServer(adapter.routes(), host="127.0.0.1", port=0)
            await server.start()
            async with httpx.AsyncClient(timeout=10) as http:
                yield Rig(app, api, model, http, f"{server.url}/slack/events", adapter)
            await server.aclose()
            await adapter.aclose()


async def wait_for(predicate, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for Slack activity")
        await asyncio.sleep(0.02)


async def usage_rows(rig: Rig, count: int, within: float = 5.0) -> list[UsageRecord]:
    """The usage rows once ``count`` are there: they are group-committed just after the answer."""
    deadline = time.monotonic() + within
    while len(rows := await rig.app.usage.rows()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(rows)} usage rows, expected {count}")
        await asyncio.sleep(0.02)
    return rows


def answered(rig: Rig, channel: str, thread_ts: str) -> list[str]:
    return [t for t in rig.api.messages(channel, thread_ts) if t.startswith("Sandbox answer")]


async def test_a_mention_is_answered_in_its_thread(rig: Rig) -> None:
    payload = rig.api.seed_event(ev.app_mention("what is a token bucket?"))
    ts = payload["event"]["ts"]  # type: ignore[index]
    started = time.monotonic()
    response = await rig.post(payload)
    assert response.status_code == 200
    assert time.monotonic() - started < 1.0  # acked before any model call

    await wait_for(lambda: answered(rig, DEFAULT_CHANNEL, ts))
    (answer,) = answered(rig, DEFAULT_CHANNEL, ts)
    assert "what is a token bucket" in answer
    placeholder = rig.api.calls_to("chat.postMessage")[0]
    assert placeholder["thread_ts"] == ts
    assert placeholder["text"] == "_Thinking…_"  # replaced by the answer:
    assert rig.api.calls_to("chat.update")[-1]["text"] == answer
    (row,) = await usage_rows(rig, 1)
    assert (row.platform, row.workspace, row.channel, row.user, row.outcome) == (
        "slack",
        DEFAULT_WORKSPACE.team_id,
        DEFAULT_CHANNEL,
        DEFAULT_USER,
        "ok",
    )
    assert row.thread == ts


async def test_bad_or_stale_signatures_cost_nothing(rig: Rig) -> None:
    bad = await rig.post(ev.app_mention("hi"), bad_signature=True)
    stale = await rig.post(ev.app_mention("hi"), timestamp=int(time.time()) - 3600)
    assert (bad.status_code, stale.status_code) == (401, 401)
    await asyncio.sleep(0.3)
    assert rig.sandbox.stats.total.requests == 0
    assert [c for c, _ in rig.api.calls if c != "auth.test"] == []
    assert await rig.app.usage.rows() == []


async def test_only_our_signature_check_guards_bolt(rig: Rig) -> None:
    """Bolt's own check is off (ours, on the raw bytes, is the one): a slash command with a
    bad signature, and an event without signature headers, still never reach a listener."""
    command = await rig.command(ev.slash_command("/ask", "free answer?"), bad_signature=True)
    body = ev.encode_event(ev.app_mention("unsigned"))
    unsigned = await rig.http.post(
        rig.url, content=body, headers={"Content-Type": "application/json"}
    )
    assert (command.status_code, unsigned.status_code) == (401, 401)
    await asyncio.sleep(0.3)
    assert rig.sandbox.stats.total.requests == 0
    assert [c for c, _ in rig.api.calls if c != "auth.test"] == []


async def test_an_answer_that_fails_outside_the_reply_is_logged(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Answers run in tasks of their own, not in bolt's listener: a failure there (Slack
    refusing the placeholder) is still logged, as bolt's error handler logged it."""
    rig.api.fail("chat.postMessage", error="channel_not_found", status=200)
    assert (await rig.post(ev.app_mention("anyone there?"))).status_code == 200
    await rig.settle()
    failures = [r for r in caplog.records if r.getMessage().startswith("Slack listener failed")]
    assert len(failures) == 1 and "channel_not_found" in failures[0].getMessage()
    assert rig.sandbox.stats.total.requests == 0
    assert not rig.adapter.tasks


async def test_retries_and_twin_events_get_one_answer(rig: Rig) -> None:
    mention = rig.api.seed_event(ev.app_mention("once please"))
    event = mention["event"]  # type: ignore[index]
    twin = ev.message(event["text"], ts=event["ts"])  # the message event for the same post
    await rig.post(mention)
    await rig.post(twin)
    await rig.post(mention, retry_num=1)
    await rig.post(mention, retry_num=2)
    await wait_for(lambda: answered(rig, DEFAULT_CHANNEL, event["ts"]))
    await asyncio.sleep(0.5)
    assert len(answered(rig, DEFAULT_CHANNEL, event["ts"])) == 1
    assert rig.sandbox.stats.total.requests == 1


async def test_direct_messages_and_thread_follow_ups(rig: Rig) -> None:
    dm = rig.api.seed_event(ev.direct_message("hello there"))
    await rig.post(dm)
    await wait_for(lambda: answered(rig, DEFAULT_DM, dm["event"]["ts"]))  # type: ignore[index]

    mention = rig.api.seed_event(ev.app_mention("first question"))
    root = mention["event"]["ts"]  # type: ignore[index]
    await rig.post(mention)
    await wait_for(lambda: answered(rig, DEFAULT_CHANNEL, root))
    follow = rig.api.seed_event(ev.thread_reply("and a follow-up", thread_ts=root))
    await rig.post(follow)
    await wait_for(lambda: len(answered(rig, DEFAULT_CHANNEL, root)) == 2)
    # The follow-up was asked with the thread as context: bigger prompt than the first.
    first, second = [r for r in await usage_rows(rig, 3) if r.thread == root]
    assert second.prompt_tokens > first.prompt_tokens + 20


@pytest.mark.parametrize(
    "field",
    [
        {"channel": "C0\x00INJECT"},
        {"user": "U" * 500},
        {"ts": "1712345678.000100\x00"},
        {"thread_ts": ""},
    ],
)
async def test_an_event_with_unusable_ids_is_acknowledged_and_never_answered(
    rig: Rig, field: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    payload = rig.api.seed_event(ev.app_mention("hello"))
    payload["event"].update(field)  # type: ignore[union-attr]
    assert (await rig.post(payload)).status_code == 200  # Slack would resend anything else
    await asyncio.sleep(0.3)
    assert rig.sandbox.stats.total.requests == 0
    assert await rig.app.usage.rows() == []
    async with rig.app.db.session() as s:
        assert (await s.execute(select(SeenEvent))).all() == []
    assert "without a usable" in caplog.text


async def test_bots_and_threads_without_the_bot_are_ignored(rig: Rig) -> None:
    await rig.post(rig.api.seed_event(ev.bot_message("I am a bot")))
    await rig.post(rig.api.seed_event(ev.bot_message("I am quotabot itself", bot_id=None)))
    other = rig.api.seed_message(DEFAULT_CHANNEL, "people talking", user="U0OTHER001")
    await rig.post(rig.api.seed_event(ev.thread_reply("just chatting", thread_ts=other.ts)))
    await asyncio.sleep(0.5)
    assert rig.sandbox.stats.total.requests == 0
    assert rig.api.calls_to("chat.postMessage") == []


async def test_slack_rate_limits_are_honoured(rig: Rig) -> None:
    rig.api.rate_limit("chat.postMessage", times=1, retry_after=0)
    payload = rig.api.seed_event(ev.app_mention("through a 429"))
    await rig.post(payload)
    await wait_for(lambda: answered(rig, DEFAULT_CHANNEL, payload["event"]["ts"]))  # type: ignore[index]


async def test_ask_usage_and_budget_commands(rig: Rig) -> None:
    resp = await rig.command(ev.slash_command("/ask", "explain jitter"))
    assert resp.status_code == 200
    assert "asked: explain jitter" in resp.text
    await wait_for(
        lambda: (
            any(t.startswith("Sandbox answer") for t in rig.api.messages(DEFAULT_CHANNEL, None))
            or bool(rig.api.calls_to("chat.update"))
        )
    )
    await rig.settle()

    await rig.command(ev.slash_command("/usage", response_url=rig.api.response_url("u")))
    (usage,) = await rig.api.wait_for_responses("u")
    assert usage["response_type"] == "ephemeral"
    assert "This channel: 1 request," in usage["text"]

    await rig.command(ev.slash_command("/budget", response_url=rig.api.response_url("b")))
    (shown,) = await rig.api.wait_for_responses("b")
    assert "Budgets for gpt-3.5-turbo" in shown["text"]
    # Voice messages are transcribed under Whisper's own limits (free tier: 3 a minute).
    whisper = shown["text"].split("Budgets for whisper-1 (voice messages)")[1]
    assert "of 3 requests" in whisper and "of 200 requests" in whisper, shown["text"]

    await rig.command(
        ev.slash_command("/budget", "set channel rpm 5", response_url=rig.api.response_url("nope"))
    )
    (refused,) = await rig.api.wait_for_responses("nope")
    assert "Only workspace admins" in refused["text"]

    rig.api.add_user("U0BOSS0001", is_admin=True)
    await rig.command(
        ev.slash_command(
            "/budget",
            "set channel rpm 5",
            user_id="U0BOSS0001",
            response_url=rig.api.response_url("ok"),
        )
    )
    (done,) = await rig.api.wait_for_responses("ok")
    assert f"channel:{DEFAULT_CHANNEL}" in done["text"]
    assert await rig.app.limits.all() == {f"channel:{DEFAULT_CHANNEL}": {"rpm": 5}}

    await rig.command(ev.slash_command("/budget", response_url=rig.api.response_url("show")))
    (shown,) = await rig.api.wait_for_responses("show")
    assert "this channel's requests per minute" in shown["text"]


async def test_caps_count_the_workspace_s_zone_and_say_when_they_reset_there(rig: Rig) -> None:
    boss = "U0BOSS0001"
    rig.api.add_user(boss, is_admin=True)
    for n, line in enumerate(
        ("set workspace timezone Asia/Kolkata", "set user:* spend_week 0.00001")
    ):
        url = rig.api.response_url(f"set{n}")
        await rig.command(ev.slash_command("/budget", line, user_id=boss, response_url=url))
        (done,) = await rig.api.wait_for_responses(f"set{n}")
        assert "set to" in done["text"], done["text"]
    await rig.command(ev.slash_command("/budget", response_url=rig.api.response_url("show")))
    (shown,) = await rig.api.wait_for_responses("show")
    monday = window_end("week", datetime.now(UTC), "Asia/Kolkata")
    assert monday.weekday() == 0
    line = next(x for x in shown["text"].splitlines() if "spend per week" in x)
    # The date is left out within a day of the reset (on a Kolkata Sunday): "resets 00:00".
    on = "" if monday - datetime.now(UTC) <= timedelta(days=1) else f" on {monday:%b %d}"
    assert f"resets 00:00 Asia/Kolkata{on})" in line, line

    await rig.command(ev.slash_command("/usage", response_url=rig.api.response_url("u")))
    (usage,) = await rig.api.wait_for_responses("u")
    assert "Today (since 00:00 Asia/Kolkata)" in usage["text"]

    payload = rig.api.seed_event(ev.app_mention("an expensive question"))
    await rig.post(payload)
    ts = payload["event"]["ts"]  # type: ignore[index]
    await wait_for(lambda: any("resets at" in t for t in rig.api.messages(DEFAULT_CHANNEL, ts)))
    (refused,) = [t for t in rig.api.messages(DEFAULT_CHANNEL, ts) if "resets at" in t]
    assert f"It resets at 00:00 Asia/Kolkata on {monday:%b %d}" in refused
    assert rig.sandbox.stats.total.requests == 0

    url = rig.api.response_url("bad")
    line = "set channel timezone Europe/Paris"
    await rig.command(ev.slash_command("/budget", line, user_id=boss, response_url=url))
    (bad,) = await rig.api.wait_for_responses("bad")
    assert "a time zone is set per workspace" in bad["text"]


@pytest.mark.parametrize("rig", [True], indirect=True)
async def test_where_slack_streams_the_answer_streams_into_the_thread(rig: Rig) -> None:
    payload = rig.api.seed_event(ev.app_mention("stream it please"))
    ts = payload["event"]["ts"]  # type: ignore[index]
    await rig.post(payload)
    await wait_for(lambda: bool(rig.api.calls_to("chat.stopStream")))
    await wait_for(lambda: bool(rig.api.calls_to("chat.delete")))
    thread = rig.api.messages(DEFAULT_CHANNEL, ts)
    (answer,) = [t for t in thread if t.startswith("Sandbox answer")]
    assert "stream it please" in answer
    assert "_Thinking…_" not in thread  # the placeholder made way for the stream
    start = rig.api.calls_to("chat.startStream")[0]
    assert (start["thread_ts"], start["recipient_user_id"]) == (ts, DEFAULT_USER)
    (row,) = await usage_rows(rig, 1)
    assert row.completion_tokens > 0


async def test_shutdown_lets_answers_under_way_finish(rig: Rig) -> None:
    rig.api.method_latency["chat.update"] = 0.3  # Slack is slow today
    payload = rig.api.seed_event(ev.app_mention("finish before you go"))
    ts = payload["event"]["ts"]  # type: ignore[index]
    await rig.post(payload)
    await rig.api.wait_for_calls("chat.postMessage")  # the placeholder: the answer is under way
    await rig.adapter.aclose()
    assert answered(rig, DEFAULT_CHANNEL, ts)


async def test_when_the_process_is_busy_channels_take_turns(rig: Rig) -> None:
    """One event worked on at a time (QUOTABOT_CONCURRENT_ANSWERS=1), and that turn taken:
    two questions arrive in one channel, then one in another. Nothing is posted for them
    (not even a placeholder) until a turn is free; then the other channel's question is
    answered second, not third. (Three questions: the free tier's 3 RPM.)"""
    admission = rig.app.service.admission = Admission(1)
    held = await admission.acquire("someone else's event")
    for i in range(2):
        await rig.post(rig.api.seed_event(ev.app_mention(f"busy {i}", channel="CBUSY00001")))
    await rig.post(rig.api.seed_event(ev.app_mention("a quiet channel", channel="CQUIET0001")))
    await wait_for(lambda: admission.waiting == 3)
    assert rig.api.calls_to("chat.postMessage") == []
    held.release()
    assert len(await usage_rows(rig, 3)) == 3
    order = [call["channel"] for call in rig.api.calls_to("chat.postMessage")]
    # (Which channel's event reached its turn first depends on database reads before it.)
    assert order.index("CQUIET0001") <= 1, order


async def test_an_event_still_waiting_its_turn_at_shutdown_is_told_to_ask_again(
    rig: Rig,
) -> None:
    admission = rig.app.service.admission = Admission(1)
    held = await admission.acquire("someone else's event")
    payload = rig.api.seed_event(ev.app_mention("will I be answered?"))
    await rig.post(payload)
    await wait_for(lambda: admission.waiting == 1)
    await rig.adapter.aclose(grace=0.1)
    held.release()
    said = rig.api.messages(DEFAULT_CHANNEL, payload["event"]["ts"])[-1]  # type: ignore[index]
    assert "restarting" in said and "ask again" in said
    assert rig.sandbox.stats.total.requests == 0


async def test_a_channel_whose_settings_cannot_be_read_gets_the_error_not_silence(
    rig: Rig,
) -> None:
    """The database cannot say whether the channel is enabled (here its table is gone): the
    asker is told something went wrong, instead of the message being dropped unanswered."""
    async with rig.app.db.session() as s, s.begin():
        await s.execute(text("DROP TABLE channel_settings"))
    payload = rig.api.seed_event(ev.app_mention("anyone there?", channel="CNEVERREAD"))
    ts = payload["event"]["ts"]  # type: ignore[index]
    assert (await rig.post(payload)).status_code == 200
    said = f":warning: {messages.INTERNAL}"
    await wait_for(lambda: said in rig.api.messages("CNEVERREAD", ts))
    assert rig.api.messages("CNEVERREAD", ts)[1:] == [said]


async def test_with_ack_after_claim_an_event_is_on_record_before_slack_hears_back(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack sends nothing again that it got a 200 for: with ``QUOTABOT_ACK_AFTER_CLAIM``,
    the claim, with the event, is written first (were this process killed after the 200,
    another one answers from it)."""
    rig.adapter.events.ack_wait = takeover.CLAIM_WAIT
    slow_claims(rig.adapter.events, 0.3, monkeypatch)
    payload = rig.api.seed_event(ev.app_mention("do you remember me?"))
    ts = payload["event"]["ts"]  # type: ignore[index]
    assert (await rig.post(payload)).status_code == 200
    async with rig.app.db.session() as s:
        kept = await s.scalar(select(SeenEvent.key).where(SeenEvent.key.endswith(ts)))
    assert kept == f"slack:{DEFAULT_WORKSPACE.team_id}:{DEFAULT_CHANNEL}:{ts}"
    await wait_for(lambda: answered(rig, DEFAULT_CHANNEL, ts))


@pytest.mark.parametrize("wait", [0.0, 0.1], ids=["default", "ack-after-claim"])
async def test_a_slow_database_does_not_hold_the_ack(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, wait: float
) -> None:
    """By default the ack does not wait for the database at all; with
    ``QUOTABOT_ACK_AFTER_CLAIM`` (1 s; 0.1 here) no longer than that, as Slack allows 3 s.
    Either way the answer waits for the claim: one answer, also for Slack's retry."""
    rig.adapter.events.ack_wait = wait
    slow_claims(rig.adapter.events, 1.0, monkeypatch)
    payload = rig.api.seed_event(ev.app_mention("are you there?"))
    ts = payload["event"]["ts"]  # type: ignore[index]
    started = time.monotonic()
    assert (await rig.post(payload)).status_code == 200
    assert time.monotonic() - started < wait + 0.5
    assert (await rig.post(payload, retry_num=1)).status_code == 200
    await wait_for(lambda: answered(rig, DEFAULT_CHANNEL, ts))
    await rig.settle()
    assert len(answered(rig, DEFAULT_CHANNEL, ts)) == 1
    assert len(await usage_rows(rig, 1)) == 1


@pytest.mark.parametrize("rig", [False, True], indirect=True, ids=["edits", "streaming"])
async def test_an_event_left_by_a_process_that_died_is_answered_by_another(rig: Rig) -> None:
    """A process acknowledged a question, claimed it, posted its placeholder and half an
    answer, and was killed. Once the claim's lease has run out, this process takes the event
    over: the asker ends with one message from the bot, the whole answer, and the event keeps
    nothing more in the database."""
    payload = rig.api.seed_event(ev.app_mention("what did I miss?"))
    event, ts = payload["event"], payload["event"]["ts"]  # type: ignore[index]
    key = f"slack:{DEFAULT_WORKSPACE.team_id}:{DEFAULT_CHANNEL}:{ts}"
    dead = EventLog(rig.app.db, lease=0.1)
    kept = {"event": event, "team": DEFAULT_WORKSPACE.team_id, "bot_user_id": BOT}
    assert await dead.first(key, kept)
    bot_id = DEFAULT_WORKSPACE.bot_id
    rig.api.seed_message(DEFAULT_CHANNEL, "_Thinking…_", user=BOT, thread_ts=ts, bot_id=bot_id)
    rig.api.seed_message(
        DEFAULT_CHANNEL, "Sandbox answer to wh …", user=BOT, thread_ts=ts, bot_id=bot_id
    )
    assert (await rig.post(payload, retry_num=1)).status_code == 200  # a late retry: no answer
    await asyncio.sleep(0.2)

    takeover = Takeover(rig.adapter.events, wait=0)
    takeover.on("slack:", rig.adapter.resume)
    [orphan] = await takeover.tick()
    assert orphan.key == key
    await asyncio.gather(*takeover.tasks)

    bot_messages = [m.text for m in rig.api.history(DEFAULT_CHANNEL, ts) if m.user == BOT]
    assert len(bot_messages) == 1 and bot_messages[0].startswith("Sandbox answer")
    assert "what did I miss" in bot_messages[0]
    assert len(await usage_rows(rig, 1)) == 1
    async with rig.app.db.session() as s:
        row = (await s.execute(select(SeenEvent).where(SeenEvent.key == key))).scalar_one()
        assert (row.payload, row.lease_until, row.attempts) == (None, None, 1)
    assert await takeover.tick() == []


@pytest.mark.parametrize("posted", [False, True], ids=["nothing-posted", "question-posted"])
async def test_an_ask_left_by_a_process_that_died_is_answered_by_another(
    rig: Rig, posted: bool
) -> None:
    """``/ask`` acknowledged and claimed by a process that was then killed, before or after
    it posted the question in the channel: the taking-over process posts the question only if
    it is not there yet, and answers under it, once."""
    form = ev.slash_command("/ask", "who took over?")
    kept = {"command": form, "team": DEFAULT_WORKSPACE.team_id, "bot_user_id": BOT}
    key = f"slack-cmd:{form['trigger_id']}"
    assert await EventLog(rig.app.db, lease=0.1).first(key, kept)
    question = f"<@{DEFAULT_USER}> asked: who took over?"
    if posted:
        root = rig.api.seed_message(
            DEFAULT_CHANNEL, question, user=BOT, bot_id=DEFAULT_WORKSPACE.bot_id
        )
        rig.api.seed_message(
            DEFAULT_CHANNEL,
            "_Thinking…_",
            user=BOT,
            thread_ts=root.ts,
            bot_id=DEFAULT_WORKSPACE.bot_id,
        )
    await asyncio.sleep(0.2)
    takeover = Takeover(rig.adapter.events, wait=0)
    takeover.on("slack-cmd:", rig.adapter.resume)
    assert [o.key for o in await takeover.tick()] == [key]
    await asyncio.gather(*takeover.tasks)

    (asked,) = [m for m in rig.api.history(DEFAULT_CHANNEL) if m.text == question]
    replies = [m.text for m in rig.api.history(DEFAULT_CHANNEL, asked.ts) if m.ts != asked.ts]
    assert len(replies) == 1 and replies[0].startswith("Sandbox answer"), replies
    assert len(await usage_rows(rig, 1)) == 1


async def test_usage_dashboard_gives_an_admin_a_link_to_their_workspace(rig: Rig) -> None:
    await rig.command(
        ev.slash_command("/usage", "dashboard", response_url=rig.api.response_url("no"))
    )
    (refused,) = await rig.api.wait_for_responses("no")
    assert refused["response_type"] == "ephemeral" and "Only admins" in refused["text"]

    rig.api.add_user("U0BOSS0001", is_admin=True)
    asked = ev.slash_command("/usage", "dashboard", user_id="U0BOSS0001")
    await rig.command({**asked, "response_url": rig.api.response_url("yes")})
    (told,) = await rig.api.wait_for_responses("yes")
    assert told["response_type"] == "ephemeral"
    url = told["text"].split(": ")[-1].strip("<>")
    assert "/dashboard?t=" in url
    scope, _ = links_for(rig.app.settings).read(url.split("t=")[1])
    assert (scope.platform, scope.workspace) == ("slack", DEFAULT_WORKSPACE.team_id)
