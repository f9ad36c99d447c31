"""The chat layer both adapters stand on, through a surface that records what a platform would
be asked to show: the order of the calls, and what the asker reads in each outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bot import messages
from bot.app import App, open_app
from bot.budget.policy import Who
from bot.budget.tickets import QueueInfo
from bot.chat.answers import Chat, Deadline
from bot.config import load_settings
from bot.models import ChatRequest, Message
from bot.sandbox import SandboxConfig, SandboxServer


@dataclass
class Recorder:
    """A Surface: every call, in order."""

    streaming: bool = True
    calls: list[tuple[str, str]] = field(default_factory=list)
    refuse_placeholder: bool = False

    async def placeholder(self, text: str) -> None:
        if self.refuse_placeholder:
            raise ConnectionError("the platform refused the placeholder")
        self.calls.append(("placeholder", text))

    async def queued(self, info: QueueInfo) -> None:
        self.calls.append(("queued", messages.queued_notice(info)))

    async def delta(self, text: str) -> None:
        self.calls.append(("delta", text))

    async def finish(self, text: str) -> None:
        self.calls.append(("finish", text))

    async def fail(self, text: str) -> None:
        self.calls.append(("fail", text))

    def said(self, kind: str) -> list[str]:
        return [text for k, text in self.calls if k == kind]


@pytest.fixture
async def app(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[App]:
    monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    async with open_app(load_settings()) as app:
        yield app


@pytest.fixture
async def slow(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[App]:
    """The provider takes 2 s to answer."""
    config = SandboxConfig(rpm=None, tpm=None, rpd=None, latency=2.0)
    async with SandboxServer(config) as sandbox:
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with open_app(load_settings()) as app:
            yield app


def chat(app: App, platform: str = "slack") -> Chat:
    return Chat(platform, service=app.service, commands=app.commands(), events=app.events)


def ask(text: str, **kw: str) -> ChatRequest:
    return ChatRequest(
        platform="slack",
        workspace="T1",
        channel="C1",
        user="U1",
        messages=(Message("user", text),),
        **kw,  # type: ignore[arg-type]
    )


async def test_an_answer_goes_placeholder_then_deltas_then_finish(app: App) -> None:
    surface = Recorder()
    await chat(app).answer(ask("hello"), surface)
    kinds = [k for k, _ in surface.calls]
    assert kinds[0] == "placeholder" and kinds[-1] == "finish"
    assert set(kinds[1:-1]) == {"delta"}
    assert "".join(surface.said("delta")) == surface.said("finish")[0]


async def test_a_surface_that_does_not_stream_gets_the_whole_answer_once(app: App) -> None:
    surface = Recorder(streaming=False)
    await chat(app).answer(ask("hello"), surface)
    assert [k for k, _ in surface.calls] == ["placeholder", "finish"]


async def test_a_refusal_is_told_in_words_and_nothing_is_finished(app: App) -> None:
    surface = Recorder()
    await chat(app).answer(ask("hello", model="no-such-model"), surface)
    assert surface.said("finish") == []
    (told,) = surface.said("fail")
    assert "no-such-model" in told and "Traceback" not in told


async def test_past_its_deadline_the_asker_reads_why(slow: App) -> None:
    surface = Recorder(streaming=False)
    soon = Deadline(asyncio.get_running_loop().time() + 0.2, "Too late: ask again.")
    await chat(slow).answer(ask("hello"), surface, deadline=soon)
    assert surface.said("fail") == ["Too late: ask again."]


async def test_a_shutdown_mid_answer_tells_the_asker_to_ask_again(slow: App) -> None:
    surface = Recorder(streaming=False)
    c = chat(slow)
    c.spawn(c.answer(ask("hello"), surface))
    await asyncio.sleep(0.3)
    await c.drain(grace=0.1)
    assert surface.said("fail") == [messages.STOPPING]
    assert not c.tasks


async def test_a_placeholder_the_platform_refuses_ends_the_answer_unsent(
    app: App, sandbox: SandboxServer
) -> None:
    surface = Recorder(refuse_placeholder=True)
    with pytest.raises(ConnectionError):
        await chat(app).answer(ask("hello"), surface)
    assert surface.calls == [] and sandbox.stats.total.requests == 0


@pytest.mark.parametrize("platform", ["slack", "discord"])
async def test_commands_say_the_same_on_every_platform(app: App, platform: str) -> None:
    who = Who(platform, "W1", "C1", "U1")

    async def no() -> bool:
        return False

    c = chat(app, platform)
    usage = await c.command("usage", [], who, is_admin=no, channel_id=lambda v: None)
    assert "*Today (since 00:00 UTC)*" in usage and "Models allowed here" in usage
    refused = await c.command(
        "budget", ["set", "channel", "rpm", "5"], who, is_admin=no, channel_id=lambda v: None
    )
    assert refused == f":warning: {messages.NOT_ADMIN[platform]}"
    help_ = await c.command("budget", ["nonsense"], who, is_admin=no, channel_id=lambda v: None)
    assert help_.startswith("Usage: `budget`")
