"""The fake OpenAI and Azure OpenAI servers refuse what their originals refuse, with their
originals' statuses and JSON errors, and record every request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fakes.openai_api import FakeAzureOpenAI, FakeOpenAI

KEY = "azure-key-for-tests"
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def azure() -> AsyncIterator[FakeAzureOpenAI]:
    async with FakeAzureOpenAI(key=KEY, deployments={"gpt-4o-prod": "gpt-4o"}) as server:
        yield server


@pytest.mark.parametrize(
    ("path", "params", "headers", "status", "code", "message"),
    [
        (
            "/openai/deployments/gpt-4o-prod/chat/completions",
            {},
            {"api-key": KEY},
            404,
            "404",
            "Resource not found",
        ),
        (
            "/openai/deployments/gpt-4o-prod/chat/completions",
            {"api-version": "2024-10-21"},
            {"Authorization": f"Bearer {KEY}"},  # OpenAI's header: Azure wants api-key
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint.",
        ),
        (
            "/openai/deployments/gpt-4o-prod/chat/completions",
            {"api-version": "2024-10-21"},
            {"api-key": "wrong"},
            401,
            "401",
            "Access denied",
        ),
        (
            "/openai/deployments/gpt-4o-prod/chat/completions",
            {"api-version": "1999-01-01"},
            {"api-key": KEY},
            400,
            "BadRequest",
            "API version not supported",
        ),
        (
            "/openai/deployments/gpt-4o/chat/completions",
            {"api-version": "2024-10-21"},
            {"api-key": KEY},
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist.",
        ),
        (
            "/v1/chat/completions",  # an OpenAI path
            {"api-version": "2024-10-21"},
            {"api-key": KEY},
            404,
            "404",
            "Resource not found",
        ),
    ],
)
async def test_azure_refuses_as_azure_does(
    azure: FakeAzureOpenAI,
    path: str,
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    code: str,
    message: str,
) -> None:
    async with httpx.AsyncClient(base_url=azure.url) as http:
        response = await http.post(path, params=params, headers=headers, json=CHAT)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code and error["message"].startswith(message)
    assert [c.status for c in azure.calls] == [status]


async def test_azure_answers_a_deployment_with_its_model_and_headers(
    azure: FakeAzureOpenAI,
) -> None:
    async with httpx.AsyncClient(base_url=azure.url) as http:
        response = await http.post(
            "/openai/deployments/gpt-4o-prod/chat/completions",
            params={"api-version": "2024-10-21"},
            headers={"api-key": KEY},
            json=CHAT,
        )
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "gpt-4o"
    assert body["choices"][0]["message"]["content"] == "azure answers gpt-4o-prod"
    assert response.headers["x-ratelimit-remaining-requests"] == "99"
    assert "x-ratelimit-limit-requests" not in response.headers
    (call,) = azure.calls
    assert (call.path, call.query, call.headers["api-key"]) == (
        "/openai/deployments/gpt-4o-prod/chat/completions",
        {"api-version": "2024-10-21"},
        KEY,
    )


async def test_openai_wants_its_bearer_key_and_knows_its_models() -> None:
    async with (
        FakeOpenAI(key="sk-right", models={"gpt-4o-mini"}) as openai,
        httpx.AsyncClient(base_url=openai.url) as http,
    ):
        chat = {**CHAT, "model": "gpt-4o-mini"}
        none = await http.post("/chat/completions", json=chat)
        wrong = await http.post(
            "/chat/completions", json=chat, headers={"Authorization": "Bearer sk-no"}
        )
        unknown = await http.post(
            "/chat/completions",
            json={**chat, "model": "gpt-5"},
            headers={"Authorization": "Bearer sk-right"},
        )
        ok = await http.post(
            "/chat/completions", json=chat, headers={"Authorization": "Bearer sk-right"}
        )
    assert (none.status_code, wrong.status_code, unknown.status_code) == (401, 401, 404)
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert unknown.json()["error"]["code"] == "model_not_found"
    assert ok.json()["choices"][0]["message"]["content"] == "openai answers gpt-4o-mini"
    assert ok.headers["x-ratelimit-limit-requests"] == "10000"
    assert [c.status for c in openai.calls] == [401, 401, 404, 200]


async def test_faults_and_a_stopped_server() -> None:
    async with FakeOpenAI(key="k") as openai:
        openai.fail(503)
        openai.drop()
        async with httpx.AsyncClient(base_url=openai.url) as http:
            auth = {"Authorization": "Bearer k"}
            chat = {**CHAT, "model": "m"}
            assert (
                await http.post("/chat/completions", json=chat, headers=auth)
            ).status_code == 503
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post("/chat/completions", json=chat, headers=auth)
            assert (
                await http.post("/chat/completions", json=chat, headers=auth)
            ).status_code == 200
            url = openai.url
            await openai.stop()
            with pytest.raises(httpx.ConnectError):
                await http.post(f"{url}/chat/completions", json=chat, headers=auth)
            await openai.start()
            assert openai.url == url  # the same port again
            assert (
                await http.post("/chat/completions", json=chat, headers=auth)
            ).status_code == 200
    assert [c.status for c in openai.calls] == [503, 0, 200, 200]
