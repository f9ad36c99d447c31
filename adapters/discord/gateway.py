"""Gateway mode: discord.py's Client with an app_commands CommandTree.

    MESSAGE_CREATE -> addressed? (mention, reply to the bot, DM; never bots) -> once per id
                   -> reply chain as context -> Service.handle -> replies (typing meanwhile)
                   (a voice message or audio attachment: bot.voice -> the transcript, then
                   the answer when the message asks something)
    INTERACTION_CREATE -> CommandTree -> once per id -> defer -> CommandRunner (shared with HTTP)

discord.py handles the connection, reconnects and resumes, and Discord's 429s. Intents are
the fewest that work: guilds, and guild and direct messages. Message Content is privileged and
not asked for unless configured: Discord still delivers the text of messages that mention the
bot and of DMs, so only a reply to the bot that turns its ping off arrives without text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import httpx
from discord import app_commands

from adapters.discord import texts
from adapters.discord.chain import Fetch, Post, addressed, conversation, strip_mention
from adapters.discord.commands import (
    COMMANDS,
    DM_WORKSPACE,
    PLATFORM,
    TOKEN_TTL,
    CommandRunner,
    File,
    Invocation,
    deadline_for,
)
from adapters.discord.split import split
from bot import messages, voice
from bot.audio import looks_like_audio
from bot.budget.tickets import QueueInfo
from bot.errors import ConfigError, QuotabotError, StoreError
from bot.messages import STOPPING
from bot.models import ChatRequest, Message
from bot.service import Service
from bot.store.events import Orphan

log = logging.getLogger(__name__)

_ANSWERED_TYPES = (discord.MessageType.default, discord.MessageType.reply)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    token: str = field(repr=False)
    api_url: str | None = None
    """REST base URL instead of Discord's (discord.py's ``Route.BASE``: process-wide)."""
    message_content: bool = False
    """Ask for the privileged Message Content intent (replies without a ping then work too)."""
    token_ttl: float = TOKEN_TTL
    margin: float = 30.0


def intents(*, message_content: bool = False) -> discord.Intents:
    wanted = discord.Intents.none()
    wanted.guilds = True  # channels, threads and roles: needed to answer in them
    wanted.guild_messages = True
    wanted.dm_messages = True
    wanted.message_content = message_content
    return wanted


class DiscordGateway(discord.Client):
    def __init__(self, config: GatewayConfig, *, runner: CommandRunner, service: Service):
        if config.api_url:
            discord.http.Route.BASE = config.api_url.rstrip("/")
        super().__init__(
            intents=intents(message_content=config.message_content),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.config = config
        self.runner = runner
        self.service = service
        self.tree = build_tree(self, runner, config)
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

    async def on_message(self, message: discord.Message) -> None:
        bot = self.bot_id
        if self._stopping or bot is None or message.type not in _ANSWERED_TYPES:
            return
        post = to_post(message)
        if not addressed(post, bot):
            return
        self.runner.track()
        key = f"discord:message:{message.id}"
        # Kept until answered: if this process dies first, the next to hold the gateway
        # answers it (Discord sends no message twice to a new session).
        where = {"channel": str(message.channel.id), "message": str(message.id)}
        where["guild"] = guild_id(message) or ""
        self.runner.events.hold(key, where)
        if not await self.runner.first(key, where):
            return
        try:
            await self._answer(message, post, bot)
        except discord.HTTPException as exc:
            log.warning("could not answer Discord message %s: %s", message.id, exc)
        finally:
            await self.runner.events.done(key)

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
        guild = guild_id(message)
        workspace, channel = guild or DM_WORKSPACE, str(message.channel.id)
        try:
            enabled = (await self.service.channels.get(PLATFORM, workspace, channel)).enabled
        except StoreError:
            enabled = True  # unknown: the answer tells the asker what failed, not silence
        if not enabled:
            return
        text = strip_mention(message.content, bot)
        recordings = [
            a for a in message.attachments if looks_like_audio(a.filename, a.content_type)
        ]
        if recordings:
            history, root = await conversation(post, bot, self._fetcher(message))
            where = voice.Where(
                platform=PLATFORM,
                workspace=workspace,
                channel=channel,
                user=str(message.author.id),
                thread=root,
            )
            await self._voice(message, _file(recordings[0]), where, text, history)
            return
        if not text:
            if post.direct or bot in post.mentions:
                await message.reply(texts.EMPTY_PROMPT, mention_author=False)
            else:
                log.info(
                    "message %s replies to quotabot without a ping, and Discord sent no text "
                    "(no Message Content intent): not answered",
                    message.id,
                )
            return
        history, root = await conversation(post, bot, self._fetcher(message))
        request = ChatRequest(
            platform=PLATFORM,
            workspace=workspace,
            channel=channel,
            thread=root,
            user=str(message.author.id),
            messages=(*history, Message("user", text)),
        )
        notice: discord.Message | None = None

        async def queued(info: QueueInfo) -> None:
            nonlocal notice
            line = f"_{messages.queued(info).strip('()').capitalize()}_"
            if notice is None:
                notice = await message.reply(line, mention_author=False)
            else:
                await notice.edit(content=line)

        try:
            async with (
                self.service.admission.turn((PLATFORM, workspace, channel)) as turn,
                _typing(message.channel),
            ):
                answer = (await self.service.handle(request, on_queued=queued, turn=turn)).text
        except QuotabotError as exc:
            answer = texts.warn(messages.explain(exc, model=request.model))
        except asyncio.CancelledError:
            # Shut down past the grace period before the answer came: say so, not silence.
            with contextlib.suppress(Exception):
                await _reply_in_pieces(message, notice, [texts.warn(STOPPING)])
            raise
        except Exception:
            log.exception("answering Discord message %s failed", message.id)
            answer = texts.warn(messages.INTERNAL)
        await _reply_in_pieces(message, notice, split(answer, self.runner.piece_limit))

    async def _voice(
        self,
        message: discord.Message,
        recording: File,
        where: voice.Where,
        question: str,
        history: tuple[Message, ...],
    ) -> None:
        """A voice message (or audio attachment): its transcript as a reply, then the answer
        to what the message asks, if anything."""
        try:
            async with (
                _typing(message.channel),
                httpx.AsyncClient(timeout=60.0) as http,
            ):
                attachment = recording.attachment(http, self.runner.files)
                transcript = await voice.transcribe(self.service, attachment, where)
                answer = voice.transcript_text(transcript)
                if question:
                    reply = await voice.answer(
                        self.service, transcript, question, where, history=history
                    )
                    answer += "\n\n" + reply.text
        except QuotabotError as exc:
            answer = texts.warn(messages.explain(exc))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await _reply_in_pieces(message, None, [texts.warn(STOPPING)])
            raise
        except Exception:
            log.exception("transcribing Discord message %s failed", message.id)
            answer = texts.warn(messages.INTERNAL)
        await _reply_in_pieces(
            message, None, split(texts.from_core(answer), self.runner.piece_limit)
        )

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
    )


def _file(a: discord.Attachment) -> File:
    return File(
        name=a.filename, url=a.url, size=a.size, media_type=a.content_type, seconds=a.duration
    )


def guild_id(message: discord.Message) -> str | None:
    """The server's id, also when discord.py has not cached the server."""
    if message.guild is not None:
        return str(message.guild.id)
    partial = getattr(message.channel, "guild_id", None)
    return str(partial) if partial else None


