"""``FakeDiscordAPI``: a real local HTTP server that answers Discord's REST API as Discord does,
and ``Signer``: signs interaction posts with a test Ed25519 key pair, as Discord signs them.

    async with FakeDiscordAPI() as api:
        rest = DiscordREST(base_url=api.url)          # or discord.http.Route.BASE = api.url
        ...
        api.thread(token)   # what the user sees of an interaction: the response, follow-ups

It serves what quotabot calls: interaction callbacks and webhooks (edit ``@original``,
follow-ups), channel messages (send, edit, fetch, typing), command registration, what
discord.py's ``login`` reads (``/users/@me``, ``/oauth2/applications/@me``), and, as Discord's
CDN does, the files of attachments made by ``add_attachment``. Every answer
carries Discord's rate-limit headers; each route and top-level resource has a real bucket
(``limit`` requests per ``window`` seconds) that answers 429 with ``retry_after`` when
overdrawn, and ``rate_limit()`` forces 429s. Interaction tokens expire after ``token_ttl``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
from aiohttp import web
from nacl.signing import SigningKey

JSON = dict[str, Any]
FileHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""How the fake CDN answers for one file, when a test wants something else than its bytes."""
DISCORD_EPOCH_MS = 1_420_070_400_000
APPLICATION_ID = "1100000000000000001"
BOT_ID = APPLICATION_ID  # a bot user has its application's id
BOT_TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.fake.bot-token"
GUILD = "1200000000000000001"
CHANNEL = "1300000000000000001"
DM_CHANNEL = "1300000000000000009"
USER = "1400000000000000001"
ADMIN = "1400000000000000002"
_ids = itertools.count()


def snowflake(at: float | None = None) -> str:
    """A fresh Discord id, whose timestamp is ``at`` (default: now)."""
    ms = int((time.time() if at is None else at) * 1000) - DISCORD_EPOCH_MS
    return str((ms << 22) | (next(_ids) % (1 << 22)))


