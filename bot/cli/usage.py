"""Usage and cost report."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal

from bot.app import open_app
from bot.cli.args import date_arg
from bot.config import Settings
from bot.messages import format_cost
from bot.store.usage import GROUPS, ReportLine

HELP = "usage and cost report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", type=date_arg, help="from this day (UTC), e.g. 2026-11-01")
    p.add_argument("--until", type=date_arg, help="up to, not including, this day (UTC)")
    p.add_argument("--by", choices=GROUPS, default="channel")
    p.add_argument("--json", action="store_true", help="machine-readable output")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.since and args.until and args.since >= args.until:
        print("quotabot: --since must be a day before --until", file=sys.stderr)
        return 2
    async with open_app(settings, provider_keys=False) as app:
        lines = await app.usage.report(by=args.by, since=args.since, until=args.until)
    if args.json:
        print(json.dumps([_line_json(line) for line in lines], indent=2))
    else:
        print(_usage_table(args.by, lines))
    return 0


def _line_json(line: ReportLine) -> dict[str, object]:
    return {
        "key": line.key,
        "calls": line.calls,
        "failed": line.failed,
        "prompt_tokens": line.prompt_tokens,
        "completion_tokens": line.completion_tokens,
        "cached_tokens": line.cached_tokens,
        "reasoning_tokens": line.reasoning_tokens,
        "cost_usd": str(line.cost),
        "unpriced_calls": line.unpriced_calls,
        "audio_seconds": line.audio_seconds,
    }


def _usage_table(by: str, lines: list[ReportLine]) -> str:
    if not lines:
        return "No usage recorded in this period."
    rows = [
        (
            by,
            "calls",
            "failed",
            "tokens in",
            "cached",
            "tokens out",
            "reasoning",
            "audio min",
            "cost",
        )
    ]
    for ln in lines:
        cost = format_cost(ln.cost) + (
            f" (+{ln.unpriced_calls} unpriced)" if ln.unpriced_calls else ""
        )
        rows.append(
            (
                ln.key,
                str(ln.calls),
                str(ln.failed),
                f"{ln.prompt_tokens:,}",
                f"{ln.cached_tokens:,}",
                f"{ln.completion_tokens:,}",
                f"{ln.reasoning_tokens:,}",
                f"{ln.audio_seconds / 60:,.1f}",
                cost,
            )
        )
    total = sum((ln.cost for ln in lines), Decimal(0))
    unpriced = sum(ln.unpriced_calls for ln in lines)
    rows.append(
        (
            "total",
            str(sum(ln.calls for ln in lines)),
            str(sum(ln.failed for ln in lines)),
            f"{sum(ln.prompt_tokens for ln in lines):,}",
            f"{sum(ln.cached_tokens for ln in lines):,}",
            f"{sum(ln.completion_tokens for ln in lines):,}",
            f"{sum(ln.reasoning_tokens for ln in lines):,}",
            f"{sum(ln.audio_seconds for ln in lines) / 60:,.1f}",
            format_cost(total) + (f" (+{unpriced} unpriced)" if unpriced else ""),
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells))
        if n == 0 or n == len(rows) - 2:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
