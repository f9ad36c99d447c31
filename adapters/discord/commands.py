"""The slash commands, shared by both modes: their definitions, and how each is answered.

    HTTP interaction  \\                                   / edit the deferred response
                       -> Invocation -> CommandRunner.run
    gateway (tree)    /                                   \\ follow-ups for the rest

Each mode turns its interaction into an :class:`Invocation` and a :class:`Responder` (how to
edit the deferred response and post follow-ups); everything after that is the same.
``COMMANDS`` is what ``quotabot discord sync-commands`` registers; the gateway's command tree
is checked against it in the tests, so both modes offer the same commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import httpx

from adapters.discord import texts
from adapters.discord.rest import DiscordREST
from adapters.discord.split import LIMIT, split
from bot import audio, messages, voice
from bot.budget.policy import LIMIT_KINDS, MODELS, Who
from bot.budget.tickets import QueueInfo
from bot.catalog import ModelInfo
from bot.commands import BUDGET_HELP, Commands
from bot.downloads import FileHosts, download
from bot.errors import QuotabotError, StoreError
from bot.lifecycle import finish
from bot.messages import STOPPING
from bot.models import ChatRequest, Message
from bot.service import Service
from bot.store.events import EventLog

log = logging.getLogger(__name__)

PLATFORM = "discord"
DM_WORKSPACE = "@me"
"""The workspace of direct messages, which belong to no server (Discord's own name for them)."""
EPHEMERAL = 1 << 6
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
TOKEN_TTL = 15 * 60.0
"""Seconds an interaction token can edit its response and post follow-ups."""

_STRING, _BOOLEAN, _SUBCOMMAND, _CHANNEL, _ATTACHMENT = 3, 5, 1, 7, 11
MAX_CHOICES = 25
"""Discord shows at most 25 autocomplete choices."""
_SCOPE_HELP = "model, workspace, channel or user; or one by ID, e.g. channel:123"

COMMANDS: list[dict[str, Any]] = [
    {
        "name": "ask",
        "type": 1,
        "description": "Ask the model a question",
        "options": [
            {
                "type": _STRING,
                "name": "prompt",
                "description": "Your question",
                "required": True,
            },
            {
                "type": _STRING,
                "name": "model",
                "description": "Model to answer (default: this channel's)",
                "required": False,
                "autocomplete": True,
            },
            {
                "type": _BOOLEAN,
                "name": "private",
                "description": "Only you see the question and the answer",
                "required": False,
            },
        ],
    },
    {
        "name": "usage",
        "type": 1,
        "description": "Today's usage and spend here, and the budgets left (only you see it)",
    },
    {
        "name": "budget",
        "type": 1,
        "description": "Budget limits here",
        "options": [
            {
                "type": _SUBCOMMAND,
                "name": "show",
                "description": "The limits that apply here and how much of each is used",
            },
            {
                "type": _SUBCOMMAND,
                "name": "set",
                "description": "Change a limit (Manage Server or an admin role)",
                "options": [
                    {
                        "type": _STRING,
                        "name": "scope",
                        "description": _SCOPE_HELP,
                        "required": True,
                    },
                    {
                        "type": _STRING,
                        "name": "limit",
                        "description": "Which limit",
                        "required": True,
                        "choices": [{"name": k, "value": k} for k in (*LIMIT_KINDS, MODELS)],
                    },
                    {
                        "type": _STRING,
                        "name": "value",
                        "description": "A number, off to remove it, or for models: their names",
                        "required": True,
                    },
                ],
            },
        ],
    },
]
DIGEST_COMMAND: dict[str, Any] = {
    "name": "digest",
    "type": 1,
    "description": "The daily spend digest of this server",
    "options": [
        {
            "type": _SUBCOMMAND,
            "name": "show",
            "description": "Where and when the digest is posted",
        },
        {
            "type": _SUBCOMMAND,
            "name": "set",
            "description": "Post the digest daily in a channel (Manage Server or an admin role)",
            "options": [
                {
                    "type": _CHANNEL,
                    "name": "channel",
                    "description": "Where the digest and budget alerts go",
                    "required": True,
                },
                {
                    "type": _STRING,
                    "name": "time",
                    "description": "Local time of day, HH:MM, e.g. 09:00",
                    "required": True,
                },
                {
                    "type": _STRING,
                    "name": "timezone",
                    "description": "IANA time zone, e.g. Europe/Berlin or UTC",
                    "required": True,
                },
            ],
        },
        {
            "type": _SUBCOMMAND,
            "name": "now",
            "description": "Post today's digest so far (Manage Server or an admin role)",
        },
        {"type": _SUBCOMMAND, "name": "on", "description": "Switch the daily digest on"},
        {"type": _SUBCOMMAND, "name": "off", "description": "Switch the daily digest off"},
    ],
}
COMMANDS.append(DIGEST_COMMAND)
TRANSCRIBE_COMMAND: dict[str, Any] = {
    "name": "transcribe",
    "type": 1,
    "description": "Turn a voice message or audio file into text",
    "options": [
        {
            "type": _ATTACHMENT,
            "name": "file",
            "description": "The recording: mp3, m4a, ogg/opus, wav, webm or flac, up to 25 MB",
            "required": True,
        },
        {
            "type": _STRING,
            "name": "question",
            "description": "Something to ask about it (optional)",
            "required": False,
        },
    ],
}
COMMANDS.append(TRANSCRIBE_COMMAND)
KNOWN = frozenset(
    {"ask", "usage", "budget show", "budget set", "transcribe"}
    | {f"digest {o['name']}" for o in DIGEST_COMMAND["options"]}
)


async def sync_commands(rest: DiscordREST, application_id: str, guild: str | None = None) -> Any:
    """Register ``COMMANDS`` (replacing any others), in one server or globally."""
    if guild:
        return await rest.request(
            "PUT",
            "/applications/{application_id}/guilds/{guild_id}/commands",
            application_id=application_id,
            guild_id=guild,
            json=COMMANDS,
        )
    return await rest.request(
        "PUT",
        "/applications/{application_id}/commands",
        application_id=application_id,
        json=COMMANDS,
    )


FILE_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")
"""Where attachments' ``url`` (and ``proxy_url``) lead, over HTTPS."""


def file_hosts(api_url: str | None = None) -> FileHosts:
    """Discord's file hosts; with ``DISCORD_API_URL`` set, its origin too (the tests' fake
    serves attachments there)."""
    return FileHosts.of("Discord", FILE_HOSTS, api_url=api_url)


@dataclass(frozen=True, slots=True, kw_only=True)
class File:
    """An attachment as Discord describes it (an option of type 11, or on a message)."""

    name: str
    url: str
    size: int | None = None
    media_type: str | None = None
    seconds: float | None = None
    """``duration_secs``, which voice messages carry."""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> File:
        size, seconds = raw.get("size"), raw.get("duration_secs")
        return cls(
            name=str(raw.get("filename") or "audio"),
            url=str(raw["url"]),
            size=size if isinstance(size, int) else None,
            media_type=raw.get("content_type"),
            seconds=float(seconds) if isinstance(seconds, int | float) else None,
        )

    def attachment(self, http: httpx.AsyncClient, hosts: FileHosts) -> voice.Attachment:
        """Discord's attachment URLs are signed links: no token goes with them. Only links
        to ``hosts`` are fetched (an interaction or message names any URL it likes)."""

        async def fetch(into: IO[bytes]) -> int:
            return await download(
                http, self.url, into, name=self.name, hosts=hosts, limit=audio.MAX_BYTES
            )

        return voice.Attachment(
            name=self.name,
            media_type=self.media_type,
            size=self.size,
            fetch=fetch,
            seconds=self.seconds,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Invocation:
    """One slash command, in the core's terms, whichever way it arrived."""

    id: str
    name: str
    """``ask``, ``usage``, ``budget show`` or ``budget set`` (or an unknown one)."""
    options: Mapping[str, str | bool] = field(default_factory=dict)
    guild: str | None
    channel: str
    user: str
    permissions: int = 0
    """The member's permissions in the channel, as Discord resolved them."""
    roles: frozenset[str] = frozenset()
    deadline: float
    """Loop time by which the last message must be on its way (the token expires soon after)."""
    files: Mapping[str, File] = field(default_factory=dict)
    """Attachment options, by option name."""

    @property
    def who(self) -> Who:
        return Who(PLATFORM, self.guild or DM_WORKSPACE, self.channel, self.user)

    @property
    def private(self) -> bool:
        """/usage and /budget are only for the one who asked; /ask when asked to be."""
        return self.name not in ("ask", "transcribe") or bool(self.options.get("private"))

    @property
    def dedupe_key(self) -> str:
        return f"discord:interaction:{self.id}"


def deadline_for(
    created_at: float, now: float, loop_now: float, *, ttl: float, margin: float
) -> float:
    """The loop time to be done by, for a token created at ``created_at`` (Unix time) and
    received at ``now``. A clock behind Discord's must not stretch the deadline."""
    created = min(created_at, now)
    return loop_now + (created + ttl - now) - margin


class Responder(Protocol):
    """How the answer reaches the user: the deferred response, then follow-up messages."""

    async def edit(self, text: str) -> None: ...

    async def follow_up(self, text: str) -> None: ...


class CommandRunner:
    """Answers deferred commands; shared by the HTTP endpoint and the gateway."""

    def __init__(
        self,
        *,
        service: Service,
        commands: Commands,
        events: EventLog,
        admins: frozenset[str] = frozenset(),
        admin_roles: frozenset[str] = frozenset(),
        piece_limit: int = LIMIT,
        files: FileHosts | None = None,
    ):
        self.piece_limit = piece_limit
        self.files = files or file_hosts()
        """Where recordings may be downloaded from: Discord's CDN, unless told otherwise."""
        """Characters per message: Discord's 2,000 (smaller in tests of long answers)."""
        self.service = service
        self.commands = commands
        self.events = events
        self.admins = admins
        self.admin_roles = admin_roles
        self.tasks: set[asyncio.Task[Any]] = set()
        """Answers under way, for a shutdown to wait for."""

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` as a task of its own, which a shutdown waits for."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def track(self) -> None:
        """Remember the running task, so that a shutdown waits for its answer."""
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drain(self, grace: float | None = None) -> None:
        """Let answers under way finish; stop those still going after ``grace`` seconds."""
        await finish(self.tasks, grace, "Discord answers")

    async def first(self, key: str, payload: dict[str, Any] | None = None) -> bool:
        """Whether this interaction or message is new, in any replica. If the database cannot
        say, answer anyway: a rare second answer is better than none. With ``payload``, kept
        until done, for another process to answer if this one dies (``bot.takeover``)."""
        try:
            return await self.events.first(key, payload)
        except StoreError as exc:
            log.warning("could not check %s for repeats, answering it anyway: %s", key, exc)
            return True

    def may_set_budgets(self, inv: Invocation) -> bool:
        """Checked by the bot on every call, whatever the command's default permissions say."""
        if inv.user in self.admins:
            return True
        if inv.guild is None:
            return False
        if inv.permissions & (MANAGE_GUILD | ADMINISTRATOR):
            return True
        return bool(inv.roles & self.admin_roles)

    async def run(self, inv: Invocation, out: Responder) -> None:
        """Answer one command whose response is deferred. Never raises: a failure becomes a
        message for the user, and the details go to the log."""
        self.track()
        try:
            if inv.name == "ask":
                await self._ask(inv, out)
            elif inv.name == "transcribe":
                await self._transcribe(inv, out)
            elif inv.name == "usage":
                who, model = await self._here(inv)
                await out.edit(texts.from_core(await self.commands.usage_today(who, model)))
            elif inv.name == "budget show":
                who, model = await self._here(inv)
                await out.edit(texts.from_core(await self.commands.budget_text(who, model)))
            elif inv.name == "budget set":
                await out.edit(texts.from_core(await self._budget_set(inv)))
            elif inv.name.startswith("digest ") and self.commands.digests is not None:
                await out.edit(texts.from_core(await self._digest(inv)))
            else:
                await out.edit(texts.warn(texts.UNKNOWN_COMMAND.format(name=inv.name)))
        except Exception as exc:
            if not isinstance(exc, QuotabotError):
                log.exception("answering Discord command %s (%s) failed", inv.name, inv.id)
            await self._fail(out, texts.warn(messages.explain(exc)))

    async def _fail(self, out: Responder, text: str) -> None:
        try:
            await out.edit(text)
        except Exception as exc:
            log.warning("could not tell the user of a failure: %s", exc)

    async def model_choices(self, who: Who, typed: str) -> list[str]:
        """What /ask's model option offers: the models ``who`` may use, matching ``typed``."""
        names = await self.commands.models_here(who, self.service.catalog.chat_models())
        typed = typed.strip().lower()
        return [n for n in names if typed in n.lower()][:MAX_CHOICES]

    async def _here(self, inv: Invocation) -> tuple[Who, ModelInfo]:
        who = inv.who
        settings = await self.service.channels.get(PLATFORM, who.workspace, who.channel)
        return who, self.service.catalog.get(settings.model)

    async def _budget_set(self, inv: Invocation) -> str:
        if not self.may_set_budgets(inv):
            return texts.warn(texts.NOT_ADMIN)
        scope, kind, value = (str(inv.options.get(k, "")) for k in ("scope", "limit", "value"))
        try:
            return await self.commands.budget_set(scope, kind, value, by=inv.user, who=inv.who)
        except ValueError as exc:
            return f"{exc}\n{BUDGET_HELP}"

    async def _digest(self, inv: Invocation) -> str:
        assert self.commands.digests is not None
        verb = inv.name.split(" ", 1)[1]
        words = [verb]
        if verb == "set":
            words += [str(inv.options.get(k, "")) for k in ("channel", "time", "timezone")]

        async def is_admin() -> bool:
            return self.may_set_budgets(inv)

        return await self.commands.digests.handle(
            words,
            platform=PLATFORM,
            workspace=inv.who.workspace,
            channel=inv.channel,
            user=inv.user,
            is_admin=is_admin,
        )

    async def _ask(self, inv: Invocation, out: Responder) -> None:
        prompt = str(inv.options.get("prompt", "")).strip()
        if not prompt:
            await out.edit(texts.EMPTY_PROMPT)
            return
        model = inv.options.get("model")
        who = inv.who
        request = ChatRequest(
            platform=PLATFORM,
            workspace=who.workspace,
            channel=who.channel,
            user=who.user,
            thread=inv.id,
            messages=(Message("user", prompt),),
            model=str(model) if model else None,
        )

        async def queued(info: QueueInfo) -> None:
            await out.edit(f"_{messages.queued(info).strip('()').capitalize()}_")

        try:
            async with (
                asyncio.timeout_at(inv.deadline),
                self.service.admission.turn((PLATFORM, who.workspace, who.channel)) as turn,
            ):
                reply = await self.service.handle(request, on_queued=queued, turn=turn)
        except TimeoutError:
            log.warning("Discord command %s ran out of time: answer cut off", inv.id)
            await out.edit(texts.warn(texts.CUT_OFF))
            return
        except QuotabotError as exc:
            await out.edit(texts.warn(messages.explain(exc, model=request.model)))
            return
        except asyncio.CancelledError:
            # Shut down past the grace period before the answer came: say so, not silence.
            with contextlib.suppress(Exception):
                await out.edit(texts.warn(STOPPING))
            raise
        await deliver(reply.text, out, deadline=inv.deadline, limit=self.piece_limit)

    async def _transcribe(self, inv: Invocation, out: Responder) -> None:
        """/transcribe: the transcript, then the answer to ``question`` when one was asked."""
        recording = inv.files.get("file")
        if recording is None:
            await out.edit(texts.warn(texts.NO_FILE))
            return
        question = str(inv.options.get("question") or "").strip()
        who = inv.who
        where = voice.Where(
            platform=PLATFORM,
            workspace=who.workspace,
            channel=who.channel,
            user=who.user,
            thread=inv.id,
        )

        async def queued(info: QueueInfo) -> None:
            await out.edit(f"_{messages.queued(info).strip('()').capitalize()}_")

        try:
            async with (
                asyncio.timeout_at(inv.deadline),
                httpx.AsyncClient(timeout=60.0) as http,
            ):
                transcript = await voice.transcribe(
                    self.service, recording.attachment(http, self.files), where, on_queued=queued
                )
                text = voice.transcript_text(transcript)
                if question:
                    await out.edit(texts.from_core(text) + "\n\n" + texts.THINKING)
                    reply = await voice.answer(self.service, transcript, question, where)
                    text += "\n\n" + reply.text
        except TimeoutError:
            log.warning("Discord command %s ran out of time: answer cut off", inv.id)
            await out.edit(texts.warn(texts.CUT_OFF))
            return
        except QuotabotError as exc:
            await out.edit(texts.warn(messages.explain(exc)))
            return
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await out.edit(texts.warn(STOPPING))
            raise
        await deliver(texts.from_core(text), out, deadline=inv.deadline, limit=self.piece_limit)


async def deliver(text: str, out: Responder, *, deadline: float, limit: int = LIMIT) -> None:
    """The answer in pieces: the first edits the deferred response, the rest follow. Whatever
    would go out after ``deadline`` is replaced by one note that the answer was cut off."""
    loop = asyncio.get_running_loop()
    first, *rest = split(text, limit)
    await out.edit(first or texts.EMPTY_ANSWER)
    for piece in rest:
        if loop.time() >= deadline:
            await out.follow_up(texts.CUT_OFF_REST)
            return
        await out.follow_up(piece)
