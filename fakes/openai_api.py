"""``FakeOpenAI`` and ``FakeAzureOpenAI``: real local HTTP servers that answer as OpenAI's API
and Azure OpenAI's deployments do, for tests of routing between providers.

    async with FakeAzureOpenAI(key="k", deployments={"gpt-4o-prod": "gpt-4o"}) as azure:
        client = OpenAIClient(base_url=azure.url, api_key="k", wire=AzureWire(...))
        ...
        azure.calls       # every request: method, path, query, headers, body, status

Each checks the key as its original does and refuses otherwise with its original's JSON
error: OpenAI ``Authorization: Bearer KEY`` (401 ``invalid_api_key``), Azure an ``api-key``
header (401), an ``api-version`` query parameter (404 "Resource not found" without one, 400
for one it does not know) and a deployment path (404 ``DeploymentNotFound``; any other path
404). Both serve chat completions (streamed too), legacy completions and audio
transcriptions, with usage and ``x-ratelimit-*`` headers (Azure sends only the ``remaining``
ones), and list their models (what ``quotabot config`` checks). Every answer says which
server gave it (``"<name> answers <model>"``), so a test sees
where a call went. ``fail(503, times=2)`` and ``drop()`` make the next calls fail, ``delay`` holds
every answer back (for timeouts); ``stop()`` leaves the port closed (connections refused)
until ``start()``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiohttp import web

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    """The JSON body, or the form fields of an upload (the file's name for ``file``)."""
    status: int
    """What the fake answered (0: the connection was dropped)."""


class _Refused(Exception):
    def __init__(self, status: int, body: JSON):
        self.status, self.body = status, body


class _FakeProvider:
    """What both fakes share: the server's lifecycle, faults, the answers' shapes."""

    name = "fake"

    def __init__(self, *, key: str, name: str | None = None):
        self.key = key
        self.name = name or self.name
        self.calls: list[Call] = []
        self._faults: list[int] = []
        """Statuses the next calls answer with; 0 drops the connection."""
        self.delay = 0.0
        """Seconds every answer waits before it is sent."""
        self._runner: web.AppRunner | None = None
        self._port = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen (again, on the same port after ``stop``)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._port).start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close the port: calls now meet a refused connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    # --- what tests set up -----------------------------------------------------------------

    def fail(self, status: int = 503, *, times: int = 1) -> None:
        """The next ``times`` calls (that pass the key and path checks) answer ``status``."""
        self._faults.extend([status] * times)

    def drop(self, *, times: int = 1) -> None:
        """The next ``times`` calls get their connection closed, no answer."""
        self._faults.extend([0] * times)

    # --- serving ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        status = 200
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            op, model = self._route(request)
            if self._faults:
                status = self._faults.pop(0)
                if status == 0:
                    if request.transport is not None:
                        request.transport.close()
                    return web.Response()  # never reaches the client
                raise _Refused(status, self._server_error(status))
            response = await self._answer(request, op, model, body)
        except _Refused as refused:
            status = refused.status
            response = _json(refused.body, status=status, headers=self._headers())
        finally:
            self.calls.append(
                Call(
                    request.method,
                    request.path,
                    dict(request.query),
                    dict(request.headers),
                    body,
                    status,
                )
            )
        return response

    def _route(self, request: web.Request) -> tuple[str, str]:
        """(operation, model) of a request that passes the checks; raises _Refused."""
        raise NotImplementedError

    def _server_error(self, status: int) -> JSON:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _served_model(self, model: str) -> str:
        return model

    def _models(self) -> list[str]:
        raise NotImplementedError

    async def _answer(
        self, request: web.Request, op: str, model: str, body: Any
    ) -> web.StreamResponse:
        if op == "models":
            data = [{"id": m, "object": "model"} for m in self._models()]
            return _json({"object": "list", "data": data}, headers=self._headers())
        text = f"{self.name} answers {model}"
        served = self._served_model(model)
        if op == "audio/transcriptions":
            return _json({"text": text}, headers=self._headers())
        if not isinstance(body, dict):
            raise _Refused(400, {"error": {"message": "We could not parse the JSON body."}})
        if op == "completions":
            prompts = body.get("prompt")
            prompts = prompts if isinstance(prompts, list) else [prompts]
            choices = [
                {"text": text, "index": i, "logprobs": None, "finish_reason": "stop"}
                for i in range(len(prompts))
            ]
            usage = _usage(sum(len(str(p).split()) for p in prompts), len(prompts) * 4)
            answer = {"object": "text_completion", "model": served, "choices": choices}
            return _json({**answer, "usage": usage}, headers=self._headers())
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        if body.get("stream"):
            return await self._stream(request, served, text, prompt, body)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "finish_reason": "stop",
        }
        return _json(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "model": served,
                "choices": [choice],
                "usage": _usage(prompt, 4),
            },
            headers=self._headers(),
        )

    def _first_chunks(self) -> list[JSON]:
        return []

    async def _stream(
        self, request: web.Request, model: str, text: str, prompt: int, body: JSON
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={**self._headers(), "Content-Type": "text/event-stream"}
        )
        await response.prepare(request)
        chunk = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk"}
        events = self._first_chunks()
        for i, word in enumerate(text.split(" ")):
            delta = {"content": word if i == 0 else " " + word}
            events.append({**chunk, "model": model, "choices": [{"index": 0, "delta": delta}]})
        done = {"index": 0, "delta": {}, "finish_reason": "stop"}
        events.append({**chunk, "model": model, "choices": [done]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**chunk, "model": model, "choices": [], "usage": _usage(prompt, 4)})
        for event in events:
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


