"""Model Markdown to Slack mrkdwn.

Models answer in GitHub-flavoured Markdown; Slack has its own dialect (``*bold*``,
``_italic_``, ``<url|text>``, no headings). Code is left exactly as written. Long answers are
cut by the one splitter, ``bot.chat.split``, at Slack's size (``adapters.slack.reply``).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^```")
_CODE_SPAN = re.compile(r"(`[^`\n]+`)")
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![*\w])")
_STRIKE = re.compile(r"~~(.+?)~~")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+")


def to_mrkdwn(markdown: str) -> str:
    out: list[str] = []
    in_code = False
    for line in markdown.split("\n"):
        if _FENCE.match(line.strip()):
            out.append("```")  # Slack shows no language tag
            in_code = not in_code
            continue
        out.append(line if in_code else _line(line))
    return "\n".join(out)


def _line(line: str) -> str:
    parts = _CODE_SPAN.split(line)
    for i in range(0, len(parts), 2):  # odd parts are `code spans`: untouched
        parts[i] = _inline(parts[i])
    text = "".join(parts)
    if m := _HEADING.match(text):
        return f"*{m.group(1)}*"
    return _BULLET.sub(lambda m: f"{m.group(1)}• ", text)


def _inline(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _BOLD.sub(lambda m: f"*{m.group(1) or m.group(2)}*", text)
    return _STRIKE.sub(r"~\1~", text)