async def _reply_in_pieces(
    message: discord.Message, notice: discord.Message | None, pieces: list[str]
) -> None:
    """Each piece replies to the one before, so replying to any of them continues the chain."""
    first, *rest = pieces
    if notice is not None:
        await notice.edit(content=first or texts.EMPTY_ANSWER)
        last = notice
    else:
        last = await message.reply(first or texts.EMPTY_ANSWER, mention_author=False)
    for piece in rest:
        last = await last.reply(piece, mention_author=False)


@asynccontextmanager
async def _typing(channel: discord.abc.Messageable) -> AsyncIterator[None]:
    """ "quotabot is typing…" while the answer is made; an answer never fails for want of it."""
    typing = channel.typing()
    try:
        await typing.__aenter__()
    except discord.HTTPException as exc:
        log.info("could not show typing in %s: %s", getattr(channel, "id", "?"), exc)
        yield
        return
    try:
        yield
    finally:
        await typing.__aexit__(None, None, None)


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the Discord gateway connection ended: %s", exc, exc_info=exc)


# -- slash commands ------------------------------------------------------------------------


def spec(*path: str) -> dict[str, Any]:
    """A command or option as ``COMMANDS`` defines it, so that the tree and sync-commands
    agree: ``spec("budget", "set", "limit")``."""
    node: dict[str, Any] = {"options": COMMANDS}
    for name in path:
        node = next(o for o in node["options"] if o["name"] == name)
    return node


def _doc(*path: str) -> str:
    return str(spec(*path)["description"])


def _descriptions(*path: str) -> dict[str, str]:
    return {o["name"]: o["description"] for o in spec(*path)["options"]}


class _InteractionReply:
    def __init__(self, interaction: discord.Interaction[Any], *, ephemeral: bool):
        self.interaction = interaction
        self.ephemeral = ephemeral

    async def edit(self, text: str) -> None:
        await self.interaction.edit_original_response(
            content=text, allowed_mentions=discord.AllowedMentions.none()
        )

    async def follow_up(self, text: str) -> None:
        await self.interaction.followup.send(
            text, ephemeral=self.ephemeral, allowed_mentions=discord.AllowedMentions.none()
        )


