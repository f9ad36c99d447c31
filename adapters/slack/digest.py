"""A digest as Slack Block Kit: the core's layout, with Slack's mentions and limits."""

from __future__ import annotations

from typing import Any

from bot.digest.content import Digest
from bot.digest.render import layout


def slack_blocks(d: Digest) -> tuple[list[dict[str, Any]], str]:
    """Block Kit blocks and the notification text (also what screen readers use)."""
    lay = layout(d, channel=lambda c: f"<#{c}>", user=lambda u: f"<@{u}>")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": lay.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lay.summary)}},
    ]
    for sec in lay.sections:
        body = "\n".join(f"• {ln}" for ln in sec.lines)
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{sec.title}*\n{body}"[:3000]}}
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": lay.footer}]})
    return blocks, f"{lay.title}: {lay.summary[0]}"
