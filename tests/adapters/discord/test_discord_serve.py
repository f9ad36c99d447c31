"""What ``quotabot serve`` builds from the settings: the HTTP endpoint from DISCORD_PUBLIC_KEY
and DISCORD_APPLICATION_ID, its REST calls to DISCORD_API_URL, admin roles from the config."""

from __future__ import annotations

import discord
import httpx
import pytest

from adapters.discord.adapter import Discord
from bot.app import open_app
from bot.config import load_settings
from bot.errors import ConfigError
from bot.sandbox import SandboxConfig, SandboxServer
from bot.web import WebServer
from fakes.discord_api import (
    APPLICATION_ID,
    CHANNEL,
    FakeDiscordAPI,
    Signer,
    interaction,
    option,
    subcommand,
)


async def test_http_mode_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = Signer()
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox,
        FakeDiscordAPI() as api,
    ):
        for name, value in {
            "OPENAI_BASE_URL": sandbox.base_url,
            "DISCORD_PUBLIC_KEY": signer.public_key,
            "DISCORD_APPLICATION_ID": APPLICATION_ID,
            "DISCORD_API_URL": api.url,
            "QUOTABOT_DISCORD_ADMIN_ROLES": '["1500000000000000009"]',
        }.items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        async with open_app(settings) as app, Discord(settings, app) as discord:
            assert discord.describe() == "HTTP" and discord.gateway is None
            async with (
                WebServer(discord.routes(), host="127.0.0.1", port=0) as server,
                httpx.AsyncClient() as http,
            ):
                url = f"{server.url}/discord/interactions"
                options = [option("scope", "channel"), option("limit", "rpm"), option("value", "3")]
                payload = interaction(
                    "budget", [subcommand("set", *options)], roles=["1500000000000000009"]
                )
                response = await signer.post(http, url, payload)
                api.acknowledged(payload, response.json())
                await discord.runner.drain()
        (said,) = api.thread(payload["token"])
        assert f"channel:{CHANNEL}" in said.content  # the configured role may set budgets


async def test_a_public_key_that_is_not_one_stops_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_PUBLIC_KEY", "not-hex")
    monkeypatch.setenv("DISCORD_APPLICATION_ID", APPLICATION_ID)
    settings = load_settings()
    async with open_app(settings) as app:
        with pytest.raises(ConfigError, match="DISCORD_PUBLIC_KEY"):
            async with Discord(settings, app):
                pass


async def test_a_refused_bot_token_stops_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)  # restored after
    async with FakeDiscordAPI() as api:
        monkeypatch.setenv("DISCORD_TOKEN", "not-the-token")
        monkeypatch.setenv("DISCORD_API_URL", api.url)
        settings = load_settings()
        async with open_app(settings) as app:
            with pytest.raises(ConfigError, match="Discord refused DISCORD_TOKEN"):
                async with Discord(settings, app):
                    pass
        assert [(c.path, c.status) for c in api.calls] == [("/users/@me", 401)]
