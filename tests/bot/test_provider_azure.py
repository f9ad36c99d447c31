"""The client in Azure OpenAI's wire format (``AzureWire``) against a fake Azure resource,
and in OpenAI's with extra headers: each call reaches the right URL with the right key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.errors import AuthenticationFailed, BadRequest, ModelNotFound
from bot.models import Message
from bot.provider import AzureWire, OpenAIClient, OpenAIWire
from fakes.openai_api import FakeAzureOpenAI, FakeOpenAI

KEY = "azure-Zq3VtX9secretKEYdoNotLeak"
VERSION = "2024-10-21"
MESSAGES = [Message("user", "Say hello")]


def test_azure_urls_name_the_deployment_and_the_api_version() -> None:
    wire = AzureWire(api_version=VERSION, deployments={"gpt-4o": "gpt-4o-prod"})
    for base in ("https://r.openai.azure.com", "https://r.openai.azure.com/openai/"):
        url = wire.url(httpx.URL(base), "/chat/completions", "gpt-4o")
        assert str(url) == (
            "https://r.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions"
            "?api-version=2024-10-21"
        )
    # A model without a deployment of its own is deployed under its name, escaped.
    url = wire.url(httpx.URL("https://r.openai.azure.com"), "/completions", "my/model:1")
    assert url.raw_path == b"/openai/deployments/my%2Fmodel%3A1/completions?api-version=2024-10-21"
    assert wire.auth(KEY) == {"api-key": KEY}


def test_openai_urls_keep_a_query_of_the_base_url() -> None:
    url = OpenAIWire().url(httpx.URL("https://proxy.example/v1?team=a"), "/completions", "m")
    assert str(url) == "https://proxy.example/v1/completions?team=a"


@pytest.fixture
async def azure() -> AsyncIterator[FakeAzureOpenAI]:
    deployments = {"gpt-4o-prod": "gpt-4o", "gpt-35-turbo-instruct": "gpt-3.5-turbo-instruct"}
    async with FakeAzureOpenAI(key=KEY, deployments=deployments) as server:
        yield server


def azure_client(
    server: FakeAzureOpenAI, *, key: str = KEY, version: str = VERSION
) -> OpenAIClient:
    return OpenAIClient(
        base_url=server.url,
        api_key=key,
        wire=AzureWire(
            api_version=version,
            deployments={
                "gpt-4o": "gpt-4o-prod",
                "gpt-3.5-turbo-instruct": "gpt-35-turbo-instruct",
                "whisper-1": "gpt-4o-prod",
            },
        ),
        headers={"X-Team": "design"},
        key_name="AZURE_OPENAI_API_KEY",
    )


async def test_every_kind_of_call_reaches_its_deployment_with_the_api_key(
    azure: FakeAzureOpenAI,
) -> None:
    async with azure_client(azure) as client:
        chat = await client.chat(model="gpt-4o", messages=MESSAGES, max_tokens=20)
        async with client.stream_chat(model="gpt-4o", messages=MESSAGES) as stream:
            deltas = [d async for d in stream]
        legacy = await client.complete(model="gpt-3.5-turbo-instruct", prompts=["a", "b"])
        heard = await client.transcribe(
            model="whisper-1", file=("clip.wav", b"RIFF0000WAVE", "audio/wav")
        )

    assert chat.text == "azure answers gpt-4o-prod" and chat.model == "gpt-4o"
    assert chat.usage is not None and chat.usage.completion_tokens == 4
    # Azure sends what remains but not the limits: read as far as it goes.
    assert chat.rate_limits.remaining_requests == 99
    assert chat.rate_limits.limit_requests is None
    assert chat.request_id is not None
    assert "".join(deltas) == "azure answers gpt-4o-prod"
    assert stream.completion is not None and stream.completion.usage is not None
    assert [c.text for c in legacy.choices] == ["azure answers gpt-35-turbo-instruct"] * 2
    assert heard.text == "azure answers gpt-4o-prod"

    assert [(c.path, c.status) for c in azure.calls] == [
        ("/openai/deployments/gpt-4o-prod/chat/completions", 200),
        ("/openai/deployments/gpt-4o-prod/chat/completions", 200),
        ("/openai/deployments/gpt-35-turbo-instruct/completions", 200),
        ("/openai/deployments/gpt-4o-prod/audio/transcriptions", 200),
    ]
    for call in azure.calls:
        assert call.query == {"api-version": VERSION}
        assert call.headers["api-key"] == KEY and call.headers["X-Team"] == "design"
        assert "Authorization" not in call.headers
    assert azure.calls[1].body["stream"] is True
    assert azure.calls[2].body["prompt"] == ["a", "b"]
    assert azure.calls[3].body == {
        "model": "whisper-1",
        "response_format": "json",
        "file": "clip.wav",
    }


async def test_azure_refusals_tell_the_operator_what_to_check(azure: FakeAzureOpenAI) -> None:
    async with azure_client(azure, key="wrong-key-XYZ") as client:
        with pytest.raises(AuthenticationFailed) as refused:
            await client.chat(model="gpt-4o", messages=MESSAGES)
    assert "Check AZURE_OPENAI_API_KEY" in str(refused.value)
    assert "Access denied due to invalid subscription key" in str(refused.value)
    assert "wrong-key-XYZ" not in str(refused.value)

    async with azure_client(azure) as client:
        with pytest.raises(ModelNotFound) as missing:
            await client.chat(model="gpt-4.1", messages=MESSAGES)
        with pytest.raises(ModelNotFound):  # a stream is refused as it opens
            async with client.stream_chat(model="gpt-4.1", messages=MESSAGES):
                pass
    assert "/openai/deployments/gpt-4.1/chat/completions" in str(missing.value)
    assert "has a deployment of that name" in str(missing.value)

    async with azure_client(azure, version="1999-01-01") as client:
        with pytest.raises(BadRequest, match="API version not supported"):
            await client.chat(model="gpt-4o", messages=MESSAGES)


async def test_openai_calls_carry_the_bearer_key_and_the_extra_headers() -> None:
    async with (
        FakeOpenAI(key="sk-right") as openai,
        OpenAIClient(
            base_url=openai.url, api_key="sk-right", headers={"OpenAI-Organization": "org-1"}
        ) as client,
    ):
        completion = await client.chat(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.text == "openai answers gpt-4o-mini"
    assert completion.rate_limits.limit_requests == 10000
    (call,) = openai.calls
    assert call.path == "/v1/chat/completions" and call.query == {}
    assert call.headers["Authorization"] == "Bearer sk-right"
    assert call.headers["OpenAI-Organization"] == "org-1"
    assert "api-key" not in call.headers
