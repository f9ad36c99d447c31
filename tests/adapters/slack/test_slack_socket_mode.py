"""Socket Mode: the same answers over Slack's WebSocket, acknowledged per envelope, and a
connection that goes quiet is replaced."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.slack import SlackAdapter, SlackConfig
from bot.app import App, open_app
from bot.chat.commands import Commands
from bot.cli.serve import readiness
from bot.config import load_settings
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.events import EventLog
from bot.web import WebServer
from fakes import slack_events as ev
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from fakes.slack_socket import DEFAULT_APP_TOKEN
from fakes.slack_workspace import DEFAULT_CHANNEL


@pytest.fixture
async def socket_rig(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[App, FakeSlackAPI, SlackAdapter, SandboxServer]]:
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox,
        FakeSlackAPI(streaming_supported=False) as api,
    ):
        monkeypatch.setenv("OPENAI_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        async with open_app(load_settings()) as app:
            adapter = SlackAdapter(
                SlackConfig(
                    bot_token=DEFAULT_TOKEN,
                    app_token=DEFAULT_APP_TOKEN,
                    api_url=api.url,
                    update_interval=0.05,
                    socket_check=0.2,
                    socket_ping=0.1,
                ),
                service=app.service,
                commands=Commands(usage=app.usage, budget=app.budget, limits=app.limits),
                events=EventLog(app.db),
            )
            assert adapter.routes() == []  # no signing secret: no HTTP endpoint
            await adapter.start_socket_mode()
            await api.socket.wait_connected()
            yield app, api, adapter, sandbox
            await adapter.aclose()


async def until(predicate, within: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(within / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_events_arrive_over_the_socket_are_acked_and_answered_once(socket_rig) -> None:  # type: ignore[no-untyped-def]
    _, api, _, sandbox = socket_rig
    payload = api.seed_event(ev.app_mention("over the socket"))
    ts = payload["event"]["ts"]
    envelope = await api.socket.send(payload)
    await api.socket.wait_ack(envelope)
    await api.socket.send(payload, retry=1)  # Slack redelivers: still one answer
    await until(
        lambda: any(t.startswith("Sandbox answer") for t in api.messages(DEFAULT_CHANNEL, ts))
    )
    await asyncio.sleep(0.3)
    assert [t for t in api.messages(DEFAULT_CHANNEL, ts) if t.startswith("Sandbox answer")]
    assert sandbox.stats.total.requests == 1


async def test_a_stalled_connection_is_noticed_and_replaced(socket_rig) -> None:  # type: ignore[no-untyped-def]
    app, api, adapter, sandbox = socket_rig
    server = WebServer([], host="127.0.0.1", port=0, checks=readiness(app, [adapter]))
    await server.start()
    readyz: list[int] = []

    async def probe() -> None:  # as a Kubernetes readiness probe would, but often
        async with httpx.AsyncClient() as http:
            while True:
                readyz.append((await http.get(f"{server.url}/readyz")).status_code)
                await asyncio.sleep(0.02)

    prober = asyncio.create_task(probe())
    await until(lambda: readyz)
    assert readyz[-1] == 200
    opened = api.socket.opened
    api.socket.stalled = True  # looks open; pongs and events go nowhere
    await until(lambda: api.socket.opened > opened, within=10.0)
    api.socket.stalled = False
    await until(lambda: api.socket.connected >= 1)
    await until(lambda: readyz[-1] == 200)
    prober.cancel()
    await server.aclose()
    assert 503 in readyz  # the stall showed in /readyz until the new connection
    assert adapter.socket_reconnects + (api.socket.opened - opened) >= 1
    payload = api.seed_event(ev.app_mention("after the stall"))
    envelope = await api.socket.send(payload)
    await api.socket.wait_ack(envelope)
    await until(lambda: sandbox.stats.total.requests == 1)


async def test_a_slack_that_cannot_be_reached_at_start_does_not_hold_the_web_server(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Socket Mode connects in the background: /healthz answers at once, /readyz says the
    Socket Mode connection is failing, and the retries are one line each, not tracebacks."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}/api/"
    async with open_app(load_settings()) as app:
        adapter = SlackAdapter(
            SlackConfig(
                bot_token=DEFAULT_TOKEN, app_token=DEFAULT_APP_TOKEN, api_url=dead, socket_ping=0.1
            ),
            service=app.service,
            commands=app.commands(),
            events=EventLog(app.db),
        )
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(adapter.start_socket_mode(), 2)
        server = WebServer([], host="127.0.0.1", port=0, checks=readiness(app, [adapter]))
        await server.start()
        try:
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{server.url}/healthz")).status_code == 200
                assert asyncio.get_running_loop().time() - started < 2
                ready = await http.get(f"{server.url}/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["slack_socket_mode"] == "failing"
            await until(lambda: "Failed to connect" in caplog.text, within=10)
        finally:
            await server.aclose()
            await adapter.aclose()
    retries = [r for r in caplog.records if r.getMessage().startswith("Failed to connect")]
    assert retries and all(r.levelname == "WARNING" and not r.exc_info for r in retries)
