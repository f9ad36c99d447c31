"""POST /v1/audio/transcriptions: multipart in, OpenAI's answers, errors and limits out."""

from __future__ import annotations

import httpx

from fakes.recordings import encoded, wav
from tests.bot.sandbox.conftest import FakeClock, Serve

DOCS = "Visit https://platform.openai.com/account/rate-limits to learn more."


async def transcribe(
    client: httpx.AsyncClient,
    data: bytes,
    *,
    name: str = "memo.wav",
    model: str = "whisper-1",
    **fields: str,
) -> httpx.Response:
    return await client.post(
        "/audio/transcriptions",
        data={"model": model, **fields},
        files={"file": (name, data, "application/octet-stream")},
    )


async def test_whisper_reports_billed_seconds_and_the_same_file_reads_the_same(
    serve: Serve,
) -> None:
    server, client = await serve()
    recording = wav(2.5)
    first = await transcribe(client, recording)
    second = await transcribe(client, recording)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["usage"] == {"type": "duration", "seconds": 3}
    assert body["text"].startswith("Sandbox transcript of 2.5 s of audio")
    assert second.json()["text"] == body["text"]
    assert first.headers["x-ratelimit-limit-requests"] == "3"  # Whisper's own, not 60
    stats = (await client.get(server.url + "/sandbox/stats")).json()
    assert stats["models"]["whisper-1"]["audio_seconds"] == 6
    assert stats["models"]["whisper-1"]["requests"] == 2


async def test_the_gpt_4o_models_report_tokens_and_text_is_plain(serve: Serve) -> None:
    _, client = await serve()
    r = await transcribe(client, encoded("mp3", 2.0), name="x.mp3", model="gpt-4o-transcribe")
    usage = r.json()["usage"]
    assert usage["type"] == "tokens"
    assert usage["input_token_details"]["audio_tokens"] == usage["input_tokens"] >= 20
    plain = await transcribe(
        client,
        encoded("ogg", 1.0),
        name="x.ogg",
        model="gpt-4o-mini-transcribe",
        response_format="text",
    )
    assert plain.headers["content-type"].startswith("text/plain")
    assert plain.text.startswith("Sandbox transcript of 1.0 s")


async def test_over_25_mb_is_a_413_and_other_files_a_400(serve: Serve) -> None:
    _, client = await serve()
    big = await transcribe(client, b"RIFF" + bytes(25 * 1024 * 1024 + 10))
    assert big.status_code == 413
    assert big.json()["error"]["message"] == (
        "Maximum content size limit (26214400) exceeded (26214414 bytes read)"
    )
    junk = await transcribe(client, b"not audio at all", name="notes.txt")
    assert junk.status_code == 400
    assert junk.json()["error"]["message"].startswith("Invalid file format. Supported formats:")
    chat = await transcribe(client, wav(1.0), model="gpt-4o-mini")
    assert chat.status_code == 400
    assert "not supported for transcription" in chat.json()["error"]["message"]


async def test_three_a_minute_then_429_until_the_bucket_refills(
    serve: Serve, clock: FakeClock
) -> None:
    _, client = await serve()
    recording = wav(1.0)
    for _ in range(3):
        assert (await transcribe(client, recording)).status_code == 200
    refused = await transcribe(client, recording)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["message"] == (
        "Rate limit reached for whisper-1 in organization org-sandbox on requests per min "
        f"(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. {DOCS}"
    )
    assert refused.headers["retry-after"] == "20"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    clock.advance(20)
    assert (await transcribe(client, recording)).status_code == 200
    # Chat models keep their own buckets: Whisper's 429 took nothing from them.
    chat = await client.post(
        "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.headers["x-ratelimit-limit-requests"] == "60"


async def test_requests_per_day_are_counted_too(serve: Serve, clock: FakeClock) -> None:
    _, client = await serve(audio_rpm=100, audio_rpd=2)
    recording = wav(1.0)
    assert (await transcribe(client, recording)).status_code == 200
    assert (await transcribe(client, recording)).status_code == 200
    refused = await transcribe(client, recording)
    assert refused.status_code == 429
    assert "on requests per day (RPD): Limit 2, Used 2" in refused.json()["error"]["message"]
