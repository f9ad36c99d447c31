"""What the chat commands say, the same on every platform: /usage and /budget.

Adapters parse their platform's command, check who may run it, and post the text returned
here (Markdown; each adapter converts it to its platform's format).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot import messages
from bot.budget.limits import local_time, reset_text, window_start
from bot.budget.manager import Budget
from bot.budget.policy import FALLBACKS, LIMIT_KINDS, MODELS, SCOPES, TIMEZONE, Who
from bot.budget.tickets import Standing
from bot.catalog import Catalog, ModelInfo
from bot.chat.digest import DigestCommands
from bot.dashboard.links import Links
from bot.digest.render import minutes
from bot.messages import format_cost, quantity, used_of
from bot.store.budgets import REMOVED, BudgetLimitStore, model_names
from bot.store.feedback import Feedback
from bot.store.grants import BudgetRequests
from bot.store.usage import ReportLine, UsageStore

BUDGET_HELP = (
    "Usage: `budget` shows the limits here; `budget set <scope> <limit> <value>` changes one "
    f"(admins only). Scopes: {', '.join(SCOPES)} (or one by ID, e.g. `channel:C0123`). "
    f"Limits: {', '.join(LIMIT_KINDS)}; `{MODELS}` takes the names of the models allowed "
    f"(workspace and channel scopes), `{FALLBACKS}` those to answer with instead, in order, "
    "when a cap, an outage or a long wait stops the one asked for; "
    f"`{TIMEZONE}` the zone whose days, weeks and months the caps count (workspace and model "
    "scopes, e.g. `budget set workspace timezone Europe/Paris`)."
)


class Commands:
    def __init__(
        self,
        *,
        usage: UsageStore,
        budget: Budget,
        limits: BudgetLimitStore,
        digests: DigestCommands | None = None,
        transcription: ModelInfo | None = None,
        catalog: Catalog | None = None,
        requests: BudgetRequests | None = None,
        feedback: Feedback | None = None,
        dashboard: Links | None = None,
    ):
        self.dashboard = dashboard
        """Makes dashboard sign-in links (``/usage dashboard``); None where not wired."""
        self.feedback = feedback
        """👍 and 👎 on answers; None where not wired (some tests)."""
        self.requests = requests
        """Requests for more budget and their grants; None where not wired (some tests)."""
        self.usage = usage
        self.budget = budget
        self.limits = limits
        self.digests = digests
        """``/digest``; None where digests are not wired (some tests)."""
        self.transcription = transcription
        """The model voice messages are transcribed with: its budgets are shown too."""
        self.catalog = catalog
        """To check the names an admin allows; None: any name (some tests)."""

    async def usage_today(self, who: Who, model: ModelInfo) -> str:
        """This channel's and this workspace's usage today (in the workspace's zone, as its
        daily caps count), and the budgets left."""
        since = await self.today(who)
        ws = _workspace(who)
        here = (*ws, ("channel", who.channel))
        channel = await self.usage.report(by="model", since=since, where=here)
        workspace = await self.usage.report(by="model", since=since, where=ws)
        lines = [
            f"*Today (since {local_time(since)})*",
            f"This channel: {usage_total(channel)}",
            f"This workspace: {usage_total(workspace)}",
            "",
            await self.budget_text(who, model),
        ]
        return "\n".join(lines)

    async def today(self, who: Who) -> datetime:
        """When today began in ``who``'s workspace zone (its daily caps' day)."""
        zone = await self.budget.zone(who.workspace)
        return window_start("day", datetime.now(UTC), zone)

    async def budget_text(self, who: Who, model: ModelInfo) -> str:
        """The budgets left for the channel's model and, if set, the transcription model;
        then the models this channel may use."""
        parts = [await self._budgets(who, model, "")]
        if self.transcription is not None and self.transcription.name != model.name:
            parts.append(await self._budgets(who, self.transcription, " (voice messages)"))
        allowed, _ = await self.budget.allowed_models(who)
        if allowed is None:
            parts.append(
                "Models allowed here: any (`budget set channel models <names>` limits them)."
            )
        else:
            parts.append(f"Models allowed here: {', '.join(sorted(allowed)) or 'none'}.")
        if self.requests is not None and (
            grants := await self.requests.active(who.platform, who.workspace)
        ):
            parts.append("\n".join(["*Granted on request*", *map(messages.grant_line, grants)]))
        return "\n\n".join(parts)

    async def models_here(self, who: Who, names: list[str]) -> list[str]:
        """Of ``names``, those ``who`` may ask (for a platform's model picker)."""
        allowed, _ = await self.budget.allowed_models(who)
        return [n for n in names if allowed is None or n in allowed]

    async def _budgets(self, who: Who, model: ModelInfo, what: str) -> str:
        standings = await self.budget.status(who, model)
        if not standings:
            return f"No budget limits apply here for {model.name}{what}."
        return "\n".join([f"*Budgets for {model.name}{what}*", *(_standing(s) for s in standings)])

    async def budget_set(self, scope: str, kind: str, value: str, *, by: str, who: Who) -> str:
        """Raises ValueError (with a message for the admin) for a bad scope, limit or value."""
        scope = _resolve(scope, who)
        removed = value in REMOVED
        if kind in (MODELS, FALLBACKS) and not removed and self.catalog is not None:
            check_models(self.catalog, value)
        await self.limits.set(scope, kind, None if removed else value, by=by)
        await self.budget.reload()
        shown = "removed" if removed else f"set to {value}"
        return f"Budget `{scope}` `{kind}` {shown}. Every replica applies it within seconds."


def check_models(catalog: Catalog, value: str) -> None:
    """Raises ValueError unless every name in ``value`` can answer a question."""
    chat = catalog.chat_models()
    unknown = [n for n in model_names(value) if catalog.base_name(n) not in chat]
    if unknown:
        raise ValueError(
            f"unknown model {', '.join(unknown)}: choose among {', '.join(chat)}, "
            "or declare it in the config file"
        )


def _resolve(scope: str, who: Who) -> str:
    """``channel`` typed in a channel means this channel; ``channel:*`` means every channel."""
    name, _, instance = scope.partition(":")
    if instance == "*":
        return name
    if not instance and name in ("workspace", "channel", "user"):
        return f"{name}:{who.instance(name, '')}"  # type: ignore[arg-type]
    return scope


def _workspace(who: Who) -> tuple[tuple[str, str], ...]:
    return (("platform", who.platform), ("workspace", who.workspace))


def usage_total(rows: list[ReportLine]) -> str:
    """Requests, tokens and spend; transcription models' minutes and spend beside them."""
    if not rows:
        return "no requests yet"
    calls = sum(r.calls for r in rows)
    tokens = sum(r.prompt_tokens + r.completion_tokens for r in rows)
    cached = sum(r.cached_tokens for r in rows)
    reasoning = sum(r.reasoning_tokens for r in rows)
    cost = sum((r.cost for r in rows), Decimal(0))
    details = ", ".join(
        part
        for part in (
            f"{cached:,} cached" if cached else "",
            f"{reasoning:,} reasoning" if reasoning else "",
        )
        if part
    )
    text = f"{quantity(calls, 'requests')}, {tokens:,} tokens{f' ({details})' if details else ''}, "
    text += format_cost(cost)
    audio = [r for r in rows if r.audio_seconds]
    if audio:
        seconds = sum(r.audio_seconds for r in audio)
        spend = sum((r.cost for r in audio), Decimal(0))
        text += f" (audio: {minutes(seconds)}, {format_cost(spend)})"
    return text


def _reset(at: datetime) -> str:
    """A day's reset by its time; a week's or month's with its date too."""
    if at - datetime.now(UTC) <= timedelta(days=1):
        return local_time(at)
    return reset_text(at)


def _standing(s: Standing) -> str:
    amounts = used_of(s.used, s.limit, s.unit)
    warn = " :warning:" if s.share >= 0.8 else ""
    resets = f", resets {_reset(s.resets_at)}" if s.resets_at else ""
    return f"• {s.label}: {amounts} ({s.share:.0%}{resets}){warn}"
