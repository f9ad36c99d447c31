"""Gateway mode: discord.py's Client with an app_commands CommandTree.

    MESSAGE_CREATE -> addressed? (mention, reply to the bot, DM; never bots) -> once per id
                   -> reply chain as context -> Chat.answer -> replies (typing meanwhile)
                   (a voice message or audio attachment: bot.voice -> the transcript, then
                   the answer when the message asks something; image attachments go to
                   the model with the question: bot.images)
    INTERACTION_CREATE -> CommandTree -> once per id -> defer -> CommandRunner (shared with HTTP)

discord.py handles the connection, reconnects and resumes, and Discord's 429s. Intents are
the fewest that work: guilds, and guild and direct messages. Message Content is privileged and
not asked for unless configured: Discord still delivers the text of messages that mention the
bot and of DMs, so only a reply to the bot that turns its ping off arrives without text.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import discord
import httpx

from adapters.discord.chain import Fetch, Post, addressed, conversation, strip_mention
from adapters.discord.commands import CommandRunner
from adapters.discord.invocation import DM_WORKSPACE, MESSAGE, PLATFORM
from adapters.discord.more import MoreBudgetFlow, is_ours
from adapters.discord.reply import MessageReply
from adapters.discord.rest import DiscordAPIError, DiscordREST
from adapters.discord.tree import GatewayConfig, build_tree, file_of
from bot import images, messages, voice
from bot.audio import looks_like_audio
from bot.chat.claims import Kind
from bot.errors import ConfigError, QuotabotError
from bot.models import ChatRequest, Message
from bot.service import Service
from bot.store.events import Orphan
from bot.takeover import Resume

log = logging.getLogger(__name__)

_ANSWERED_TYPES = (discord.MessageType.default, discord.MessageType.reply)


def intents(*, message_content: bool = False) -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True  # channels, threads and roles: needed to answer in them
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = message_content
    return wanted


class DiscordGateway(discord.Client):
    def __init__(
        self,
        config: GatewayConfig,
        *,
        runner: CommandRunner,
        service: Service,
        rest: DiscordREST | None = None,
    ):
        """``rest``: a client with the bot token, for the "Request more" flow (its buttons,
        the admins' channel); without it refusals carry no button."""
        if config.api_url:
            discord.http.Route.BASE = config.api_url.rstrip("/")
        super().__init__(
            intents=intents(message_content=config.message_content),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.config = config
        self.runner = runner
        self.service = service
        self.rest = rest
        self.more = MoreBudgetFlow(runner, rest=rest)
        if rest is not None and runner.offers is None:
            runner.offers = self.more.offer
        self.tree = build_tree(self, runner, config, rest=rest)
        self._connection_task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start_gateway(self) -> None:
        """Log in (a bad token fails here, at startup), then connect in the background.
        Raises ConfigError when Discord refuses the token, QuotabotError when unreachable."""
        try:
            await self.login(self.config.token)
        except discord.LoginFailure as exc:
            await self.close()
            raise ConfigError(f"Discord refused DISCORD_TOKEN: {exc}") from exc
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            await self.close()
            raise QuotabotError(f"Could not log in to Discord: {exc!r}") from exc
        self._connection_task = asyncio.get_running_loop().create_task(self.connect())
        self._connection_task.add_done_callback(_log_end)

    async def aclose(self, grace: float | None = None) -> None:
        """Stop taking events, let answers under way finish (their replies need the client's
        HTTP session, which closing it would close), then close the connection."""
        self._stopping = True
        await self.runner.drain(grace)
        await self.close()
        if self._connection_task is not None:
            await asyncio.gather(self._connection_task, return_exceptions=True)

    @property
    def bot_id(self) -> str | None:
        return str(self.user.id) if self.user else None

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """A "Request more", Grant or Deny button clicked, or the request's form sent: the
        same flow as over HTTP (adapters.discord.more), answered at the same callback.
        Slash commands are the command tree's."""
        kinds = (discord.InteractionType.component, discord.InteractionType.modal_submit)
        if self._stopping or self.rest is None or interaction.type not in kinds:
            return
        if not is_ours(interaction.data):
            return  # another app's view, or a button of discord.py's own
        answer = await self.more.handle(raw_interaction(interaction))
        try:
            await self.rest.request(
                "POST",
                "/interactions/{interaction_id}/{interaction_token}/callback",
                json=answer,
                interaction_id=str(interaction.id),
                interaction_token=interaction.token,
            )
        except DiscordAPIError as exc:
            log.warning("could not answer a click on %s: %s", interaction.id, exc)

    async def on_message(self, message: discord.Message) -> None:
        bot = self.bot_id
        if self._stopping or bot is None or message.type not in _ANSWERED_TYPES:
            return
        post = to_post(message)
        if not addressed(post, bot):
            return
        chat = self.runner.chat
        chat.track()
        key = MESSAGE.key(str(message.id))
        # Kept until answered: if this process dies first, the next to hold the gateway
        # answers it (Discord sends no message twice to a new session).
        where = {"channel": str(message.channel.id), "message": str(message.id)}
        where["guild"] = guild_id(message) or ""
        chat.claims.hold(key, where)
        if not await chat.claims.first(key, where):
            return
        try:
            await self._answer(message, post, bot)
        except discord.HTTPException as exc:
            log.warning("could not answer Discord message %s: %s", message.id, exc)
        finally:
            await chat.claims.done(key)

    def resumers(self) -> dict[Kind, Resume]:
        return {MESSAGE: self.resume}

    async def resume(self, orphan: Orphan) -> None:
        """A message a stopped process took on and did not answer (``bot.takeover``): read
        again over REST, and answered like a new one."""
        bot = self.bot_id
        if bot is None:
            raise QuotabotError("not logged in to Discord: cannot answer a message taken over")
        where = orphan.payload
        channel = self.get_channel(int(where["channel"])) or self.get_partial_messageable(
            int(where["channel"]), guild_id=int(where["guild"]) if where["guild"] else None
        )
        if not isinstance(channel, discord.abc.Messageable):
            return
        message = await channel.fetch_message(int(where["message"]))
        await self._answer(message, to_post(message), bot)

    async def _answer(self, message: discord.Message, post: Post, bot: str) -> None:
        chat = self.runner.chat
        workspace, channel = guild_id(message) or DM_WORKSPACE, str(message.channel.id)
        if not await chat.enabled(workspace, channel):
            return
        text = strip_mention(message.content, bot)
        recordings = [
            a for a in message.attachments if looks_like_audio(a.filename, a.content_type)
        ]
        pictures = [a for a in message.attachments if images.is_image(a.content_type)]
        if not text and not recordings and not pictures:
            if post.direct or bot in post.mentions:
                await message.reply(messages.EMPTY_PROMPT, mention_author=False)
            else:
                log.info(
                    "message %s replies to quotabot without a ping, and Discord sent no text "
                    "(no Message Content intent): not answered",
                    message.id,
                )
            return
        history, root, earlier = await conversation(post, bot, self._fetcher(message))
        runner = self.runner
        reply = MessageReply(
            message,
            limit=runner.piece_limit,
            interval=runner.edit_interval,
            streaming=runner.streaming,
            more=runner.offers,
            rest=self.rest,
        )
        user = str(message.author.id)
        if recordings:
            where = voice.Where(
                platform=PLATFORM, workspace=workspace, channel=channel, user=user, thread=root
            )
            async with httpx.AsyncClient(timeout=60.0) as http:
                recording = file_of(recordings[0]).attachment(http, self.runner.files)
                await chat.transcribe(recording, where, reply, question=text, history=history)
            return
        request = ChatRequest(
            platform=PLATFORM,
            workspace=workspace,
            channel=channel,
            thread=root,
            user=user,
            messages=(*history, Message("user", text)),
        )
        async with httpx.AsyncClient(timeout=60.0) as http:
            files = [file_of(p).image(http, self.runner.files) for p in pictures]
            before = {
                i: [f.image(http, self.runner.files) for f in attached]
                for i, attached in earlier.items()
            }
            await chat.answer(request, reply, pictures=files, earlier=before)

    def _fetcher(self, message: discord.Message) -> Fetch:
        """How the chain above ``message`` is read: what discord.py already holds, else REST."""

        async def fetch(message_id: str) -> Post | None:
            ref = message.reference
            if (
                ref
                and str(ref.message_id) == message_id
                and isinstance(ref.resolved, discord.Message)
            ):
                return to_post(ref.resolved)
            cached = discord.utils.get(self.cached_messages, id=int(message_id))
            if cached is not None:
                return to_post(cached)
            try:
                return to_post(await message.channel.fetch_message(int(message_id)))
            except discord.HTTPException as exc:
                log.info("reply chain ends at %s, which cannot be read: %s", message_id, exc)
                return None

        return fetch


def to_post(message: discord.Message) -> Post:
    ref = message.reference
    resolved = ref.resolved if ref else None
    return Post(
        id=str(message.id),
        author=str(message.author.id),
        author_is_bot=message.author.bot,
        content=message.content,
        mentions=frozenset(str(u.id) for u in message.mentions),
        reply_to=str(ref.message_id) if ref and ref.message_id else None,
        reply_to_author=str(resolved.author.id) if isinstance(resolved, discord.Message) else None,
        direct=isinstance(message.channel, discord.DMChannel),
        attachments=tuple(
            file_of(a) for a in message.attachments if images.is_image(a.content_type)
        ),
    )


def raw_interaction(interaction: discord.Interaction[Any]) -> dict[str, Any]:
    """A component or modal interaction as Discord sent it, in the fields the "Request more"
    flow reads (discord.py keeps ``data`` raw, the rest as objects)."""
    payload: dict[str, Any] = {
        "id": str(interaction.id),
        "type": interaction.type.value,
        "data": dict(interaction.data or {}),
        "channel_id": str(interaction.channel_id or ""),
    }
    if interaction.guild_id is not None:
        member = interaction.user
        payload["guild_id"] = str(interaction.guild_id)
        payload["member"] = {
            "user": {"id": str(member.id)},
            "permissions": str(interaction.permissions.value),
            "roles": [str(r.id) for r in getattr(member, "roles", ())],
        }
    else:
        payload["user"] = {"id": str(interaction.user.id)}
    if interaction.message is not None:
        payload["message"] = {"content": interaction.message.content}
    return payload


def guild_id(message: discord.Message) -> str | None:
    """The server's id, also when discord.py has not cached the server."""
    if message.guild is not None:
        return str(message.guild.id)
    partial = getattr(message.channel, "guild_id", None)
    return str(partial) if partial else None


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the Discord gateway connection ended: %s", exc, exc_info=exc)
