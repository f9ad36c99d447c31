"""HTTP interactions mode: Discord POSTs each slash command to ``/discord/interactions``.

    POST -> Ed25519 signature and timestamp checked (401, nothing else done, when wrong)
         -> PING: PONG | command: deferred response (type 5) at once
         -> task: once per interaction id -> CommandRunner -> PATCH @original, POST follow-ups

discord.py serves only the gateway, so this is quotabot's own, on PyNaCl. No gateway
connection is needed: any number of replicas can serve this behind a load balancer (the
event log in the database makes each interaction answered once). Discord sends requests with
bad signatures on purpose and removes endpoints that accept them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from adapters.discord.commands import CommandRunner
from adapters.discord.invocation import (
    DM_WORKSPACE,
    EPHEMERAL,
    INTERACTION,
    PLATFORM,
    TOKEN_TTL,
    File,
    Invocation,
    deadline_for,
)
from adapters.discord.more import MESSAGE_COMPONENT, MODAL_SUBMIT, MoreBudgetFlow
from adapters.discord.rest import DiscordREST
from adapters.discord.spec import KNOWN
from adapters.discord.texts import warn
from bot import messages
from bot.budget.policy import Who
from bot.chat.claims import Kind
from bot.errors import QuotabotError
from bot.store.events import Orphan
from bot.takeover import Resume
from bot.web import MAX_DEPTH, too_deep

log = logging.getLogger(__name__)

PING, APPLICATION_COMMAND, AUTOCOMPLETE = 1, 2, 4
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, AUTOCOMPLETE_RESULT = 1, 4, 5, 8
DISCORD_EPOCH_MS = 1_420_070_400_000
NO_MENTIONS: dict[str, list[str]] = {"parse": []}
"""Sent with every message: a model's answer must never ping @everyone or anyone else."""
_SUBCOMMAND, _GROUP = 1, 2
MAX_DIGITS = 12
"""Of a timestamp: Discord's have ten (until 2286). 309 overflowed a float."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InteractionsConfig:
    application_id: str
    public_key: str
    """The application's public key (hex), from the Developer Portal."""
    timestamp_window: float = 300.0
    """Seconds a signed request stays acceptable: an older (or newer) one is a replay."""
    token_ttl: float = TOKEN_TTL
    margin: float = 30.0
    """Seconds before the token expires when quotabot stops and says the answer is cut off."""


class Malformed(ValueError):
    """An interaction that does not have the shape Discord documents."""


