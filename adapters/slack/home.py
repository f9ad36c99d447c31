"""Slack's App Home tab: a person's own usage, budgets and queue; for admins, the channels'
settings and the budget limits, each editable in a modal (adapters.slack.modals).

    app_home_opened (tab "home")  -> views.publish (user_id): bot.chat.home's figures
    block_actions "Edit"          -> admin? -> views.open: the channel's form
    block_actions "Set a limit"   -> admin? -> views.open: the limit's form
    view_submission               -> admin again (never trust the client) -> checked and saved
                                     by the core, or ``response_action: errors`` on the field
                                  -> the Home view published again

Who is an admin is decided as for ``/budget set`` (SlackCommands._is_admin), on every click.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks as bk
from adapters.slack import modals, screen
from adapters.slack.config import PLATFORM
from adapters.slack.mrkdwn import to_mrkdwn
from bot import messages
from bot.chat.answers import Chat
from bot.chat.home import FieldError, Home
from bot.ids import usable_id

log = logging.getLogger(__name__)

EVENT = screen.HOME_EVENTS[0]
MOST_CHANNELS = 40
"""Channels listed with an Edit button each: with the rest of the page, well within Slack's
100 blocks; the others are counted, and ``quotabot channel`` reaches them."""
MOST_LIMITS = 40
"""Budget limit lines shown (one section holds 3,000 characters)."""
MOST_WAITING = 5
MOST_PROMPT = 300
"""Characters of a channel's system prompt shown; the form shows all of it."""
_SLOT = "\x00"
IsAdmin = Callable[[AsyncWebClient, str], Awaitable[bool]]
Ack = Callable[..., Awaitable[None]]


