"""The ``quotabot`` command: one module per subcommand, each with its arguments beside its
handler (``HELP``, ``add_arguments``, ``run``).

    chat     talk to the bot in the terminal          serve    the chat adapters and web endpoints
    digest   print or post a daily digest             sandbox  the local OpenAI-compatible server
    db       the database schema                      usage    usage and cost report
    budget   show or change budget limits             channel  per-channel settings
    discord  register Discord's slash commands        config   the settings in effect; checks
    dashboard-link   a sign-in link to the web dashboard
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Protocol

from bot import __version__, logs
from bot.cli import (
    budget,
    channel,
    chat,
    config,
    dashboard_link,
    db,
    digest,
    discord,
    sandbox,
    serve,
    usage,
)
from bot.config import Settings, load_settings
from bot.errors import ConfigError, QuotabotError


class Command(Protocol):
    """What each command module has (one module per command, like discord.py's __main__)."""

    HELP: str

    def add_arguments(self, p: argparse.ArgumentParser) -> None: ...

    async def run(self, settings: Settings, args: argparse.Namespace) -> int: ...


COMMANDS: dict[str, Command] = {
    "chat": chat,
    "serve": serve,
    "digest": digest,
    "sandbox": sandbox,
    "db": db,
    "usage": usage,
    "budget": budget,
    "discord": discord,
    "channel": channel,
    "config": config,
    "dashboard-link": dashboard_link,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="quotabot",
        description="An OpenAI-compatible model in team chat, with its cost and rate limits "
        "under control. `quotabot chat` tries it in the terminal.",
    )
    p.add_argument("--version", action="version", version=f"quotabot {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug details to stderr")
    sub = p.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.HELP))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"quotabot: {exc}", file=sys.stderr)
        return 2
    level = settings.logs.level
    if "log_level" not in settings.model_fields_set:
        level = getattr(COMMANDS[args.command], "LOG_LEVEL", level)
    logs.configure(level, settings.logs.format, verbose=args.verbose)
    try:
        return asyncio.run(COMMANDS[args.command].run(settings, args))
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:  # something to set differently: the same status as bad settings
        print(f"quotabot: {exc}", file=sys.stderr)
        return 2
    except QuotabotError as exc:
        print(f"quotabot: {exc}", file=sys.stderr)
        return 1
