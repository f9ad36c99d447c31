"""Service.transcribe against a real sandbox: the same budgets, accounting and refusals as a
question, with the recording's measured length as what is reserved and recorded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

import pytest

from bot import voice
from bot.admission import Admission
from bot.audio import clip
from bot.budget.policy import Who
from bot.catalog import Catalog
from bot.errors import (
    AudioOverBudget,
    AudioUnsupported,
    BadRequest,
    BudgetExceeded,
    ChannelDisabled,
    NotAChatModel,
    WaitTooLong,
)
from bot.models import TranscriptionRequest
from bot.provider import OpenAIClient
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store import Database
from fakes.recordings import encoded, wav
from tests.bot.service.test_service import ask, make_service

_where: list[Path] = []
"""The running test's directory: a clip is a file on disk, as a download is."""


@pytest.fixture(autouse=True)
def _recordings_dir(tmp_path: Path) -> Iterator[None]:
    _where.append(tmp_path)
    yield
    _where.pop()


def recording(data: bytes, name: str = "memo.wav", **kw: object) -> TranscriptionRequest:
    path = _where[-1] / uuid.uuid4().hex
    path.write_bytes(data)
    fields: dict[str, object] = {
        "platform": "slack",
        "workspace": "T1",
        "channel": "C1",
        "user": "U1",
        "clip": clip(name, path),
    }
    fields.update(kw)
    return TranscriptionRequest(**fields)  # type: ignore[arg-type]


