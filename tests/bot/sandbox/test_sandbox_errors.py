"""Refusals a client can meet before any answer: auth, bad bodies, unknown models and paths."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bot.catalog import Catalog, ModelOverride

CHAT = "/chat/completions"
LEGACY = "/completions"
HI = [{"role": "user", "content": "hi"}]
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with "
    "blank username) if you're accessing the API from your browser and are prompted for a "
    "username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


def error(message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


@pytest.mark.parametrize("auth", [None, "Bearer", "Basic dXNlcjpwYXNz", "sk-no-scheme"])
async def test_missing_key_is_401(serve: Any, auth: str | None) -> None:
    _, client = await serve()
    headers = {"Authorization": auth} if auth is not None else {}
    client.headers.pop("Authorization")
    r = await client.post(CHAT, json={"model": "gpt-4o", "messages": HI}, headers=headers)
    assert r.status_code == 401
    assert r.json() == error(NO_KEY)
    assert not any(k.startswith("x-ratelimit-") for k in r.headers)
    assert r.headers["x-request-id"].startswith("req_")


async def test_wrong_key_is_401_with_the_key_masked(serve: Any) -> None:
    _, client = await serve(api_key="sk-right-key")
    body = {"model": "gpt-4o", "messages": HI}
    r = await client.post(CHAT, json=body, headers={"Authorization": "Bearer sk-abcdefxyz"})
    assert r.status_code == 401
    assert r.json() == error(
        "Incorrect API key provided: sk-ab***yz. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )
    ok = await client.post(CHAT, json=body, headers={"Authorization": "Bearer sk-right-key"})
    assert ok.status_code == 200


async def test_without_a_configured_key_any_key_works(client: httpx.AsyncClient) -> None:
    r = await client.post(
        CHAT, json={"model": "gpt-4o", "messages": HI}, headers={"Authorization": "Bearer x"}
    )
    assert r.status_code == 200


BAD_BODIES: list[tuple[str, Any, str | None, str | None, str]] = [
    # (path, body, param, code, message)
    (CHAT, {"messages": HI}, None, None, "you must provide a model parameter"),
    (CHAT, {"model": "", "messages": HI}, None, None, "you must provide a model parameter"),
    (
        CHAT,
        {"model": 4, "messages": HI},
        "model",
        "invalid_type",
        "Invalid type for 'model': expected a string, but got an integer instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o"},
        "messages",
        "missing_required_parameter",
        "Missing required parameter: 'messages'.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": []},
        "messages",
        "empty_array",
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": "hi"},
        "messages",
        "invalid_type",
        "Invalid type for 'messages': expected an array, but got a string instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": ["hi"]},
        "messages[0]",
        "invalid_type",
        "Invalid type for 'messages[0]': expected an object, but got a string instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": [*HI, {"role": "robot", "content": "beep"}]},
        "messages[1].role",
        "invalid_value",
        "Invalid value: 'robot'. Supported values are: 'system', 'assistant', and 'user'.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": [{"content": "hi"}]},
        "messages[0].role",
        "missing_required_parameter",
        "Missing required parameter: 'messages[0].role'.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": [{"role": "user"}]},
        "messages[0].content",
        "missing_required_parameter",
        "Missing required parameter: 'messages[0].content'.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]},
        "messages[0].content",
        "invalid_type",
        "Invalid type for 'messages[0].content': expected one of a string or array of objects, "
        "but got an integer instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi", "name": 3}]},
        "messages[0].name",
        "invalid_type",
        "Invalid type for 'messages[0].name': expected a string, but got an integer instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": HI, "max_tokens": 0},
        "max_tokens",
        "integer_below_min_value",
        "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 "
        "instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": HI, "max_tokens": "10"},
        "max_tokens",
        "invalid_type",
        "Invalid type for 'max_tokens': expected an integer, but got a string instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": HI, "max_tokens": 2.5},
        "max_tokens",
        "invalid_type",
        "Invalid type for 'max_tokens': expected an integer, but got a number instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": HI, "temperature": 2.5},
        "temperature",
        "decimal_above_max_value",
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 "
        "instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": HI, "temperature": -1},
        "temperature",
        "decimal_below_min_value",
        "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -1 "
        "instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": HI, "temperature": "hot"},
        "temperature",
        "invalid_type",
        "Invalid type for 'temperature': expected a decimal, but got a string instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": HI, "stream": "yes"},
        "stream",
        "invalid_type",
        "Invalid type for 'stream': expected a boolean, but got a string instead.",
    ),
    (
        CHAT,
        {"model": "gpt-4o", "messages": HI, "stream_options": {"include_usage": True}},
        "stream_options",
        "invalid_value",
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
    ),
    (
        LEGACY,
        {"model": "gpt-3.5-turbo-instruct"},
        "prompt",
        "missing_required_parameter",
        "Missing required parameter: 'prompt'.",
    ),
    (
        LEGACY,
        {"model": "gpt-3.5-turbo-instruct", "prompt": []},
        "prompt",
        "empty_array",
        "Invalid 'prompt': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead.",
    ),
    (
        LEGACY,
        {"model": "gpt-3.5-turbo-instruct", "prompt": 5},
        "prompt",
        "invalid_type",
        "Invalid type for 'prompt': expected one of a string or array of strings, but got an "
        "integer instead.",
    ),
    (
        LEGACY,
        {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", "max_tokens": -3},
        "max_tokens",
        "integer_below_min_value",
        "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got -3 "
        "instead.",
    ),
]


@pytest.mark.parametrize(("path", "body", "param", "code", "message"), BAD_BODIES)
async def test_bad_bodies_are_400_naming_the_field(
    serve: Any,
    path: str,
    body: Any,
    param: str | None,
    code: str | None,
    message: str,
) -> None:
    server, client = await serve()
    r = await client.post(path, json=body)
    assert r.status_code == 400
    assert r.json() == error(message, param=param, code=code)
    assert "x-ratelimit-remaining-requests" in r.headers
    assert server.stats.total.requests == 0


@pytest.mark.parametrize("raw", [b"{not json", b"", "\u00e9".encode("latin-1")])
async def test_a_body_that_is_not_json_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    r = await client.post(CHAT, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["message"].startswith("We could not parse the JSON body of your request.")
    assert error["type"] == "invalid_request_error"
    assert error["param"] is None


async def test_a_body_that_is_not_an_object_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(CHAT, json=[1, 2])
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "Invalid type for body: expected an object, but got an array instead."
    )


async def test_unknown_fields_are_ignored(client: httpx.AsyncClient) -> None:
    r = await client.post(
        CHAT, json={"model": "gpt-4o", "messages": HI, "frobnicate": {"x": 1}, "user": "u1"}
    )
    assert r.status_code == 200


async def test_chat_context_overflow(serve: Any) -> None:
    catalog = Catalog.build(overrides={"tiny": ModelOverride(context_window=100)})
    _, client = await serve(catalog=catalog)
    r = await client.post(CHAT, json={"model": "tiny", "messages": HI, "max_tokens": 93})
    assert r.status_code == 400
    assert r.json() == error(
        "This model's maximum context length is 100 tokens. However, you requested 101 tokens "
        "(8 in the messages, 93 in the completion). Please reduce the length of the messages or "
        "completion.",
        param="messages",
        code="context_length_exceeded",
    )
    fits = await client.post(CHAT, json={"model": "tiny", "messages": HI, "max_tokens": 92})
    assert fits.status_code == 200

    long = [{"role": "user", "content": " ".join(["word"] * 200)}]  # 200 tokens
    r = await client.post(CHAT, json={"model": "tiny", "messages": long})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        "This model's maximum context length is 100 tokens. However, your messages resulted in "
        "207 tokens. Please reduce the length of the messages."
    )


async def test_legacy_context_overflow(client: httpx.AsyncClient) -> None:
    prompt = " ".join(["hello"] * 4000)  # 4,000 tokens in cl100k_base
    r = await client.post(
        LEGACY,
        json={"model": "gpt-3.5-turbo-instruct", "prompt": ["short", prompt], "max_tokens": 1000},
    )
    assert r.status_code == 400
    assert r.json() == error(
        "This model's maximum context length is 4096 tokens, however you requested 5000 tokens "
        "(4000 in your prompt; 1000 for the completion). Please reduce your prompt; or "
        "completion length.",
        code="context_length_exceeded",
    )


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post(CHAT, json={"model": "gpt-9-ultra", "messages": HI})
    assert r.status_code == 404
    assert r.json() == error(
        "The model `gpt-9-ultra` does not exist or you do not have access to it.",
        code="model_not_found",
    )
    assert "x-ratelimit-limit-requests" in r.headers


async def test_a_model_on_the_wrong_endpoint_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post(CHAT, json={"model": "gpt-3.5-turbo-instruct", "messages": HI})
    assert r.status_code == 404
    assert r.json() == error(
        "This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
        "Did you mean to use v1/completions?"
    )
    r = await client.post(LEGACY, json={"model": "gpt-4o", "prompt": "hi"})
    assert r.status_code == 404
    assert r.json() == error(
        "This is a chat model and not supported in the v1/completions endpoint. "
        "Did you mean to use v1/chat/completions?"
    )


async def test_unknown_paths_and_methods_get_json_errors(client: httpx.AsyncClient) -> None:
    r = await client.post("/embeddings", json={})
    assert r.status_code == 404
    assert r.json() == error("Invalid URL (POST /v1/embeddings)")
    r = await client.get(CHAT)
    assert r.status_code == 405
    assert r.json() == error("Invalid method for URL (GET /v1/chat/completions)")
