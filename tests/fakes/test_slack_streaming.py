"""chat.startStream / appendStream / stopStream, driven by slack-sdk's own ChatStream helper."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from fakes.slack_api import FakeSlackAPI
from fakes.slack_workspace import DEFAULT_WORKSPACE as WS

CHANNEL = "C0TESTCHAN"
DM = "D0TESTUSER"


async def test_chat_stream_helper_builds_one_message(
    api: FakeSlackAPI, client: AsyncWebClient
) -> None:
    parent = api.seed_message(CHANNEL, "explain", user="U0ASKER")
    streamer = await client.chat_stream(
        channel=CHANNEL,
        thread_ts=parent.ts,
        recipient_team_id=WS.team_id,
        recipient_user_id="U0ASKER",
        buffer_size=4,
    )
    await streamer.append(markdown_text="Hello")
    assert streamer.ts is not None
    assert api.message(CHANNEL, streamer.ts).streaming
    await streamer.append(markdown_text=", wor")
    assert api.messages(CHANNEL, thread_ts=parent.ts) == ["explain", "Hello, wor"]
    stopped = await streamer.stop(markdown_text="ld!")

    assert api.messages(CHANNEL, thread_ts=parent.ts) == ["explain", "Hello, world!"]
    assert not api.message(CHANNEL, streamer.ts).streaming
    assert stopped["message"]["text"] == "Hello, world!"
    assert [c.method for c in api.calls] == [
        "chat.startStream",
        "chat.appendStream",
        "chat.stopStream",
    ]
    # slack-sdk sends the text as markdown_text chunks in a JSON body.
    assert api.calls_to("chat.appendStream")[0]["chunks"] == [
        {"type": "markdown_text", "text": ", wor"}
    ]
    assert api.exchanges[0].content_type == "application/json"


async def test_raw_stream_calls_in_a_dm(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    parent = api.seed_message(DM, "hi", user="U0ASKER")
    # In a DM the recipient fields are optional.
    started = await client.chat_startStream(channel=DM, thread_ts=parent.ts, markdown_text="a")
    await client.chat_appendStream(channel=DM, ts=started["ts"], markdown_text="b")
    await client.chat_stopStream(channel=DM, ts=started["ts"])
    assert api.messages(DM, thread_ts=parent.ts) == ["hi", "ab"]

    with pytest.raises(SlackApiError) as stopped:
        await client.chat_appendStream(channel=DM, ts=started["ts"], markdown_text="c")
    assert stopped.value.response["error"] == "message_not_in_streaming_state"


async def test_channel_stream_needs_recipients(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as failure:
        await client.chat_startStream(channel=CHANNEL, thread_ts="1.000001", markdown_text="x")
    assert failure.value.response["error"] == "missing_recipient_team_id"


async def test_streaming_can_be_switched_off(api: FakeSlackAPI, client: AsyncWebClient) -> None:
    api.streaming_supported = False
    with pytest.raises(SlackApiError) as failure:
        await client.chat_startStream(channel=DM, thread_ts="1.000001", markdown_text="x")
    assert failure.value.response["error"] == "unknown_method"
    api.streaming_error = "missing_scope"
    with pytest.raises(SlackApiError) as other:
        await client.chat_startStream(channel=DM, thread_ts="1.000001", markdown_text="x")
    assert other.value.response["error"] == "missing_scope"
    assert api.messages(DM) == []
