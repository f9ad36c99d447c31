"""The one way benchmarks show their figures: Markdown tables, on stdout and in
``bench/<name>/results/<name>.md``, with everything in ``<name>.json`` beside it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table whose columns also line up in a terminal: the first column
    left-aligned (what the row is), the others right-aligned (figures)."""
    body = [list(map(str, row)) for row in rows]
    widths = [max(3, len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
    return "\n".join([line(headers), line(rule), *map(line, body)])


def write_results(out: Path, data: object, markdown: str) -> None:
    """``data`` as JSON in ``out``, ``markdown`` next to it (``out`` with ``.md``); says so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown)
    print(f"wrote {out} and {out.with_suffix('.md')}")
