"""A digest laid out once, as titled sections of short lines (readable on a phone), and as
text that stands alone. Each platform adds its own markup and mentions around the layout:
adapters/slack/digest.py (Block Kit), adapters/discord/digest.py (an embed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from bot.digest.figures import WARN_AT, BudgetUse, Digest, Line, ProviderCost
from bot.messages import amount_text, format_cost, quantity

WARN = "⚠️"
OVER = "🛑"
CHART_NAME = "spend-14-days.png"

Mention = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    lines: list[str]


@dataclass(frozen=True, slots=True)
class Layout:
    title: str
    summary: list[str]
    sections: list[Section]
    footer: str


def layout(d: Digest, *, channel: Mention = str, user: Mention = str) -> Layout:
    title = f"quotabot {_title(d)} ({d.tz})"
    cached = f" ({d.cached_tokens:,} cached)" if d.cached_tokens else ""
    reasoning = f" ({d.reasoning_tokens:,} reasoning)" if d.reasoning_tokens else ""
    tokens = f"{d.prompt_tokens:,} in{cached} / {d.completion_tokens:,} out{reasoning} tokens"
    spend = format_cost(d.cost) + (f" (+{d.unpriced} unpriced calls)" if d.unpriced else "")
    audio = (
        f" · {minutes(d.audio_seconds)} of audio transcribed ({format_cost(d.audio_cost)})"
        if d.audio_seconds
        else ""
    )
    compared = f"vs the {d.period} before: {_change(d.cost, d.previous_day)}"
    if d.period == "day":
        compared += f" · vs the 7-day average: {_change(d.cost, d.week_average)}"
    summary = [
        f"Spend {spend} · {quantity(d.requests, 'requests')} answered · {tokens}{audio}",
        compared,
        *([_month(d)] if d.period == "day" else []),
    ]
    sections = [
        Section(
            "Requests",
            [
                f"answered {d.requests:,} · queued {d.queued:,} · refused by a cap {d.refused:,}"
                + (f" · answered by a fallback {d.fell_back:,}" if d.fell_back else ""),
                f"provider 429s {d.rate_limited:,} · retries {d.retries:,} · "
                f"failed calls {d.failed:,}",
                *(
                    [f"answers rated 👍 {d.thumbs_up:,} · 👎 {d.thumbs_down:,}"]
                    if d.thumbs_up or d.thumbs_down
                    else []
                ),
            ],
        )
    ]
    if d.by_model:
        sections.append(Section("Spend by model", [_line(ln, d.cost, str) for ln in d.by_model]))
    if d.top_channels:
        sections.append(
            Section("Top channels", [_line(ln, d.cost, channel) for ln in d.top_channels])
        )
    if d.top_users:
        sections.append(Section("Top users", [_line(ln, d.cost, user) for ln in d.top_users]))
    if d.budgets:
        sections.append(Section("Budgets", [_budget(b) for b in d.budgets]))
    if d.grants:
        sections.append(
            Section(
                "Granted on request",
                [
                    f"+{amount_text(g.amount, g.unit)} on {g.label} for {user(g.requested_by)}, "
                    f"by {user(g.decided_by)}: {g.reason}"
                    for g in d.grants
                ],
            )
        )
    if d.provider_cost is not None:
        sections.append(Section("Provider's own figure", _provider(d.provider_cost)))
    footer = (
        f"{d.start:%Y-%m-%d %H:%M} to {d.end:%Y-%m-%d %H:%M} UTC · "
        f"chart: spend by model, {len(d.series_days)} days"
    )
    return Layout(title, summary, sections, footer)


def to_text(d: Digest, *, channel: Mention = str, user: Mention = str) -> str:
    """Plain text with light Markdown (``*bold*``), complete without the chart."""
    lay = layout(d, channel=channel, user=user)
    out = [f"*{lay.title}*", *lay.summary]
    for sec in lay.sections:
        out += ["", f"*{sec.title}*", *(f"• {ln}" for ln in sec.lines)]
    out += ["", f"_{lay.footer}_"]
    return "\n".join(out)


def minutes(seconds: float) -> str:
    """Audio minutes as people read them: 0.4 min, 12.5 min, 1,234 min."""
    value = seconds / 60
    return f"{value:,.1f} min" if value < 100 else f"{value:,.0f} min"


def _line(ln: Line, total: Decimal, name: Mention) -> str:
    share = f" ({ln.cost / total:.0%})" if total else ""
    tokens = f"{ln.prompt_tokens + ln.completion_tokens:,} tokens"
    if ln.audio_seconds:
        tokens += f" · {minutes(ln.audio_seconds)} audio"
    return f"{name(ln.key)}: {format_cost(ln.cost)}{share} · {ln.requests:,} req · {tokens}"


def _title(d: Digest) -> str:
    if d.period == "week":
        last = d.day + timedelta(days=d.days - 1)
        return f"weekly report: {d.day:%a %d %b} to {last:%a %d %b %Y}"
    if d.period == "month":
        return f"monthly report: {d.day:%B %Y}"
    return f"digest: {d.day:%a %d %b %Y}"


def _change(now: Decimal, before: Decimal) -> str:
    if not before:
        return "no spend to compare" if not now else f"up from $0 ({format_cost(before)})"
    pct = (now - before) / before
    arrow = "▲" if pct > 0 else "▼" if pct < 0 else "="
    return f"{arrow} {abs(pct):.0%} ({format_cost(before)})"


def _month(d: Digest) -> str:
    text = (
        f"Month to date {format_cost(d.month_to_date)} · projected "
        f"{format_cost(d.projection)} by {d.day:%b} {d.month_days}"
    )
    if d.month_cap:
        share = d.projection / d.month_cap
        mark = f" {OVER}" if share >= 1 else f" {WARN}" if share >= Decimal(WARN_AT) else ""
        text += f" ({share:.0%} of the {format_cost(d.month_cap)} monthly cap){mark}"
    return text


def _budget(b: BudgetUse) -> str:
    if b.unit == "usd":
        amounts = f"{format_cost(b.used)} of {format_cost(b.limit)}"
    else:
        amounts = f"{b.used:,.0f} of {b.limit:,.0f} {b.unit}"
    mark = f"{OVER} " if b.share >= 1 else f"{WARN} " if b.share >= WARN_AT else ""
    over = ", over the cap" if b.share > 1 else ", cap reached" if b.share == 1 else ""
    return f"{mark}{b.label}: {amounts} ({b.share:.0%}{over}; {b.window})"


def _provider(p: ProviderCost) -> list[str]:
    diff = p.amount - p.ours
    pct = f" ({diff / p.ours:+.1%})" if p.ours else ""
    return [
        f"the provider reports {format_cost(p.amount)} for {p.window}",
        f"quotabot recorded {format_cost(p.ours)} (every workspace, same window)",
        f"difference {'+' if diff >= 0 else '-'}{format_cost(abs(diff))}{pct}",
    ]