class InteractionsEndpoint:
    def __init__(
        self,
        config: InteractionsConfig,
        *,
        runner: CommandRunner,
        rest: DiscordREST,
        bot_rest: DiscordREST | None = None,
    ):
        """``bot_rest``: a client with the bot token, to post the admins' budget requests."""
        self.config = config
        self.runner = runner
        self.rest = rest
        self.more = MoreBudgetFlow(runner, rest=bot_rest)
        runner.offers = self.more.offer
        try:
            self._key = VerifyKey(bytes.fromhex(config.public_key))
        except ValueError as exc:
            raise ValueError("DISCORD_PUBLIC_KEY is not a 32-byte hex Ed25519 key") from exc

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/discord/interactions", self.handle)]

    async def aclose(self) -> None:
        """Let answers under way finish."""
        await self.runner.drain()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.verified(request.headers, body):
            return web.Response(status=401, text="invalid request signature")
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise Malformed("not a JSON object")
            if too_deep(payload):
                raise Malformed(f"nested deeper than {MAX_DEPTH} levels")
        except RecursionError:
            log.warning("Discord interaction of %d bytes nested too deep to parse", len(body))
            return web.Response(status=400, text="invalid JSON")
        except ValueError as exc:  # its text says where, never what
            log.warning("Discord interaction of %d bytes that is not JSON: %s", len(body), exc)
            return web.Response(status=400, text="invalid JSON")
        kind = payload.get("type")
        if kind == PING:
            return web.json_response({"type": PONG})
        if kind == AUTOCOMPLETE:
            return await self._autocomplete(payload)
        if kind in (MESSAGE_COMPONENT, MODAL_SUBMIT):  # "Request more", Grant, Deny
            return web.json_response(await self.more.handle(payload))
        if kind != APPLICATION_COMMAND:
            return self._message(messages.DISCORD_UNSUPPORTED)
        try:
            inv, token = self.parse(payload)
        except (Malformed, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("malformed Discord interaction %s: %s", _id(payload), _why(exc))
            return self._message(warn(messages.DISCORD_MALFORMED))
        if inv.name not in KNOWN:
            return self._message(warn(messages.DISCORD_UNKNOWN_COMMAND.format(name=inv.name)))
        # Discord never sends an interaction twice: if this process dies before answering,
        # another one answers from the claim (bot.takeover).
        claim = await self.runner.chat.claims.at_ack(inv.dedupe_key, {"interaction": payload})
        self.runner.spawn(self._answer(inv, token, claim))
        data = {"flags": EPHEMERAL} if inv.private else {}
        return web.json_response({"type": DEFERRED_CHANNEL_MESSAGE, "data": data})

    async def _autocomplete(self, payload: dict[str, Any]) -> web.Response:
        """/ask's model option: the models this channel may use, matching what was typed.
        Anything else, or a malformed payload, gets no choices (Discord then shows none)."""
        names: list[str] = []
        try:
            data = payload["data"]
            focused = _focused(data.get("options") or [])
            if data.get("name") == "ask" and focused is not None and focused[0] == "model":
                user = (payload.get("member") or {}).get("user") or payload.get("user") or {}
                who = Who(
                    PLATFORM,
                    str(payload.get("guild_id") or DM_WORKSPACE),
                    str(payload["channel_id"]),
                    str(user["id"]),
                )
                names = await self.runner.model_choices(who, focused[1])
        except (Malformed, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("malformed Discord autocomplete %s: %s", _id(payload), _why(exc))
        except QuotabotError as exc:
            log.warning("no model choices for a Discord autocomplete: %s", exc)
        choices = [{"name": n, "value": n} for n in names]
        return web.json_response({"type": AUTOCOMPLETE_RESULT, "data": {"choices": choices}})

    def verified(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Discord signs timestamp + body; the timestamp must also be recent. Discord sends
        it as ten ASCII digits: anything else fails before the signature is checked."""
        signature = headers.get("X-Signature-Ed25519", "")
        timestamp = headers.get("X-Signature-Timestamp", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_DIGITS):
            return False
        if abs(time.time() - int(timestamp)) > self.config.timestamp_window:
            return False
        try:
            self._key.verify(timestamp.encode() + body, bytes.fromhex(signature))
        except (BadSignatureError, ValueError):
            return False
        return True

    def parse(self, payload: dict[str, Any]) -> tuple[Invocation, str]:
        """The invocation and its token. Raises Malformed (or KeyError...) for a bad shape."""
        data = payload["data"]
        name, options = _flatten(data["name"], data.get("options") or [])
        member = payload.get("member")
        user = (member or {}).get("user") or payload.get("user")
        if not isinstance(user, dict) or "id" not in user:
            raise Malformed("no user")
        channel = payload.get("channel_id") or (payload.get("channel") or {}).get("id")
        token = payload["token"]
        if not (channel and isinstance(token, str) and token):
            raise Malformed("no channel or token")
        resolved = (data.get("resolved") or {}).get("attachments") or {}
        files = {
            name: File.from_json(resolved[value])
            for name, value in options.items()
            if isinstance(value, str) and value in resolved
        }
        interaction_id = _snowflake(payload["id"])
        loop_now, now = asyncio.get_running_loop().time(), time.time()
        created = ((int(interaction_id) >> 22) + DISCORD_EPOCH_MS) / 1000
        inv = Invocation(
            id=interaction_id,
            name=name,
            options=options,
            guild=str(payload["guild_id"]) if payload.get("guild_id") else None,
            channel=str(channel),
            user=str(user["id"]),
            permissions=int((member or {}).get("permissions") or 0),
            roles=frozenset(str(r) for r in (member or {}).get("roles") or ()),
            deadline=deadline_for(
                created, now, loop_now, ttl=self.config.token_ttl, margin=self.config.margin
            ),
            files=files,
        )
        return inv, token

    async def _answer(self, inv: Invocation, token: str, claim: Awaitable[bool]) -> None:
        if not await claim:
            log.info("Discord interaction %s seen before: not answered again", inv.id)
            return
        try:
            await self.runner.run(inv, _Webhook(self, token, ephemeral=inv.private))
        finally:
            await self.runner.events.done(inv.dedupe_key)

    def resumers(self) -> dict[Kind, Resume]:
        return {INTERACTION: self.resume}

    async def resume(self, orphan: Orphan) -> None:
        """An interaction a stopped process deferred and did not answer (``bot.takeover``):
        answered through its webhook, while its token lives (15 minutes)."""
        inv, token = self.parse(orphan.payload["interaction"])
        await self.runner.run(inv, _Webhook(self, token, ephemeral=inv.private))

    def _message(self, text: str) -> web.Response:
        return web.json_response(
            {
                "type": CHANNEL_MESSAGE,
                "data": {"content": text, "flags": EPHEMERAL, "allowed_mentions": NO_MENTIONS},
            }
        )


class _Webhook:
    """The interaction's webhook: edit the deferred response, post follow-ups."""

    def __init__(self, endpoint: InteractionsEndpoint, token: str, *, ephemeral: bool):
        self.rest = endpoint.rest
        self.app = endpoint.config.application_id
        self.token = token
        self.ephemeral = ephemeral

    async def edit(self, text: str, message: str | None = None) -> None:
        await self._patch(message, {"content": text, "allowed_mentions": NO_MENTIONS})

    async def show_embed(self, embed: dict[str, Any]) -> None:
        await self._patch(None, {"content": "", "embeds": [embed], "allowed_mentions": NO_MENTIONS})

    async def show_buttons(self, components: list[dict[str, Any]]) -> None:
        await self._patch(None, {"components": components})

    async def _patch(self, message: str | None, body: dict[str, Any]) -> None:
        """The deferred response (``@original``, not quoted), or the follow-up ``message``."""
        hook = "/webhooks/{webhook_id}/{webhook_token}/messages/"
        if message is None:
            await self.rest.request(
                "PATCH",
                hook + "@original",
                json=body,
                webhook_id=self.app,
                webhook_token=self.token,
            )
            return
        await self.rest.request(
            "PATCH",
            hook + "{message_id}",
            json=body,
            webhook_id=self.app,
            webhook_token=self.token,
            message_id=message,
        )

    async def follow_up(self, text: str) -> str:
        body: dict[str, Any] = {"content": text, "allowed_mentions": NO_MENTIONS}
        if self.ephemeral:
            body["flags"] = EPHEMERAL
        sent = await self.rest.request(
            "POST",
            "/webhooks/{webhook_id}/{webhook_token}?wait=true",  # answers with the message
            webhook_id=self.app,
            webhook_token=self.token,
            json=body,
        )
        return str(sent["id"]) if isinstance(sent, dict) else ""


def _id(payload: dict[str, Any]) -> str:
    """The interaction's id for a log line, if it is one."""
    try:
        return _snowflake(payload.get("id"))
    except Malformed:
        return "(no id)"


def _why(exc: Exception) -> str:
    """What was wrong, without quoting the payload (``int("...")`` would)."""
    if isinstance(exc, Malformed):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r}" if exc.args and isinstance(exc.args[0], str) else "KeyError"
    return type(exc).__name__


def _snowflake(value: object) -> str:
    """An id as Discord sends it: a string (or number) of ASCII digits that fits in 64 bits.
    ``int()`` alone took "1_000", other scripts' digits, and 400-digit ids whose timestamp
    overflowed a float (a 500, found by fuzzing)."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 20)
        or int(text) >= 2**64
    ):
        raise Malformed(f"an id that is not a snowflake ({type(value).__name__})")
    return str(int(text))


def _focused(options: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The option being typed in an autocomplete interaction (inside subcommands too)."""
    for option in options:
        if option.get("focused"):
            return str(option["name"]), str(option.get("value") or "")
        found = _focused(option.get("options") or [])
        if found is not None:
            return found
    return None


def _flatten(name: str, options: list[dict[str, Any]]) -> tuple[str, dict[str, str | bool]]:
    """``budget`` + ``[{"type": 1, "name": "set", "options": [...]}]`` -> ``budget set``."""
    if not isinstance(name, str) or not isinstance(options, list):
        raise Malformed("name or options of the wrong type")
    if len(options) == 1 and options[0].get("type") in (_SUBCOMMAND, _GROUP):
        sub = options[0]
        return _flatten(f"{name} {sub['name']}", sub.get("options") or [])
    values: dict[str, str | bool] = {}
    for option in options:
        value = option.get("value")
        if not isinstance(value, str | bool | int | float):
            raise Malformed(f"option {str(option.get('name'))[:40]!r} has no usable value")
        values[str(option["name"])] = value if isinstance(value, str | bool) else str(value)
    return name, values
