"""Voice clips and audio files in Slack, end to end: real recordings shared as Slack file
objects (served by the fake Slack API at their url_private_download), signed events and
shortcut payloads posted to quotabot, the sandbox transcribing. What is asserted is what a
Slack user would see in the thread, and the usage rows."""

from __future__ import annotations

from decimal import Decimal

import httpx
from aiohttp import web

from bot.messages import format_cost
from fakes import slack_events as ev
from fakes.recordings import encoded, voice_webm, wav
from fakes.slack_workspace import DEFAULT_CHANNEL, DEFAULT_DM
from tests.adapters.slack import test_slack_http
from tests.adapters.slack.test_slack_http import SECRET, Rig, usage_rows, wait_for

rig = test_slack_http.rig  # the same rig: quotabot on HTTP, the fake Slack API, the sandbox


def thread(rig: Rig, channel: str, ts: str) -> list[str]:
    return rig.api.messages(channel, ts)


def transcripts(rig: Rig, channel: str, ts: str) -> list[str]:
    return [t for t in thread(rig, channel, ts) if t.startswith("*Transcript*")]


async def test_a_voice_clip_in_a_dm_is_transcribed_in_its_thread(rig: Rig) -> None:
    clip = rig.api.add_file(
        voice_webm(3.0), "audio_message.webm", "audio/webm", subtype="slack_audio"
    )
    payload = rig.api.seed_event(ev.with_files(ev.direct_message(""), [clip]))
    ts = payload["event"]["ts"]
    await rig.post(payload)
    await wait_for(lambda: transcripts(rig, DEFAULT_DM, ts))
    (text,) = transcripts(rig, DEFAULT_DM, ts)
    # 3.001 s measured (Opus starts a millisecond late): billed as 4 whole seconds.
    assert text.startswith(
        "*Transcript* (0:04 · $0.000400 · whisper-1)\nSandbox transcript of 3.0 s"
    )
    assert rig.api.downloads == [clip["id"]]  # downloaded once, with the bot token
    (row,) = await usage_rows(rig, 1)
    assert (row.endpoint, row.model, row.audio_seconds, row.cost) == (
        "transcriptions",
        "whisper-1",
        4.0,
        Decimal("0.0004"),
    )
    assert row.thread == ts
    # Nothing was asked with it: no chat completion.
    assert rig.sandbox.stats.model("gpt-3.5-turbo").requests == 0


async def test_a_mention_with_audio_and_a_question_gets_the_transcript_then_the_answer(
    rig: Rig,
) -> None:
    memo = rig.api.add_file(encoded("mp3", 5.0), "standup.mp3", "audio/mpeg")
    payload = rig.api.seed_event(
        ev.with_files(ev.app_mention("what are the action items?"), [memo])
    )
    ts = payload["event"]["ts"]
    twin = ev.with_files(ev.message(payload["event"]["text"], ts=ts), [memo])
    await rig.post(payload)
    await rig.post(twin)  # the message event of the same post: one answer, not two
    await wait_for(
        lambda: any(t.startswith("Sandbox answer") for t in thread(rig, DEFAULT_CHANNEL, ts))
    )
    texts = thread(rig, DEFAULT_CHANNEL, ts)
    (transcript,) = transcripts(rig, DEFAULT_CHANNEL, ts)
    answer = next(t for t in texts if t.startswith("Sandbox answer"))
    assert texts.index(transcript) < texts.index(answer)
    assert "0:06 · $0.000600 · whisper-1" in transcript  # 5.1 s of mp3, billed as 6
    audio_row, chat_row = sorted(await usage_rows(rig, 2), key=lambda r: r.endpoint)[::-1]
    assert (audio_row.endpoint, audio_row.audio_seconds) == ("transcriptions", 6.0)
    assert (chat_row.endpoint, chat_row.audio_seconds) == ("chat", 0.0)
    assert chat_row.prompt_tokens > 30  # the transcript went with the question
    assert rig.sandbox.stats.model("whisper-1").requests == 1


async def test_the_transcribe_shortcut_on_a_message_with_a_recording(rig: Rig) -> None:
    memo = rig.api.add_file(encoded("m4a", 2.0), "Memo 12.m4a", "audio/mp4")
    posted = rig.api.seed_event(ev.with_files(ev.message("from the call"), [memo]))
    message = posted["event"]
    # Not addressed to the bot: the post itself is not answered...
    await rig.post(posted)
    response = await ev.post_interactivity(
        rig.http,
        rig.url,
        ev.message_shortcut(message, response_url=rig.api.response_url("s")),
        SECRET,
    )
    assert response.status_code == 200
    await wait_for(lambda: transcripts(rig, DEFAULT_CHANNEL, message["ts"]))
    (text,) = transcripts(rig, DEFAULT_CHANNEL, message["ts"])
    assert text.startswith("*Transcript* (0:03 · $0.000300 · whisper-1)")
    assert rig.sandbox.stats.model("whisper-1").requests == 1

    plain = rig.api.seed_event(ev.message("no audio here"))["event"]
    await ev.post_interactivity(
        rig.http,
        rig.url,
        ev.message_shortcut(plain, response_url=rig.api.response_url("n")),
        SECRET,
    )
    (said,) = await rig.api.wait_for_responses("n")
    assert said["text"].startswith("This message has no voice clip or audio file")
    assert "mp3, m4a, ogg/opus, wav, webm" in said["text"]


