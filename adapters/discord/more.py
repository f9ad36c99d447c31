"""Asking the admins for more budget from Discord, over HTTP interactions.

    a refusal for a cap -> the offer kept (BudgetRequests.offer) -> "Request more" ("more:ID:END")
    the refused user clicks -> a modal: how much, and why ("more:ID:END" again)
    submitted -> Chat.request_more -> posted in the server's digest channel with Grant / Deny
                 ("grant:ID", "deny:ID"); the asker told, privately, that it went
    an admin clicks -> Chat.decide -> that message shows the decision, its buttons gone,
                       and the asker is told in the channel where they were refused

A custom_id holds 100 characters, fewer than a cap key and its label: only ids travel in them,
and offers and requests are rows in the database, so whichever replica Discord posts a click
to can take it. Posting where no interaction answers (the admins' channel, the asker's) takes
the bot token; without one no admin can be reached.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from adapters.discord.commands import CommandRunner
from adapters.discord.invocation import DM_WORKSPACE, EPHEMERAL, PLATFORM, Invocation
from adapters.discord.rest import DiscordAPIError, DiscordREST
from adapters.discord.texts import from_core, warn
from bot import messages
from bot.budget.limits import reset_text
from bot.chat.surface import MoreBudget
from bot.store.grants import REASON_MOST, AlreadyDecided, BudgetRequests, Request

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MESSAGE_COMPONENT, MODAL_SUBMIT = 3, 5
"""Interaction types: a button clicked, a modal submitted."""
CHANNEL_MESSAGE, UPDATE_MESSAGE, MODAL = 4, 7, 9
"""Interaction response types."""
ACTION_ROW, BUTTON, TEXT_INPUT = 1, 2, 4
PRIMARY, SUCCESS, DANGER = 1, 3, 4
SHORT, PARAGRAPH = 1, 2
AMOUNT, REASON = "amount", "reason"
_NO_MENTIONS: JSON = {"parse": []}
_UNITS = {"usd": "USD"}


def buttons(*specs: tuple[str, str, int]) -> list[JSON]:
    """One action row of buttons: (label, custom_id, style) each."""
    return [
        {
            "type": ACTION_ROW,
            "components": [
                {"type": BUTTON, "style": style, "label": label, "custom_id": custom_id}
                for label, custom_id, style in specs
            ],
        }
    ]


class MoreBudgetFlow:
    def __init__(self, runner: CommandRunner, *, rest: DiscordREST | None):
        """``rest``: a client with the bot token, to post in channels."""
        self.runner, self.rest = runner, rest

    @property
    def requests(self) -> BudgetRequests | None:
        return self.runner.chat.commands.requests

    async def offer(self, offer: MoreBudget) -> list[JSON]:
        """The offer kept; the "Request more" button that carries its id."""
        if self.requests is None:
            return []
        offer_id = await self.requests.offer(
            platform=offer.platform,
            workspace=offer.workspace,
            channel=offer.channel,
            user=offer.user,
            cap_key=offer.cap_key,
            label=offer.label,
            unit=offer.unit,
            expires_at=offer.resets_at,
        )
        return buttons((messages.REQUEST_MORE, _more_id(offer_id, offer.resets_at), PRIMARY))

    async def handle(self, payload: JSON) -> JSON:
        """The response to a button clicked or a modal submitted (Discord waits 3 s for it)."""
        custom_id = (payload.get("data") or {}).get("custom_id")
        verb, *rest = custom_id.split(":") if isinstance(custom_id, str) else [""]
        if verb not in ("more", "grant", "deny"):  # not one of quotabot's buttons
            return _private(messages.DISCORD_UNSUPPORTED)
        try:
            ident, who = int(rest[0]), _clicker(payload)
            stamp = int(rest[1]) if verb == "more" else 0
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("malformed Discord component interaction %s", payload.get("id"))
            return _private(warn(messages.DISCORD_MALFORMED))
        if verb == "more" and payload.get("type") == MODAL_SUBMIT:
            return await self._submitted(ident, stamp, who.user, _fields(payload["data"]))
        if verb == "more":
            return await self._modal(ident, stamp, who.user)
        return await self._decide(ident, who, grant=verb == "grant", payload=payload)

    async def _offered(self, offer_id: int, stamp: int, clicker: str) -> MoreBudget | str:
        """The offer behind a button, or what to tell the one who clicked instead. ``stamp``
        (the offer's end) tells a lapsed offer from a new one that SQLite gave its id again."""
        kept = await self.requests.get(offer_id) if self.requests is not None else None
        if (
            kept is None
            or kept.status != "offered"
            or int(kept.expires_at.timestamp()) != stamp
            or kept.expires_at <= datetime.now(UTC)
        ):
            return messages.MORE_LAPSED
        if kept.requested_by != clicker:
            return messages.MORE_NOT_YOURS
        return MoreBudget(
            platform=kept.platform,
            workspace=kept.workspace,
            channel=kept.channel,
            user=kept.requested_by,
            cap_key=kept.cap_key,
            label=kept.label,
            unit=kept.unit,
            resets_at=kept.expires_at,
        )

    async def _modal(self, offer_id: int, stamp: int, clicker: str) -> JSON:
        offer = await self._offered(offer_id, stamp, clicker)
        if isinstance(offer, str):
            return _private(warn(offer))
        unit = _UNITS.get(offer.unit, offer.unit)
        return {
            "type": MODAL,
            "data": {
                "custom_id": _more_id(offer_id, offer.resets_at),
                "title": messages.MORE_TITLE[:45],
                "components": [
                    _text_input(AMOUNT, messages.MORE_AMOUNT.format(unit=unit), SHORT, 20),
                    _text_input(REASON, messages.MORE_REASON, PARAGRAPH, REASON_MOST),
                ],
            },
        }

    async def _submitted(
        self, offer_id: int, stamp: int, clicker: str, fields: dict[str, str]
    ) -> JSON:
        offer = await self._offered(offer_id, stamp, clicker)
        if isinstance(offer, str):
            return _private(warn(offer))
        admins = await self._admins_channel(offer.workspace)
        if admins is None or self.rest is None:
            return _private(messages.MORE_NO_ADMINS)
        try:
            request = await self.runner.chat.request_more(
                offer, fields.get(AMOUNT, ""), fields.get(REASON, "")
            )
        except ValueError as exc:
            return _private(warn(str(exc)))
        asked = messages.MORE_ASKED.format(
            user=f"<@{request.requested_by}>",
            amount=messages.amount_text(request.amount, request.unit),
            label=request.label,
            resets=_when(request.expires_at),
            reason=request.reason,
        )
        grant = (messages.APPROVE, f"grant:{request.id}", SUCCESS)
        deny = (messages.DENY, f"deny:{request.id}", DANGER)
        body = {"content": from_core(asked)[:2000], "components": buttons(grant, deny)}
        if not await self._post(admins, body):
            return _private(messages.MORE_NO_ADMINS)
        return _private(
            messages.MORE_SENT.format(
                amount=messages.amount_text(request.amount, request.unit), label=request.label
            )
        )

    async def _decide(
        self, request_id: int, who: Invocation, *, grant: bool, payload: JSON
    ) -> JSON:
        """An admin's Grant or Deny: the same admins as ``/budget set``."""

        async def is_admin() -> bool:
            return self.runner.may_set_budgets(who)

        try:
            request = await self.runner.chat.decide(
                request_id, grant=grant, by=who.user, is_admin=is_admin
            )
        except (PermissionError, AlreadyDecided, LookupError) as exc:
            return _private(warn(str(exc)))
        told = _decision(request)
        await self._post(
            request.channel,
            {"content": told, "allowed_mentions": {"parse": [], "users": [request.requested_by]}},
        )
        asked = str((payload.get("message") or {}).get("content") or "")
        return {
            "type": UPDATE_MESSAGE,
            "data": {
                "content": f"{asked}\n\n{told}".strip()[:2000],
                "components": [],
                "allowed_mentions": _NO_MENTIONS,
            },
        }

    async def _admins_channel(self, workspace: str) -> str | None:
        """Where the admins hear of requests: the server's digest channel, if one is set."""
        digests = self.runner.chat.commands.digests
        if digests is None or workspace == DM_WORKSPACE:
            return None
        config = await digests.digests.settings.get(PLATFORM, workspace)
        return config.channel if config is not None else None

    async def _post(self, channel: str, body: JSON) -> bool:
        """A bot message in ``channel``; whether it went (a refusal is logged)."""
        if self.rest is None:
            log.warning("no DISCORD_TOKEN: cannot post about a budget request in %s", channel)
            return False
        try:
            await self.rest.request(
                "POST",
                "/channels/{channel_id}/messages",
                channel_id=channel,
                json={"allowed_mentions": _NO_MENTIONS, **body},
            )
        except DiscordAPIError as exc:
            log.warning("could not post about a budget request in %s: %s", channel, exc)
            return False
        return True


def is_ours(data: Any) -> bool:
    """Whether an interaction's data names one of this flow's buttons or its form."""
    custom_id = data.get("custom_id") if isinstance(data, dict) else None
    return isinstance(custom_id, str) and custom_id.split(":")[0] in ("more", "grant", "deny")


def _decision(request: Request) -> str:
    """What the asker (and the admins' message) is told of a decision."""
    said = messages.MORE_GRANTED if request.status == "granted" else messages.MORE_DENIED
    return said.format(
        admin=f"<@{request.decided_by}>",
        user=f"<@{request.requested_by}>",
        amount=messages.amount_text(request.amount, request.unit),
        label=request.label,
        resets=_when(request.expires_at),
    )


def _more_id(offer_id: int, ends: datetime) -> str:
    """``more:ID:END``: the offer's row, and the end of its window (Unix seconds)."""
    return f"more:{offer_id}:{int(ends.timestamp())}"


def _when(at: datetime) -> str:
    return reset_text(at)


def _user(payload: JSON) -> str:
    user = (payload.get("member") or {}).get("user") or payload.get("user") or {}
    return str(int(user["id"]))


def _clicker(payload: JSON) -> Invocation:
    """Who clicked, in the terms ``CommandRunner.may_set_budgets`` reads."""
    member = payload.get("member") or {}
    return Invocation(
        id=str(payload.get("id") or ""),
        name="budget set",
        guild=str(payload["guild_id"]) if payload.get("guild_id") else None,
        channel=str(payload.get("channel_id") or ""),
        user=_user(payload),
        permissions=int(member.get("permissions") or 0),
        roles=frozenset(str(r) for r in member.get("roles") or ()),
        deadline=0.0,
    )


def _fields(data: JSON) -> dict[str, str]:
    """A modal's values by custom_id (each text input in an action row of its own)."""
    found: dict[str, str] = {}
    for row in data.get("components") or []:
        for item in row.get("components") or []:
            found[str(item.get("custom_id"))] = str(item.get("value") or "")
    return found


def _text_input(custom_id: str, label: str, style: int, most: int) -> JSON:
    return {
        "type": ACTION_ROW,
        "components": [
            {
                "type": TEXT_INPUT,
                "custom_id": custom_id,
                "style": style,
                "label": label[:45],
                "required": True,
                "max_length": most,
            }
        ],
    }


def _private(text: str) -> JSON:
    return {
        "type": CHANNEL_MESSAGE,
        "data": {"content": text, "flags": EPHEMERAL, "allowed_mentions": _NO_MENTIONS},
    }
