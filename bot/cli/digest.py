"""Build a daily digest: print it, or post it once."""

from __future__ import annotations

import argparse
import sys
from contextlib import AsyncExitStack
from datetime import timedelta

from bot.app import App, open_app
from bot.cli.args import day_arg
from bot.commands import Commands
from bot.config import Settings
from bot.digest.window import local_today
from bot.errors import QuotabotError

HELP = "build a daily digest: print it, or post it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", help="Slack team or Discord server ID (default: every one)")
    p.add_argument("--platform", choices=("slack", "discord"), help="default: any")
    p.add_argument(
        "--date",
        type=day_arg,
        help="the local day, e.g. 2026-11-24 (default: yesterday in the workspace's time zone)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--print", action="store_true", help="write the text to stdout (default)")
    out.add_argument(
        "--send",
        action="store_true",
        help="post it to the digest channel, unless it was already posted for that day",
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
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