def build_tree(
    client: discord.Client, runner: CommandRunner, config: GatewayConfig
) -> app_commands.CommandTree[Any]:
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(client)

    async def run(
        interaction: discord.Interaction[Any], name: str, options: dict[str, Any]
    ) -> None:
        inv = invocation(interaction, name, options, config)
        if not await runner.first(inv.dedupe_key):
            return
        await interaction.response.defer(ephemeral=inv.private, thinking=True)
        await runner.run(inv, _InteractionReply(interaction, ephemeral=inv.private))

    @tree.command(name="ask", description=_doc("ask"))
    @app_commands.describe(**_descriptions("ask"))
    async def ask(
        interaction: discord.Interaction[Any],
        prompt: str,
        model: str | None = None,
        private: bool = False,
    ) -> None:
        options: dict[str, Any] = {"prompt": prompt, "private": private}
        if model:
            options["model"] = model
        await run(interaction, "ask", options)

    @ask.autocomplete("model")
    async def models(
        interaction: discord.Interaction[Any], typed: str
    ) -> list[app_commands.Choice[str]]:
        who = invocation(interaction, "ask", {}, config).who
        names = await runner.model_choices(who, typed)
        return [app_commands.Choice(name=n, value=n) for n in names]

    @tree.command(name="usage", description=_doc("usage"))
    async def usage(interaction: discord.Interaction[Any]) -> None:
        await run(interaction, "usage", {})

    budget = app_commands.Group(name="budget", description=_doc("budget"))

    @budget.command(name="show", description=_doc("budget", "show"))
    async def show(interaction: discord.Interaction[Any]) -> None:
        await run(interaction, "budget show", {})

    choices = [
        app_commands.Choice(name=c["name"], value=c["value"])
        for c in spec("budget", "set", "limit")["choices"]
    ]

    @budget.command(name="set", description=_doc("budget", "set"))
    @app_commands.describe(**_descriptions("budget", "set"))
    @app_commands.choices(limit=choices)
    async def set_(
        interaction: discord.Interaction[Any], scope: str, limit: str, value: str
    ) -> None:
        await run(interaction, "budget set", {"scope": scope, "limit": limit, "value": value})

    tree.add_command(budget)
    tree.add_command(_digest_group(run))

    @tree.command(name="transcribe", description=_doc("transcribe"))
    @app_commands.describe(**_descriptions("transcribe"))
    async def transcribe(
        interaction: discord.Interaction[Any],
        file: discord.Attachment,
        question: str | None = None,
    ) -> None:
        options: dict[str, Any] = {"file": str(file.id)}
        if question:
            options["question"] = question
        inv = invocation(interaction, "transcribe", options, config, files={"file": _file(file)})
        if not await runner.first(inv.dedupe_key):
            return
        await interaction.response.defer(ephemeral=inv.private, thinking=True)
        await runner.run(inv, _InteractionReply(interaction, ephemeral=inv.private))

    tree.on_error = _on_tree_error  # type: ignore[method-assign]
    return tree


def _digest_group(
    run: Callable[[discord.Interaction[Any], str, dict[str, Any]], Awaitable[None]],
) -> app_commands.Group:
    digest = app_commands.Group(name="digest", description=_doc("digest"))

    def simple(name: str) -> None:
        async def callback(interaction: discord.Interaction[Any]) -> None:
            await run(interaction, f"digest {name}", {})

        digest.add_command(
            app_commands.Command(
                name=name, description=_doc("digest", name), callback=callback, parent=digest
            )
        )

    simple("show")  # in the order of COMMANDS, which sync-commands registers

    @digest.command(name="set", description=_doc("digest", "set"))
    @app_commands.describe(**_descriptions("digest", "set"))
    async def set_(
        interaction: discord.Interaction[Any],
        channel: discord.abc.GuildChannel,
        time: str,
        timezone: str,
    ) -> None:
        options = {"channel": str(channel.id), "time": time, "timezone": timezone}
        await run(interaction, "digest set", options)

    for name in ("now", "on", "off"):
        simple(name)
    return digest


async def _on_tree_error(
    interaction: discord.Interaction[Any], error: app_commands.AppCommandError
) -> None:
    log.error("Discord command %s failed: %s", interaction.id, error, exc_info=error)


def invocation(
    interaction: discord.Interaction[Any],
    name: str,
    options: dict[str, Any],
    config: GatewayConfig,
    *,
    files: dict[str, File] | None = None,
) -> Invocation:
    user = interaction.user
    roles: frozenset[str] = frozenset()
    if isinstance(user, discord.Member):
        roles = frozenset(str(r.id) for r in user.roles if r is not None)
    return Invocation(
        id=str(interaction.id),
        name=name,
        options=options,
        guild=str(interaction.guild_id) if interaction.guild_id else None,
        channel=str(interaction.channel_id),
        user=str(user.id),
        permissions=interaction.permissions.value,
        roles=roles,
        deadline=deadline_for(
            interaction.created_at.timestamp(),
            time.time(),
            asyncio.get_running_loop().time(),
            ttl=config.token_ttl,
            margin=config.margin,
        ),
        files=files or {},
    )
