"""Asking the admins for more budget, in Slack: the "Request more" button under a refusal for
a cap, the form, the admins' Grant and Deny buttons (the core: bot.chat.answers, grants kept
by bot.store.grants).

    refused by a cap -> SlackReply.offer_more: a message with "Request more" (the offer in its
                        value: Slack sends back what quotabot posted, signed)
    the refused user clicks -> views.open: how much, and why
    view_submission -> Chat.request_more -> a DM to each configured admin and a post in the
                       digest channel, with Grant and Deny; the asker is told it went
    an admin clicks Grant or Deny -> the same admin check as /budget set -> Chat.decide
                       -> the admin's message says what was decided; the asker is told in
                          the channel they were refused in
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks as bk
from bot import messages
from bot.budget.limits import reset_text, zone_info, zone_of
from bot.chat.answers import Chat
from bot.chat.surface import MoreBudget
from bot.store.grants import AlreadyDecided, Request

log = logging.getLogger(__name__)

ASK = "quotabot_more_ask"
"""The "Request more" button."""
GRANT, DENY = "quotabot_more_grant", "quotabot_more_deny"
ACTIONS = (ASK, GRANT, DENY)
FORM = "quotabot_more_form"
VIEWS = (FORM,)
_AMOUNT, _REASON, _VALUE = "amount", "reason", "v"
IsAdmin = Callable[[AsyncWebClient, str], Awaitable[bool]]
Ack = Callable[..., Awaitable[None]]


def offer_blocks(offer: MoreBudget) -> list[bk.Block]:
    """The message under a refusal: one button, the offer in its value."""
    return [
        {
            "type": "actions",
            "elements": [bk.button(messages.REQUEST_MORE, ASK, _encode(offer))],
        }
    ]


def _encode(offer: MoreBudget) -> str:
    fields = {
        "p": offer.platform,
        "w": offer.workspace,
        "c": offer.channel,
        "u": offer.user,
        "k": offer.cap_key,
        "l": offer.label,
        "n": offer.unit,
        "r": offer.resets_at.isoformat(),
        "z": zone_of(offer.resets_at),
    }
    return json.dumps(fields, separators=(",", ":"))


def _decode(value: str) -> MoreBudget | None:
    try:
        f = json.loads(value)
        return MoreBudget(
            platform=str(f["p"]),
            workspace=str(f["w"]),
            channel=str(f["c"]),
            user=str(f["u"]),
            cap_key=str(f["k"]),
            label=str(f["l"]),
            unit=str(f["n"]),
            resets_at=datetime.fromisoformat(str(f["r"])).astimezone(
                zone_info(str(f.get("z", "UTC")))
            ),
        )
    except (ValueError, KeyError, TypeError):
        return None


class SlackMore:
    def __init__(self, chat: Chat, *, is_admin: IsAdmin, admins: frozenset[str]):
        """``admins``: the configured admin users, each told of a request by DM."""
        self.chat, self.is_admin, self.admins = chat, is_admin, admins

    def register(self, app: AsyncApp) -> None:
        app.action(ASK)(self.on_ask)
        app.view(FORM)(self.on_form)
        app.action(GRANT)(self.on_grant)
        app.action(DENY)(self.on_deny)

    async def on_ask(self, ack: Ack, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        clicker = body["user"]["id"]
        offer = _decode(str(body["actions"][0].get("value") or ""))
        if offer is None or clicker != offer.user:
            await _tell(context.client, body, clicker, messages.MORE_ONLY_ASKER)
            return
        await context.client.views_open(trigger_id=body["trigger_id"], view=form(offer))

    async def on_form(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        offer = _decode(view.get("private_metadata") or "")
        if offer is None or body["user"]["id"] != offer.user:
            await ack(response_action="errors", errors={_AMOUNT: messages.MORE_ONLY_ASKER})
            return
        if not self.admins and await self._digest_channel(offer) is None:
            await ack(response_action="errors", errors={_AMOUNT: messages.MORE_NO_ADMINS})
            return
        try:
            request = await self.chat.request_more(
                offer, _typed(view, _AMOUNT), _typed(view, _REASON)
            )
        except ValueError as exc:
            field = _REASON if "why" in str(exc).lower() else _AMOUNT
            await ack(response_action="errors", errors={field: str(exc)})
            return
        await ack()
        client = context.client
        text = messages.MORE_ASKED.format(
            user=f"<@{request.requested_by}>",
            amount=messages.amount_text(request.amount, request.unit),
            label=request.label,
            resets=reset_text(request.expires_at),
            reason=request.reason,
        )
        for where in [*sorted(self.admins), await self._digest_channel(offer)]:
            if where is None:
                continue
            try:
                await client.chat_postMessage(
                    channel=where, text=text, blocks=decision_blocks(text, request.id)
                )
            except SlackApiError as exc:
                log.warning("could not tell %s of budget request %d: %s", where, request.id, exc)
        sent = messages.MORE_SENT.format(
            amount=messages.amount_text(request.amount, request.unit), label=request.label
        )
        await _ephemeral(client, offer.channel, offer.user, sent)

    async def on_grant(self, ack: Ack, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await self._decide(ack, body, context, grant=True)

    async def on_deny(self, ack: Ack, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await self._decide(ack, body, context, grant=False)

    async def _decide(
        self, ack: Ack, body: dict[str, Any], context: AsyncBoltContext, *, grant: bool
    ) -> None:
        await ack()
        client, admin = context.client, body["user"]["id"]

        async def is_admin() -> bool:
            return await self.is_admin(client, admin)

        try:
            request_id = int(str(body["actions"][0].get("value")))
            request = await self.chat.decide(request_id, grant=grant, by=admin, is_admin=is_admin)
        except (PermissionError, AlreadyDecided, LookupError, ValueError) as exc:
            await _tell(client, body, admin, str(exc))
            return
        decided = _decided(request)
        where = (body.get("container") or {}).get("channel_id") or (
            (body.get("channel") or {}).get("id")
        )
        ts = (body.get("container") or {}).get("message_ts")
        if where and ts:
            try:
                await client.chat_update(channel=where, ts=ts, text=decided, blocks=[])
            except SlackApiError as exc:
                log.warning("could not mark budget request %d decided: %s", request.id, exc)
        try:
            await client.chat_postMessage(channel=request.channel, text=decided)
        except SlackApiError as exc:
            log.warning("could not tell <@%s> of the decision: %s", request.requested_by, exc)

    async def _digest_channel(self, offer: MoreBudget) -> str | None:
        digests = self.chat.commands.digests
        if digests is None:
            return None
        cfg = await digests.digests.settings.get(offer.platform, offer.workspace)
        return cfg.channel if cfg is not None else None


def form(offer: MoreBudget) -> bk.Block:
    unit = "USD" if offer.unit == "usd" else offer.unit
    return {
        "type": "modal",
        "callback_id": FORM,
        "title": bk.plain(messages.MORE_TITLE, bk.VIEW_TITLE),
        "submit": bk.plain("Send", bk.VIEW_BUTTON),
        "close": bk.plain("Cancel", bk.VIEW_BUTTON),
        "private_metadata": _encode(offer),
        "blocks": [
            bk.section(
                bk.clip(f"*{offer.label}* is used up until {reset_text(offer.resets_at)}.", 3000)
            ),
            _input(_AMOUNT, messages.MORE_AMOUNT.format(unit=unit), multiline=False),
            _input(_REASON, messages.MORE_REASON, multiline=True),
        ],
    }


def decision_blocks(text: str, request_id: int) -> list[bk.Block]:
    return [
        bk.section(bk.clip(text, bk.SECTION_TEXT)),
        {
            "type": "actions",
            "elements": [
                bk.button(messages.APPROVE, GRANT, str(request_id)),
                bk.button(messages.DENY, DENY, str(request_id)),
            ],
        },
    ]


def _decided(r: Request) -> str:
    said = messages.MORE_GRANTED if r.status == "granted" else messages.MORE_DENIED
    return said.format(
        admin=f"<@{r.decided_by}>",
        user=f"<@{r.requested_by}>",
        amount=messages.amount_text(r.amount, r.unit),
        label=r.label,
        resets=reset_text(r.expires_at),
    )


def _input(block_id: str, label: str, *, multiline: bool) -> bk.Block:
    return {
        "type": "input",
        "block_id": block_id,
        "label": bk.plain(label, bk.INPUT_LABEL),
        "element": {
            "type": "plain_text_input",
            "action_id": _VALUE,
            "multiline": multiline,
            "max_length": 500 if multiline else 30,
        },
    }


def _typed(view: dict[str, Any], block_id: str) -> str:
    values = ((view.get("state") or {}).get("values") or {}).get(block_id) or {}
    element = values.get(_VALUE) or {}
    return str(element.get("value") or "") if isinstance(element, dict) else ""


async def _tell(client: AsyncWebClient, body: dict[str, Any], user: str, text: str) -> None:
    channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get(
        "id"
    )
    if channel:
        await _ephemeral(client, channel, user, text)


async def _ephemeral(client: AsyncWebClient, channel: str, user: str, text: str) -> None:
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        log.warning("could not tell %s in %s: %s", user, channel, exc)
