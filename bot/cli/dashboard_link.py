"""A sign-in link to the dashboard, for an operator on the server (admins in chat use
``/usage dashboard``)."""

from __future__ import annotations

import argparse
import sys

from bot.config import Settings
from bot.dashboard.links import Scope, links_for

HELP = "print a sign-in link to the web dashboard"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--platform", choices=("slack", "discord"), help="with --workspace: one only")
    p.add_argument("--workspace", help="the Slack team ID or Discord server ID it shows")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if bool(args.platform) != bool(args.workspace):
        print(
            "quotabot: give --platform and --workspace together (or neither: every workspace)",
            file=sys.stderr,
        )
        return 2
    links = links_for(settings)
    print(links.url(Scope(args.platform, args.workspace)))
    minutes = round(links.ttl / 60)
    print(f"valid for {minutes} minutes; opens the dashboard of {_scope(args)}", file=sys.stderr)
    return 0


def _scope(args: argparse.Namespace) -> str:
    return f"{args.platform} {args.workspace}" if args.platform else "every workspace"
