"""Long answers cut into Discord messages (2,000 characters each), code blocks kept whole.

Discord renders Markdown itself, so the text is not converted, only cut: between paragraphs
where possible, and never inside a code block that fits in one message (it moves to the next
message instead). A code block longer than a message is closed and reopened with its own
opening fence, language tag included, so every piece renders on its own.
"""

from __future__ import annotations

import re

LIMIT = 2_000

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")


def split(text: str, limit: int = LIMIT) -> list[str]:
    """Pieces of at most ``limit`` characters; ``[""]`` for an empty text."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for unit, fence in _units(text):
        for part in _fit(unit, fence, limit):
            extra = len(part) + (1 if current else 0)
            if current and size + extra > limit:
                pieces.append("\n".join(current))
                current, size, extra = [], 0, len(part)
            current.append(part)
            size += extra
    pieces.append("\n".join(current))
    return [p.strip("\n") for p in pieces if p.strip()] or [""]


def _units(text: str) -> list[tuple[str, str | None]]:
    """Paragraphs, blank lines and whole code blocks (with their opening fence line)."""
    lines = text.split("\n")
    units: list[tuple[str, str | None]] = []
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            units.append(("\n".join(paragraph), None))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if m := _FENCE.match(line):
            end_paragraph()
            marker = m.group(1)
            j = i + 1
            while j < len(lines) and not _closes(lines[j], marker):
                j += 1
            # j is the closing fence, or past the end when the model never closed the block
            units.append(("\n".join(lines[i : j + 1]), line))
            i = j + 1
            continue
        if line.strip():
            paragraph.append(line)
        else:
            end_paragraph()
            units.append(("", None))
        i += 1
    end_paragraph()
    return units


def _fit(unit: str, fence: str | None, limit: int) -> list[str]:
    """``unit`` as parts of at most ``limit`` characters each."""
    if len(unit) <= limit:
        return [unit]
    if fence is None:
        return _pack(unit.split("\n"), limit)
    marker = _FENCE.match(fence).group(1)  # type: ignore[union-attr]  # fence matched it
    lines = unit.split("\n")[1:]
    if lines and _closes(lines[-1], marker):
        lines = lines[:-1]
    closing = marker
    room = limit - len(fence) - len(closing) - 2
    return [f"{fence}\n{body}\n{closing}" for body in _pack(lines, room)]


def _closes(line: str, marker: str) -> bool:
    """Whether ``line`` ends the block that ``marker`` opened (CommonMark's rule)."""
    bare = line.strip()
    return len(bare) >= len(marker) and bare == marker[0] * len(bare)


def _pack(lines: list[str], limit: int) -> list[str]:
    """Whole lines per part where they fit; a line longer than ``limit`` is wrapped."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for long_line in lines:
        for line in _wrap(long_line, limit):
            extra = len(line) + (1 if current else 0)
            if current and size + extra > limit:
                parts.append("\n".join(current))
                current, size, extra = [], 0, len(line)
            current.append(line)
            size += extra
    if current:
        parts.append("\n".join(current))
    return parts


def _wrap(line: str, width: int) -> list[str]:
    out = []
    while len(line) > width:
        cut = line.rfind(" ", 0, width)
        cut = cut if cut > width // 2 else width
        out.append(line[:cut])
        line = line[cut:].lstrip(" ")
    out.append(line)
    return out
