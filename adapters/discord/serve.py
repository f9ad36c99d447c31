"""What ``quotabot serve`` runs of Discord, from the settings: the gateway when
``DISCORD_TOKEN`` is set, the HTTP interactions endpoint when ``DISCORD_PUBLIC_KEY`` and
``DISCORD_APPLICATION_ID`` are; both may run in one process."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from aiohttp import web

from adapters.discord.commands import PLATFORM, CommandRunner, file_hosts, sync_commands
from adapters.discord.digest import DiscordDigestPoster
from adapters.discord.gateway import DiscordGateway, GatewayConfig
from adapters.discord.interactions import InteractionsConfig, InteractionsEndpoint
from adapters.discord.rest import DiscordAPIError, DiscordREST
from bot.app import App
from bot.config import Settings
from bot.errors import ConfigError, QuotabotError
from bot.lifecycle import AsyncResource

log = logging.getLogger(__name__)


class Discord(AsyncResource):
    def __init__(self, settings: Settings, app: App):
        self.settings = settings
        self.runner = CommandRunner(
            service=app.service,
            commands=app.commands(),
            events=app.events,
            admins=frozenset(settings.admin_users),
            admin_roles=frozenset(settings.discord_admin_roles),
            files=file_hosts(settings.discord_api_url),
        )
        self.app = app
        self.gateway: DiscordGateway | None = None
        self.endpoint: InteractionsEndpoint | None = None
        self._stack = AsyncExitStack()

    @property
    def on(self) -> bool:
        return self.gateway is not None or self.endpoint is not None

    def describe(self) -> str:
        modes = [m for m, on in (("gateway", self.gateway), ("HTTP", self.endpoint)) if on]
        return " + ".join(modes) or "off"

    async def start(self) -> None:
        s = self.settings
        if s.discord_public_key and s.discord_application_id:
            rest = DiscordREST(base_url=s.discord_api_url)
            self._stack.push_async_callback(rest.aclose)
            try:
                self.endpoint = InteractionsEndpoint(
                    InteractionsConfig(
                        application_id=s.discord_application_id, public_key=s.discord_public_key
                    ),
                    runner=self.runner,
                    rest=rest,
                )
            except ValueError as exc:
                await self._stack.aclose()
                raise ConfigError(str(exc)) from exc
        elif s.discord_public_key or s.discord_application_id:
            have, missing = (
                ("DISCORD_PUBLIC_KEY", "DISCORD_APPLICATION_ID")
                if s.discord_public_key
                else ("DISCORD_APPLICATION_ID", "DISCORD_PUBLIC_KEY")
            )
            log.warning(
                "Discord HTTP interactions stay off: %s is set but %s is not", have, missing
            )
        if s.discord_token:
            # Digests and alerts are posted over REST with the bot token, in either mode.
            poster_rest = DiscordREST(
                base_url=s.discord_api_url, token=s.discord_token.get_secret_value()
            )
            self._stack.push_async_callback(poster_rest.aclose)
            self.app.digests.posters[PLATFORM] = DiscordDigestPoster(poster_rest)
            self.gateway = DiscordGateway(
                GatewayConfig(
                    token=s.discord_token.get_secret_value(),
                    api_url=s.discord_api_url,
                    message_content=s.discord_message_content,
                ),
                runner=self.runner,
                service=self.app.service,
            )
            try:
                await self.gateway.start_gateway()
            except QuotabotError:
                await self._stack.aclose()
                raise
        if not self.on:
            log.info(
                "Discord is off: set DISCORD_TOKEN (gateway), or DISCORD_PUBLIC_KEY and "
                "DISCORD_APPLICATION_ID (HTTP interactions)"
            )

    def routes(self) -> list[web.RouteDef]:
        return self.endpoint.routes() if self.endpoint else []

    async def aclose(self) -> None:
        """Stop taking events, let answers under way finish, then close the REST client."""
        if self.gateway is not None:
            await self.gateway.aclose(grace=self.settings.shutdown_grace)
        await self.runner.drain(grace=self.settings.shutdown_grace)
        await self._stack.aclose()


async def sync(settings: Settings, guild: str | None) -> list[str]:
    """``quotabot discord sync-commands``: the names registered. Raises ConfigError."""
    if not (settings.discord_application_id and settings.discord_token):
        raise ConfigError(
            "Registering commands needs DISCORD_APPLICATION_ID and DISCORD_TOKEN (the bot token)."
        )
    async with DiscordREST(
        base_url=settings.discord_api_url, token=settings.discord_token.get_secret_value()
    ) as rest:
        try:
            registered = await sync_commands(rest, settings.discord_application_id, guild)
        except DiscordAPIError as exc:
            raise QuotabotError(f"Discord did not take the commands: {exc}") from exc
    return [str(c.get("name")) for c in registered or [] if isinstance(c, dict)]