async def test_a_transcript_is_recorded_with_its_seconds_and_cost(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    t = await service.transcribe(recording(wav(2.5)))
    assert t.text.startswith("Sandbox transcript of 2.5 s of audio")
    assert (t.model, t.seconds) == ("whisper-1", 3)
    assert t.cost == Decimal("0.006") * 3 / 60 == Decimal("0.0003")
    (row,) = await service.usage.rows()
    assert (row.endpoint, row.model, row.outcome) == ("transcriptions", "whisper-1", "ok")
    assert (row.audio_seconds, row.cost, row.prompt_tokens) == (3.0, Decimal("0.0003"), 0)
    (line,) = await service.usage.report(by="model")
    assert (line.audio_seconds, line.cost) == (3.0, Decimal("0.0003"))
    assert sandbox.stats.model("whisper-1").audio_seconds == 3
    metrics = service.metrics.render().decode()
    assert 'quotabot_audio_seconds_total{model="whisper-1"} 3.0' in metrics
    assert 'quotabot_cost_usd_total{model="whisper-1"} 0.0003' in metrics


async def test_the_gpt_4o_models_are_priced_by_the_minute_too(
    db: Database, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    t = await service.transcribe(
        recording(encoded("mp3", 3.0), "memo.mp3", model="gpt-4o-mini-transcribe")
    )
    assert t.seconds == 4  # 3.096 s measured: billed as 4 whole seconds
    assert t.cost == Decimal("0.003") * 4 / 60
    (row,) = await service.usage.rows()
    assert row.audio_seconds == 4.0
    assert row.prompt_tokens >= 30 and row.completion_tokens > 0  # its token usage, kept


async def test_the_fourth_in_a_minute_waits_and_is_refused_past_the_deadline(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    """Free tier: Whisper takes 3 requests a minute. The fourth would wait about 20 s for the
    bucket; with a 5 s deadline the budget refuses it without calling the provider."""
    service = make_service(db, provider)
    service.deadline = 5.0
    for _ in range(3):
        await service.transcribe(recording(wav(1.0)))
    with pytest.raises(WaitTooLong, match=r"whisper-1 is busy: the wait would be about 2\d s"):
        await service.transcribe(recording(wav(1.0)))
    assert sandbox.stats.model("whisper-1").requests == 3
    assert sandbox.stats.model("whisper-1").rate_limited == 0  # the budget kept it from a 429


async def test_a_spend_cap_refuses_a_recording_with_its_length_cost_and_reset(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider, limits={"channel": {"spend_day": Decimal("0.0005")}})
    await service.transcribe(recording(wav(2.5)))  # $0.0003 of $0.0005
    with pytest.raises(AudioOverBudget) as refused:
        await service.transcribe(recording(wav(30.0)))  # up to $0.003
    text = str(refused.value)
    assert text.startswith(
        "This recording is 0:30 long and may cost up to $0.003000 with whisper-1."
    )
    assert "this channel's spend per day: $0.000300 of $0.000500 used" in text
    tomorrow = datetime.now(UTC).date().toordinal() + 1
    assert f"It resets at 00:00 UTC on {datetime.fromordinal(tomorrow):%b %d}" in text
    assert sandbox.stats.model("whisper-1").requests == 1
    # The refused one cost nothing; the first is still counted against the cap.
    assert [r.outcome for r in await service.usage.rows()] == ["ok"]


async def test_a_transcription_model_cannot_answer_questions(
    db: Database, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    with pytest.raises(NotAChatModel, match="whisper-1 turns audio into text"):
        await service.handle(ask("hello", model="whisper-1"))


async def test_the_providers_413_is_mapped_like_any_bad_request(provider: OpenAIClient) -> None:
    big = b"RIFF" + bytes(26 * 1024 * 1024)
    with pytest.raises(BadRequest, match="Maximum content size limit"):
        await provider.transcribe(model="whisper-1", file=("big.wav", big, "audio/wav"))


async def test_the_budget_learns_whispers_limits_from_the_headers(
    db: Database, sandbox: SandboxServer
) -> None:
    """The account allows 2 a minute (the catalog assumes 3): the first answer's headers say
    so, and the budget holds to 2 from then on."""
    async with (
        SandboxServer(SandboxConfig(audio_rpm=2)) as strict,
        OpenAIClient(base_url=strict.base_url, api_key="sk-test") as provider,
    ):
        service = make_service(db, provider)
        service.deadline = 5.0
        await service.transcribe(recording(wav(1.0)))
        info = service.catalog.get("whisper-1")
        rpm = next(s for s in await service.budget.status(_who(), info) if s.unit == "requests")
        assert (rpm.label, rpm.limit) == ("whisper-1 requests per minute", 2)
        await service.transcribe(recording(wav(1.0)))
        with pytest.raises(WaitTooLong):
            await service.transcribe(recording(wav(1.0)))
        assert strict.stats.model("whisper-1").rate_limited == 0


def _who():  # type: ignore[no-untyped-def]
    from bot.budget.policy import Who

    return Who("slack", "T1", "C1", "U1")


async def test_replicas_share_whispers_budget_through_redis(
    db: Database, provider: OpenAIClient, sandbox: SandboxServer, redis_url: str
) -> None:
    import uuid

    from bot.budget.manager import Budget
    from bot.budget.policy import Policy
    from bot.budget.redis import RedisBackend

    prefix = f"qbtest:{uuid.uuid4().hex[:8]}"
    backends = [RedisBackend(redis_url, prefix=prefix) for _ in range(2)]
    try:
        one, two = (make_service(db, provider) for _ in range(2))
        for service, backend in zip((one, two), backends, strict=True):
            await backend.start()
            service.budget = Budget(backend, Policy({}))
            service.deadline = 5.0
        for _ in range(3):
            await one.transcribe(recording(wav(1.0)))
        with pytest.raises(WaitTooLong):  # the other replica sees the minute's 3 spent
            await two.transcribe(recording(wav(1.0)))
        assert sandbox.stats.model("whisper-1").requests == 3
    finally:
        await backends[0].delete_all()
        for backend in backends:
            await backend.aclose()


async def test_digests_show_audio_minutes_and_spend_beside_tokens(
    db: Database, provider: OpenAIClient
) -> None:
    from bot.digest.content import DigestBuilder
    from bot.digest.render import to_text
    from bot.store.digests import DigestConfig

    service = make_service(db, provider)
    await service.transcribe(recording(wav(90.0)))
    await service.handle(ask("and a question"))
    digest = await DigestBuilder(db).build(
        DigestConfig("slack", "T1", "C1", tz="UTC"), datetime.now(UTC).date()
    )
    assert (digest.audio_seconds, digest.audio_cost) == (90.0, Decimal("0.009"))
    assert digest.requests == 2 and digest.prompt_tokens > 0
    text = to_text(digest)
    assert "1.5 min of audio transcribed ($0.009000)" in text.splitlines()[1]
    assert "whisper-1: $0.009000" in text and "· 1.5 min audio" in text


async def test_a_providers_429_is_recorded_and_blocks_the_model_like_a_chat_429(
    db: Database,
) -> None:
    """The provider allows one a day (RPD has no headers, so the budget cannot know): the
    second call meets a 429 whose retry hint is past the deadline. It is not retried, its
    failed call is recorded, and the model waits before anyone else tries."""
    from bot.errors import RateLimited

    async with (
        SandboxServer(SandboxConfig(audio_rpm=100, audio_rpd=1)) as strict,
        OpenAIClient(base_url=strict.base_url, api_key="sk-test") as provider,
    ):
        service = make_service(db, provider)
        service.deadline = 5.0
        await service.transcribe(recording(wav(1.0)))
        with pytest.raises(RateLimited):
            await service.transcribe(recording(wav(1.0)))
        ok, limited = await service.usage.rows()
        assert (ok.outcome, limited.outcome) == ("ok", "RateLimited")
        assert (limited.audio_seconds, limited.cost) == (0.0, None)  # nothing was billed
        with pytest.raises(WaitTooLong):  # blocked for the hint, without another 429
            await service.transcribe(recording(wav(1.0)))
        assert strict.stats.model("whisper-1").rate_limited == 1


async def test_a_recording_waits_for_its_turn_and_gives_it_back_while_queued(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    """One turn in the process. While it is taken, a voice message is not even downloaded;
    once it has the turn, a recording that must wait for Whisper's budget (free tier: 3 a
    minute) gives the turn back, so a question in another channel is answered meanwhile."""
    service = make_service(db, provider)
    service.admission = Admission(1)
    fetched: list[str] = []

    def attachment(name: str) -> voice.Attachment:
        async def fetch(into: IO[bytes]) -> None:
            fetched.append(name)
            into.write(wav(1.0))

        return voice.Attachment(name=f"{name}.wav", media_type="audio/wav", size=None, fetch=fetch)

    here = voice.Where(platform="slack", workspace="T1", channel="C1", user="U1")
    held = await service.admission.acquire("someone else's event")
    first = asyncio.create_task(voice.transcribe(service, attachment("first"), here))
    await asyncio.sleep(0.2)
    assert fetched == []  # waiting for a turn: nothing downloaded, nothing spent
    held.release()
    await first
    for _ in range(2):
        await voice.transcribe(service, attachment("again"), here)
    queued = asyncio.Event()

    async def on_queued(_: object) -> None:
        queued.set()

    fourth = asyncio.create_task(
        voice.transcribe(service, attachment("fourth"), here, on_queued=on_queued)
    )
    await asyncio.wait_for(queued.wait(), 5)

    async def meanwhile() -> None:
        async with service.admission.turn("C2") as turn:  # the turn is free: C2 goes now
            await service.handle(ask("meanwhile in C2", channel="C2"), turn=turn)

    await asyncio.wait_for(meanwhile(), 5)
    fourth.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fourth


class Upload:
    """An attachment whose download is watched: whether it happened, and into which file."""

    def __init__(self, data: bytes, *, seconds: float | None = None, name: str = "memo.wav"):
        self.data, self.files = data, []
        self.attachment = voice.Attachment(
            name=name, media_type="audio/wav", size=len(data), fetch=self.fetch, seconds=seconds
        )

    async def fetch(self, into: IO[bytes]) -> None:
        self.files.append(Path(into.name))
        into.write(self.data)


HERE = voice.Where(platform="slack", workspace="T1", channel="C1", user="U1")
WHO = Who("slack", "T1", "C1", "U1")
WHISPER = Catalog.build().get("whisper-1")


async def test_a_spent_cap_refuses_a_recording_before_it_is_downloaded(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    """The cap is looked at before the download, at one second's cost (no length stated):
    the refusal is the cap's own, and nothing was fetched, reserved or recorded."""
    service = make_service(db, provider, limits={"channel": {"spend_day": Decimal("0.0003")}})
    await voice.transcribe(service, Upload(wav(2.5)).attachment, HERE)  # $0.0003 of $0.0003
    late = Upload(wav(1.0))
    with pytest.raises(BudgetExceeded) as refused:
        await voice.transcribe(service, late.attachment, HERE)
    assert not isinstance(refused.value, AudioOverBudget)
    assert str(refused.value).startswith(
        "This request would go over this channel's spend per day: $0.000300 of $0.000300 used."
    )
    assert late.files == []
    assert sandbox.stats.model("whisper-1").requests == 1
    (cap,) = [s for s in await service.budget.status(WHO, WHISPER) if s.unit == "usd"]
    assert cap.used == Decimal("0.0003")  # the check reserved nothing


async def test_a_stated_length_over_the_cap_is_refused_before_the_download(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    """A Discord voice message states its length: the check asks for that much."""
    service = make_service(db, provider, limits={"channel": {"spend_day": Decimal("0.001")}})
    voice_message = Upload(wav(30.0), seconds=30.4)
    with pytest.raises(AudioOverBudget) as refused:
        await voice.transcribe(service, voice_message.attachment, HERE)
    assert str(refused.value).startswith(
        "This recording is 0:30 long and may cost up to $0.003000 with whisper-1."
    )
    assert voice_message.files == []
    # Within the cap, the stated length changes nothing: the measured one is reserved.
    short = Upload(wav(2.0), seconds=2.0)
    t = await voice.transcribe(service, short.attachment, HERE)
    assert (t.seconds, t.cost) == (2, Decimal("0.0002"))
    (cap,) = [s for s in await service.budget.status(WHO, WHISPER) if s.unit == "usd"]
    assert cap.used == Decimal("0.0002")


async def test_a_switched_off_channel_is_not_downloaded_from(
    db: Database, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    await service.channels.set("slack", "T1", "C1", enabled=False)
    upload = Upload(wav(1.0))
    with pytest.raises(ChannelDisabled):
        await voice.transcribe(service, upload.attachment, HERE)
    assert upload.files == []


async def test_the_download_is_a_temporary_file_deleted_afterwards(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    good, odd = Upload(wav(1.0)), Upload(b"\x00" * 2000, name="voice.aac")
    await voice.transcribe(service, good.attachment, HERE)
    with pytest.raises(AudioUnsupported):
        await voice.transcribe(service, odd.attachment, HERE)
    (kept,), (refused,) = good.files, odd.files
    assert kept.name.startswith("quotabot-audio-")
    assert not kept.exists() and not refused.exists()
