"""Build a daily digest: print it, or post it once."""

from __future__ import annotations

import argparse
import getpass
import sys
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

from bot.app import App, open_app
from bot.cli.args import day_arg
from bot.config import Settings
from bot.digest.window import local_today
from bot.errors import QuotabotError
from bot.store.digests import DigestConfig

HELP = "build a daily digest: print it, or post it"


TERMINAL = DigestConfig("terminal", "local", "terminal")
"""The terminal's own digest (`quotabot chat`'s usage): there from the start, printed only."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "verb",
        nargs="?",
        choices=("show", "set", "on", "off"),
        help="as /digest in chat: show the settings, set CHANNEL HH:MM ZONE, switch on or off "
        "(with --platform and --workspace; default: the terminal's)",
    )
    p.add_argument("words", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("--workspace", help="Slack team or Discord server ID (default: every one)")
    p.add_argument("--platform", choices=("slack", "discord", "terminal"), help="default: any")
    p.add_argument(
        "--date",
        type=day_arg,
        help="the local day, e.g. 2026-11-24, or today (default: yesterday in the workspace's "
        "time zone)",
    )
    p.add_argument("--chart", type=Path, help="also write the chart (PNG) to this file")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--print", action="store_true", help="write the text to stdout (default)")
    out.add_argument(
        "--send",
        action="store_true",
        help="post it to the digest channel, unless it was already posted for that day",
    )


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.verb is not None:
        return await _settings(settings, args)
    async with open_app(settings, provider_keys=False) as app, AsyncExitStack() as stack:
        stored = await app.digests.settings.all()
        if not args.send and not any(c.platform == TERMINAL.platform for c in stored):
            stored.append(TERMINAL)
        configs = [
            c
            for c in stored
            if (args.workspace in (None, c.workspace)) and (args.platform in (None, c.platform))
        ]
        if args.send:
            configs = [c for c in configs if c.platform != TERMINAL.platform]  # nowhere to post
        if args.chart and len(configs) > 1:
            print(
                "quotabot: --chart writes one file: choose a digest with --workspace",
                file=sys.stderr,
            )
            return 2
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
                if args.chart:
                    if message.chart is None:
                        print("quotabot: no spend to chart in these 14 days", file=sys.stderr)
                    else:
                        args.chart.write_bytes(message.chart)
                continue
            try:
                outcome = await app.digests.send_scheduled(cfg.platform, cfg.workspace, day)
            except QuotabotError as exc:
                failed += 1
                outcome = f"not sent: {exc}"
            except Exception as exc:  # the platform could not be reached: one line, no traceback
                failed += 1
                outcome = f"not sent: {cfg.platform} did not answer ({type(exc).__name__}: {exc})"
            print(f"{cfg.platform} {cfg.workspace} {day}: {outcome}")
    return 1 if failed else 0


async def _digest_posters(settings: Settings, app: App, stack: AsyncExitStack) -> None:
    """The posters ``digest --send`` needs, from each platform's adapter, serving nothing:
    the same settings as ``serve`` (OAuth-installed Slack workspaces included)."""
    from adapters import chat_adapters

    for kind in chat_adapters().values():
        adapter = kind.from_settings(settings, app, serving=False)
        if adapter is None:
            continue
        stack.push_async_callback(adapter.aclose, 0)  # its HTTP sessions, closed with it
        if (poster := adapter.poster()) is not None:
            app.digests.posters[adapter.platform] = poster


async def _settings(settings: Settings, args: argparse.Namespace) -> int:
    """``digest show|set|on|off``: what /digest does in chat, for an operator (no admin check:
    whoever runs quotabot's command line is one)."""
    platform, workspace = args.platform or "terminal", args.workspace or "local"
    async with open_app(settings, provider_keys=False) as app:
        commands = app.digest_commands
        try:
            if args.verb == "show":
                print(await commands.show(platform, workspace))
            elif args.verb == "set":
                if len(args.words) != 3:
                    print(
                        "quotabot: digest set CHANNEL HH:MM ZONE, e.g. digest set C0123 "
                        "09:00 Europe/Paris",
                        file=sys.stderr,
                    )
                    return 2
                channel, at, tz = args.words
                print(await commands.set(platform, workspace, channel, at, tz, getpass.getuser()))
            else:
                print(
                    await commands.switch(platform, workspace, args.verb == "on", getpass.getuser())
                )
        except ValueError as exc:
            print(f"quotabot: {exc}", file=sys.stderr)
            return 2
    return 0
