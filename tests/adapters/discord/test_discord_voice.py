"""Voice messages and audio files on Discord, end to end: real recordings served as
attachments by the fake Discord API (as its CDN would), /transcribe over HTTP interactions
and through discord.py's command tree, voice messages over the gateway, the sandbox
transcribing. What is asserted is what the Discord user sees, and the usage rows."""

from __future__ import annotations

from decimal import Decimal

from fakes.discord_api import (
    BOT_ID,
    CHANNEL,
    DM_CHANNEL,
    IS_VOICE_MESSAGE,
    interaction,
    message,
    option,
    resolved,
    user,
)
from fakes.recordings import encoded, voice_webm, wav
from tests.adapters.discord import test_discord_gateway as gateway_tests
from tests.adapters.discord import test_discord_http as http_tests

# The two rigs of the adapter's tests: HTTP interactions, and discord.py's gateway client.
rig = http_tests.rig
gateway = gateway_tests.rig
BOT = user(BOT_ID, name="quotabot", bot=True)


def transcribe(attachment: dict[str, object], question: str | None = None) -> dict[str, object]:
    options = [option("file", attachment["id"], 11)]
    if question:
        options.append(option("question", question))
    return resolved(interaction("transcribe", options), attachment)


async def test_slash_transcribe_answers_with_the_transcript(rig: http_tests.Rig) -> None:
    memo = rig.api.add_attachment(encoded("ogg", 4.0), "memo.ogg", "audio/ogg")
    said = await rig.ask(transcribe(memo))
    (text,) = said
    assert text.startswith("**Transcript** (0:04 · $0.000400 · whisper-1)\n")
    assert "Sandbox transcript of 4.0 s of audio" in text
    assert rig.api.downloads == [memo["id"]]
    (row,) = await rig.app.usage.rows()
    assert (row.platform, row.endpoint, row.audio_seconds, row.cost) == (
        "discord",
        "transcriptions",
        4.0,
        Decimal("0.0004"),
    )


async def test_slash_transcribe_with_a_question_answers_it_too(rig: http_tests.Rig) -> None:
    memo = rig.api.add_attachment(wav(2.0), "call.wav", "audio/wav")
    (text,) = await rig.ask(transcribe(memo, "who should follow up?"))
    transcript, answer = text.split("\n\n", 1)
    assert transcript.startswith("**Transcript** (0:02")
    assert answer.startswith("Sandbox answer")
    rows = await rig.app.usage.rows()
    assert sorted(r.endpoint for r in rows) == ["chat", "transcriptions"]


async def test_slash_transcribe_refusals(rig: http_tests.Rig) -> None:
    big = rig.api.add_attachment(wav(1.0), "all-hands.wav", "audio/wav", size=30 * 1024 * 1024)
    (too_big,) = await rig.ask(transcribe(big))
    assert too_big == (
        "⚠️ This file is 30.0 MB, but the transcription service takes files up to 25.0 MB. "
        "Send a shorter or more compressed recording."
    )
    photo = rig.api.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(64), "cat.png", "image/png")
    (unsupported,) = await rig.ask(transcribe(photo))
    assert unsupported == (
        "⚠️ cat.png is not in an audio format quotabot can transcribe. "
        "These work: mp3, m4a, ogg/opus, wav, webm, flac."
    )
    assert rig.api.downloads == [photo["id"]]  # the big one never was
    assert rig.sandbox.stats.total.requests == 0


async def test_a_voice_message_in_a_dm_is_transcribed(gateway: gateway_tests.Rig) -> None:
    clip = gateway.api.add_attachment(
        voice_webm(2.0), "voice-message.ogg", "audio/ogg", channel=DM_CHANNEL, duration=2.0
    )
    note = message("", channel=DM_CHANNEL, guild=None, attachments=[clip], flags=IS_VOICE_MESSAGE)
    (said,) = await gateway.message(note)
    assert said.startswith("**Transcript** (0:03 · $0.000300 · whisper-1)")
    (reply,) = gateway.api.channels[DM_CHANNEL]
    assert reply.reply_to == note["id"]
    (row,) = await gateway.app.usage.rows()
    assert (row.workspace, row.channel, row.audio_seconds) == ("@me", DM_CHANNEL, 3.0)


async def test_a_mention_with_audio_and_a_question(gateway: gateway_tests.Rig) -> None:
    memo = gateway.api.add_attachment(encoded("m4a", 3.0), "standup.m4a", "audio/mp4")
    asked = message(f"<@{BOT_ID}> what did we decide?", mentions=[BOT], attachments=[memo])
    (said,) = await gateway.message(asked)
    transcript, answer = said.split("\n\n", 1)
    assert transcript.startswith("**Transcript** (0:04")
    assert answer.startswith("Sandbox answer")
    assert gateway.api.channels[CHANNEL][0].reply_to == asked["id"]


async def test_slash_transcribe_through_the_command_tree(gateway: gateway_tests.Rig) -> None:
    memo = gateway.api.add_attachment(encoded("mp3", 2.0), "memo.mp3", "audio/mpeg")
    payload = transcribe(memo)
    await gateway.event("interaction_create", payload)
    (said,) = gateway.api.thread(payload["token"])
    assert said.content.startswith("**Transcript** (0:03")
    assert not said.ephemeral