class FakeOpenAI(_FakeProvider):
    """OpenAI's API (and the servers that imitate it) at ``url`` (``.../v1``)."""

    name = "openai"

    def __init__(self, *, key: str, name: str | None = None, models: set[str] | None = None):
        super().__init__(key=key, name=name)
        self.models = models
        """The models it serves; None: any."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def _route(self, request: web.Request) -> tuple[str, str]:
        op = request.path.removeprefix("/v1/")
        if (request.method, op) != ("GET", "models") and (
            request.method != "POST" or op not in _OPERATIONS
        ):
            raise _Refused(404, _openai_error(f"Invalid URL ({request.method} {request.path})"))
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise _Refused(
                401,
                _openai_error(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                ),
            )
        if auth.removeprefix("Bearer ") != self.key:
            raise _Refused(
                401,
                _openai_error("Incorrect API key provided.", code="invalid_api_key"),
            )
        return op, ""  # the model is in the body (or the upload's form)

    async def _answer(
        self, request: web.Request, op: str, model: str, body: Any
    ) -> web.StreamResponse:
        model = str(body.get("model", "")) if isinstance(body, dict) else ""
        if op != "models" and self.models is not None and model not in self.models:
            raise _Refused(
                404,
                _openai_error(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    code="model_not_found",
                ),
            )
        return await super()._answer(request, op, model, body)

    def _models(self) -> list[str]:
        return sorted(self.models or {"gpt-4o-mini"})

    def _server_error(self, status: int) -> JSON:
        return _openai_error(
            "The server had an error while processing your request.", code="server_error"
        )

    def _headers(self) -> dict[str, str]:
        return {
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-limit-tokens": "30000000",
            "x-ratelimit-remaining-tokens": "29999000",
            "x-ratelimit-reset-tokens": "2ms",
        }


class FakeAzureOpenAI(_FakeProvider):
    """One Azure OpenAI resource at ``url`` (its endpoint, as the portal shows it)."""

    name = "azure"
    API_VERSIONS = frozenset({"2024-02-01", "2024-06-01", "2024-10-21", "2025-01-01-preview"})

    def __init__(
        self,
        *,
        key: str,
        deployments: Mapping[str, str],
        name: str | None = None,
        api_versions: set[str] | frozenset[str] = API_VERSIONS,
    ):
        super().__init__(key=key, name=name)
        self.deployments = dict(deployments)
        """Deployment name -> the model deployed there."""
        self.api_versions = api_versions

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def _route(self, request: web.Request) -> tuple[str, str]:
        parts = request.path.split("/", 4)  # "", "openai", "deployments", NAME, operation
        listing = (request.method, request.path) == ("GET", "/openai/models")
        deployment_call = (
            request.method == "POST"
            and len(parts) == 5
            and parts[1:3] == ["openai", "deployments"]
            and parts[4] in _OPERATIONS
        )
        if "api-version" not in request.query or not (listing or deployment_call):
            raise _Refused(404, {"error": {"code": "404", "message": "Resource not found"}})
        if request.headers.get("api-key") != self.key:
            raise _Refused(
                401,
                {
                    "error": {
                        "code": "401",
                        "message": "Access denied due to invalid subscription key or wrong API "
                        "endpoint. Make sure to provide a valid key for an active subscription "
                        "and use a correct regional API endpoint for your resource.",
                    }
                },
            )
        if request.query["api-version"] not in self.api_versions:
            raise _Refused(
                400, {"error": {"code": "BadRequest", "message": "API version not supported"}}
            )
        if listing:
            return "models", ""
        if parts[3] not in self.deployments:
            raise _Refused(
                404,
                {
                    "error": {
                        "code": "DeploymentNotFound",
                        "message": "The API deployment for this resource does not exist. If "
                        "you created the deployment within the last 5 minutes, please wait a "
                        "moment and try again.",
                    }
                },
            )
        return parts[4], parts[3]

    def _served_model(self, model: str) -> str:
        return self.deployments[model]

    def _models(self) -> list[str]:
        return sorted(set(self.deployments.values()))

    def _server_error(self, status: int) -> JSON:
        return {
            "error": {
                "code": "InternalServerError" if status == 500 else "ServiceUnavailable",
                "message": "The service is temporarily unable to process your request. "
                "Please try again later.",
            }
        }

    def _first_chunks(self) -> list[JSON]:
        # Azure opens each stream with its prompt's content filter results, and no choices.
        return [
            {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
            }
        ]

    def _headers(self) -> dict[str, str]:
        request_id = str(uuid.uuid4())
        return {
            "apim-request-id": request_id,
            "x-request-id": request_id,
            "x-ms-region": "Sweden Central",
            "x-ratelimit-remaining-requests": "99",
            "x-ratelimit-remaining-tokens": "99000",
        }


_OPERATIONS = ("chat/completions", "completions", "audio/transcriptions")


def _openai_error(message: str, code: str | None = None) -> JSON:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error" if code != "server_error" else "server_error",
            "param": None,
            "code": code,
        }
    }


def _usage(prompt: int, completion: int) -> JSON:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    if request.content_type == "multipart/form-data":
        form = await request.post()
        return {
            k: (v.filename if isinstance(v, web.FileField) else str(v)) for k, v in form.items()
        }
    try:
        return await request.json()
    except ValueError:
        return None


def _json(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )
