"""Model Markdown to Slack mrkdwn, and long answers split where Slack allows.

Models answer in GitHub-flavoured Markdown; Slack has its own dialect (``*bold*``,
``_italic_``, ``<url|text>``, no headings) and shows at most about 4,000 characters of text
in one message without cutting it. Code is left exactly as written.
"""

from __future__ import annotations

import re

LIMIT = 3_900

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


def split(text: str, limit: int = LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters, cut between paragraphs, else between lines;
    a code block that must be cut is closed and reopened, so each piece renders on its own."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    in_code = False
    for line in text.split("\n"):
        for part in _hard_wrap(line, limit - 8):
            extra = len(part) + 1
            if size + extra > limit - (4 if in_code else 0) and current:
                if in_code:
                    current.append("```")
                pieces.append("\n".join(current).strip("\n"))
                current, size = (["```"], 4) if in_code else ([], 0)
            current.append(part)
            size += extra
            if _FENCE.match(part.strip()):
                in_code = not in_code
        if not in_code and line == "" and size > limit * 0.6:
            pieces.append("\n".join(current).strip("\n"))  # a paragraph ends: a good place
            current, size = [], 0
    if current and "\n".join(current).strip():
        pieces.append("\n".join(current).strip("\n"))
    return [p for p in pieces if p.strip()] or [""]


def _hard_wrap(line: str, width: int) -> list[str]:
    if len(line) <= width:
        return [line]
    out = []
    while len(line) > width:
        cut = line.rfind(" ", 0, width)
        cut = cut if cut > width // 2 else width
        out.append(line[:cut])
        line = line[cut:].lstrip(" ")
    out.append(line)
    return out
