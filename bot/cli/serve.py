"""``quotabot serve``: the one place a serving process is put together."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Iterable
from contextlib import AsyncExitStack

from bot.app import App, open_app
from bot.budget.memory import MemoryBackend
from bot.chat.adapter import ChatAdapter
from bot.config import Settings
from bot.dashboard import routes as dashboard
from bot.digest.alerts import BudgetAlerts
from bot.scheduler import DigestScheduler, Retention
from bot.takeover import Takeover
from bot.web import Check, WebServer

log = logging.getLogger("quotabot")

HELP = "run the chat adapters and the web endpoints"
NO_PROVIDER = (
    "quotabot: no provider is set, so serve would answer real users from the built-in sandbox "
    "(made-up text). Set OPENAI_API_KEY (and OPENAI_BASE_URL for a server other than "
    'OpenAI\'s) or declare [providers."NAME"] in the config file, or run '
    "`quotabot serve --sandbox` for a demo."
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
    if not settings.provider.configured and not args.sandbox:
        # The sandbox answers with made-up text: real users must never get it by accident.
        print(NO_PROVIDER, file=sys.stderr)
        return 2
    async with (
        open_app(settings) as app,
        # Outlives the adapters: leases are renewed until their last answer is done.
        Takeover(app.events) as takeover,
        AsyncExitStack() as stack,
    ):
        adapters = await _start_adapters(settings, app, args, stack)
        routes = [route for a in adapters for route in a.routes()] + dashboard.routes(settings, app)
        for adapter in adapters:
            for kind, resume in adapter.resumers().items():
                takeover.on(kind.prefix, resume)
            if (poster := adapter.poster()) is not None:
                app.digests.posters[adapter.platform] = poster
        scheduler = None
        if not args.no_scheduler:
            scheduler = DigestScheduler(
                app.digests,
                database_url=app.db.url,
                misfire_grace=settings.digests.misfire_grace,
                alerts=BudgetAlerts(app.digests) if settings.digests.budget_alerts else None,
                retention=(
                    Retention(app.usage, settings.store.retention_days)
                    if settings.store.retention_days
                    else None
                ),
            )
            await scheduler.start()
            app.digest_commands.on_change = scheduler.sync_jobs
        server = WebServer(
            routes,
            host=args.host or settings.web.host,
            port=args.port or settings.web.port,
            checks=readiness(app, adapters),
            states={"providers": lambda: provider_states(app)},
            keepalive_timeout=settings.web.keepalive_timeout,
            read_timeout=settings.web.read_timeout,
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
        provider = f"the sandbox at {app.provider_url}" if app.sandbox else app.describe_providers()
        on = {a.platform: a.describe() for a in adapters}
        print(
            f"quotabot serving on {server.url} (provider: {provider}, "
            f"Slack: {on.get('slack', 'off')}, Discord: {on.get('discord', 'off')}, "
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
            # The adapters close with ``stack``, next: each lets its answers finish.
    return 0


async def _start_adapters(
    settings: Settings, app: App, args: argparse.Namespace, stack: AsyncExitStack
) -> list[ChatAdapter]:
    """The chat adapters the settings turn on (less those switched off by flag), started;
    each closed with ``stack`` if serving ends early."""
    from adapters import chat_adapters

    off = {"slack": args.no_slack, "discord": args.no_discord}
    started: list[ChatAdapter] = []
    for name, kind in chat_adapters().items():
        if off.get(name):  # e.g. HTTP replicas beside the one process that holds the gateway
            log.info("%s is off: --no-%s", name.capitalize(), name)
            continue
        adapter = kind.from_settings(settings, app)
        if adapter is None:
            continue
        stack.push_async_callback(adapter.aclose, settings.events.shutdown_grace)
        await adapter.start()
        started.append(adapter)
    return started


def readiness(app: App, adapters: Iterable[ChatAdapter] = ()) -> dict[str, Check]:
    """What /readyz checks: the database, Redis (when configured: not on the fallback), the
    providers (failing only when every one is marked down: a bot with one of three down still
    answers), and each long-lived connection that is on (Slack Socket Mode, the Discord
    gateway)."""

    async def redis() -> bool | None:
        backend = app.budget.backend
        return None if isinstance(backend, MemoryBackend) else not backend.degraded

    async def providers() -> bool:
        return any(app.providers.states().values())

    async def off() -> None:
        return None

    checks: dict[str, Check] = {
        "database": app.db.ping,
        "redis": redis,
        "providers": providers,
        "slack_socket_mode": off,
        "discord_gateway": off,
    }
    for adapter in adapters:
        checks |= adapter.checks()
    return checks


def provider_states(app: App) -> dict[str, str]:
    """Each provider, ``up`` or ``down`` (see bot.provider.health), for /readyz."""
    return {name: "up" if up else "down" for name, up in app.providers.states().items()}