async def test_refusals_say_the_limit_and_the_files_size_or_length(rig: Rig) -> None:
    big = rig.api.add_file(wav(1.0), "meeting.wav", "audio/wav", size=40 * 1024 * 1024)
    odd = rig.api.add_file(b"\x00" * 2000, "voice.aac", "audio/aac")
    long = rig.api.add_file(wav(30.0), "rant.wav", "audio/wav")
    await rig.app.limits.set(f"channel:{DEFAULT_DM}", "spend_day", "0.001", by="test")
    await rig.app.budget.reload()
    posts = []
    for f in (big, odd, long):
        p = rig.api.seed_event(ev.with_files(ev.direct_message(""), [f]))
        posts.append(p["event"]["ts"])
        await rig.post(p)

    def warning(ts: str) -> str | None:
        found = [t for t in thread(rig, DEFAULT_DM, ts) if t.startswith(":warning:")]
        return found[0] if found else None

    await wait_for(lambda: all(warning(ts) for ts in posts))
    too_big, unsupported, over = (warning(ts) for ts in posts)
    assert too_big == (
        ":warning: This file is 40.0 MB, but the transcription service takes files up to "
        "25.0 MB. Send a shorter or more compressed recording."
    )
    assert unsupported is not None and "voice.aac is not in an audio format" in unsupported
    assert "These work: mp3, m4a, ogg/opus, wav, webm, flac." in unsupported
    assert over is not None
    assert over.startswith(":warning: This recording is 0:30 long and may cost up to $0.003000")
    assert "this channel's spend per day: $0.000000 of $0.001000 used" in over
    assert "It resets at 00:00 UTC" in over
    assert big["id"] not in rig.api.downloads  # refused on its size, never downloaded
    assert rig.sandbox.stats.model("whisper-1").requests == 0
    assert await rig.app.usage.rows() == []


async def test_usage_shows_audio_minutes_and_spend_beside_tokens(rig: Rig) -> None:
    memo = rig.api.add_file(wav(90.0), "long.wav", "audio/wav")
    payload = rig.api.seed_event(ev.with_files(ev.app_mention("summarise it"), [memo]))
    ts = payload["event"]["ts"]
    await rig.post(payload)
    await wait_for(
        lambda: any(t.startswith("Sandbox answer") for t in thread(rig, DEFAULT_CHANNEL, ts))
    )
    audio, chat = sorted(await usage_rows(rig, 2), key=lambda r: r.endpoint, reverse=True)
    total = audio.cost + chat.cost
    tokens = chat.prompt_tokens + chat.completion_tokens
    await rig.command(ev.slash_command("/usage", response_url=rig.api.response_url("u")))
    (usage,) = await rig.api.wait_for_responses("u")
    expected = f"2 requests, {tokens:,} tokens, {format_cost(total)} (audio: 1.5 min, $0.009000)"
    assert f"This channel: {expected}" in usage["text"]
    assert f"This workspace: {expected}" in usage["text"]


def test_the_bot_token_only_goes_to_slacks_file_host() -> None:
    from adapters.slack.voice import file_hosts

    def allowed(url: str, api_url: str | None = None) -> bool:
        return file_hosts(api_url).allows(httpx.URL(url))

    assert allowed("https://files.slack.com/files-pri/T1-F1/download/a.webm")
    assert allowed("https://files.slack.com:443/files-pri/T1-F1/a.webm")
    assert not allowed("http://files.slack.com/files-pri/T1-F1/a.webm")  # not TLS
    assert not allowed("https://files.slack.com:8443/files-pri/T1-F1/a.webm")
    assert not allowed("https://files.slack.com.example.net/a.webm")
    assert not allowed("https://slack.com/api/auth.test")  # the Web API echoes the token
    assert not allowed("https://example.com/a.webm")
    local = "http://127.0.0.1:8123/api/"
    assert allowed("http://127.0.0.1:8123/files-pri/T1-F1/a.webm", local)
    assert not allowed("http://127.0.0.1:9999/files-pri/T1-F1/a.webm", local)
    assert not allowed("https://127.0.0.1:8123/files-pri/T1-F1/a.webm", local)


async def test_a_redirect_on_slacks_file_host_is_followed(rig: Rig) -> None:
    """files.slack.com may send a file on to another of its own paths: followed (three times
    at most), the token with it. Off its host, never (tests/attacks/test_outbound.py)."""
    target = rig.api.add_file(wav(1.0), "memo.wav", "audio/wav")

    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(target["url_private_download"])

    shared = rig.api.add_file(b"", "memo.wav", "audio/wav", serve=moved)
    payload = rig.api.seed_event(ev.with_files(ev.direct_message(""), [shared]))
    ts = payload["event"]["ts"]
    await rig.post(payload)
    await wait_for(lambda: transcripts(rig, DEFAULT_DM, ts))
    assert rig.api.downloads == [shared["id"], target["id"]]  # both with the bot token


async def test_a_clips_stated_length_goes_to_the_budget_check_only() -> None:
    from adapters.slack.voice import attachments, file_hosts

    clip = {"name": "audio_message.webm", "mimetype": "audio/webm", "size": 9000}
    async with httpx.AsyncClient() as http:
        found = attachments(
            [{**clip, "duration_ms": 4400}, clip], http=http, token="xoxb-1", hosts=file_hosts(None)
        )
    assert [a.seconds for a in found] == [4.4, None]
