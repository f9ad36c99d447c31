"""A real sandbox on an ephemeral port, and an httpx client that talks to it over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from bot.sandbox import SandboxConfig, SandboxServer

KEY = "sk-test-key"

Serve = Callable[..., Awaitable[tuple[SandboxServer, httpx.AsyncClient]]]


class FakeClock:
    """Drives the rate-limit buckets; time only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def serve(clock: FakeClock) -> AsyncIterator[Serve]:
    """``await serve(rpm=3, ...)``: a started sandbox and a client with a key; the buckets run
    on the fake ``clock`` fixture unless a clock is given."""
    async with AsyncExitStack() as stack:

        async def start(**config: Any) -> tuple[SandboxServer, httpx.AsyncClient]:
            config.setdefault("clock", clock)
            server = await stack.enter_async_context(SandboxServer(SandboxConfig(**config)))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=server.base_url,
                    headers={"Authorization": f"Bearer {KEY}"},
                    timeout=10,
                    trust_env=False,
                )
            )
            return server, client

        yield start


@pytest.fixture
async def client(serve: Serve) -> httpx.AsyncClient:
    """A client of a sandbox with the default configuration."""
    _, c = await serve()
    return c
