"""Slack: mentions, direct messages, thread replies and slash commands, on slack-bolt's AsyncApp.

    Slack event -> bolt (signature checked, acked at once) -> SlackAdapter -> Service.handle
                -> placeholder, queue notices, streamed edits, the answer in the thread
    voice clip or audio file (or the "Transcribe" shortcut) -> bot.voice -> the transcript,
                then the answer when the message asks something

Bolt acknowledges every event before our listener runs, so the ack never waits for the
provider. Each message is answered once: the event log in the database makes Slack's retries
(same event, ``X-Slack-Retry-Num``), a second replica, and the ``app_mention`` plus ``message``
pair that one mention produces all come to one answer. A message to answer is claimed there
with the event itself, as the ack goes (or before it, with ``QUOTABOT_ACK_AFTER_CLAIM``):
Slack sends nothing twice that it got a 200 for, so if this process dies before answering,
another one answers from the claim (``bot.takeover``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import httpx
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.slack import screen, signing
from adapters.slack import voice as slack_voice
from adapters.slack.digest import slack_blocks
from adapters.slack.mrkdwn import split, to_mrkdwn
from bot import messages, voice
from bot.admission import Turn
from bot.budget.policy import Who
from bot.budget.tickets import QueueInfo
from bot.commands import BUDGET_HELP, Commands
from bot.digest.render import CHART_NAME
from bot.digest.send import DigestMessage
from bot.errors import ConfigError, DigestError, QuotabotError, StoreError
from bot.ids import usable_id
from bot.lifecycle import finish
from bot.messages import STOPPING
from bot.models import ChatRequest, Message
from bot.service import Service
from bot.store.events import EventLog, Orphan
from bot.takeover import claimed

log = logging.getLogger(__name__)

PLATFORM = "slack"
_T = TypeVar("_T")
BOT_SCOPES = (
    "app_mentions:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "users:read",
)
"""What deploy/slack-app-manifest.yaml asks for; OAuth installs ask for the same (a test holds
the two lists equal): files:write uploads the digest's chart."""
INSTALL_PATH, REDIRECT_PATH = "/slack/install", "/slack/oauth_redirect"
THINKING = "_Thinking…_"
_MENTION = re.compile(r"<@[A-Z0-9]+>")


@dataclass(frozen=True, slots=True, kw_only=True)
class SlackConfig:
    """HTTP mode needs ``signing_secret``; Socket Mode needs ``app_token``; both may be on.

    One workspace: ``bot_token``. Any number of workspaces: ``client_id`` and
    ``client_secret`` instead, and each workspace installs the app through ``/slack/install``;
    its tokens are kept by slack-sdk's own SQLAlchemy installation store in quotabot's database.
    """

    bot_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = BOT_SCOPES
    redirect_uri: str | None = None
    signing_secret: str | None = field(default=None, repr=False)
    app_token: str | None = field(default=None, repr=False)
    api_url: str | None = None
    admins: frozenset[str] = frozenset()
    """User IDs allowed to change budgets, besides the workspace's admins and owners."""
    update_interval: float = 1.0
    """Seconds between edits of a streamed answer: chat.update allows about one a second."""
    socket_check: float = 30.0
    """Seconds between checks that the Socket Mode connection still carries messages."""
    socket_ping: float = 10.0
    """Seconds between pings; a connection without pongs for four of them counts as stalled."""


