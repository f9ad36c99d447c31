"""Several providers in one app: each model's calls reach its provider's server with that
provider's key, a key that is not set stops the start, and a provider marked down shows in
/readyz and /metrics (failing readiness only when every provider is down)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import open_app
from bot.audio import clip
from bot.cli.serve import provider_states, readiness
from bot.config import load_settings
from bot.errors import ConfigError, ProviderDown, ServerError
from bot.models import ChatRequest, Message, TranscriptionRequest
from bot.sandbox import SandboxConfig, SandboxServer
from bot.web import WebServer
from fakes.openai_api import FakeAzureOpenAI, FakeOpenAI
from fakes.recordings import wav

OPENAI_KEY = "sk-openai-Zq3VtX9doNotLeak"
AZURE_KEY = "azure-Zq3VtX9doNotLeak"


def ask(model: str) -> ChatRequest:
    return ChatRequest(
        platform="slack",
        workspace="T1",
        channel="C1",
        user="U1",
        messages=(Message("user", "hello there"),),
        model=model,
    )


@dataclass
class Servers:
    openai: FakeOpenAI
    azure: FakeAzureOpenAI
    local: SandboxServer


@pytest.fixture
async def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Servers]:
    """The default provider at a fake OpenAI, "azure" at a fake Azure resource, "local" at a
    sandbox that takes no key; the config file routes the models."""
    deployments = {"gpt-4o-prod": "gpt-4o", "gpt-4o-mini": "gpt-4o-mini", "whisper": "whisper-1"}
    async with (
        FakeOpenAI(key=OPENAI_KEY) as openai,
        FakeAzureOpenAI(key=AZURE_KEY, deployments=deployments) as azure,
        SandboxServer(SandboxConfig(require_key=False)) as local,
    ):
        config = tmp_path / "quotabot.toml"
        config.write_text(
            f"""
[providers."azure"]
kind = "azure"
base_url = "{azure.url}"
api_key_env = "AZURE_OPENAI_API_KEY"
api_version = "2024-10-21"
headers = {{ "X-Team" = "design" }}

[providers."local"]
kind = "openai-compatible"
base_url = "{local.base_url}"

[models."gpt-4o"]
provider = "azure"
deployment = "gpt-4o-prod"

[models."gpt-4o-mini"]
provider = "azure"

[models."whisper-1"]
provider = "azure"
deployment = "whisper"

