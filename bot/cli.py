"""``quotabot``: the command line. Each command is a small async function over ``open_app``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import logging
import signal
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import SecretStr

from bot import __version__, logs
from bot.app import App, open_app
from bot.budget.memory import MemoryBackend
from bot.budget.policy import MODELS, Who
from bot.commands import Commands, check_models
from bot.config import Settings, load_settings
from bot.digest.alerts import BudgetAlerts
from bot.digest.window import local_today
from bot.errors import ConfigError, QuotabotError
from bot.messages import format_cost
from bot.sandbox import SandboxConfig, run_sandbox
from bot.scheduler import DigestScheduler, Retention
from bot.store import Database, migrate
from bot.store.usage import GROUPS, ReportLine
from bot.takeover import Takeover
from bot.web import Check, WebServer

if TYPE_CHECKING:  # the adapters (and their SDKs) are imported only when serving
    from adapters.discord.serve import Discord
    from adapters.slack import SlackAdapter

log = logging.getLogger("quotabot")


def _date(value: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-11-25") from None


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-11-25") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quotabot", description=__doc__)
    p.add_argument("--version", action="version", version=f"quotabot {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="talk to the bot as if in a chat channel")
    chat.add_argument("--channel", default="terminal", help="channel name (default: terminal)")
    chat.add_argument("--user", help="user name (default: your login)")
    chat.add_argument("--model", help="model (default: the channel's, then default_model)")

    serve = sub.add_parser("serve", help="run the chat adapters and the web endpoints")
    serve.add_argument("--host", help="default: QUOTABOT_HTTP_HOST")
    serve.add_argument("--port", type=int, help="default: QUOTABOT_HTTP_PORT")
    serve.add_argument(
        "--no-scheduler",
        action="store_true",
        help="do not post daily digests or budget alerts from this process",
    )
    serve.add_argument(
        "--no-slack", action="store_true", help="do not serve Slack from this process"
    )
    serve.add_argument(
        "--no-discord",
        action="store_true",
        help="do not serve Discord (gateway or HTTP) from this process",
    )

    dg = sub.add_parser("digest", help="build a daily digest: print it, or post it")
    dg.add_argument("--workspace", help="Slack team or Discord server ID (default: every one)")
    dg.add_argument("--platform", choices=("slack", "discord"), help="default: any")
    dg.add_argument(
        "--date",
        type=_day,
        help="the local day, e.g. 2026-11-24 (default: yesterday in the workspace's time zone)",
    )
    out = dg.add_mutually_exclusive_group()
    out.add_argument("--print", action="store_true", help="write the text to stdout (default)")
    out.add_argument(
        "--send",
        action="store_true",
        help="post it to the digest channel, unless it was already posted for that day",
    )

    sb = sub.add_parser("sandbox", help="run the local OpenAI-compatible sandbox server")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int, default=8000)
    sb.add_argument("--rpm", type=int, default=60, help="requests per minute per model")
    sb.add_argument("--tpm", type=int, default=150_000, help="tokens per minute per model")
    sb.add_argument("--rpd", type=int, default=6_000, help="requests per day per model")
    sb.add_argument("--quota-tokens", type=int, help="tokens until 429 insufficient_quota")
    sb.add_argument(
        "--audio-rpm", type=int, help="transcriptions per minute per model (default: catalog's)"
    )
    sb.add_argument(
        "--audio-rpd", type=int, help="transcriptions per day per model (default: catalog's)"
    )
    sb.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    sb.add_argument("--failure-rate", type=float, default=0.0, help="share of calls that fail")
    sb.add_argument("--seed", type=int, default=0, help="seed for replies and faults")

    db = sub.add_parser("db", help="database schema")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    down = dbsub.add_parser("downgrade", help="revert migrations")
    down.add_argument("revision", help='target revision, e.g. "base"')
    dbsub.add_parser("current", help="show the schema revision")

    usage = sub.add_parser("usage", help="usage and cost report")
    usage.add_argument("--since", type=_date, help="from this day (UTC), e.g. 2026-11-01")
    usage.add_argument("--until", type=_date, help="up to, not including, this day (UTC)")
    usage.add_argument("--by", choices=GROUPS, default="channel")
    usage.add_argument("--json", action="store_true", help="machine-readable output")

    bud = sub.add_parser("budget", help="budget limits: show them, change them at run time")
    budsub = bud.add_subparsers(dest="budget_command", required=True)
    show = budsub.add_parser("show", help="the limits a request is under, and their use now")
    for flag, default in (
        ("platform", "terminal"),
        ("workspace", "local"),
        ("channel", "terminal"),
        ("user", None),
        ("model", None),
    ):
        show.add_argument(f"--{flag}", default=default)
    bset = budsub.add_parser("set", help="set a limit for every replica, over the config file's")
    bset.add_argument("scope", help="model, workspace, channel or user, or one by ID: channel:C1")
    bset.add_argument(
        "kind", help="rpm, tpm, rpd, tokens_day, tokens_month, spend_day, ..., or models"
    )
    bset.add_argument("value", help="a number, or for models their names: gpt-4o-mini,gpt-5-mini")
    unset = budsub.add_parser("unset", help="remove a limit set with `budget set`")
    unset.add_argument("scope")
    unset.add_argument("kind")

    dc = sub.add_parser("discord", help="Discord: register the slash commands")
    dcsub = dc.add_subparsers(dest="discord_command", required=True)
    sync = dcsub.add_parser("sync-commands", help="register /ask, /usage and /budget with Discord")
    sync.add_argument("--guild", help="in this server (guild ID) only, instead of everywhere")

    ch = sub.add_parser("channel", help="per-channel settings")
    ch.add_argument("channel")
    ch.add_argument("--platform", default="terminal")
    ch.add_argument("--workspace", default="local")
    ch.add_argument("--model")
    ch.add_argument("--system-prompt")
    ch.add_argument("--max-tokens", type=int)
    ch.add_argument("--temperature", type=float)
    onoff = ch.add_mutually_exclusive_group()
    onoff.add_argument("--enable", dest="enabled", action="store_const", const=True)
    onoff.add_argument("--disable", dest="enabled", action="store_const", const=False)
    ch.add_argument("--reset", action="store_true", help="back to the configured defaults")
    return p


async def _chat(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.terminal import TerminalChat

    async with open_app(settings) as app:
        if app.sandbox:
            print(
                "quotabot: no provider configured (OPENAI_API_KEY and OPENAI_BASE_URL are unset): "
                f"answering from the built-in sandbox at {app.sandbox.base_url}",
                file=sys.stderr,
            )
        else:
            print(f"quotabot: using the provider at {app.provider_url}", file=sys.stderr)
        chat = TerminalChat(
            app.service,
            stdin=sys.stdin,
            stdout=sys.stdout,
            stderr=sys.stderr,
            interactive=sys.stdin.isatty(),
            channel=args.channel,
            user=args.user,
            model=args.model,
        )
        return await chat.run()


async def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.discord.serve import Discord
    from adapters.slack import SlackAdapter, SlackConfig

    if args.no_discord:  # e.g. HTTP replicas beside the one process that holds the gateway
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
        s = settings
        if (
            not args.no_slack
            and (s.slack_bot_token or s.slack_client_id)
            and (s.slack_signing_secret or s.slack_app_token)
        ):
            secret, app_token = s.slack_signing_secret, s.slack_app_token
            slack = SlackAdapter(
                SlackConfig(
                    bot_token=_secret(s.slack_bot_token),
                    client_id=s.slack_client_id,
                    client_secret=_secret(s.slack_client_secret),
                    redirect_uri=s.slack_redirect_uri,
                    signing_secret=_secret(secret),
                    app_token=_secret(app_token),
                    api_url=s.slack_api_url,
                    admins=frozenset(s.admin_users),
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
            if app_token:
                await slack.start_socket_mode()
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
            scheduler = DigestScheduler(
                app.digests,
                database_url=app.db.url,
                misfire_grace=settings.digest_misfire_grace,
                alerts=BudgetAlerts(app.digests) if settings.budget_alerts else None,
                retention=(
                    Retention(app.usage, settings.usage_retention_days)
                    if settings.usage_retention_days
                    else None
                ),
            )
            await scheduler.start()
            app.digest_commands.on_change = scheduler.sync_jobs
        server = WebServer(
            routes,
            host=args.host or settings.http_host,
            port=args.port or settings.http_port,
            checks=readiness(app, slack, discord),
            keepalive_timeout=settings.http_keepalive_timeout,
            read_timeout=settings.http_read_timeout,
        )
        server.add_metrics(app.metrics)
        await server.start()
        # Everything made while starting lives as long as the process: moved out of the
        # garbage collector's sight, its full collections no longer walk them (each walk
        # paused every event, acknowledgements included, for tens of milliseconds).
        gc.collect()
        gc.freeze()
        print(
            f"quotabot serving on {server.url} (Slack: {'on' if slack else 'off'}, "
            f"Discord: {discord.describe()}, digests: {'on' if scheduler else 'off'})",
            file=sys.stderr,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            takeover.stop_taking()
            await server.aclose()  # no new work; then let answers under way finish
            if scheduler is not None:
                await scheduler.aclose()
            if slack is not None:
                await slack.aclose(grace=settings.shutdown_grace)
    return 0


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


async def _digest(settings: Settings, args: argparse.Namespace) -> int:
    async with open_app(settings) as app, AsyncExitStack() as stack:
        configs = [
            c
            for c in await app.digests.settings.all()
            if (args.workspace in (None, c.workspace)) and (args.platform in (None, c.platform))
        ]
        if not configs:
            where = f" for {args.workspace}" if args.workspace else ""
            print(
                f"quotabot: no digest is set up{where}: an admin sets one with "
                "`/digest set <channel> <HH:MM> <time zone>` in Slack or Discord.",
                file=sys.stderr,
            )
            return 2
        if args.send:
            await _digest_posters(settings, app, stack)
        failed = 0
        for cfg in configs:
            day = args.date or local_today(cfg.zone) - timedelta(days=1)
            if not args.send:
                message = await app.digests.compose(cfg, day)
                print(f"# {cfg.platform} {cfg.workspace}\n{message.text}\n")
                continue
            try:
                outcome = await app.digests.send_scheduled(cfg.platform, cfg.workspace, day)
            except QuotabotError as exc:
                failed += 1
                outcome = f"not sent: {exc}"
            print(f"{cfg.platform} {cfg.workspace} {day}: {outcome}")
    return 1 if failed else 0


async def _digest_posters(settings: Settings, app: App, stack: AsyncExitStack) -> None:
    """The posters ``digest --send`` needs, without serving anything."""
    if settings.slack_bot_token:
        from adapters.slack import SlackAdapter, SlackConfig

        app.digests.posters["slack"] = SlackAdapter(
            SlackConfig(
                bot_token=settings.slack_bot_token.get_secret_value(),
                api_url=settings.slack_api_url,
            ),
            service=app.service,
            commands=Commands(usage=app.usage, budget=app.budget, limits=app.limits),
            events=app.events,
        )
    if settings.discord_token:
        from adapters.discord.digest import DiscordDigestPoster
        from adapters.discord.rest import DiscordREST

        rest = await stack.enter_async_context(
            DiscordREST(
                base_url=settings.discord_api_url, token=settings.discord_token.get_secret_value()
            )
        )
        app.digests.posters["discord"] = DiscordDigestPoster(rest)


async def _discord(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.discord.serve import sync

    names = await sync(settings, args.guild)
    where = f"in server {args.guild}" if args.guild else "globally"
    print(f"registered {', '.join('/' + n for n in names)} {where}")
    return 0


async def _sandbox(settings: Settings, args: argparse.Namespace) -> int:
    config = SandboxConfig(
        rpm=args.rpm,
        tpm=args.tpm,
        rpd=args.rpd,
        quota_tokens=args.quota_tokens,
        audio_rpm=args.audio_rpm,
        audio_rpd=args.audio_rpd,
        latency=args.latency,
        failure_rate=args.failure_rate,
        seed=args.seed,
        catalog=settings.catalog(),
    )
    await run_sandbox(config, args.host, args.port)
    return 0


async def _db(settings: Settings, args: argparse.Namespace) -> int:
    async with Database(settings.sqlalchemy_url) as db:
        if args.db_command == "upgrade":
            await migrate.upgrade(db, args.revision)
        elif args.db_command == "downgrade":
            await migrate.downgrade(db, args.revision)
        print(f"schema revision: {await migrate.current(db) or 'none'} (head: {migrate.head()})")
    return 0


async def _usage(settings: Settings, args: argparse.Namespace) -> int:
    async with open_app(settings) as app:
        lines = await app.usage.report(by=args.by, since=args.since, until=args.until)
    if args.json:
        print(json.dumps([_line_json(line) for line in lines], indent=2))
    else:
        print(_usage_table(args.by, lines))
    return 0


def _line_json(line: ReportLine) -> dict[str, object]:
    return {
        "key": line.key,
        "calls": line.calls,
        "failed": line.failed,
        "prompt_tokens": line.prompt_tokens,
        "completion_tokens": line.completion_tokens,
        "cached_tokens": line.cached_tokens,
        "reasoning_tokens": line.reasoning_tokens,
        "cost_usd": str(line.cost),
        "unpriced_calls": line.unpriced_calls,
        "audio_seconds": line.audio_seconds,
    }


def _usage_table(by: str, lines: list[ReportLine]) -> str:
    if not lines:
        return "No usage recorded in this period."
    rows = [
        (
            by,
            "calls",
            "failed",
            "tokens in",
            "cached",
            "tokens out",
            "reasoning",
            "audio min",
            "cost",
        )
    ]
    for ln in lines:
        cost = format_cost(ln.cost) + (
            f" (+{ln.unpriced_calls} unpriced)" if ln.unpriced_calls else ""
        )
        rows.append(
            (
                ln.key,
                str(ln.calls),
                str(ln.failed),
                f"{ln.prompt_tokens:,}",
                f"{ln.cached_tokens:,}",
                f"{ln.completion_tokens:,}",
                f"{ln.reasoning_tokens:,}",
                f"{ln.audio_seconds / 60:,.1f}",
                cost,
            )
        )
    total = sum((ln.cost for ln in lines), Decimal(0))
    rows.append(
        (
            "total",
            str(sum(ln.calls for ln in lines)),
            str(sum(ln.failed for ln in lines)),
            f"{sum(ln.prompt_tokens for ln in lines):,}",
            f"{sum(ln.cached_tokens for ln in lines):,}",
            f"{sum(ln.completion_tokens for ln in lines):,}",
            f"{sum(ln.reasoning_tokens for ln in lines):,}",
            f"{sum(ln.audio_seconds for ln in lines) / 60:,.1f}",
            format_cost(total),
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells))
        if n == 0 or n == len(rows) - 2:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


async def _budget(settings: Settings, args: argparse.Namespace) -> int:
    async with open_app(settings) as app:
        if args.budget_command in ("set", "unset"):
            value = args.value if args.budget_command == "set" else None
            try:
                if args.kind == MODELS and value is not None:
                    check_models(app.catalog, value)
                await app.limits.set(args.scope, args.kind, value, by=getpass.getuser())
            except ValueError as exc:
                print(f"quotabot: {exc}", file=sys.stderr)
                return 2
            print(f"{args.scope} {args.kind}: {value if value is not None else 'unset'}")
            return 0
        await app.budget.reload()
        who = Who(args.platform, args.workspace, args.channel, args.user or getpass.getuser())
        model = app.catalog.get(args.model or settings.default_model)
        for line in await app.budget.status(who, model):
            resets = f"  (resets {line.resets_at:%Y-%m-%d %H:%M} UTC)" if line.resets_at else ""
            if line.unit == "usd":
                amounts = f"${line.used:,.2f} of ${line.limit:,.2f}"
            else:
                amounts = f"{line.used:,.0f} of {line.limit:,.0f} {line.unit}"
            print(f"{line.label}: {amounts} ({line.share:.0%}){resets}")
        allowed, _ = await app.budget.allowed_models(who)
        print(f"models allowed: {'any' if allowed is None else ', '.join(sorted(allowed))}")
    return 0


async def _channel(settings: Settings, args: argparse.Namespace) -> int:
    fields = ("model", "system_prompt", "max_tokens", "temperature", "enabled")
    async with open_app(settings) as app:
        if args.reset:
            current = await app.channels.set(
                args.platform, args.workspace, args.channel, **{f: None for f in fields}
            )
        elif changes := {f: getattr(args, f) for f in fields if getattr(args, f) is not None}:
            try:
                current = await app.channels.set(
                    args.platform, args.workspace, args.channel, **changes
                )
            except ValueError as exc:
                print(f"quotabot: {exc}", file=sys.stderr)
                return 2
        else:
            current = await app.channels.get(args.platform, args.workspace, args.channel)
    for f in fields:
        print(f"{f}: {getattr(current, f)}")
    return 0


_COMMANDS = {
    "chat": _chat,
    "serve": _serve,
    "sandbox": _sandbox,
    "db": _db,
    "usage": _usage,
    "budget": _budget,
    "channel": _channel,
    "discord": _discord,
    "digest": _digest,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"quotabot: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format, verbose=args.verbose)
    try:
        return asyncio.run(_COMMANDS[args.command](settings, args))
    except KeyboardInterrupt:
        return 130
    except QuotabotError as exc:
        print(f"quotabot: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
