"""Slack over Socket Mode (``SLACK_APP_TOKEN``), with a watchdog for stalled connections."""

from __future__ import annotations

import asyncio
import logging

from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

log = logging.getLogger(__name__)


class SocketMode:
    def __init__(self, app: AsyncApp, app_token: str, *, check: float, ping: float):
        """``check``: seconds between checks that the connection still carries messages;
        ``ping``: seconds between pings (four missed pongs: stalled)."""
        self.app, self.app_token = app, app_token
        self.check, self.ping = check, ping
        self.socket: AsyncSocketModeHandler | None = None
        self.reconnects = 0
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect over Socket Mode (``SLACK_APP_TOKEN``) in the background, and keep watching
        the connection: a Slack that cannot be reached at start must not keep the web server
        (/healthz, /readyz, which reports it) from starting. slack-sdk retries by itself."""
        self.socket = AsyncSocketModeHandler(
            self.app,
            self.app_token,
            web_client=self.app.client,
            ping_interval=self.ping,
        )
        self.socket.client.logger.addFilter(_quiet_connect_retries)
        self._watchdog = asyncio.get_running_loop().create_task(self._connect_and_watch())

    async def _connect_and_watch(self) -> None:
        assert self.socket is not None
        await self.socket.connect_async()  # type: ignore[no-untyped-call]  # bolt: untyped
        await self._watch_socket()

    async def healthy(self) -> bool | None:
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
            await asyncio.sleep(self.check)
            try:
                connected = await self.socket.client.is_connected()
            except Exception:
                connected = False
            failures = 0 if connected else failures + 1
            if failures >= 2:
                log.warning("the Slack Socket Mode connection has stalled: opening a new one")
                self.reconnects += 1
                try:
                    await self.socket.client.connect_to_new_endpoint(force=True)
                    failures = 0
                except Exception:
                    log.exception("could not reconnect to Slack over Socket Mode; will retry")

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        if self.socket is not None:
            await self.socket.close_async()  # type: ignore[no-untyped-call]  # bolt: untyped


def _quiet_connect_retries(record: logging.LogRecord) -> bool:
    """slack-sdk logs each failed Socket Mode connection attempt with a traceback, every few
    seconds while Slack cannot be reached: one WARNING line each instead."""
    if record.getMessage().startswith("Failed to connect"):
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True
