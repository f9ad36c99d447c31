"""Talk to the bot in the terminal, as in a chat channel (adapters/terminal.py)."""

from __future__ import annotations

import argparse
import sys

from bot.app import open_app
from bot.config import Settings

HELP = "talk to the bot as if in a chat channel"
LOG_LEVEL = "WARNING"
"""Unless QUOTABOT_LOG_LEVEL says otherwise: the terminal is the conversation, and an INFO line
(a retry, a fallback the answer already names) would break into the answer being written."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channel", default="terminal", help="channel name (default: terminal)")
    p.add_argument("--user", help="user name (default: your login)")
    p.add_argument("--model", help="model (default: the channel's, then default_model)")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.terminal import TerminalChat

    async with open_app(settings) as app:
        if app.sandbox:
            print(
                "quotabot: no provider configured (OPENAI_API_KEY and OPENAI_BASE_URL are unset): "
                f"answering from the built-in sandbox at {app.sandbox.base_url}",
                file=sys.stderr,
            )
        else:
            print(f"quotabot: using the provider at {app.describe_providers()}", file=sys.stderr)
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
