"""``quotabot discord sync-commands``: the real command line (in a thread of its own, with its
own event loop) against the fake Discord API."""

from __future__ import annotations

import asyncio

import pytest

from adapters.discord import COMMANDS
from bot import cli
from fakes.discord_api import APPLICATION_ID, BOT_TOKEN, GUILD, FakeDiscordAPI


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> FakeDiscordAPI:
    async with FakeDiscordAPI() as fake:
        monkeypatch.setenv("DISCORD_API_URL", fake.url)
        monkeypatch.setenv("DISCORD_APPLICATION_ID", APPLICATION_ID)
        monkeypatch.setenv("DISCORD_TOKEN", BOT_TOKEN)
        yield fake


async def test_commands_are_registered_in_a_guild_and_globally(
    api: FakeDiscordAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(cli.main, ["discord", "sync-commands", "--guild", GUILD]) == 0
    assert (
        "registered /ask, /usage, /budget, /digest, /transcribe in server"
        in capsys.readouterr().out
    )
    (put,) = api.calls
    assert (put.method, put.path) == (
        "PUT",
        f"/applications/{APPLICATION_ID}/guilds/{GUILD}/commands",
    )
    assert put.body == COMMANDS
    assert [c["name"] for c in api.commands[GUILD]] == [
        "ask",
        "usage",
        "budget",
        "digest",
        "transcribe",
    ]

    api.rate_limit("commands", times=1, retry_after=0.2)  # honoured, then registered
    assert await asyncio.to_thread(cli.main, ["discord", "sync-commands"]) == 0
    assert "globally" in capsys.readouterr().out
    assert [c.status for c in api.calls[1:]] == [429, 200]
    assert api.calls[2].path == f"/applications/{APPLICATION_ID}/commands"
    assert [c["name"] for c in api.commands["global"]] == [
        "ask",
        "usage",
        "budget",
        "digest",
        "transcribe",
    ]


async def test_without_a_bot_token_it_says_what_is_missing(
    api: FakeDiscordAPI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISCORD_TOKEN")
    # A setting to add: the same exit status as any other setting to fix.
    assert await asyncio.to_thread(cli.main, ["discord", "sync-commands"]) == 2
    assert "needs DISCORD_APPLICATION_ID and DISCORD_TOKEN" in capsys.readouterr().err
    assert api.calls == []


async def test_a_refused_token_is_reported_without_a_traceback(
    api: FakeDiscordAPI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "not-the-token")
    assert await asyncio.to_thread(cli.main, ["discord", "sync-commands"]) == 1
    err = capsys.readouterr().err
    assert "Discord did not take the commands" in err and "401" in err
    assert "Traceback" not in err