def user(user_id: str = USER, *, name: str = "ada", bot: bool = False) -> JSON:
    return {
        "id": user_id,
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


def message(
    content: str,
    *,
    channel: str = CHANNEL,
    guild: str | None = GUILD,
    author: JSON | None = None,
    mentions: list[JSON] | None = None,
    reply_to: JSON | None = None,
    message_id: str | None = None,
    attachments: list[JSON] | None = None,
    flags: int = 0,
) -> JSON:
    """A message object as Discord sends it (MESSAGE_CREATE, or a REST answer).
    ``flags=IS_VOICE_MESSAGE`` with one audio attachment is a voice message."""
    out: JSON = {
        "id": message_id or snowflake(),
        "channel_id": channel,
        "author": author or user(),
        "content": content,
        "timestamp": "2026-11-25T12:00:00.000000+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": mentions or [],
        "mention_roles": [],
        "attachments": attachments or [],
        "embeds": [],
        "pinned": False,
        "type": 19 if reply_to else 0,
        "flags": flags,
    }
    if guild:
        out["guild_id"] = guild
    if reply_to:
        out["message_reference"] = {
            "type": 0,
            "message_id": reply_to["id"],
            "channel_id": reply_to["channel_id"],
            **({"guild_id": guild} if guild else {}),
        }
        # One level only, as Discord sends it: the parent without its own parent.
        out["referenced_message"] = {k: v for k, v in reply_to.items() if k != "referenced_message"}
    return out


class Signer:
    """Discord's side of HTTP interactions: a key pair, and signed posts."""

    def __init__(self) -> None:
        self.key = SigningKey.generate()

    @property
    def public_key(self) -> str:
        """What quotabot is configured with (DISCORD_PUBLIC_KEY)."""
        return self.key.verify_key.encode().hex()

    def headers(self, body: bytes, *, timestamp: float | None = None) -> dict[str, str]:
        ts = str(int(time.time() if timestamp is None else timestamp))
        signature = self.key.sign(ts.encode() + body).signature.hex()
        return {
            "X-Signature-Ed25519": signature,
            "X-Signature-Timestamp": ts,
            "Content-Type": "application/json",
        }

    async def post(
        self,
        http: httpx.AsyncClient,
        url: str,
        payload: JSON,
        *,
        timestamp: float | None = None,
        bad_signature: bool = False,
    ) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = self.headers(body, timestamp=timestamp)
        if bad_signature:  # signed by someone else: what Discord's own checks send
            headers["X-Signature-Ed25519"] = SigningKey.generate().sign(body).signature.hex()
        return await http.post(url, content=body, headers=headers)


def interaction(
    name: str,
    options: list[JSON] | None = None,
    *,
    user_id: str = USER,
    guild: str | None = GUILD,
    channel: str = CHANNEL,
    permissions: int = 0,
    roles: list[str] | None = None,
    created: float | None = None,
) -> JSON:
    """An APPLICATION_COMMAND interaction, as Discord posts it (and sends over the gateway)."""
    interaction_id = snowflake(created)
    payload: JSON = {
        "id": interaction_id,
        "application_id": APPLICATION_ID,
        "type": 2,
        "token": f"itoken-{interaction_id}",
        "version": 1,
        "channel_id": channel,
        "channel": _channel(channel, guild, user_id),
        "locale": "en-US",
        "attachment_size_limit": 10 * 1024 * 1024,
        "app_permissions": "2147483647",
        "entitlements": [],
        "authorizing_integration_owners": {},
        "context": 0 if guild else 1,
        "data": {"id": snowflake(), "name": name, "type": 1, "options": options or []},
    }
    if guild:
        payload["guild_id"] = guild
        payload["guild_locale"] = "en-US"
        payload["member"] = {
            "user": user(user_id),
            "roles": roles or [],
            "permissions": str(permissions),
            "joined_at": "2026-01-01T00:00:00.000000+00:00",
            "deaf": False,
            "mute": False,
            "flags": 0,
        }
    else:
        payload["user"] = user(user_id)
    return payload


def clicked(custom_id: str, message: JSON | None = None, **kw: Any) -> JSON:
    """A MESSAGE_COMPONENT interaction: a button (``custom_id``) on ``message`` clicked;
    ``kw`` as for ``interaction`` (who clicked, their permissions and roles)."""
    payload = interaction("", **kw)
    payload["type"] = 3
    payload["data"] = {"custom_id": custom_id, "component_type": 2}
    payload["message"] = message or {}
    return payload


def submitted(custom_id: str, values: dict[str, str], **kw: Any) -> JSON:
    """A MODAL_SUBMIT interaction: the modal ``custom_id`` sent with its text inputs' values."""
    payload = interaction("", **kw)
    payload["type"] = 5
    rows = [
        {"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]}
        for k, v in values.items()
    ]
    payload["data"] = {"custom_id": custom_id, "components": rows}
    return payload


def _channel(channel: str, guild: str | None, user_id: str) -> JSON:
    """The partial channel an interaction carries."""
    if guild is None:
        return {"id": channel, "type": 1, "last_message_id": None, "recipients": [user(user_id)]}
    return {
        "id": channel,
        "type": 0,
        "guild_id": guild,
        "name": "general",
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
        "permissions": "2248473465835073",
    }


IS_VOICE_MESSAGE = 1 << 13


def resolved(payload: JSON, *attachments: JSON) -> JSON:
    """The interaction with ``attachments`` in ``data.resolved``, as Discord sends the files
    of attachment options (type 11, whose value is the attachment's id)."""
    payload["data"]["resolved"] = {"attachments": {a["id"]: a for a in attachments}}
    return payload


def option(name: str, value: Any, kind: int = 3) -> JSON:
    return {"name": name, "type": kind, "value": value}


def subcommand(name: str, *options: JSON) -> JSON:
    return {"name": name, "type": 1, "options": list(options)}


@dataclass
class Call:
    method: str
    path: str
    body: Any
    at: float
    status: int = 0
    raw_path: str = ""
    """The path as sent, still percent-encoded (``path`` is decoded)."""


@dataclass
class Sent:
    """A message as the user sees it now."""

    id: str
    content: str
    flags: int = 0
    reply_to: str | None = None
    edits: list[str] = field(default_factory=list)
    """Every content it had, in order (the first is how it was posted)."""
    embeds: list[JSON] = field(default_factory=list)
    attachments: dict[str, bytes] = field(default_factory=dict)
    """File name -> content, of files sent with it (multipart ``files[n]``)."""
    components: list[JSON] = field(default_factory=list)
    """Its message components (action rows of buttons), as last sent."""

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & 64)


@dataclass
class _Interaction:
    token: str
    created: float
    deferred: JSON | None = None
    original: Sent | None = None
    follow_ups: list[Sent] = field(default_factory=list)


@dataclass
class _Fault:
    route: str
    remaining: int
    retry_after: float
    is_global: bool


@dataclass
class _Bucket:
    used: int = 0
    resets: float = 0.0


class FakeDiscordAPI:
    """Discord's REST API on ``127.0.0.1`` and an ephemeral port; an async context manager."""

    def __init__(self, *, limit: int = 50, window: float = 1.0, token_ttl: float = 900.0):
        self.limit, self.window, self.token_ttl = limit, window, token_ttl
        self.route_limits: dict[str, tuple[int, float]] = {}
        """Per route name (see ``_ROUTES``): its own (limit, window)."""
        self.calls: list[Call] = []
        self.commands: dict[str, list[JSON]] = {}
        """Registered commands: key ``global`` or the guild id."""
        self.channels: dict[str, list[Sent]] = {}
        self.stored: dict[str, JSON] = {}
        """Every message the fake knows, by id (for fetches)."""
        self.typing: list[str] = []
        self.files: dict[str, tuple[bytes, str]] = {}
        """Attachment id -> (content, media type), served like Discord's CDN."""
        self.file_handlers: dict[str, FileHandler] = {}
        self.downloads: list[str] = []
        self._interactions: dict[str, _Interaction] = {}
        self._faults: list[_Fault] = []
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        for method, path, handler in self._routes():
            app.router.add_route(method, "/api/v10" + path, handler)
        app.router.add_get("/attachments/{channel}/{id}/{filename}", self._attachment)
        # Anything else is recorded too (as a 404): a request that reached no route is seen.
        app.router.add_route("*", "/{tail:.*}", self._unrouted)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        """What DISCORD_API_URL is set to (Discord's is https://discord.com/api/v10)."""
        return f"http://127.0.0.1:{self._port}/api/v10"

    # --- what tests set up -----------------------------------------------------------------

    def acknowledged(self, payload: JSON, response: JSON) -> None:
        """Discord got ``response`` to the interaction ``payload`` (HTTP mode: the answer to
        its POST), so the interaction's webhook works from now on."""
        self._interactions[payload["token"]] = _Interaction(
            payload["token"], created=_created(payload["id"]), deferred=response
        )

    def rate_limit(
        self, route: str, times: int = 1, *, retry_after: float = 0.3, is_global: bool = False
    ) -> None:
        """The next ``times`` calls to ``route`` (a name from ``_ROUTES``) answer 429."""
        self._faults.append(_Fault(route, times, retry_after, is_global))

    def add_attachment(
        self,
        content: bytes,
        filename: str,
        content_type: str,
        *,
        channel: str = CHANNEL,
        duration: float | None = None,
        size: int | None = None,
        serve: FileHandler | None = None,
    ) -> JSON:
        """An uploaded file, as an attachment object; ``duration`` (seconds) makes it the
        recording of a voice message (``duration_secs`` and ``waveform``). ``serve``: how the
        CDN answers for it instead of with ``content`` (a redirect, a lying body...)."""
        attachment_id = snowflake()
        self.files[attachment_id] = (content, content_type)
        if serve is not None:
            self.file_handlers[attachment_id] = serve
        url = f"http://127.0.0.1:{self._port}/attachments/{channel}/{attachment_id}/{filename}"
        out: JSON = {
            "id": attachment_id,
            "filename": filename,
            "size": len(content) if size is None else size,
            "url": url + "?ex=6790a1b2&is=678f5032&hm=0f1e2d",
            "proxy_url": url,
            "content_type": content_type,
        }
        if duration is not None:
            out["duration_secs"] = duration
            out["waveform"] = "AAAAAAAAAAAA"
            out["flags"] = 0
        return out

    def seed(self, msg: JSON) -> JSON:
        """A message someone wrote earlier, so that fetching it works."""
        self.stored[msg["id"]] = msg
        return msg

    # --- what tests check ------------------------------------------------------------------

    def thread(self, token: str) -> list[Sent]:
        """What the user sees of an interaction: the response, then its follow-ups."""
        it = self._interactions.get(token)
        if it is None:
            return []
        return ([it.original] if it.original else []) + it.follow_ups

    def deferred(self, token: str) -> JSON | None:
        it = self._interactions.get(token)
        return it.deferred if it else None

    def calls_to(self, route: str) -> list[Call]:
        return [c for c in self.calls if c.method + " " + c.path == route or c.path == route]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        try:
            async with asyncio.timeout(within):
                async with self._changed:
                    await self._changed.wait_for(predicate)
        except TimeoutError:
            raise AssertionError(
                f"waited {within}s; calls: {[(c.method, c.path, c.status) for c in self.calls]}"
            ) from None

    # --- HTTP ------------------------------------------------------------------------------

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("GET", "/users/@me", self._me),
            ("GET", "/oauth2/applications/@me", self._application),
            ("PUT", "/applications/{app}/commands", self._register),
            ("PUT", "/applications/{app}/guilds/{guild}/commands", self._register),
            ("POST", "/interactions/{id}/{token}/callback", self._callback),
            ("PATCH", "/webhooks/{app}/{token}/messages/@original", self._edit_original),
            ("PATCH", "/webhooks/{app}/{token}/messages/{message}", self._edit_follow_up),
            ("POST", "/webhooks/{app}/{token}", self._follow_up),
            ("POST", "/channels/{channel}/messages", self._send),
            ("PATCH", "/channels/{channel}/messages/{message}", self._edit),
            ("GET", "/channels/{channel}/messages/{message}", self._fetch),
            ("GET", "/channels/{channel}/messages", self._list),
            ("POST", "/channels/{channel}/typing", self._typing),
        ]

    async def _attachment(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["id"])
        if found is None:
            return web.Response(status=404, text="Not Found")
        self.downloads.append(request.match_info["id"])
        if (handler := self.file_handlers.get(request.match_info["id"])) is not None:
            return await handler(request)
        return web.Response(body=found[0], content_type=found[1])

    async def _unrouted(self, request: web.Request) -> web.Response:
        call = Call(
            request.method,
            request.path.removeprefix("/api/v10"),
            None,
            time.monotonic(),
            raw_path=_raw_path(request),
        )
        self.calls.append(call)
        return await self._done(call, _json_response({"message": "404: Not Found"}, status=404))

    async def _handle(
        self, request: web.Request, route: str, major: str, answer: Callable[[Any], Any]
    ) -> web.Response:
        body = await _body(request)
        call = Call(
            request.method,
            request.path.removeprefix("/api/v10"),
            body,
            time.monotonic(),
            raw_path=_raw_path(request),
        )
        self.calls.append(call)
        limit, window = self.route_limits.get(route, (self.limit, self.window))
        bucket = self._buckets.setdefault((route, major), _Bucket())
        now = time.monotonic()
        if now >= bucket.resets:
            bucket.used, bucket.resets = 0, now + window
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Bucket": f"bucket-{abs(hash(route)) % 10**8:08d}",
            "X-RateLimit-Reset-After": f"{max(0.0, bucket.resets - now):.3f}",
        }
        fault = next((f for f in self._faults if f.route == route and f.remaining > 0), None)
        if fault is not None or bucket.used >= limit:
            retry_after = fault.retry_after if fault else bucket.resets - now
            if fault:
                fault.remaining -= 1
            headers.update(
                {
                    "Retry-After": str(max(1, round(retry_after))),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Scope": "global" if fault and fault.is_global else "user",
                }
            )
            if fault and fault.is_global:
                headers["X-RateLimit-Global"] = "true"
            return await self._done(
                call,
                _json_response(
                    {
                        "message": "You are being rate limited.",
                        "retry_after": round(retry_after, 3),
                        "global": bool(fault and fault.is_global),
                    },
                    status=429,
                    headers=headers,
                ),
            )
        bucket.used += 1
        headers["X-RateLimit-Remaining"] = str(limit - bucket.used)
        try:
            result = answer(body)
        except _DiscordError as exc:
            response = _json_response(
                {"message": exc.message, "code": exc.code}, status=exc.status, headers=headers
            )
        else:
            if result is None:
                response = web.Response(status=204, headers=headers)
            else:
                response = _json_response(result, headers=headers)
        return await self._done(call, response)

    async def _done(self, call: Call, response: web.Response) -> web.Response:
        call.status = response.status
        async with self._changed:
            self._changed.notify_all()
        return response

    def _bot(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {BOT_TOKEN}":
            raise _DiscordError(401, 0, "401: Unauthorized")

    async def _me(self, request: web.Request) -> web.Response:
        def answer(_: Any) -> JSON:
            self._bot(request)
            return {**user(BOT_ID, name="quotabot", bot=True), "verified": True, "flags": 0}

        return await self._handle(request, "me", "", answer)

    async def _application(self, request: web.Request) -> web.Response:
        def answer(_: Any) -> JSON:
            self._bot(request)
            return {
                "id": APPLICATION_ID,
                "name": "quotabot",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": user(ADMIN, name="owner"),
                "verify_key": "00" * 32,
                "flags": 0,
            }

        return await self._handle(request, "application", "", answer)

    async def _register(self, request: web.Request) -> web.Response:
        app, guild = request.match_info["app"], request.match_info.get("guild")

        def answer(body: Any) -> list[JSON]:
            self._bot(request)
            if app != APPLICATION_ID:
                raise _DiscordError(403, 50001, "Missing Access")
            if not isinstance(body, list) or not all("name" in c for c in body):
                raise _DiscordError(400, 50035, "Invalid Form Body")
            registered = [
                {**c, "id": snowflake(), "application_id": app, "version": snowflake()}
                | ({"guild_id": guild} if guild else {})
                for c in body
            ]
            self.commands[guild or "global"] = registered
            return registered

        return await self._handle(request, "commands", guild or "", answer)

    def _live(self, token: str) -> _Interaction:
        it = self._interactions.get(token)
        if it is None or it.deferred is None:
            raise _DiscordError(404, 10015, "Unknown Webhook")
        if time.time() - it.created > self.token_ttl:
            raise _DiscordError(401, 50027, "Invalid Webhook Token")
        return it

    async def _callback(self, request: web.Request) -> web.Response:
        token, interaction_id = request.match_info["token"], request.match_info["id"]

        def answer(body: JSON) -> JSON | None:
            it = self._interactions.setdefault(token, _Interaction(token, _created(interaction_id)))
            if it.deferred is not None:
                raise _DiscordError(400, 40060, "Interaction has already been acknowledged.")
            it.deferred = body
            if request.query.get("with_response") not in ("1", "true"):
                return None
            return {
                "interaction": {
                    "id": interaction_id,
                    "type": 2,
                    "response_message_loading": body.get("type") == 5,
                    "response_message_ephemeral": bool(
                        (body.get("data") or {}).get("flags", 0) & 64
                    ),
                }
            }

        return await self._handle(request, "callback", interaction_id + token, answer)

    async def _edit_original(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]

        def answer(body: JSON) -> JSON:
            it = self._live(token)
            flags = (it.deferred or {}).get("data", {}).get("flags", 0) or 0
            if it.original is None:
                it.original = Sent(snowflake(), body.get("content", ""), flags=flags)
            it.original.content = body.get("content", it.original.content)
            if "embeds" in body:
                it.original.embeds = list(body["embeds"] or [])
            if "components" in body:
                it.original.components = list(body["components"] or [])
            it.original.edits.append(it.original.content)
            return message(it.original.content, message_id=it.original.id)

        return await self._handle(request, "webhook", request.match_info["app"] + token, answer)

    async def _edit_follow_up(self, request: web.Request) -> web.Response:
        token, message_id = request.match_info["token"], request.match_info["message"]

        def answer(body: JSON) -> JSON:
            it = self._live(token)
            sent = next((s for s in it.follow_ups if s.id == message_id), None)
            if sent is None:
                raise _DiscordError(404, 10008, "Unknown Message")
            sent.content = body.get("content", sent.content)
            sent.edits.append(sent.content)
            return message(sent.content, message_id=sent.id)

        return await self._handle(request, "webhook", request.match_info["app"] + token, answer)

    async def _follow_up(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]

        def answer(body: JSON) -> JSON:
            it = self._live(token)
            sent = Sent(snowflake(), body.get("content", ""), flags=body.get("flags", 0) or 0)
            sent.edits.append(sent.content)
            it.follow_ups.append(sent)
            return message(sent.content, message_id=sent.id)

        return await self._handle(request, "webhook", request.match_info["app"] + token, answer)

    async def _send(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel"]

        def answer(body: JSON) -> JSON:
            self._bot(request)
            files: dict[str, bytes] = body.pop(_FILES, {})
            ref = (body.get("message_reference") or {}).get("message_id")
            parent = self.stored.get(str(ref)) if ref else None
            msg = message(
                body.get("content", ""),
                channel=channel,
                guild=None,
                author=user(BOT_ID, name="quotabot", bot=True),
                reply_to=parent,
            )
            self.stored[msg["id"]] = msg
            sent = Sent(msg["id"], msg["content"], reply_to=str(ref) if ref else None)
            sent.embeds = list(body.get("embeds") or [])
            sent.components = msg["components"] = list(body.get("components") or [])
            declared = {a.get("filename") for a in body.get("attachments") or []}
            if set(files) != declared:
                raise _DiscordError(400, 50035, "Invalid Form Body: attachments do not match")
            sent.attachments = files
            msg["embeds"], msg["attachments"] = (
                sent.embeds,
                [
                    {"id": str(n), "filename": name, "size": len(data)}
                    for n, (name, data) in enumerate(files.items())
                ],
            )
            sent.edits.append(sent.content)
            self.channels.setdefault(channel, []).append(sent)
            return msg

        return await self._handle(request, "messages", channel, answer)

    async def _edit(self, request: web.Request) -> web.Response:
        channel, message_id = request.match_info["channel"], request.match_info["message"]

        def answer(body: JSON) -> JSON:
            self._bot(request)
            sent = next((s for s in self.channels.get(channel, []) if s.id == message_id), None)
            if sent is None:
                raise _DiscordError(404, 10008, "Unknown Message")
            sent.content = body.get("content", sent.content)
            sent.edits.append(sent.content)
            stored = {**self.stored[message_id], "content": sent.content}
            if "components" in body:
                sent.components = stored["components"] = list(body["components"] or [])
            self.stored[message_id] = stored
            return stored

        return await self._handle(request, "messages", channel, answer)

    async def _fetch(self, request: web.Request) -> web.Response:
        channel, message_id = request.match_info["channel"], request.match_info["message"]

        def answer(_: Any) -> JSON:
            self._bot(request)
            found = self.stored.get(message_id)
            if found is None or found["channel_id"] != channel:
                raise _DiscordError(404, 10008, "Unknown Message")
            return found

        return await self._handle(request, "fetch", channel, answer)

    async def _list(self, request: web.Request) -> web.Response:
        """A channel's messages, newest first; ``after`` (an id) and ``limit`` (1 to 100)."""
        channel = request.match_info["channel"]
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", "50"))

        def answer(_: Any) -> list[JSON]:
            self._bot(request)
            if not 1 <= limit <= 100:
                raise _DiscordError(400, 50035, "Invalid Form Body: limit")
            ids = [s.id for s in self.channels.get(channel, []) if int(s.id) > after]
            return [self.stored[i] for i in reversed(ids)][:limit]

        return await self._handle(request, "list", channel, answer)

    async def _typing(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel"]

        def answer(_: Any) -> None:
            self._bot(request)
            self.typing.append(channel)

        return await self._handle(request, "typing", channel, answer)


_FILES = "__files__"


async def _body(request: web.Request) -> Any:
    """JSON, or multipart as Discord takes files: ``payload_json`` and ``files[n]`` parts."""
    if not request.can_read_body:
        return None
    if request.content_type != "multipart/form-data":
        return await request.json()
    form = await request.post()
    body = json.loads(str(form["payload_json"]))
    body[_FILES] = {
        part.filename: part.file.read()
        for key, part in form.items()
        if key.startswith("files[") and isinstance(part, web.FileField)
    }
    return body


class _DiscordError(Exception):
    def __init__(self, status: int, code: int, message: str):
        self.status, self.code, self.message = status, code, message


def _json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    # Exactly "application/json", as Discord sends it: discord.py decodes nothing else.
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers={**(headers or {}), "Content-Type": "application/json"},
    )


def _raw_path(request: web.Request) -> str:
    return request.raw_path.split("?", 1)[0].removeprefix("/api/v10")


def _created(interaction_id: str) -> float:
    return ((int(interaction_id) >> 22) + DISCORD_EPOCH_MS) / 1000
