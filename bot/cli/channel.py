"""Per-channel settings."""

from __future__ import annotations

import argparse
import sys

from bot.app import open_app
from bot.config import Settings

HELP = "per-channel settings"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("channel")
    p.add_argument("--platform", default="terminal")
    p.add_argument("--workspace", default="local")
    p.add_argument("--model")
    p.add_argument("--system-prompt")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--temperature", type=float)
    onoff = p.add_mutually_exclusive_group()
    onoff.add_argument("--enable", dest="enabled", action="store_const", const=True)
    onoff.add_argument("--disable", dest="enabled", action="store_const", const=False)
    p.add_argument("--reset", action="store_true", help="back to the configured defaults")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    fields = ("model", "system_prompt", "max_tokens", "temperature", "enabled")
    async with open_app(settings, provider_keys=False) as app:
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
