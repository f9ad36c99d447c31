"""Starting and stopping the sandbox, in-process and as a foreground server."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from aiohttp import web

from bot.sandbox import SandboxConfig, SandboxServer, create_app, run_sandbox

HEADERS = {"Authorization": "Bearer sk-test"}


async def test_base_url_points_at_a_listening_server() -> None:
    server = SandboxServer(SandboxConfig(rpm=5))
    with pytest.raises(RuntimeError):
        _ = server.base_url
    async with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", server.base_url)
        assert server.port > 0
        async with httpx.AsyncClient(trust_env=False, headers=HEADERS) as client:
            r = await client.get(f"{server.base_url}/models")
        assert r.status_code == 200
    async with httpx.AsyncClient(trust_env=False, headers=HEADERS) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{server.base_url}/models")


async def test_start_and_aclose_without_a_with_block() -> None:
    server = SandboxServer()
    await server.start()
    try:
        async with httpx.AsyncClient(trust_env=False, headers=HEADERS) as client:
            r = await client.get(f"{server.base_url}/models")
        assert r.status_code == 200
    finally:
        await server.aclose()
    await server.aclose()  # closing twice is harmless
    with pytest.raises(RuntimeError):
        await server.start()


async def test_create_app_serves_under_any_runner() -> None:
    runner = web.AppRunner(create_app(SandboxConfig(rpm=7)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with httpx.AsyncClient(trust_env=False, headers=HEADERS) as client:
            r = await client.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit-requests"] == "7"
    finally:
        await runner.cleanup()


async def test_run_sandbox_prints_where_it_listens_and_serves_until_cancelled(
    capsys: Any,
) -> None:
    config = SandboxConfig(rpm=3, tpm=None)
    task = asyncio.create_task(run_sandbox(config, "127.0.0.1", 0))
    line = ""
    for _ in range(200):
        await asyncio.sleep(0.01)
        line += capsys.readouterr().out
        if line:
            break
    match = re.fullmatch(
        r"quotabot sandbox listening on (http://127\.0\.0\.1:\d+/v1) "
        r"\(rpm=3, tpm=unlimited, rpd=6000\)\n",
        line,
    )
    assert match, line
    async with httpx.AsyncClient(trust_env=False, headers=HEADERS) as client:
        r = await client.get(f"{match[1]}/models")
        assert r.status_code == 200

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{match[1]}/models")
