"""Slack, put together: bolt's AsyncApp with quotabot's listeners, over HTTP and/or Socket Mode.

adapters.slack.http     signed requests -> bolt       adapters.slack.socket  Socket Mode
adapters.slack.events   mentions, DMs, thread replies adapters.slack.commands /ask /usage ...
adapters.slack.voice    recordings, "Transcribe"      adapters.slack.reply   one answer
adapters.slack.threads  the thread read back          adapters.slack.digest  digests, alerts
adapters.slack.oauth    installs, per-workspace clients
adapters.slack.home     the App Home tab and its forms (adapters.slack.modals, .blocks)
adapters.slack.more     "Request more" budget     adapters.slack.controls Stop, 👍 / 👎
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Self

import aiohttp
import httpx
from aiohttp import web
from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.slack import oauth, screen
from adapters.slack import voice as slack_voice
from adapters.slack.assistant import assistant
from adapters.slack.commands import ASK, SlackCommands
from adapters.slack.config import PLATFORM, SlackConfig
from adapters.slack.controls import SlackControls
from adapters.slack.digest import SlackDigestPoster
from adapters.slack.events import MESSAGE, SlackEvents
from adapters.slack.home import SlackHome
from adapters.slack.http import SlackEndpoint
from adapters.slack.more import SlackMore
from adapters.slack.reply import Replies
from adapters.slack.socket import SocketMode
from bot.chat.answers import Chat
from bot.chat.claims import Kind
from bot.chat.commands import Commands
from bot.config import Settings
from bot.digest.send import DigestMessage, DigestPoster
from bot.errors import ConfigError
from bot.service import Service
from bot.store.events import EventLog, Orphan
from bot.takeover import Resume
from bot.web import Check

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


class SlackAdapter:
    platform = PLATFORM

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
        if (config.bot_token is None) == (config.client_id is None):
            raise ConfigError(
                "Slack needs SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET (OAuth, any number of workspaces), not both"
            )
        self.config = config
        self.events = events
        self.chat = Chat(PLATFORM, service=service, commands=commands, events=events)
        # One session for every Web API call: without it slack-sdk opens a new session, and a
        # new TCP (and TLS) connection, per call; a seventh of the CPU at 300 events/s.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        self.downloads = httpx.AsyncClient(timeout=60.0, follow_redirects=False)
        self.app = AsyncApp(
            client=AsyncWebClient(
                token=config.bot_token,
                base_url=config.api_url or AsyncWebClient.BASE_URL,
                session=self.session,
                # Not on by default in slack-sdk: honour Slack's 429 Retry-After, retry blips.
                retry_handlers=[
                    AsyncConnectionErrorRetryHandler(max_retry_count=2),
                    AsyncRateLimitErrorRetryHandler(max_retry_count=3),
                    AsyncServerErrorRetryHandler(max_retry_count=2),
                ],
            ),
            # SlackEndpoint has checked the signature on the raw bytes before bolt sees a
            # request (bolt's check again was a second HMAC per event); Socket Mode has none.
            signing_secret=config.signing_secret or "",
            request_verification_enabled=False,
            process_before_response=False,
            oauth_settings=oauth.oauth_settings(config, engine),
            logger=logging.getLogger("slack_bolt"),
        )
        replies = Replies(config.update_interval)
        self.voice = slack_voice.SlackVoice(
            self.chat,
            replies,
            downloads=self.downloads,
            hosts=slack_voice.file_hosts(config.api_url),
            token=config.bot_token,
        )
        self.message_events = SlackEvents(
            self.chat, replies, self.voice, assistant=config.assistant
        )
        self.commands = SlackCommands(self.chat, replies, admins=config.admins)
        self.digests = SlackDigestPoster(self.app)
        self.home = SlackHome(self.chat, is_admin=self.commands._is_admin)
        self.more = SlackMore(self.chat, is_admin=self.commands._is_admin, admins=config.admins)
        self.controls = SlackControls(self.chat)
        self.socket: SocketMode | None = None
        self._register()

    @classmethod
    def from_settings(cls, settings: Settings, app: App, *, serving: bool = True) -> Self | None:
        s = settings
        token = s.slack.bot_token or s.slack.client_id
        receiver = s.slack.signing_secret or s.slack.app_token
        if not serving and token:
            pass  # posting needs a token only
        elif token and not receiver:
            have = "SLACK_BOT_TOKEN" if s.slack.bot_token else "SLACK_CLIENT_ID"
            log.warning(
                "Slack stays off: %s is set but neither SLACK_SIGNING_SECRET (HTTP) nor "
                "SLACK_APP_TOKEN (Socket Mode) is",
                have,
            )
            return None
        elif receiver and not token:
            have = "SLACK_SIGNING_SECRET" if s.slack.signing_secret else "SLACK_APP_TOKEN"
            log.warning(
                "Slack stays off: %s is set but SLACK_BOT_TOKEN is not (nor SLACK_CLIENT_ID "
                "and SLACK_CLIENT_SECRET for OAuth)",
                have,
            )
            return None
        if not token:
            log.info(
                "Slack is off: set SLACK_BOT_TOKEN (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET), "
                "and SLACK_SIGNING_SECRET (HTTP) or SLACK_APP_TOKEN (Socket Mode)"
            )
            return None
        return cls(
            SlackConfig(
                bot_token=_secret(s.slack.bot_token),
                client_id=s.slack.client_id,
                client_secret=_secret(s.slack.client_secret),
                redirect_uri=s.slack.redirect_uri,
                signing_secret=_secret(s.slack.signing_secret),
                app_token=_secret(s.slack.app_token),
                api_url=s.slack.api_url,
                admins=frozenset(s.access.admin_users),
                assistant=s.slack.assistant,
            ),
            service=app.service,
            commands=app.commands(),
            events=app.events,
            engine=app.db.engine,
        )

    def _register(self) -> None:
        app = self.app
        app.use(self.message_events.claim)
        if self.config.assistant:
            # After the claim: the pane's messages are claimed as every message is.
            app.use(assistant(self.message_events.on_event))
        else:
            for kind in screen.ASSISTANT_EVENTS:  # acknowledged, nothing more
                app.event(kind)(_ignore)
        # Each kind here is in adapters.slack.screen too: other kinds never reach bolt.
        for kind in screen.EVENTS:
            app.event(kind)(self.message_events.on_event)
        self.commands.register(app)
        app.message_shortcut("transcribe")(self.voice.on_shortcut)
        self.home.register(app)
        self.more.register(app)
        self.controls.register(app)
        app.error(self._on_error)

    async def _on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack listener failed: %s", error, exc_info=error)

    # -- what serve asks of a chat adapter (bot.chat.adapter.ChatAdapter) --------------------

    def describe(self) -> str:
        modes = [
            m
            for m, on in (
                ("HTTP", self.config.signing_secret),
                ("Socket Mode", self.config.app_token),
            )
            if on
        ]
        return " + ".join(modes) or "posting only"

    def routes(self) -> list[web.RouteDef]:
        if self.config.signing_secret is None:
            return []
        return SlackEndpoint(self.app, self.config.signing_secret).routes() + oauth.routes(self.app)

    def resumers(self) -> dict[Kind, Resume]:
        return {MESSAGE: self.resume, ASK: self.resume}

    def poster(self) -> DigestPoster:
        return self.digests

    def checks(self) -> dict[str, Check]:
        return {"slack_socket_mode": self.socket_healthy}

    async def start(self) -> None:
        if self.config.app_token:
            await self.start_socket_mode()

    async def start_socket_mode(self) -> None:
        """Connect over Socket Mode in the background, and keep watching the connection."""
        assert self.config.app_token, "Socket Mode needs an app-level token (xapp-...)"
        self.socket = SocketMode(
            self.app,
            self.config.app_token,
            check=self.config.socket_check,
            ping=self.config.socket_ping,
        )
        await self.socket.start()

    async def socket_healthy(self) -> bool | None:
        """For /readyz; None without Socket Mode."""
        return None if self.socket is None else await self.socket.healthy()

    @property
    def socket_reconnects(self) -> int:
        return self.socket.reconnects if self.socket is not None else 0

    @property
    def tasks(self) -> set[Any]:
        """Answers under way."""
        return self.chat.tasks

    async def resume(self, orphan: Orphan) -> None:
        """An event or ``/ask`` a stopped process claimed and did not answer."""
        client = await oauth.client_for(self.app, orphan.payload["team"])
        if "command" in orphan.payload:
            await self.commands.resume(orphan, client)
        else:
            await self.message_events.resume(orphan, client)

    async def aclose(self, grace: float | None = None) -> None:
        """Stop taking events, then let answers already under way finish."""
        if self.socket is not None:
            await self.socket.aclose()
        await self.chat.drain(grace)
        await self.session.close()
        await self.downloads.aclose()

    # -- digests (the poster, also reachable here) --------------------------------------------

    async def post_digest(
        self, workspace: str, channel: str, message: DigestMessage, *, key: str | None = None
    ) -> str:
        return await self.digests.post_digest(workspace, channel, message, key=key)

    async def find_digest(
        self, workspace: str, channel: str, message: DigestMessage, key: str
    ) -> str | None:
        return await self.digests.find_digest(workspace, channel, message, key)

    async def post_alert(self, workspace: str, channel: str, text: str) -> str:
        return await self.digests.post_alert(workspace, channel, text)


async def _ignore() -> None:
    pass


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
