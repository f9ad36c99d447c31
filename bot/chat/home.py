"""A person's own page, the same on every platform: their usage today and this month, the
budgets they are under, their place in a queue; for admins, the channels' settings and the
budget limits, and a change to either checked as the CLI and ``/budget set`` check it.

Slack's App Home draws it (adapters.slack.home); the texts are Markdown, like the commands'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot import messages
from bot.budget.limits import local_time, window_start
from bot.budget.policy import ScopeKind, Who
from bot.budget.tickets import Standing
from bot.chat.answers import Chat
from bot.chat.commands import check_models, usage_total
from bot.models import ChannelSettings

PERSONAL: tuple[ScopeKind, ...] = ("model", "workspace", "user")
"""The scopes a person is under wherever they ask: a page with no channel shows these."""
PROMPT_MOST = 3000
"""Characters of a system prompt set from a chat platform (Slack's text input holds 3,000)."""


class FieldError(ValueError):
    """A change refused because of one of its fields: the form shows ``message`` beside it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Limit:
    scope: str
    kind: str
    value: str
    configured: bool
    """From the config file (``/budget set`` overrides it)."""


class Home:
    def __init__(self, chat: Chat):
        self.chat = chat
        self.platform = chat.platform

    def who(self, workspace: str, user: str, channel: str = "") -> Who:
        return Who(self.platform, workspace, channel, user)

    async def usage(self, who: Who) -> str:
        """``who``'s own requests, tokens and spend today and this month (in the workspace's
        zone, as its caps count), everywhere in the workspace."""
        zone = await self.chat.commands.budget.zone(who.workspace)
        now = datetime.now(UTC)
        day, month_start = window_start("day", now, zone), window_start("month", now, zone)
        mine = (("platform", who.platform), ("workspace", who.workspace), ("user", who.user))
        report = self.chat.commands.usage.report
        today = await report(by="model", since=day, where=mine)
        month = await report(by="model", since=month_start, where=mine)
        return messages.HOME_USAGE.format(
            since=local_time(day), zone=zone, today=usage_total(today), month=usage_total(month)
        )

    async def budgets(self, who: Who) -> list[str]:
        """The limits ``who`` is under with no channel in question (the model's, the
        workspace's, their own), for the default model and the transcription model: what
        is left, and when it resets."""
        model = await self.chat.model_here(who)
        models = [(model, "")]
        voice = self.chat.commands.transcription
        if voice is not None and voice.name != model.name:
            models.append((voice, messages.HOME_VOICE))
        out = []
        for info, what in models:
            standings = await self.chat.commands.budget.status(who, info, scopes=PERSONAL)
            if not standings:
                out.append(messages.HOME_NO_BUDGETS.format(model=info.name, what=what))
                continue
            head = messages.HOME_BUDGETS.format(model=info.name, what=what)
            out.append("\n".join([head, *(_left(s) for s in standings)]))
        return out

    def waiting(self, who: Who) -> list[str]:
        """Where ``who``'s questions wait in this process's queues (none: nothing to say)."""
        places = self.chat.commands.budget.waiting(who.platform, who.workspace, who.user)
        return [messages.HOME_WAITING.format(place=p, model=m) for m, p in places]

    async def channels(
        self, workspace: str, *, most: int
    ) -> tuple[list[tuple[str, ChannelSettings]], int]:
        return await self.chat.service.channels.configured(self.platform, workspace, most=most)

    async def limits(self) -> list[Limit]:
        """Every budget limit set, run-time changes first, as ``quotabot budget list``."""
        budget = self.chat.commands.budget
        await budget.reload()
        policy = budget.policy
        out = [
            Limit(scope, kind, _shown(value), False)
            for scope, values in sorted(policy.overrides.items())
            for kind, value in sorted(values.items())
        ]
        out += [
            Limit(scope, kind, _shown(value), True)
            for scope, values in sorted(policy.config.items())
            for kind, value in sorted(values.items())
            if value is not None and kind not in policy.overrides.get(scope, {})
        ]
        return out

    async def set_channel(
        self, who: Who, *, model: str, system_prompt: str, enabled: bool
    ) -> ChannelSettings:
        """Change ``who.channel``'s settings as ``quotabot channel`` does, and the model must
        be one the channel may use. Raises FieldError naming the field at fault."""
        catalog = self.chat.service.catalog
        try:
            check_models(catalog, model)
        except ValueError as exc:
            raise FieldError("model", str(exc)) from None
        allowed, _ = await self.chat.commands.budget.allowed_models(who)
        if allowed is not None and not {model, catalog.base_name(model)} & allowed:
            text = messages.MODEL_NOT_ALLOWED_HERE.format(
                model=model, allowed=", ".join(sorted(allowed)) or "none"
            )
            raise FieldError("model", text)
        if len(system_prompt) > PROMPT_MOST:
            text = messages.PROMPT_TOO_LONG.format(most=PROMPT_MOST, length=len(system_prompt))
            raise FieldError("system_prompt", text)
        channels = self.chat.service.channels
        try:
            return await channels.set(
                who.platform,
                who.workspace,
                who.channel,
                model=model,
                system_prompt=system_prompt,
                enabled=enabled,
            )
        except ValueError as exc:
            raise FieldError("model", str(exc)) from None


def _left(s: Standing) -> str:
    left = s.limit - s.used  # type: ignore[operator]  # both of one unit's type
    left = left if left > 0 else 0
    amounts = {"label": s.label, "left": messages.quantity(left, s.unit)}
    amounts["limit"] = messages.quantity(s.limit, s.unit)
    if s.resets_at is None:
        return messages.HOME_RATE_LEFT.format(**amounts)
    return messages.HOME_CAP_LEFT.format(at=s.resets_at, time=local_time(s.resets_at), **amounts)


def _shown(value: object) -> str:
    return ",".join(value) if isinstance(value, list | tuple) else str(value)
