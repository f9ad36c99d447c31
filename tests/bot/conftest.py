"""The sandbox as the provider, for the core's tests (a module may define its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.provider import OpenAIClient
from bot.sandbox import SandboxConfig, SandboxServer


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """Chat unlimited; transcription models at their catalog limits (3 RPM, 200 RPD)."""
    async with SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as server:
        yield server


@pytest.fixture
async def provider(sandbox: SandboxServer) -> AsyncIterator[OpenAIClient]:
    async with OpenAIClient(base_url=sandbox.base_url, api_key="sk-test") as client:
        yield client