[models."gpt-4.1-nano"]
provider = "local"
"""
        )
        monkeypatch.setenv("QUOTABOT_CONFIG", str(config))
        monkeypatch.setenv("OPENAI_BASE_URL", openai.url)
        monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
        yield Servers(openai, azure, local)


async def test_each_model_reaches_its_providers_server_with_its_key(
    servers: Servers, tmp_path: Path
) -> None:
    recording = tmp_path / "memo.wav"
    recording.write_bytes(wav(1.0))
    deltas: list[str] = []

    async def on_delta(text: str) -> None:
        deltas.append(text)

    async with open_app(load_settings()) as app:
        assert app.describe_providers() == f"{servers.openai.url}; also azure, local"
        default = await app.service.handle(ask("gpt-3.5-turbo"))
        streamed = await app.service.handle(ask("gpt-4o"), on_delta=on_delta)
        mini = await app.service.handle(ask("gpt-4o-mini"))
        local = await app.service.handle(ask("gpt-4.1-nano"))
        transcript = await app.service.transcribe(
            TranscriptionRequest(
                platform="slack",
                workspace="T1",
                channel="C1",
                user="U1",
                clip=clip("memo.wav", recording),
            )
        )

    assert default.text == "openai answers gpt-3.5-turbo"
    assert streamed.text == "".join(deltas) == "azure answers gpt-4o-prod"
    assert mini.text == "azure answers gpt-4o-mini"
    assert transcript.text == "azure answers whisper"
    assert local.model == "gpt-4.1-nano" and local.text
    assert servers.local.stats.total.requests == 1

    (to_openai,) = servers.openai.calls
    assert to_openai.path == "/v1/chat/completions"
    assert to_openai.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert "X-Team" not in to_openai.headers
    assert [c.path for c in servers.azure.calls] == [
        "/openai/deployments/gpt-4o-prod/chat/completions",
        "/openai/deployments/gpt-4o-mini/chat/completions",
        "/openai/deployments/whisper/audio/transcriptions",
    ]
    for call in servers.azure.calls:
        assert call.status == 200 and call.query == {"api-version": "2024-10-21"}
        assert call.headers["api-key"] == AZURE_KEY and call.headers["X-Team"] == "design"
        assert "Authorization" not in call.headers


async def test_a_key_that_is_not_set_stops_the_start_before_anything_opens(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    settings = load_settings()
    with pytest.raises(ConfigError) as refused:
        async with open_app(settings):
            pass
    assert str(refused.value).startswith(
        '[providers."azure"] reads its key from AZURE_OPENAI_API_KEY, which is not set'
    )
    assert not settings.store.data_dir.exists()  # no database was created
    # Commands that call no model (usage, budget, channel, digest) run without the key.
    async with open_app(settings, provider_keys=False) as app:
        assert list(app.providers) == ["default", "azure", "local"]


async def scrape(url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{url}/metrics")).text
    return {
        s.labels["provider"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "quotabot_provider_up"
    }


async def test_a_provider_down_shows_in_readyz_and_metrics(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTABOT_MAX_ATTEMPTS", "1")  # one call per question: one failure
    monkeypatch.setenv("QUOTABOT_PROVIDER_DOWN_AFTER", "2")
    monkeypatch.setenv("QUOTABOT_PROVIDER_DOWN_FOR", "0.5")
    async with open_app(load_settings()) as app:
        server = WebServer(
            [],
            host="127.0.0.1",
            port=0,
            checks=readiness(app),
            states={"providers": lambda: provider_states(app)},
        )
        server.add_metrics(app.metrics)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url) as http:
                ready = await http.get("/readyz")
                assert ready.status_code == 200
                assert ready.json()["providers"] == {"default": "up", "azure": "up", "local": "up"}
                assert await scrape(server.url) == {"default": 1, "azure": 1, "local": 1}

                servers.azure.fail(503, times=2)
                for _ in range(2):
                    with pytest.raises(ServerError):
                        await app.service.handle(ask("gpt-4o"))
                ready = await http.get("/readyz")
                # One of three down: reported, and still ready (the others answer).
                assert ready.status_code == 200
                assert ready.json()["checks"]["providers"] == "ok"
                assert ready.json()["providers"]["azure"] == "down"
                assert await scrape(server.url) == {"default": 1, "azure": 0, "local": 1}

                servers.openai.fail(500, times=2)
                for _ in range(2):
                    with pytest.raises(ServerError):
                        await app.service.handle(ask("gpt-3.5-turbo"))
                await servers.local.aclose()  # refused connections from now on
                for _ in range(2):
                    with pytest.raises(ProviderDown):
                        await app.service.handle(ask("gpt-4.1-nano"))
                ready = await http.get("/readyz")
                assert ready.status_code == 503  # every provider down: not ready
                assert ready.json()["checks"]["providers"] == "failing"
                assert set(ready.json()["providers"].values()) == {"down"}

                await asyncio.sleep(0.6)  # a quiet while: each counted up again
                ready = await http.get("/readyz")
                assert ready.status_code == 200
                assert await scrape(server.url) == {"default": 1, "azure": 1, "local": 1}
        finally:
            await server.aclose()


async def test_quotabot_config_checks_each_provider_with_its_key(
    servers: Servers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import config

    assert await config.run(load_settings(), argparse.Namespace(no_checks=False)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"ok    provider: {servers.openai.url} answers and takes the key" in lines
    assert f"ok    provider azure: {servers.azure.url} answers and takes the key" in lines
    assert f"ok    provider local: {servers.local.base_url} answers and takes the key" in lines
    assert [c.path for c in servers.azure.calls] == ["/openai/models"]

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "wrong-key-XYZ")
    assert await config.run(load_settings(), argparse.Namespace(no_checks=False)) == 1
    out = capsys.readouterr().out
    assert f"FAIL  provider azure: RuntimeError: {servers.azure.url} refused the key (401)" in out
    assert "ok    provider: " in out  # the others still checked
    assert AZURE_KEY not in out and "wrong-key-XYZ" not in out

    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    assert await config.run(load_settings(), argparse.Namespace(no_checks=False)) == 1
    out = capsys.readouterr().out
    assert 'FAIL  provider azure: ConfigError: [providers."azure"] reads its key from' in out
