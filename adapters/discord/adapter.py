"""Discord, put together from the settings: the gateway when ``DISCORD_TOKEN`` is set, the
HTTP interactions endpoint when ``DISCORD_PUBLIC_KEY`` and ``DISCORD_APPLICATION_ID`` are;
both may run in one process, sharing one CommandRunner.

    adapters.discord.interactions  signed HTTP interactions   adapters.discord.gateway  events
    adapters.discord.tree          the gateway's commands     adapters.discord.spec     commands
    adapters.discord.commands      CommandRunner (bot.chat)   adapters.discord.reply    answers
    adapters.discord.chain         reply chains as context    adapters.discord.digest   digests
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Self

from aiohttp import web

from adapters.discord.commands import CommandRunner
from adapters.discord.digest import DiscordDigestPoster
from adapters.discord.gateway import DiscordGateway
from adapters.discord.interactions import InteractionsConfig, InteractionsEndpoint
from adapters.discord.invocation import PLATFORM, file_hosts
from adapters.discord.rest import DiscordAPIError, DiscordREST
from adapters.discord.spec import sync_commands
from adapters.discord.tree import GatewayConfig
from bot.chat.claims import Kind
from bot.config import Settings
from bot.errors import ConfigError, QuotabotError
from bot.takeover import Resume
from bot.web import Check

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


class Discord:
    platform = PLATFORM

    def __init__(self, settings: Settings, app: App):
        s = self.settings = settings
        self.runner = CommandRunner(
            service=app.service,
            commands=app.commands(),
            events=app.events,
            admins=frozenset(s.access.admin_users),
            admin_roles=frozenset(s.discord.admin_roles),
            files=file_hosts(s.discord.api_url),
            streaming=s.discord.streaming,
            edit_interval=s.discord.edit_interval,
        )
        self._stack = AsyncExitStack()
        self.endpoint: InteractionsEndpoint | None = None
        self.gateway: DiscordGateway | None = None
        self._poster: DiscordDigestPoster | None = None
        bot_rest: DiscordREST | None = None
        if s.discord.token:
            # Digests, alerts and budget requests are posted over REST with the bot token, in
            # either mode.
            bot_rest = DiscordREST(
                base_url=s.discord.api_url, token=s.discord.token.get_secret_value()
            )
            self._stack.push_async_callback(bot_rest.aclose)
        if s.discord.public_key and s.discord.application_id:
            rest = DiscordREST(base_url=s.discord.api_url)
            self._stack.push_async_callback(rest.aclose)
            try:
                self.endpoint = InteractionsEndpoint(
                    InteractionsConfig(
                        application_id=s.discord.application_id, public_key=s.discord.public_key
                    ),
                    runner=self.runner,
                    rest=rest,
                    bot_rest=bot_rest,
                )
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
        elif s.discord.public_key or s.discord.application_id:
            have, missing = (
                ("DISCORD_PUBLIC_KEY", "DISCORD_APPLICATION_ID")
                if s.discord.public_key
                else ("DISCORD_APPLICATION_ID", "DISCORD_PUBLIC_KEY")
            )
            log.warning(
                "Discord HTTP interactions stay off: %s is set but %s is not", have, missing
            )
        if bot_rest is not None and s.discord.token:
            token = s.discord.token.get_secret_value()
            self._poster = DiscordDigestPoster(bot_rest)
            self.gateway = DiscordGateway(
                GatewayConfig(
                    token=token,
                    api_url=s.discord.api_url,
                    message_content=s.discord.message_content,
                ),
                runner=self.runner,
                service=app.service,
                rest=bot_rest,
            )

    @classmethod
    def from_settings(cls, settings: Settings, app: App, *, serving: bool = True) -> Self | None:
        if not serving:  # posting digests takes the REST client only
            settings = settings.model_copy(
                update=dict.fromkeys(("discord_public_key", "discord_application_id"))
            )
        adapter = cls(settings, app)
        if adapter.endpoint is None and adapter.gateway is None:
            log.info(
                "Discord is off: set DISCORD_TOKEN (gateway), or DISCORD_PUBLIC_KEY and "
                "DISCORD_APPLICATION_ID (HTTP interactions)"
            )
        if adapter.endpoint is None and adapter._poster is None:
            return None
        return adapter

    def describe(self) -> str:
        modes = [m for m, on in (("gateway", self.gateway), ("HTTP", self.endpoint)) if on]
        return " + ".join(modes) or "off"

    def routes(self) -> list[web.RouteDef]:
        return self.endpoint.routes() if self.endpoint else []

    def resumers(self) -> dict[Kind, Resume]:
        found: dict[Kind, Resume] = {}
        for part in (self.endpoint, self.gateway):
            if part is not None:
                found |= part.resumers()
        return found

    def poster(self) -> DiscordDigestPoster | None:
        return self._poster

    def checks(self) -> dict[str, Check]:
        async def gateway() -> bool | None:
            g = self.gateway
            return None if g is None else g.is_ready() and not g.is_closed()

        return {"discord_gateway": gateway}

    async def start(self) -> None:
        """Log in to the gateway (a bad token fails here), then connect in the background."""
        if self.gateway is not None:
            try:
                await self.gateway.start_gateway()
            except QuotabotError:
                await self._stack.aclose()
                raise

    async def aclose(self, grace: float | None = None) -> None:
        """Stop taking events, let answers under way finish, then close the REST clients."""
        if grace is None:
            grace = self.settings.events.shutdown_grace
        if self.gateway is not None:
            await self.gateway.aclose(grace=grace)
        await self.runner.drain(grace=grace)
        await self._stack.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def sync(settings: Settings, guild: str | None) -> list[str]:
    """``quotabot discord sync-commands``: the names registered. Raises ConfigError."""
    if not (settings.discord.application_id and settings.discord.token):
        raise ConfigError(
            "Registering commands needs DISCORD_APPLICATION_ID and DISCORD_TOKEN (the bot token)."
        )
    async with DiscordREST(
        base_url=settings.discord.api_url, token=settings.discord.token.get_secret_value()
    ) as rest:
        try:
            registered = await sync_commands(rest, settings.discord.application_id, guild)
        except DiscordAPIError as exc:
            raise QuotabotError(f"Discord did not take the commands: {exc}") from exc
    return [str(c.get("name")) for c in registered or [] if isinstance(c, dict)]