class SlackHome:
    def __init__(self, chat: Chat, *, is_admin: IsAdmin):
        self.home = Home(chat)
        self.catalog = chat.service.catalog
        self.is_admin = is_admin

    def register(self, app: AsyncApp) -> None:
        app.event(EVENT)(self.on_opened)
        app.action(modals.EDIT_CHANNEL)(self.on_edit_channel)
        app.action(modals.SET_LIMIT)(self.on_set_limit)
        app.view(modals.CHANNEL)(self.on_channel_saved)
        app.view(modals.LIMIT)(self.on_limit_saved)

    async def on_opened(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        user = event.get("user")
        if event.get("tab") != "home" or not usable_id(user):
            return  # the Messages tab, or a shape Slack does not send
        await self.publish(context.client, context.team_id or "", str(user))

    async def publish(self, client: AsyncWebClient, team: str, user: str) -> None:
        await client.views_publish(user_id=user, view=await self.view(client, team, user))

    async def view(self, client: AsyncWebClient, team: str, user: str) -> bk.Block:
        """The Home view of ``user``: the admin's part only for an admin."""
        who = self.home.who(team, user)
        page = [
            bk.header(messages.HOME_TITLE),
            bk.section(to_mrkdwn(await self.home.usage(who))),
            *(bk.section(to_mrkdwn(text)) for text in await self.home.budgets(who)),
            *(bk.section(to_mrkdwn(t)) for t in self.home.waiting(who)[:MOST_WAITING]),
        ]
        if await self.is_admin(client, user):
            page += await self._admin(team)
        return {"type": "home", "blocks": page}

    async def _admin(self, team: str) -> list[bk.Block]:
        channels, count = await self.home.channels(team, most=MOST_CHANNELS)
        page = [
            bk.divider(),
            bk.header(messages.HOME_ADMIN),
            bk.section(to_mrkdwn(messages.HOME_CHANNELS)),
        ]
        if not channels:
            page.append(bk.context(messages.HOME_NO_CHANNELS))
        for channel, now in channels:
            prompt = " ".join(now.system_prompt.split()) or messages.HOME_NO_PROMPT
            text = messages.HOME_CHANNEL.format(
                channel=_SLOT,
                model=now.model,
                state=messages.HOME_ON if now.enabled else messages.HOME_OFF,
                prompt=bk.clip(prompt, MOST_PROMPT),
            )
            # Escaped as Markdown (a prompt may hold < and &), then the link put in.
            text = to_mrkdwn(text).replace(_SLOT, f"<#{channel}>")
            edit = bk.button(messages.HOME_EDIT, modals.EDIT_CHANNEL, channel)
            page.append(bk.section(text, accessory=edit))
        if count > len(channels):
            page.append(bk.context(messages.HOME_MORE_CHANNELS.format(more=count - len(channels))))
        limits = await self.home.limits()
        lines = [
            messages.HOME_LIMIT.format(
                scope=x.scope,
                kind=x.kind,
                value=x.value,
                where=messages.HOME_LIMIT_CONFIG if x.configured else "",
            )
            for x in limits[:MOST_LIMITS]
        ]
        if len(limits) > MOST_LIMITS:
            lines.append(messages.HOME_MORE_LIMITS.format(more=len(limits) - MOST_LIMITS))
        text = "\n".join([messages.HOME_LIMITS, *(lines or [messages.HOME_NO_LIMITS])])
        set_one = bk.button(messages.HOME_SET_LIMIT, modals.SET_LIMIT)
        page += [bk.divider(), bk.section(to_mrkdwn(text), accessory=set_one)]
        return page

    # -- the forms ------------------------------------------------------------------------------

    async def on_edit_channel(
        self, ack: Ack, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        user, team = _user_team(body, context)
        channel = (body.get("actions") or [{}])[0].get("value")
        if not usable_id(channel) or not await self._admin_or_log(context.client, user, "edit"):
            return
        now = await self.home.chat.service.channels.get(PLATFORM, team, channel)
        form = modals.channel_form(channel, f"<#{channel}>", now, self.catalog.chat_models())
        await context.client.views_open(trigger_id=body["trigger_id"], view=form)

    async def on_set_limit(self, ack: Ack, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        user, _ = _user_team(body, context)
        if await self._admin_or_log(context.client, user, "set a limit"):
            await context.client.views_open(trigger_id=body["trigger_id"], view=modals.limit_form())

    async def on_channel_saved(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        user, team = _user_team(body, context)
        if not await self.is_admin(context.client, user):
            await _refuse(ack, modals.MODEL, messages.NOT_ADMIN[PLATFORM])
            return
        channel = modals.channel_of(view)
        model, on = modals.typed(view, modals.MODEL), modals.enabled(view)
        if not usable_id(channel) or model is None or on is None:
            await _refuse(
                ack, modals.MODEL if model is None else modals.ENABLED, messages.MODAL_REQUIRED
            )
            return
        who = self.home.who(team, user, channel)
        prompt = modals.typed(view, modals.PROMPT) or ""
        try:
            await self.home.set_channel(who, model=model, system_prompt=prompt, enabled=on)
        except FieldError as exc:
            await _refuse(ack, exc.field, str(exc))
            return
        await ack()
        await self.publish(context.client, team, user)

    async def on_limit_saved(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        user, team = _user_team(body, context)
        if not await self.is_admin(context.client, user):
            await _refuse(ack, modals.SCOPE, messages.NOT_ADMIN[PLATFORM])
            return
        scope, kind = modals.typed(view, modals.SCOPE), modals.typed(view, modals.KIND)
        value = modals.typed(view, modals.VALUE)
        if scope is None or kind is None or value is None:
            field = modals.SCOPE if scope is None else modals.KIND if kind is None else modals.VALUE
            await _refuse(ack, field, messages.MODAL_REQUIRED)
            return
        commands = self.home.chat.commands
        try:
            await commands.budget_set(scope, kind, value, by=user, who=self.home.who(team, user))
        except ValueError as exc:
            await _refuse(ack, modals.limit_field(str(exc)), str(exc))
            return
        await ack()
        await self.publish(context.client, team, user)

    async def _admin_or_log(self, client: AsyncWebClient, user: str, what: str) -> bool:
        if await self.is_admin(client, user):
            return True
        log.warning("Slack user %s is not an admin and may not %s from the App Home", user, what)
        return False


def _user_team(body: dict[str, Any], context: AsyncBoltContext) -> tuple[str, str]:
    """Who clicked, and in which workspace (adapters.slack.screen checked their shape)."""
    team = context.team_id or (body.get("team") or {}).get("id") or ""
    return str(body["user"]["id"]), str(team)


async def _refuse(ack: Ack, field: str, text: str) -> None:
    await ack(response_action="errors", errors={field: bk.clip(text, bk.INPUT_HINT)})
