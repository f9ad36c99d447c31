"""Discord: register the slash commands."""

from __future__ import annotations

import argparse

from bot.config import Settings

HELP = "Discord: register the slash commands"


def add_arguments(p: argparse.ArgumentParser) -> None:
    dcsub = p.add_subparsers(dest="discord_command", required=True)
    sync = dcsub.add_parser("sync-commands", help="register /ask, /usage and /budget with Discord")
    sync.add_argument("--guild", help="in this server (guild ID) only, instead of everywhere")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.discord.adapter import sync

    names = await sync(settings, args.guild)
    where = f"in server {args.guild}" if args.guild else "globally"
    print(f"registered {', '.join('/' + n for n in names)} {where}")
    return 0
