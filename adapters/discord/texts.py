"""The core's chat text in Discord's Markdown; the sentences themselves are in bot.messages."""

from __future__ import annotations

WARNING = "⚠️"


def warn(text: str) -> str:
    return f"{WARNING} {text}"


def from_core(text: str) -> str:
    """The core's chat text in Discord's Markdown (it uses Slack's emoji names)."""
    return text.replace(":warning:", WARNING)
