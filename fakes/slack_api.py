"""``FakeSlackAPI``: a real local HTTP server that answers Slack's Web API as Slack does.

    async with FakeSlackAPI(token="xoxb-test") as api:
        client = AsyncWebClient(token="xoxb-test", base_url=api.url)
        await client.chat_postMessage(channel="C1", text="hi")
        api.assert_received_count("chat.postMessage", 1)
        assert api.messages("C1") == ["hi"]

Bodies may be form-encoded or JSON, parameters may also ride in the query string (slack-sdk
sends ``auth.test``, ``users.info`` and ``reactions.add`` that way); the token comes as
``Authorization: Bearer ...`` or a ``token`` parameter. Every answer is HTTP 200 with
``{"ok": ...}`` unless a test asked for a fault (``rate_limit``, ``fail``). Besides ``/api/``
it serves ``POST /response/<id>`` (a slash command's ``response_url``),
``POST /upload/v1/<file_id>`` (the upload URL ``files.getUploadURLExternal`` hands out) and
``GET /files-pri/<team>-<file_id>/<name>``: the ``url_private_download`` of files that
``add_file`` shared, readable with the bot token (without it Slack sends its sign-in page).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple, Self

from aiohttp import web

from fakes import slack_assistant, slack_views  # noqa: F401  # register their methods in METHODS
from fakes.slack_methods import METHODS, Context, SlackError
from fakes.slack_socket import FakeSocketMode
from fakes.slack_state import JSON, Ephemeral, FakeMessage, SlackState, Upload
from fakes.slack_workspace import DEFAULT_USER, DEFAULT_WORKSPACE, SlackWorkspace

DEFAULT_TOKEN = "xoxb-1111111111-2222222222-quotabottesttoken"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class Call(NamedTuple):
    """One Web API call as received: ``method, params = call``."""

    method: str
    params: JSON


@dataclass
class Exchange:
    """A call with how it was made and answered, for tests that care about the wire."""

    call: Call
    http_method: str
    content_type: str
    token: str | None
    status: int | None = None
    response: JSON | None = None

    @property
    def done(self) -> bool:
        return self.status is not None


@dataclass
class _Fault:
    status: int
    body: JSON
    remaining: int
    headers: dict[str, str] = field(default_factory=dict)


class FakeSlackAPI:
    """Slack's Web API on ``127.0.0.1`` and an ephemeral port; an async context manager."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        workspace: SlackWorkspace = DEFAULT_WORKSPACE,
        streaming_supported: bool = True,
        streaming_error: str = "unknown_method",
        latency: float = 0.0,
        port: int = 0,
    ) -> None:
        self.token = token
        self.workspace = workspace
        self.state = SlackState(workspace)
        # When off, chat.startStream answers ``streaming_error``. Slack documents no error
        # specific to "streaming unavailable"; unknown_method ("This method is currently not
        # available") is its nearest documented code. Set another (say "missing_scope") to test
        # how the adapter copes with that one.
        self.streaming_supported = streaming_supported
        self.streaming_error = streaming_error
        # Seconds to wait before answering any call; ``method_latency`` overrides per method.
        self.latency = latency
        self.method_latency: dict[str, float] = {}
        self.calls: list[Call] = []
        self.exchanges: list[Exchange] = []
        self._responses: dict[str, list[JSON]] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._changed = asyncio.Condition()
        self._port = port
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None
        self.socket = FakeSocketMode()
        self.files: dict[str, tuple[bytes, str]] = {}
        """Shared files by id: (content, mimetype), served at their url_private_download."""
        self.file_handlers: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
        """How files.slack.com answers for a file, when a test wants something else."""
        self.downloads: list[str] = []
        """File ids downloaded (with a valid token), in order."""
        self.oauth_codes: set[str] = set()
        """Codes that oauth.v2.access accepts (as Slack issues them when a workspace installs)."""
        """Socket Mode: apps.connections.open (with the app-level token) and its WebSocket."""

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeSlackAPI is already running.")
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{response_id}", self._handle_response_url)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        app.router.add_get("/files-pri/{team_file}/{name}", self._handle_file_download)
        self.socket.routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def base_url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError("FakeSlackAPI is not listening: use it as `async with`.")
        return f"http://127.0.0.1:{self._bound_port}"

    @property
    def url(self) -> str:
        """What ``AsyncWebClient(base_url=...)`` takes (Slack's is https://slack.com/api/)."""
        return f"{self.base_url}/api/"

    # --- what tests set up -----------------------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, *, retry_after: int = 1) -> None:
        """The next ``times`` calls to ``method`` answer 429 with ``Retry-After``, as Slack does.
        (slack-sdk's retry handler sleeps ``retry_after`` + up to 1 s of jitter.)"""
        self._faults.setdefault(method, []).append(
            _Fault(
                status=429,
                body={"ok": False, "error": "ratelimited"},
                remaining=times,
                headers={"Retry-After": str(retry_after)},
            )
        )

    def fail(
        self, method: str, times: int = 1, *, error: str = "internal_error", status: int = 500
    ) -> None:
        """The next ``times`` calls to ``method`` answer ``status`` and ``{"ok": false, "error"}``.
        ``status=200`` gives the plain error answer most Slack failures are."""
        self._faults.setdefault(method, []).append(
            _Fault(status=status, body={"ok": False, "error": error}, remaining=times)
        )

    def add_user(self, user_id: str, **fields: Any) -> JSON:
        """A workspace member for ``users.info``: ``add_user("U1", is_admin=True)``. Unknown
        ``U``/``W`` IDs are ordinary members without being added."""
        return self.state.add_user(user_id, **fields)

    def add_channel(self, channel_id: str, **fields: Any) -> JSON:
        """A conversation for ``conversations.info`` (``name=``, ``is_private=``, ``user=`` for a
        DM, ``is_archived=``). Unknown ``C``/``G``/``D`` IDs exist without being added."""
        return self.state.add_channel(channel_id, **fields)

    def seed_message(
        self,
        channel: str,
        text: str,
        *,
        user: str = DEFAULT_USER,
        ts: str | None = None,
        thread_ts: str | None = None,
        bot_id: str | None = None,
    ) -> FakeMessage:
        """A message someone else wrote, e.g. earlier turns of a thread."""
        return self.state.add_message(
            channel, text, user=user, ts=ts, thread_ts=thread_ts, bot_id=bot_id
        )

    def seed_event(self, payload: JSON) -> JSON:
        """Remember the message an ``event_callback`` carries (as Slack would have it), so
        ``reactions.add`` and ``conversations.replies`` find it; returns the payload."""
        event = payload.get("event", {})
        thread = event.get("assistant_thread")
        if event.get("type") == "assistant_thread_started" and isinstance(thread, dict):
            # The pane's thread hangs under a message Slack posts (subtype
            # assistant_app_thread), with no text of its own.
            channel, ts = thread["channel_id"], thread["thread_ts"]
            if self.state.find(channel, ts) is None:
                self.state.add_message(channel, "", user=None, ts=ts)
        if (
            event.get("type") in ("message", "app_mention")
            and event.get("subtype") in (None, "file_share")
            and self.state.find(event["channel"], event["ts"]) is None
        ):
            self.state.add_message(
                event["channel"],
                event.get("text", ""),
                user=event.get("user"),
                ts=event["ts"],
                thread_ts=event.get("thread_ts"),
                bot_id=event.get("bot_id"),
                blocks=event.get("blocks"),
                files=event.get("files"),
            )
        return payload

    def add_file(
        self,
        content: bytes,
        name: str,
        mimetype: str,
        *,
        subtype: str | None = None,
        size: int | None = None,
        serve: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None,
    ) -> JSON:
        """A file shared in the workspace; returns its file object as events carry it.
        ``subtype="slack_audio"`` for a voice clip recorded in Slack; ``size`` to claim
        another size than the content's; ``serve``: how its download is answered instead
        of with ``content`` (a redirect, a lying body...)."""
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        self.files[file_id] = (content, mimetype)
        if serve is not None:
            self.file_handlers[file_id] = serve
        team = self.workspace.team_id
        url = f"{self.base_url}/files-pri/{team}-{file_id}/{name}"
        obj: JSON = {
            "id": file_id,
            "created": int(time.time()),
            "timestamp": int(time.time()),
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
            "pretty_type": mimetype,
            "user": DEFAULT_USER,
            "user_team": team,
            "editable": False,
            "size": len(content) if size is None else size,
            "mode": "hosted",
            "is_external": False,
            "is_public": True,
            "url_private": url,
            "url_private_download": url + "?download=1",
            "permalink": f"https://quotabot-test.slack.com/files/{DEFAULT_USER}/{file_id}/{name}",
        }
        if subtype is not None:
            obj["subtype"] = subtype
        self.state.files[file_id] = obj
        return obj

    @staticmethod
    def check_file_info(file: JSON) -> JSON:
        """The file as events carry it when Slack wants the app to ask ``files.info`` for
        the rest (``file_access: check_file_info``): an id and little else."""
        return {
            "id": file["id"],
            "file_access": "check_file_info",
            "created": file["created"],
            "timestamp": file["timestamp"],
            "user": file["user"],
        }

    def response_url(self, response_id: str) -> str:
        """A ``response_url`` for a slash command; what is posted to it is ``responses(id)``."""
        return f"{self.base_url}/response/{response_id}"

    # --- what tests check ----------------------------------------------------------------

    def calls_to(self, method: str) -> list[JSON]:
        """Parameters of every call to ``method``, in order (failed and retried ones too)."""
        return [call.params for call in self.calls if call.method == method]

    def assert_received_count(self, method: str, count: int) -> None:
        received = len(self.calls_to(method))
        assert received == count, (
            f"expected {count} {method} call(s), got {received}; "
            f"all calls: {[c.method for c in self.calls]}"
        )

    async def wait_for_calls(self, method: str, count: int = 1, *, within: float = 2.0) -> None:
        """Wait until ``count`` calls to ``method`` have been answered (an app under test often
        acks first and calls Slack afterwards); fails the test after ``within`` seconds."""

        def answered() -> int:
            return sum(1 for e in self.exchanges if e.call.method == method and e.done)

        if not await self._wait(lambda: answered() >= count, within):
            raise AssertionError(
                f"waited {within}s for {count} {method} call(s), got {answered()}; "
                f"all calls: {[c.method for c in self.calls]}"
            )

    async def wait_for_responses(
        self, response_id: str, count: int = 1, *, within: float = 2.0
    ) -> list[JSON]:
        """Wait until ``count`` bodies were posted to ``response_url(response_id)``; returns
        them all."""
        if not await self._wait(lambda: len(self.responses(response_id)) >= count, within):
            raise AssertionError(
                f"waited {within}s for {count} post(s) to response_url({response_id!r}), "
                f"got {self.responses(response_id)}"
            )
        return self.responses(response_id)

    async def _wait(self, predicate: Callable[[], bool], within: float) -> bool:
        try:
            async with asyncio.timeout(within):
                async with self._changed:
                    await self._changed.wait_for(predicate)
        except TimeoutError:
            return False
        return True

    def messages(self, channel: str, thread_ts: str | None = None) -> list[str]:
        """The visible text of each message, oldest first: the channel's top level
        (``conversations.history``), or with ``thread_ts`` that thread, parent included when
        known (``conversations.replies``)."""
        return [m.visible_text for m in self.history(channel, thread_ts)]

    def history(self, channel: str, thread_ts: str | None = None) -> list[FakeMessage]:
        """Like ``messages`` but the message objects (streaming state, blocks, reactions...)."""
        if thread_ts is None:
            return self.state.top_level(channel)
        return self.state.thread(channel, thread_ts)

    def message(self, channel: str, ts: str) -> FakeMessage:
        found = self.state.find(channel, ts)
        assert found is not None, f"no message {ts} in {channel}"
        return found

    def ephemerals(self, channel: str | None = None) -> list[Ephemeral]:
        return [e for e in self.state.ephemerals if channel is None or e.channel == channel]

    def responses(self, response_id: str) -> list[JSON]:
        """Bodies posted to ``response_url(response_id)``, in order."""
        return list(self._responses.get(response_id, []))

    @property
    def uploads(self) -> dict[str, Upload]:
        return self.state.uploads

    # --- HTTP ----------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: JSON = dict(request.query)
        error: SlackError | None = None
        try:
            params.update(await _read_body(request))
        except SlackError as exc:
            error = exc
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
        token = token or params.get("token")
        params.pop("token", None)
        call = Call(method, params)
        exchange = Exchange(call, request.method, request.content_type, token)
        self.calls.append(call)
        self.exchanges.append(exchange)

        delay = self.method_latency.get(method, self.latency)
        if delay:
            await asyncio.sleep(delay)
        status, body, headers = self._answer(method, params, token, error)
        exchange.status, exchange.response = status, body
        await self._notify()
        return web.json_response(body, status=status, headers=headers)

    def _answer(
        self, method: str, params: JSON, token: str | None, error: SlackError | None
    ) -> tuple[int, JSON, dict[str, str]]:
        if fault := self._take_fault(method):
            return fault.status, fault.body, fault.headers
        if method == "oauth.v2.access":
            return 200, self._oauth_access(params), {}
        if method == "apps.connections.open":
            self.socket.base_url = self.base_url
            return 200, self.socket.open(token), {}
        # Slack answers every call with the scopes the token has.
        headers = {"X-OAuth-Scopes": "app_mentions:read,channels:history,chat:write,commands"}
        try:
            if error is not None:
                raise error
            if method not in METHODS:
                raise SlackError("unknown_method", req_method=method)
            if not token:
                raise SlackError("not_authed")
            if token != self.token:
                raise SlackError("invalid_auth")
            ctx = Context(self.state, self.base_url, self.streaming_supported, self.streaming_error)
            return 200, METHODS[method](ctx, params), headers
        except SlackError as exc:
            return 200, exc.body(), headers

    def _oauth_access(self, params: JSON) -> JSON:
        """The end of an install: a code from ``oauth_codes`` is swapped for this workspace's
        bot token, once."""
        code = params.get("code")
        if code not in self.oauth_codes:
            return {"ok": False, "error": "invalid_code"}
        self.oauth_codes.discard(code)
        ws = self.workspace
        return {
            "ok": True,
            "app_id": "AQUOTABOT1",
            "authed_user": {"id": "UINSTALLER"},
            "scope": "app_mentions:read,chat:write,commands",
            "token_type": "bot",
            "access_token": self.token,
            "bot_user_id": ws.bot_user_id,
            "team": {"id": ws.team_id, "name": ws.team_name},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults.get(method, []):
            if fault.remaining > 0:
                fault.remaining -= 1
                return fault
        return None

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        # response_url takes JSON ({"text", "response_type", "replace_original", ...}).
        body = await request.json()
        self._responses.setdefault(request.match_info["response_id"], []).append(body)
        await self._notify()
        return web.Response(text="ok", content_type="text/plain")

    async def _handle_upload(self, request: web.Request) -> web.Response:
        upload = self.state.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="file_not_found", content_type="text/plain")
        upload.content = await request.read()
        # What files.slack.com answers, and slack-sdk only checks the status.
        return web.Response(text=f"OK - {len(upload.content)}", content_type="text/plain")

    async def _handle_file_download(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        file_id = request.match_info["team_file"].rsplit("-", 1)[-1]
        if header != f"Bearer {self.token}" or file_id not in self.files:
            # What files.slack.com answers without a valid token: its sign-in page, 200.
            return web.Response(text="<html><title>Slack</title></html>", content_type="text/html")
        content, mimetype = self.files[file_id]
        self.downloads.append(file_id)
        if (handler := self.file_handlers.get(file_id)) is not None:
            return await handler(request)
        return web.Response(body=content, content_type=mimetype)


async def _read_body(request: web.Request) -> JSON:
    if request.method != "POST" or not request.can_read_body:
        return {}
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("invalid_json")
        return body
    if request.content_type in _FORM_TYPES:
        form = await request.post()
        return {
            key: value if isinstance(value, str) else getattr(value, "filename", "")
            for key, value in form.items()
        }
    raise SlackError("invalid_post_type")
