"""``quotabot serve``: the one place a serving process is put together."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from typing import TYPE_CHECKING

from pydantic import SecretStr

from bot.app import App, open_app
from bot.budget.memory import MemoryBackend
from bot.config import Settings, SlackSettings
from bot.digest.alerts import BudgetAlerts
from bot.scheduler import DigestScheduler, Retention
from bot.takeover import Takeover
from bot.web import Check, WebServer

if TYPE_CHECKING:  # the adapters (and their SDKs) are imported only when serving
    from adapters.discord.serve import Discord
    from adapters.slack import SlackAdapter


log = logging.getLogger("quotabot")

HELP = "run the chat adapters and the web endpoints"
NO_PROVIDER = (
    "quotabot: no provider is set, so serve would answer real users from the built-in sandbox "
    "(made-up text). Set OPENAI_API_KEY (and OPENAI_BASE_URL for a server other than "
    "OpenAI's), or run `quotabot serve --sandbox` for a demo."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="default: QUOTABOT_HTTP_HOST")
    p.add_argument("--port", type=int, help="default: QUOTABOT_HTTP_PORT")
    p.add_argument(
        "--no-scheduler",
        action="store_true",
        help="do not post daily digests or budget alerts from this process",
    )
    p.add_argument(
        "--sandbox",
        action="store_true",
        help="answer from the built-in sandbox when no provider is set (demos only)",
    )
    p.add_argument("--no-slack", action="store_true", help="do not serve Slack from this process")
    p.add_argument(
        "--no-discord",
        action="store_true",
        help="do not serve Discord (gateway or HTTP) from this process",
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.discord.serve import Discord
    from adapters.slack import SlackAdapter, SlackConfig

    if not settings.provider.configured and not args.sandbox:
        # The sandbox answers with made-up text: real users must never get it by accident.
        print(NO_PROVIDER, file=sys.stderr)
        return 2
    if args.no_discord:  # e.g. HTTP replicas beside the one process that holds the gateway
        # The flat fields: the groups are views of them (and the Discord adapter reads them).
        off = dict.fromkeys(("discord_token", "discord_public_key", "discord_application_id"))
        settings = settings.model_copy(update=off)
    async with (
        open_app(settings) as app,
        # Outlives the adapters: leases are renewed until their last answer is done.
        Takeover(app.events) as takeover,
        Discord(settings, app) as discord,
    ):
        routes = []
        slack = None
        s = settings.slack
        if not args.no_slack and (s.bot_token or s.client_id) and (s.signing_secret or s.app_token):
            slack = SlackAdapter(
                SlackConfig(
                    bot_token=_secret(s.bot_token),
                    client_id=s.client_id,
                    client_secret=_secret(s.client_secret),
                    redirect_uri=s.redirect_uri,
                    signing_secret=_secret(s.signing_secret),
                    app_token=_secret(s.app_token),
                    api_url=s.api_url,
                    admins=settings.access.admin_users,
                ),
                service=app.service,
                commands=app.commands(),
                events=app.events,
                engine=app.db.engine,
            )
            routes += slack.routes()
            app.digests.posters[slack.platform] = slack
            takeover.on(f"{slack.platform}:", slack.resume)  # mentions, DMs, thread replies
            takeover.on(f"{slack.platform}-cmd:", slack.resume)  # /ask
            if s.app_token:
                await slack.start_socket_mode()
        elif not args.no_slack and (half := _half_slack(s)):
            log.warning("Slack stays off: %s", half)
        else:
            log.info(
                "Slack is off: %s",
                "--no-slack"
                if args.no_slack
                else "set SLACK_BOT_TOKEN (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET), "
                "and SLACK_SIGNING_SECRET (HTTP) or SLACK_APP_TOKEN (Socket Mode)",
            )
        routes += discord.routes()
        if discord.endpoint is not None:
            takeover.on("discord:interaction:", discord.endpoint.resume)
        if discord.gateway is not None:
            takeover.on("discord:message:", discord.gateway.resume)
        scheduler = None
        if not args.no_scheduler:
            retention_days = settings.store.retention_days
            scheduler = DigestScheduler(
                app.digests,
                database_url=app.db.url,
                misfire_grace=settings.digests.misfire_grace,
                alerts=BudgetAlerts(app.digests) if settings.digests.budget_alerts else None,
                retention=Retention(app.usage, retention_days) if retention_days else None,
            )
            await scheduler.start()
            app.digest_commands.on_change = scheduler.sync_jobs
        web = settings.web
        server = WebServer(
            routes,
            host=args.host or web.host,
            port=args.port or web.port,
            checks=readiness(app, slack, discord),
            keepalive_timeout=web.keepalive_timeout,
            read_timeout=web.read_timeout,
        )
        server.add_metrics(app.metrics)
        await server.start()
        # Everything made while starting lives as long as the process: moved out of the
        # garbage collector's sight, its full collections no longer walk them (each walk
        # paused every event, acknowledgements included, for tens of milliseconds).
        gc.collect()
        gc.freeze()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # Said once SIGTERM is handled: whoever waits for this line may stop it at once.
        provider = f"the sandbox at {app.provider_url}" if app.sandbox else app.provider_url
        print(
            f"quotabot serving on {server.url} (provider: {provider}, "
            f"Slack: {'on' if slack else 'off'}, Discord: {discord.describe()}, "
            f"digests: {'on' if scheduler else 'off'})",
            file=sys.stderr,
        )
        try:
            await stop.wait()
        finally:
            takeover.stop_taking()
            await server.aclose()  # no new work; then let answers under way finish
            if scheduler is not None:
                await scheduler.aclose()
            if slack is not None:
                await slack.aclose(grace=settings.events.shutdown_grace)
    return 0


def _half_slack(s: SlackSettings) -> str | None:
    """What a half-done Slack setup lacks, naming the variable; None when none is set."""
    token = s.bot_token or s.client_id
    receiver = s.signing_secret or s.app_token
    if token and not receiver:
        have = "SLACK_BOT_TOKEN" if s.bot_token else "SLACK_CLIENT_ID"
        return (
            f"{have} is set but neither SLACK_SIGNING_SECRET (HTTP) nor SLACK_APP_TOKEN "
            "(Socket Mode) is"
        )
    if receiver and not token:
        have = "SLACK_SIGNING_SECRET" if s.signing_secret else "SLACK_APP_TOKEN"
        return (
            f"{have} is set but SLACK_BOT_TOKEN is not (nor SLACK_CLIENT_ID and "
            "SLACK_CLIENT_SECRET for OAuth)"
        )
    return None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def readiness(
    app: App, slack: SlackAdapter | None = None, discord: Discord | None = None
) -> dict[str, Check]:
    """What /readyz checks: the database, Redis (when configured: not on the fallback), and
    each long-lived connection that is on (Slack Socket Mode, the Discord gateway)."""

    async def redis() -> bool | None:
        backend = app.budget.backend
        return None if isinstance(backend, MemoryBackend) else not backend.degraded

    async def slack_socket() -> bool | None:
        return None if slack is None else await slack.socket_healthy()

    async def discord_gateway() -> bool | None:
        gateway = discord.gateway if discord is not None else None
        return None if gateway is None else gateway.is_ready() and not gateway.is_closed()

    return {
        "database": app.db.ping,
        "redis": redis,
        "slack_socket_mode": slack_socket,
        "discord_gateway": discord_gateway,
    }
