"""A running FakeSlackAPI and slack-sdk's own client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from fakes.slack_api import FakeSlackAPI

TOKEN = "xoxb-1234-5678-faketoken"


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI(token=TOKEN) as server:
        yield server


@pytest.fixture
def client(api: FakeSlackAPI) -> AsyncWebClient:
    # No retry handlers beyond slack-sdk's default (connection errors only), as in production.
    return AsyncWebClient(token=TOKEN, base_url=api.url)
