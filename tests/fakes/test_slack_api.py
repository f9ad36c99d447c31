"""FakeSlackAPI answers slack-sdk's real AsyncWebClient as Slack would."""

from __future__ import annotations

import time

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from fakes import slack_events
from fakes.slack_api import FakeSlackAPI
from fakes.slack_workspace import DEFAULT_WORKSPACE as WS
from tests.fakes.conftest import TOKEN

CHANNEL = "C0TESTCHAN"


async def test_auth_test_names_the_bot(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    response = await client.auth_test()
    assert response["user_id"] == WS.bot_user_id
    assert response["team_id"] == WS.team_id
    assert response["bot_id"] == WS.bot_id
    assert "chat:write" in response.headers["X-OAuth-Scopes"]
    assert api.calls == [("auth.test", {})]
    assert api.exchanges[0].token == TOKEN


async def test_wrong_or_missing_token_is_refused(api: FakeSlackAPI) -> None:
    with pytest.raises(SlackApiError) as wrong:
        await AsyncWebClient(token="xoxb-wrong", base_url=api.url).auth_test()
    assert wrong.value.response["error"] == "invalid_auth"
    assert wrong.value.response.status_code == 200
    with pytest.raises(SlackApiError) as missing:
        await AsyncWebClient(base_url=api.url).auth_test()
    assert missing.value.response["error"] == "not_authed"


async def test_form_body_with_token_parameter(api: FakeSlackAPI) -> None:
    anonymous = AsyncWebClient(base_url=api.url)
    blocks = '[{"type":"section","text":{"type":"mrkdwn","text":"from blocks"}}]'
    response = await anonymous.api_call(
        "chat.postMessage", data={"token": TOKEN, "channel": CHANNEL, "blocks": blocks}
    )
    assert response["ok"]
    assert api.exchanges[0].content_type == "application/x-www-form-urlencoded"
    assert api.calls_to("chat.postMessage") == [{"channel": CHANNEL, "blocks": blocks}]
    assert api.messages(CHANNEL) == ["from blocks"]


async def test_unknown_method(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as failure:
        await client.api_call("chat.teleport")
    assert failure.value.response["error"] == "unknown_method"


async def test_post_in_thread_and_read_it_back(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    parent = api.seed_message(CHANNEL, "what is 2+2?", user="U0ASKER")
    posted = await client.chat_postMessage(channel=CHANNEL, text="4", thread_ts=parent.ts)
    assert posted["channel"] == CHANNEL
    assert posted["message"]["thread_ts"] == parent.ts
    assert posted["message"]["bot_id"] == WS.bot_id
    assert posted["message"]["parent_user_id"] == "U0ASKER"
    await client.chat_postMessage(channel=CHANNEL, text="top level")

    replies = await client.conversations_replies(channel=CHANNEL, ts=parent.ts)
    assert [m["text"] for m in replies["messages"]] == ["what is 2+2?", "4"]
    assert replies["messages"][0]["reply_count"] == 1
    assert api.messages(CHANNEL, thread_ts=parent.ts) == ["what is 2+2?", "4"]
    assert api.messages(CHANNEL) == ["what is 2+2?", "top level"]
    api.assert_received_count("chat.postMessage", 2)
    assert api.exchanges[-1].http_method == "GET"

    with pytest.raises(SlackApiError) as missing:
        await client.conversations_replies(channel=CHANNEL, ts="1.000001")
    assert missing.value.response["error"] == "thread_not_found"


async def test_replies_paginate(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    parent = api.seed_message(CHANNEL, "q")
    for text in ("a", "b", "c"):
        await client.chat_postMessage(channel=CHANNEL, text=text, thread_ts=parent.ts)
    texts = []
    async for page in await client.conversations_replies(channel=CHANNEL, ts=parent.ts, limit=2):
        texts += [m["text"] for m in page["messages"]]
    assert texts == ["q", "a", "b", "c"]


async def test_update_and_delete_own_messages_only(
    api: FakeSlackAPI, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel=CHANNEL, text="thinking…")
    updated = await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="done")
    assert updated["text"] == "done"
    assert api.messages(CHANNEL) == ["done"]
    assert api.message(CHANNEL, posted["ts"]).edited_ts is not None

    theirs = api.seed_message(CHANNEL, "mine", user="U0OTHER")
    for call, error in (
        (client.chat_update(channel=CHANNEL, ts=theirs.ts, text="x"), "cant_update_message"),
        (client.chat_update(channel=CHANNEL, ts="9.000009", text="x"), "message_not_found"),
        (client.chat_delete(channel=CHANNEL, ts=theirs.ts), "cant_delete_message"),
    ):
        with pytest.raises(SlackApiError) as failure:
            await call
        assert failure.value.response["error"] == error

    await client.chat_delete(channel=CHANNEL, ts=posted["ts"])
    assert api.messages(CHANNEL) == ["mine"]


async def test_post_to_a_user_id_lands_in_their_dm(
    api: FakeSlackAPI, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="U0ALICE", text="hello")
    assert posted["channel"].startswith("D")
    assert api.messages(posted["channel"]) == ["hello"]
    info = await client.conversations_info(channel=posted["channel"])
    assert info["channel"]["is_im"] and info["channel"]["user"] == "U0ALICE"


async def test_ephemeral_is_not_in_history(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    response = await client.chat_postEphemeral(channel=CHANNEL, user="U0ALICE", text="only you")
    assert response["message_ts"]
    assert api.messages(CHANNEL) == []
    [ephemeral] = api.ephemerals(CHANNEL)
    assert (ephemeral.user, ephemeral.text) == ("U0ALICE", "only you")


async def test_empty_message_is_refused(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as failure:
        await client.api_call("chat.postMessage", json={"channel": CHANNEL})
    assert failure.value.response["error"] == "no_text"


async def test_users_and_channels(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    api.add_user("U0ADMIN", name="ada", is_admin=True)
    admin = (await client.users_info(user="U0ADMIN"))["user"]
    assert (admin["name"], admin["is_admin"], admin["is_owner"]) == ("ada", True, False)
    member = (await client.users_info(user="U0SOMEONE"))["user"]
    assert member["is_admin"] is False
    bot = (await client.users_info(user=WS.bot_user_id))["user"]
    assert bot["is_bot"] is True
    with pytest.raises(SlackApiError) as failure:
        await client.users_info(user="nobody")
    assert failure.value.response["error"] == "user_not_found"

    api.add_channel("C0PRIVATE", name="secret", is_private=True)
    private = await client.conversations_info(channel="C0PRIVATE", include_num_members=True)
    assert private["channel"]["is_private"] and private["channel"]["num_members"] == 3
    public = (await client.conversations_info(channel=CHANNEL))["channel"]
    assert public["is_channel"] and "num_members" not in public
    with pytest.raises(SlackApiError) as missing:
        await client.conversations_info(channel="#general")
    assert missing.value.response["error"] == "channel_not_found"


async def test_reactions_on_a_seen_message(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    payload = api.seed_event(slack_events.app_mention("hi", channel=CHANNEL))
    ts = payload["event"]["ts"]
    await client.reactions_add(channel=CHANNEL, name="hourglass", timestamp=ts)
    assert api.message(CHANNEL, ts).reactions == {"hourglass": [WS.bot_user_id]}
    with pytest.raises(SlackApiError) as again:
        await client.reactions_add(channel=CHANNEL, name="hourglass", timestamp=ts)
    assert again.value.response["error"] == "already_reacted"
    with pytest.raises(SlackApiError) as unseen:
        await client.reactions_add(channel=CHANNEL, name="eyes", timestamp="1.000001")
    assert unseen.value.response["error"] == "message_not_found"


async def test_files_upload_v2_round_trip(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    await client.files_upload_v2(
        channel=CHANNEL, content="a,b\n1,2\n", filename="usage.csv", initial_comment="usage"
    )
    [upload] = api.uploads.values()
    assert upload.content == b"a,b\n1,2\n"
    assert upload.completed is not None and upload.completed["channel_id"] == CHANNEL
    assert [c.method for c in api.calls] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


async def test_rate_limit_is_retried_by_slack_sdk(api: FakeSlackAPI) -> None:
    # retry_after=0 keeps this fast: slack-sdk sleeps Retry-After plus up to 1 s of jitter.
    api.rate_limit("chat.postMessage", times=1, retry_after=0)
    client = AsyncWebClient(
        token=TOKEN,
        base_url=api.url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    response = await client.chat_postMessage(channel=CHANNEL, text="eventually")
    assert response["ok"]
    assert [e.status for e in api.exchanges] == [429, 200]
    assert api.messages(CHANNEL) == ["eventually"]


async def test_rate_limit_without_a_retry_handler(
    api: FakeSlackAPI, client: AsyncWebClient
) -> None:
    api.rate_limit("chat.update", retry_after=7)
    with pytest.raises(SlackApiError) as failure:
        await client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert failure.value.response.status_code == 429
    assert failure.value.response.headers["Retry-After"] == "7"
    assert failure.value.response["error"] == "ratelimited"


async def test_fail_then_recover(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    api.fail("auth.test", 1)
    api.fail("auth.test", 1, error="fatal_error", status=200)
    statuses = []
    for _ in range(2):
        with pytest.raises(SlackApiError) as failure:
            await client.auth_test()
        statuses.append((failure.value.response.status_code, failure.value.response["error"]))
    assert statuses == [(500, "internal_error"), (200, "fatal_error")]
    assert (await client.auth_test())["ok"]


async def test_latency(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    api.method_latency["auth.test"] = 0.1
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started >= 0.1


async def test_wait_for_calls_reports_what_it_saw(
    api: FakeSlackAPI, client: AsyncWebClient
) -> None:
    await client.auth_test()
    await api.wait_for_calls("auth.test")
    with pytest.raises(AssertionError, match=r"got 0; all calls: \['auth.test'\]"):
        await api.wait_for_calls("chat.postMessage", within=0.05)


async def test_response_url_catcher(api: FakeSlackAPI) -> None:
    webhook = AsyncWebhookClient(api.response_url("abc"))
    response = await webhook.send(text="working on it", response_type="ephemeral")
    assert response.status_code == 200
    assert api.responses("abc") == [{"text": "working on it", "response_type": "ephemeral"}]
    assert api.responses("other") == []