class SlackAdapter:
    def __init__(
        self,
        config: SlackConfig,
        *,
        service: Service,
        commands: Commands,
        events: EventLog,
        engine: AsyncEngine | None = None,
    ):
        """``engine``: the database the OAuth installation and state stores live in."""
        self.config = config
        self.service = service
        self.commands = commands
        self.events = events
        if (config.bot_token is None) == (config.client_id is None):
            raise ConfigError(
                "Slack needs SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET (OAuth, any number of workspaces), not both"
            )
        # One session for every Web API call: without it slack-sdk opens a new session, and a
        # new TCP (and TLS) connection, per call; a seventh of the CPU at 300 events/s.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        # Voice clips and audio files are downloaded with it (never more than 25 MB each, each
        # redirect checked by bot.downloads, not followed by httpx).
        self.downloads = httpx.AsyncClient(timeout=60.0, follow_redirects=False)
        self.file_hosts = slack_voice.file_hosts(config.api_url)
        client = AsyncWebClient(
            token=config.bot_token,
            base_url=config.api_url or AsyncWebClient.BASE_URL,
            session=self.session,
            # Not on by default in slack-sdk: honour Slack's 429 Retry-After, retry blips.
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
                AsyncRateLimitErrorRetryHandler(max_retry_count=3),
                AsyncServerErrorRetryHandler(max_retry_count=2),
            ],
        )
        self.app = AsyncApp(
            client=client,
            # handle_http has checked the signature on the raw bytes before bolt sees a request
            # (bolt's check again was a second HMAC per event); Socket Mode has none to check.
            signing_secret=config.signing_secret or "",
            request_verification_enabled=False,
            process_before_response=False,
            oauth_settings=_oauth_settings(config, engine),
            logger=logging.getLogger("slack_bolt"),
        )
        self.socket: AsyncSocketModeHandler | None = None
        self.socket_reconnects = 0
        self._watchdog: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        """Listener tasks with an answer under way."""
        self.streams: dict[str, bool] = {}
        """Per workspace: whether Slack's streaming methods work there (unknown: try them)."""
        self._register()

    # -- HTTP --------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        if self.config.signing_secret is None:
            return []
        routes = [web.post("/slack/events", self.handle_http)]
        if self.app.oauth_flow is not None:
            routes += [
                web.get(INSTALL_PATH, self.handle_oauth),
                web.get(REDIRECT_PATH, self.handle_oauth),
            ]
        return routes

    async def handle_oauth(self, request: web.Request) -> web.Response:
        """The "Add to Slack" page and Slack's redirect back after a workspace installs."""
        flow = self.app.oauth_flow
        assert flow is not None
        bolt_request = await to_bolt_request(request)
        if request.path == flow.install_path:
            return await to_aiohttp_response(await flow.handle_installation(bolt_request))
        return await to_aiohttp_response(await flow.handle_callback(bolt_request))

    # -- Socket Mode -------------------------------------------------------------------------

    async def start_socket_mode(self) -> None:
        """Connect over Socket Mode (``SLACK_APP_TOKEN``) in the background, and keep watching
        the connection: a Slack that cannot be reached at start must not keep the web server
        (/healthz, /readyz, which reports it) from starting. slack-sdk retries by itself."""
        assert self.config.app_token, "Socket Mode needs an app-level token (xapp-...)"
        self.socket = AsyncSocketModeHandler(
            self.app,
            self.config.app_token,
            web_client=self.app.client,
            ping_interval=self.config.socket_ping,
        )
        self.socket.client.logger.addFilter(_quiet_connect_retries)
        self._watchdog = asyncio.get_running_loop().create_task(self._connect_and_watch())

    async def _connect_and_watch(self) -> None:
        assert self.socket is not None
        await self.socket.connect_async()  # type: ignore[no-untyped-call]  # bolt: untyped
        await self._watch_socket()

    async def socket_healthy(self) -> bool | None:
        """For /readyz: the Socket Mode connection is open and answers pings (slack-sdk marks
        it stale when pongs stop). None without Socket Mode."""
        if self.socket is None:
            return None
        try:
            return bool(await self.socket.client.is_connected())
        except Exception:
            return False

    async def _watch_socket(self) -> None:
        """Socket Mode connections are known to go quiet after some reconnects while looking
        open. slack-sdk pings them; when the pongs stop, or the session is gone, twice in a
        row, this opens a new connection instead of waiting for one that will not come."""
        assert self.socket is not None
        failures = 0
        while True:
            await asyncio.sleep(self.config.socket_check)
            try:
                connected = await self.socket.client.is_connected()
            except Exception:
                connected = False
            failures = 0 if connected else failures + 1
            if failures >= 2:
                log.warning("the Slack Socket Mode connection has stalled: opening a new one")
                self.socket_reconnects += 1
                try:
                    await self.socket.client.connect_to_new_endpoint(force=True)
                    failures = 0
                except Exception:
                    log.exception("could not reconnect to Slack over Socket Mode; will retry")

    async def handle_http(self, request: web.Request) -> web.Response:
        """Events, slash commands and interactivity. The signature is checked here, on the raw
        bytes, and only here: bolt parses first, and raised on bodies that were not UTF-8 or
        not the JSON they claimed to be (its own check is off). What bolt cannot take, or
        quotabot does not listen to, never reaches it (``adapters.slack.screen``)."""
        assert self.config.signing_secret is not None  # routes() serves this only with one
        body = await request.read()  # read by bot.web, within its limits
        if not signing.verified(self.config.signing_secret, request.headers, body):
            return web.json_response({"error": "invalid request"}, status=401)
        try:
            bolt_request = AsyncBoltRequest(
                body=body.decode(),
                query=request.query_string,
                headers=request.headers,  # type: ignore[arg-type]  # a CIMultiDict of str
            )
            problem = screen.problem(bolt_request.body)
        except UnicodeDecodeError:
            problem = "not UTF-8"
        except RecursionError:
            problem = "nested too deep to parse"
        except (ValueError, TypeError, AttributeError, LookupError) as exc:
            # Not the JSON or form it claims to be, or of a shape bolt's request fails on.
            # The exception's text can quote the body: its type only.
            problem = f"bolt cannot read it ({type(exc).__name__})"
        if problem is not None:
            # Signed by Slack, so worth a line; refused without a retry-inviting 5xx.
            log.warning("signed Slack request of %d bytes refused: %s", len(body), problem)
            return web.json_response({"error": "malformed request"}, status=400)
        if (kind := screen.unhandled(bolt_request.body)) is not None:
            log.info("Slack %s acknowledged: quotabot does not listen to it", kind)
            return web.Response(status=200)
        try:
            response = await self.app.async_dispatch(bolt_request)
        except Exception as exc:  # bolt's own code (its error handler's) on a shape it missed
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.warning(
                "bolt failed on a signed Slack request of %d bytes: %s at %s:%s",
                len(body),
                type(exc).__name__,
                where.filename.rsplit("/", 1)[-1],
                where.lineno,
            )
            return web.json_response({"error": "malformed request"}, status=400)
        return await to_aiohttp_response(response)

    async def aclose(self, grace: float | None = None) -> None:
        """Stop taking events, then let answers already under way finish; those still going
        after ``grace`` seconds are stopped, and their askers told to ask again."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        if self.socket is not None:
            await self.socket.close_async()  # type: ignore[no-untyped-call]  # bolt: untyped
        await finish(self.tasks, grace, "Slack answers")
        await self.session.close()
        await self.downloads.aclose()

    # -- listeners ---------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.app
        app.use(self._claim)
        # Each kind here is in adapters.slack.screen too: other kinds never reach bolt.
        for kind in screen.EVENTS:
            app.event(kind)(self._on_event)
        app.command("/ask")(self._on_ask)
        app.command("/usage")(self._on_usage)
        app.command("/budget")(self._on_budget)
        app.command("/digest")(self._on_digest)
        app.message_shortcut("transcribe")(self._on_transcribe)
        app.error(self._on_error)

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack listener failed: %s", error, exc_info=error)

    async def _claim(
        self,
        context: AsyncBoltContext,
        body: dict[str, Any],
        next: Callable[[], Awaitable[None]],  # bolt passes it by this name
    ) -> BoltResponse | None:
        """Global middleware, before the ack: a message the bot will take on is claimed, with
        the event, so that whoever answers it, here or after a crash elsewhere, answers once.
        (The ack waits for the claim only with ``QUOTABOT_ACK_AFTER_CLAIM``.)"""
        event = body.get("event") if body.get("type") == "event_callback" else None
        route = _route(event, context.bot_user_id) if isinstance(event, dict) else None
        if event is None or route is None:
            await next()
            return None
        team = context.team_id or event.get("team") or ""
        key = f"slack:{team}:{event['channel']}:{event['ts']}"
        payload = {"event": event, "team": team, "bot_user_id": context.bot_user_id}
        self.events.hold(key, payload)  # on local disk before the ack, until claimed
        claim = await claimed(self._first(key, payload), self.events.ack_wait)
        if claim.done() and not claim.result():
            # Slack's retry, the app_mention/message twin, or another replica's: acked, no more.
            return BoltResponse(status=200, body="")
        context["quotabot_claim"] = (key, claim, route)
        await next()
        return None

    async def _on_event(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """app_mention and message: those to answer were claimed by ``_claim``."""
        taken: tuple[str, asyncio.Future[bool], str] | None = context.get("quotabot_claim")
        if taken is None:
            return  # edits, joins, bots (ourselves too), channel chatter: never answered
        key, claim, route = taken
        take = functools.partial(
            self._take,
            event,
            context.team_id or event.get("team") or "",
            context.client,
            context.bot_user_id,
            only_if_bot_in_thread=route == "thread",
        )
        self._spawn(self._once(key, claim, take))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` (an answer) in a task of its own, so that the listener that started it
        ends at once and bolt's request, context and parsed body are freed. Under load
        thousands of events wait for a turn; as suspended listeners each kept ~60 objects
        alive, and every full garbage collection walked them all: pauses of 60-120 ms at 300
        events a second, which set the acknowledgement p99."""
        task = asyncio.get_running_loop().create_task(work)
        # Remembered, so that a shutdown waits for the answer instead of cutting it off.
        self.tasks.add(task)
        task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("Slack listener failed: %s", error, exc_info=error)

    async def _once(
        self, key: str, claim: Awaitable[bool], answer: Callable[[], Awaitable[None]]
    ) -> None:
        """``answer()`` if this process won the event's ``claim``; then the event is done
        (nobody is to take it over, ``bot.takeover``)."""
        if not await claim:
            return
        try:
            await answer()
        finally:
            await self.events.done(key)

    async def resume(self, orphan: Orphan) -> None:
        """An event or ``/ask`` a stopped process claimed and did not answer
        (``bot.takeover``): what it posted already is reused or removed, not posted twice."""
        team, bot_user = orphan.payload["team"], orphan.payload.get("bot_user_id")
        client = await self._client_for(team)
        if "command" in orphan.payload:
            await self._ask(orphan.payload["command"], team, client, bot_user, resumed=True)
            return
        event = orphan.payload["event"]
        await self._take(
            event,
            team,
            client,
            bot_user,
            only_if_bot_in_thread=_route(event, bot_user) == "thread",
            resumed=True,
        )

    async def _take(
        self,
        event: dict[str, Any],
        team: str,
        client: AsyncWebClient,
        bot_user: str | None,
        *,
        only_if_bot_in_thread: bool = False,
        resumed: bool = False,
    ) -> None:
        channel, ts, user = event["channel"], event["ts"], event["user"]
        thread_ts = event.get("thread_ts") or ts
        history = await self._history(client, channel, thread_ts, ts, bot_user)
        if only_if_bot_in_thread and not any(m.role == "assistant" for m in history):
            return
        text = _MENTION.sub("", event.get("text", "")).strip()
        where = voice.Where(
            platform=PLATFORM, workspace=team, channel=channel, user=user, thread=thread_ts
        )
        recordings = await self._recordings(event.get("files"), client)
        if recordings:
            settings = await self.service.channels.get(PLATFORM, team, channel)
            if settings.enabled:
                await self._voice(client, recordings[0], where, text, history)
            return
        if not text and event.get("files"):
            return  # a file without words, and not audio: nothing to answer
        messages_ = (*history, Message("user", text))
        request = ChatRequest(
            platform=PLATFORM,
            workspace=team,
            channel=channel,
            thread=thread_ts,
            user=user,
            messages=messages_,
        )
        try:
            enabled = (await self.service.channels.get(PLATFORM, team, channel)).enabled
        except StoreError:
            enabled = True  # unknown: the answer tells the user what failed, not silence
        if not enabled:
            return
        left = await self._leftovers(client, channel, thread_ts, ts, bot_user) if resumed else []
        await self._answer(client, request, channel, thread_ts, leftovers=left)

    async def _recordings(
        self, files: list[dict[str, Any]] | None, client: AsyncWebClient
    ) -> list[voice.Attachment]:
        """The message's audio files. Some events carry a file as its id only
        (``file_access: check_file_info``): files.info tells the rest."""
        full = []
        for f in files or []:
            if f.get("file_access") == "check_file_info" and f.get("id"):
                try:
                    f = (await client.files_info(file=f["id"]))["file"]
                except SlackApiError as exc:
                    log.warning("could not read file %s: %s", f["id"], exc)
                    continue
            full.append(f)
        return slack_voice.attachments(
            full,
            http=self.downloads,
            token=client.token or self.config.bot_token,
            hosts=self.file_hosts,
        )

    async def _voice(
        self,
        client: AsyncWebClient,
        recording: voice.Attachment,
        where: voice.Where,
        question: str,
        history: tuple[Message, ...],
    ) -> None:
        """The transcript in the thread, then the answer to ``question`` (if any) about it.
        (One recording per message: a second one in the same post is left alone.)"""
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        assert where.thread is not None
        channel, thread_ts = where.channel, where.thread
        placeholder = await client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, text=slack_voice.TRANSCRIBING
        )
        reply = _Reply(
            client,
            channel,
            thread_ts,
            placeholder["ts"],
            self.config.update_interval,
            team=where.workspace,
            user=where.user,
            streams={where.workspace: False},  # edited into place: nothing streams here
        )
        transcript = await reply.told(
            voice.transcribe(self.service, recording, where, on_queued=reply.queued),
            what=f"transcribing for {where.channel}",
        )
        if transcript is None:
            return
        await reply.finish(voice.transcript_text(transcript))
        if question:
            request = ChatRequest(
                platform=PLATFORM,
                workspace=where.workspace,
                channel=channel,
                thread=thread_ts,
                user=where.user,
                messages=(*history, Message("user", voice.question_prompt(transcript, question))),
            )
            await self._answer(client, request, channel, thread_ts)

    async def _on_transcribe(
        self,
        ack: Callable[..., Awaitable[None]],
        shortcut: dict[str, Any],
        respond: Callable[..., Awaitable[Any]],
        context: AsyncBoltContext,
    ) -> None:
        """The "Transcribe" message shortcut: the transcript in the message's thread."""
        await ack()
        message: dict[str, Any] = shortcut.get("message") or {}
        recordings = await self._recordings(message.get("files"), context.client)
        if not recordings:
            await respond(response_type="ephemeral", text=slack_voice.NO_AUDIO)
            return
        if not await self._first(f"slack-shortcut:{shortcut.get('trigger_id')}"):
            return
        team = (shortcut.get("team") or {}).get("id") or context.team_id or ""
        channel = (shortcut.get("channel") or {}).get("id") or ""
        where = voice.Where(
            platform=PLATFORM,
            workspace=team,
            channel=channel,
            user=(shortcut.get("user") or {}).get("id") or "",
            thread=message.get("thread_ts") or message.get("ts") or shortcut.get("message_ts"),
        )
        await self._voice(context.client, recordings[0], where, "", ())

    async def _first(self, key: str, payload: dict[str, Any] | None = None) -> bool:
        """Whether this event is new. If the database cannot say, answer anyway: the event
        was acknowledged, and a rare second answer is better than none."""
        try:
            return await self.events.first(key, payload)
        except StoreError as exc:
            log.warning("could not check event %s for repeats, answering it anyway: %s", key, exc)
            return True

    async def _history(
        self, client: AsyncWebClient, channel: str, thread_ts: str, ts: str, bot_user: str | None
    ) -> tuple[Message, ...]:
        """The thread so far (without the message being answered), as the model should see it."""
        if thread_ts == ts:
            return ()
        try:
            response = await client.conversations_replies(channel=channel, ts=thread_ts, limit=200)
        except SlackApiError as exc:
            log.warning("could not read thread %s in %s: %s", thread_ts, channel, exc)
            return ()
        out: list[Message] = []
        m: dict[str, Any]
        for m in response.get("messages", []):
            if not m.get("text") or m.get("text") == THINKING:
                continue
            if _ts_order(m.get("ts")) >= _ts_order(ts):
                continue  # the message itself, and what came after it (a takeover's leftovers)
            mine = _from(m, bot_user)
            out.append(
                Message("assistant" if mine else "user", _MENTION.sub("", m["text"]).strip())
            )
        return tuple(out)

    async def _leftovers(
        self, client: AsyncWebClient, channel: str, thread_ts: str, ts: str, bot_user: str | None
    ) -> list[str]:
        """What the bot posted after the message ``ts`` before anyone else spoke: a stopped
        process's placeholder or partial answer (taking over, Slack's thread is the record)."""
        try:
            response = await client.conversations_replies(channel=channel, ts=thread_ts, limit=200)
        except SlackApiError as exc:
            log.warning("could not read thread %s in %s: %s", thread_ts, channel, exc)
            return []
        out = []
        m: dict[str, Any]
        for m in response.get("messages", []):
            if _ts_order(m.get("ts")) <= _ts_order(ts):
                continue
            if not _from(m, bot_user):
                break
            out.append(str(m["ts"]))
        return out

    async def _answer(
        self,
        client: AsyncWebClient,
        request: ChatRequest,
        channel: str,
        thread_ts: str,
        *,
        leftovers: list[str] | None = None,
    ) -> None:
        """``leftovers``: messages a stopped process posted for this answer (a placeholder, a
        part of the answer): the first becomes this answer's placeholder, the others go."""
        # Bolt runs each listener as a task of its own: remember this one, so that a shutdown
        # waits for the answer instead of cutting it off.
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        try:
            turn = await self.service.admission.acquire((PLATFORM, request.workspace, channel))
        except asyncio.CancelledError:
            # Shut down while the event waited for its turn (nothing posted yet): say so.
            with contextlib.suppress(Exception):
                await client.chat_postMessage(
                    channel=channel, thread_ts=thread_ts, text=f":warning: {STOPPING}"
                )
            raise
        try:
            await self._answer_in_turn(client, request, channel, thread_ts, turn, leftovers or [])
        finally:
            turn.release()

    async def _answer_in_turn(
        self,
        client: AsyncWebClient,
        request: ChatRequest,
        channel: str,
        thread_ts: str,
        turn: Turn,
        leftovers: list[str],
    ) -> None:
        for ts in leftovers[1:]:
            with contextlib.suppress(SlackApiError):
                await client.chat_delete(channel=channel, ts=ts)
        if leftovers:
            placeholder_ts = leftovers[0]
            with contextlib.suppress(SlackApiError):
                await client.chat_update(channel=channel, ts=placeholder_ts, text=THINKING)
        else:
            posted = await client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=THINKING
            )
            placeholder_ts = posted["ts"]
        reply = _Reply(
            client,
            channel,
            thread_ts,
            placeholder_ts,
            self.config.update_interval,
            team=request.workspace,
            user=request.user,
            streams=self.streams,
        )
        answer = await reply.told(
            self.service.handle(request, on_delta=reply.delta, on_queued=reply.queued, turn=turn),
            what=f"answering {request.request_id}",
            model=request.model,
        )
        if answer is not None:
            await reply.finish(answer.text)

    async def _on_ask(
        self,
        ack: Callable[..., Awaitable[None]],
        command: dict[str, Any],
        context: AsyncBoltContext,
    ) -> None:
        if _incomplete(command):
            await ack()
            return
        text = (command.get("text") or "").strip()
        if not text:
            await ack(text="Ask a question: `/ask what is a token bucket?`")
            return
        team = command.get("team_id") or context.team_id or ""
        key = f"slack-cmd:{command['trigger_id']}"
        payload = {"command": command, "team": team, "bot_user_id": context.bot_user_id}
        self.events.hold(key, payload)  # see _claim
        claim = await claimed(self._first(key, payload), self.events.ack_wait)
        await ack(response_type="in_channel", text=_asked(command))
        ask = functools.partial(self._ask, command, team, context.client, context.bot_user_id)
        self._spawn(self._once(key, claim, ask))

    async def _ask(
        self,
        command: dict[str, Any],
        team: str,
        client: AsyncWebClient,
        bot_user: str | None,
        *,
        resumed: bool = False,
    ) -> None:
        """``/ask``'s answer, in a thread under the question, like a mention's."""
        channel = command["channel_id"]
        request = ChatRequest(
            platform=PLATFORM,
            workspace=team,
            channel=channel,
            user=command["user_id"],
            messages=(Message("user", (command.get("text") or "").strip()),),
        )
        root = await self._posted(client, channel, _asked(command), bot_user) if resumed else None
        if root is None:
            root = str((await client.chat_postMessage(channel=channel, text=_asked(command)))["ts"])
        left = await self._leftovers(client, channel, root, root, bot_user) if resumed else []
        await self._answer(client, request, channel, root, leftovers=left)

    async def _posted(
        self, client: AsyncWebClient, channel: str, text: str, bot_user: str | None
    ) -> str | None:
        """The ts of the bot's latest message ``text`` in ``channel``: a question a stopped
        process posted for its ``/ask`` before it could answer."""
        try:
            response = await client.conversations_history(channel=channel, limit=100)
        except SlackApiError as exc:
            log.warning("could not read %s: %s", channel, exc)
            return None
        m: dict[str, Any]
        for m in response.get("messages", []):  # newest first
            if m.get("text") == text and _from(m, bot_user):
                return str(m["ts"])
        return None

    async def _on_usage(
        self,
        ack: Callable[..., Awaitable[None]],
        command: dict[str, Any],
        respond: Callable[..., Awaitable[Any]],
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        if _incomplete(command):
            return
        who, model = await self._who(command, context)
        await respond(
            response_type="ephemeral", text=to_mrkdwn(await self.commands.usage_today(who, model))
        )

    async def _on_budget(
        self,
        ack: Callable[..., Awaitable[None]],
        command: dict[str, Any],
        respond: Callable[..., Awaitable[Any]],
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        if _incomplete(command):
            return
        who, model = await self._who(command, context)
        args = (command.get("text") or "").split()
        if not args or args[0] == "show":
            text = await self.commands.budget_text(who, model)
        elif args[0] == "set" and len(args) == 4:
            if not await self._is_admin(context.client, command["user_id"]):
                text = "Only workspace admins (or quotabot's configured admins) can change budgets."
            else:
                try:
                    text = await self.commands.budget_set(*args[1:], by=command["user_id"], who=who)
                except ValueError as exc:
                    text = f"{exc}\n{BUDGET_HELP}"
        else:
            text = BUDGET_HELP
        await respond(response_type="ephemeral", text=to_mrkdwn(text))

    async def _who(self, command: dict[str, Any], context: AsyncBoltContext) -> tuple[Who, Any]:
        team = command.get("team_id") or context.team_id or ""
        who = Who(PLATFORM, team, command["channel_id"], command["user_id"])
        settings = await self.service.channels.get(PLATFORM, team, command["channel_id"])
        return who, self.service.catalog.get(settings.model)

    async def _is_admin(self, client: AsyncWebClient, user: str) -> bool:
        """Checked on every call: someone who stopped being an admin stops at once."""
        if user in self.config.admins:
            return True
        try:
            info = (await client.users_info(user=user))["user"]
        except SlackApiError as exc:
            log.warning("could not check whether %s is an admin: %s", user, exc)
            return False
        return bool(info.get("is_admin") or info.get("is_owner"))

    # -- digests: /digest, and posting them (a bot.digest.send.DigestPoster) ----------------

    platform = PLATFORM

    async def _on_digest(
        self,
        ack: Callable[..., Awaitable[None]],
        command: dict[str, Any],
        respond: Callable[..., Awaitable[Any]],
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        if _incomplete(command):
            return
        if self.commands.digests is None:
            text = "Daily digests are not available in this quotabot."
        else:
            user = command["user_id"]

            async def is_admin() -> bool:
                return await self._is_admin(context.client, user)

            text = await self.commands.digests.handle(
                (command.get("text") or "").split(),
                platform=PLATFORM,
                workspace=command.get("team_id") or context.team_id or "",
                channel=command["channel_id"],
                user=user,
                is_admin=is_admin,
            )
        # Written for mrkdwn already (channel links like <#C123> must not be escaped).
        await respond(response_type="ephemeral", text=text)

    async def post_digest(
        self, workspace: str, channel: str, message: DigestMessage, *, key: str | None = None
    ) -> str:
        """Block Kit message, then the chart uploaded into its thread (files upload v2).
        Returns the message's ts. A failed chart upload does not fail the digest: it was
        posted, and posting it again would double it. ``key`` rides in the message's
        metadata, for ``find_digest``."""
        blocks, text = slack_blocks(message.digest)
        client = await self._client_for(workspace)
        metadata = {"event_type": _DIGEST_EVENT, "event_payload": {"key": key}} if key else None
        try:
            posted = await client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, unfurl_links=False, metadata=metadata
            )
        except SlackApiError as exc:
            raise DigestError(_CANNOT_POST.format(channel=channel, error=_error(exc))) from exc
        ts = str(posted["ts"])
        if message.chart is not None:
            try:
                await client.files_upload_v2(
                    channel=channel,
                    thread_ts=ts,
                    file=message.chart,
                    filename=CHART_NAME,
                    title="Spend by model, last 14 days",
                    alt_txt="Stacked bar chart of spend by model over the last 14 days",
                )
            except SlackApiError as exc:
                log.warning("the digest's chart could not be uploaded to %s: %s", channel, exc)
        return ts

    async def find_digest(
        self, workspace: str, channel: str, message: DigestMessage, key: str
    ) -> str | None:
        """The ts of a message posted since the digest's day ended whose metadata carries
        ``key``. Raises DigestError when the channel cannot be read (better no digest than
        two: the claim is then given back, and the next attempt looks again)."""
        client = await self._client_for(workspace)
        cursor = None
        for _ in range(20):  # pages of 200: a busy channel's day, and more
            try:
                page = await client.conversations_history(
                    channel=channel,
                    oldest=f"{message.digest.end.timestamp():.6f}",
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            except SlackApiError as exc:
                raise DigestError(_CANNOT_READ.format(channel=channel, error=_error(exc))) from exc
            m: dict[str, Any]
            for m in page.get("messages", []):
                meta: dict[str, Any] = m.get("metadata") or {}
                if meta.get("event_type") == _DIGEST_EVENT and (
                    (meta.get("event_payload") or {}).get("key") == key
                ):
                    return str(m["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def post_alert(self, workspace: str, channel: str, text: str) -> str:
        client = await self._client_for(workspace)
        try:
            posted = await client.chat_postMessage(channel=channel, text=text)
        except SlackApiError as exc:
            raise DigestError(_CANNOT_POST.format(channel=channel, error=_error(exc))) from exc
        return str(posted["ts"])

    async def _client_for(self, workspace: str) -> AsyncWebClient:
        """The bot's Web API client in ``workspace``: with one configured token, the app's;
        with OAuth installs, one with the token stored at that workspace's install."""
        store = self.app.installation_store
        if store is None:
            return self.app.client
        bot = await store.async_find_bot(enterprise_id=None, team_id=workspace)
        if bot is None:
            raise DigestError(
                f"quotabot is not installed in Slack workspace {workspace} (any more): "
                "reinstall it there, or switch its digest off."
            )
        base = self.app.client
        return AsyncWebClient(
            token=bot.bot_token,
            base_url=base.base_url,
            session=base.session,
            retry_handlers=base.retry_handlers,
        )


_DIGEST_EVENT = "quotabot_digest"
_CANNOT_READ = (
    "quotabot cannot read <#{channel}> ({error}) to check whether a digest is already there: "
    "it needs the channels:history (or groups:history) scope and to be in the channel."
)
_CANNOT_POST = (
    "Slack refused to post in <#{channel}> ({error}): invite quotabot to that channel "
    "(`/invite @quotabot`), or choose another with `/digest set`."
)


_EVENT_IDS = ("channel", "ts", "user")
_OPTIONAL_IDS = ("thread_ts", "team", "channel_type")
_COMMAND_IDS = ("user_id", "channel_id", "trigger_id")


def _malformed(event: dict[str, Any]) -> bool:
    """Whether a person's message event lacks what answering it needs, or has a field of
    another shape than Slack sends (bot.ids): logged and ignored, before anything is
    written."""
    bad = [k for k in _EVENT_IDS if not usable_id(event.get(k))]
    bad += [k for k in _OPTIONAL_IDS if k in event and not usable_id(event[k])]
    bad += [] if isinstance(event.get("text", ""), str) else ["text"]
    if bad:
        log.warning("Slack %s event without a usable %s ignored", event.get("type"), bad)
    return bool(bad)


def _asked(command: dict[str, Any]) -> str:
    """``/ask``'s question as the channel sees it."""
    return f"<@{command['user_id']}> asked: {(command.get('text') or '').strip()}"


def _route(event: dict[str, Any], bot_user: str | None) -> str | None:
    """How the bot takes on a message event: "mention", "im" (a direct message), "thread" (a
    reply in a thread, answered when the bot is part of it); None: not at all."""
    if event.get("type") == "app_mention":
        return None if _malformed(event) else "mention"
    if event.get("type") != "message":
        return None
    if event.get("subtype") not in (None, "file_share") or event.get("bot_id"):
        return None  # edits, joins, other bots (and ourselves): never answered
    if _malformed(event):
        return None
    if event.get("channel_type") == "im":
        return "im"
    if event.get("thread_ts") and f"<@{bot_user}>" not in event.get("text", ""):
        return "thread"  # (a reply that mentions the bot arrives as app_mention too)
    return None


def _from(message: dict[str, Any], bot_user: str | None) -> bool:
    """Whether the bot posted ``message`` (a ``conversations.replies`` message)."""
    return message.get("user") == bot_user or bool(
        message.get("bot_id") and message.get("user") in (None, bot_user)
    )


def _ts_order(ts: Any) -> tuple[int, int]:
    """Slack's ``ts`` ("1712345678.000200") in time order; anything else first."""
    seconds, _, micros = str(ts).partition(".")
    try:
        return int(seconds), int(micros or 0)
    except ValueError:
        return (-1, 0)


def _incomplete(command: dict[str, Any]) -> bool:
    """The same for a slash command (its ``team_id`` may come from the context instead)."""
    bad = [k for k in _COMMAND_IDS if not usable_id(command.get(k))]
    bad += [k for k in ("team_id",) if k in command and not usable_id(command[k])]
    if bad:
        log.warning("Slack command %r without %s ignored", command.get("command"), bad)
    return bool(bad)


def _quiet_connect_retries(record: logging.LogRecord) -> bool:
    """slack-sdk logs each failed Socket Mode connection attempt with a traceback, every few
    seconds while Slack cannot be reached: one WARNING line each instead."""
    if record.getMessage().startswith("Failed to connect"):
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") if exc.response is not None else exc)


class _Reply:
    """One answer in a thread: the placeholder, then the answer as it is generated.

    Where the workspace has Slack's streaming methods (chat.startStream/appendStream/
    stopStream), the answer streams into a message of its own and the placeholder goes;
    elsewhere the placeholder is edited, no faster than Slack allows.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        channel: str,
        thread_ts: str,
        ts: str,
        interval: float,
        *,
        team: str,
        user: str,
        streams: dict[str, bool],
    ):
        self.client, self.channel, self.thread_ts, self.ts = client, channel, thread_ts, ts
        self.interval = interval
        self.team, self.user, self.streams = team, user, streams
        self.text = ""
        self._stream: AsyncChatStream | None = None
        self._tried_stream = False
        self._last_edit = 0.0
        self._editing: asyncio.Task[None] | None = None

    async def told(self, work: Awaitable[_T], *, what: str, model: str | None = None) -> _T | None:
        """``work``'s result; or None once its failure is told in the thread, in words for
        people (also when shutdown stops it past the grace period: not silence)."""
        try:
            return await work
        except QuotabotError as exc:
            await self.fail(f":warning: {messages.explain(exc, model=model)}")
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.fail(f":warning: {STOPPING}")
            raise
        except Exception:
            log.exception("%s failed", what)
            await self.fail(f":warning: {messages.INTERNAL}")
        return None

    async def queued(self, info: QueueInfo) -> None:
        await self._edit(f"_{messages.queued(info).strip('()').capitalize()}_")

    async def delta(self, delta: str) -> None:
        self.text += delta
        if not self._tried_stream and self.streams.get(self.team, True):
            self._tried_stream = True
            self._stream = await self.client.chat_stream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                recipient_team_id=self.team,
                recipient_user_id=self.user,
            )
        if self._stream is not None:
            try:
                await self._stream.append(markdown_text=delta)
                return
            except SlackApiError as exc:
                self._no_streaming(exc)
        now = time.monotonic()
        if now - self._last_edit >= self.interval and (
            self._editing is None or self._editing.done()
        ):
            self._last_edit = now
            preview = split(to_mrkdwn(self.text))[0] + " …"
            # Not awaited: the model's stream never waits for Slack.
            self._editing = asyncio.get_running_loop().create_task(self._edit(preview))

    def _no_streaming(self, exc: SlackApiError) -> None:
        if self.streams.get(self.team, True):
            log.info("Slack streaming is not available in %s (%s): editing instead", self.team, exc)
        self.streams[self.team] = False
        self._stream = None

    async def finish(self, text: str) -> None:
        if self._stream is not None:
            try:
                await self._stream.stop()
            except SlackApiError as exc:
                self._no_streaming(exc)
            else:
                await self._delete_placeholder()
                return
        if self._editing is not None:
            await asyncio.gather(self._editing, return_exceptions=True)
        first, *rest = split(to_mrkdwn(text)) or [""]
        await self._edit(first or "_(empty answer)_")
        for piece in rest:
            await self.client.chat_postMessage(
                channel=self.channel, thread_ts=self.thread_ts, text=piece
            )

    async def fail(self, text: str) -> None:
        if self._stream is not None:
            try:
                await self._stream.stop(markdown_text=f"\n\n{text}")
                await self._delete_placeholder()
                return
            except SlackApiError as exc:
                self._no_streaming(exc)
        if self._editing is not None:
            await asyncio.gather(self._editing, return_exceptions=True)
        await self._edit(text)

    async def _delete_placeholder(self) -> None:
        try:
            await self.client.chat_delete(channel=self.channel, ts=self.ts)
        except SlackApiError as exc:
            log.warning("could not remove the placeholder in %s: %s", self.channel, exc)

    async def _edit(self, text: str) -> None:
        try:
            await self.client.chat_update(channel=self.channel, ts=self.ts, text=text)
        except SlackApiError as exc:
            log.warning("could not edit the answer in %s: %s", self.channel, exc)


def _oauth_settings(config: SlackConfig, engine: AsyncEngine | None) -> AsyncOAuthSettings | None:
    """Multi-workspace mode: bolt's own OAuth flow, with its stores on quotabot's database
    (tables made by quotabot's migrations), so that every replica sees every installation."""
    if config.client_id is None:
        return None
    if config.client_secret is None or engine is None:
        raise ConfigError("Slack OAuth needs SLACK_CLIENT_SECRET beside SLACK_CLIENT_ID")
    return AsyncOAuthSettings(
        client_id=config.client_id,
        client_secret=config.client_secret,
        scopes=list(config.scopes),
        redirect_uri=config.redirect_uri,
        install_path=INSTALL_PATH,
        redirect_uri_path=REDIRECT_PATH,
        installation_store=AsyncSQLAlchemyInstallationStore(
            client_id=config.client_id, engine=engine
        ),
        state_store=AsyncSQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine),
    )
