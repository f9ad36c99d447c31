"""What every chat adapter does with what people ask, written once.

    adapter: platform event -> ChatRequest + a Surface (how its reply looks)
    Chat.answer:     a turn (QUOTABOT_CONCURRENT_ANSWERS) -> placeholder -> images fetched
                     onto the question (bot.images; a model that cannot see them refuses
                     first) -> Service.handle
                     (queued notices, streamed deltas) -> finish, or fail in words for people
    Chat.transcribe: the recording's transcript, then the answer to what its message asked
    Chat.command:    /usage, /budget, /digest -> the text for the asker

An adapter is then a thin translation at the edge. Failures never escape as tracebacks into a
chat: a ``QuotabotError`` becomes its sentence (``bot.messages.explain``), anything else is
logged and told as an internal error, and a shutdown that stops an answer says so. Answers
under way are tracked, so that a shutdown lets them finish (``drain``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

from bot import images, messages, voice
from bot.budget.policy import Who
from bot.catalog import ModelInfo
from bot.chat.claims import Claims
from bot.chat.commands import BUDGET_HELP, Commands
from bot.chat.digest import ChannelParser
from bot.chat.stops import Stops
from bot.chat.surface import MoreBudget, OffersMore, ShowsControls, Surface
from bot.dashboard.links import Scope
from bot.errors import BudgetExceeded, NoVision, QuotabotError, StoreError
from bot.lifecycle import finish
from bot.models import ChatRequest, Message, Transcript
from bot.service import Service
from bot.store.events import EventLog
from bot.store.grants import Request, amount_of

log = logging.getLogger(__name__)

IsAdmin = Callable[[], Awaitable[bool]]
NextSurface = Callable[[], Awaitable[Surface]]


@dataclass(frozen=True, slots=True)
class Deadline:
    """Loop time by which an answer must have come (a platform token that expires), and
    what the asker is told past it."""

    at: float
    why: str


class Chat:
    def __init__(self, platform: str, *, service: Service, commands: Commands, events: EventLog):
        self.platform = platform
        self.service = service
        self.commands = commands
        self.claims = Claims(events)
        self.stops = Stops(events)
        self.tasks: set[asyncio.Task[Any]] = set()
        """Answers under way, for a shutdown to wait for."""

    # -- answers under way ---------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` as a task of its own, which a shutdown waits for. (The platform's
        listener that started it ends at once, and its request objects are freed: under load
        thousands of suspended listeners made every garbage collection walk them.)"""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def track(self) -> None:
        """Remember the running task, so that a shutdown waits for its answer."""
        task = asyncio.current_task()
        if task is not None and task not in self.tasks:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drain(self, grace: float | None = None) -> None:
        """Let answers under way finish; stop those still going after ``grace`` seconds (each
        tells its asker to ask again)."""
        await finish(self.tasks, grace, f"{self.platform} answers")
        await self.stops.aclose()

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s listener failed: %s", self.platform.capitalize(), error, exc_info=error)

    # -- where we are --------------------------------------------------------------------------

    async def enabled(self, workspace: str, channel: str) -> bool:
        """Whether quotabot answers in ``channel``. If the database cannot say, yes: the
        answer then tells the asker what failed, rather than silence."""
        try:
            return (await self.service.channels.get(self.platform, workspace, channel)).enabled
        except StoreError:
            return True

    async def model_here(self, who: Who) -> ModelInfo:
        settings = await self.service.channels.get(who.platform, who.workspace, who.channel)
        return self.service.catalog.get(settings.model)

    async def model_choices(self, who: Who, typed: str, *, most: int) -> list[str]:
        """The models ``who`` may ask for, matching ``typed``: for a model option's choices."""
        names = await self.commands.models_here(who, self.service.catalog.chat_models())
        typed = typed.strip().lower()
        return [n for n in names if typed in n.lower()][:most]

    # -- answers -------------------------------------------------------------------------------

    async def answer(
        self,
        request: ChatRequest,
        surface: Surface,
        *,
        deadline: Deadline | None = None,
        pictures: Sequence[images.ImageFile] = (),
        earlier: Mapping[int, Sequence[images.ImageFile]] | None = None,
    ) -> None:
        """Answer ``request`` on ``surface``, showing the model ``pictures`` (attached to the
        question) as well, and the latest of ``earlier`` (images attached to earlier messages
        of the conversation, per index into ``request.messages``) where it can see them."""
        self.track()
        stoppable = False
        if isinstance(surface, ShowsControls):
            surface.controls(request.request_id)
            stoppable = surface.streaming

        async def work() -> str:
            turn = await self.service.admission.acquire(
                (request.platform, request.workspace, request.channel)
            )
            watching = self.stops.watch(request.request_id) if stoppable else nullcontext()
            try:
                await _shown(surface.placeholder(messages.THINKING))
                asked = await self._with_images(request, pictures, earlier or {})
                with watching as stop:
                    reply = await self.service.handle(
                        asked,
                        on_delta=surface.delta if surface.streaming else None,
                        on_queued=surface.queued,
                        turn=turn,
                        stop=stop,
                    )
            finally:
                turn.release()
            text = reply.text
            if reply.finish_reason == "stopped":
                text = f"{text}\n\n{messages.STOPPED}"
            return messages.with_fallback(text, reply)

        who = Who(request.platform, request.workspace, request.channel, request.user)
        await self._told(
            surface, work, deadline, f"answering {request.request_id}", request.model, who=who
        )

    async def _with_images(
        self,
        request: ChatRequest,
        pictures: Sequence[images.ImageFile],
        earlier: Mapping[int, Sequence[images.ImageFile]],
    ) -> ChatRequest:
        """``request`` with ``pictures`` fetched onto its question (refused before any
        download when its model cannot see them; Service.handle checks again) and the
        conversation's ``earlier`` images onto theirs (left out for a model that cannot)."""
        if not pictures and not any(earlier.values()):
            return request
        where = (request.platform, request.workspace, request.channel)
        info = self.service.catalog.get(
            request.model or (await self.service.channels.get(*where)).model
        )
        if not info.vision:
            if not pictures:
                return request  # the earlier images were for another model: text only
            raise NoVision(model=info.name, vision_models=self.service.catalog.vision_models())
        attached = await images.attach(request.messages, pictures, earlier=earlier)
        return replace(request, messages=attached)

    async def transcribe(
        self,
        recording: voice.Attachment,
        where: voice.Where,
        surface: Surface,
        *,
        question: str = "",
        history: tuple[Message, ...] = (),
        then: NextSurface | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        """The transcript of ``recording``, then the answer to ``question`` (if any) about it:
        on a surface of its own from ``then()`` (a message after the transcript's), else on
        the same one, below the transcript."""
        self.track()
        transcript: list[Transcript] = []

        async def work() -> str:
            await _shown(surface.placeholder(messages.TRANSCRIBING))
            transcript.append(
                await voice.transcribe(self.service, recording, where, on_queued=surface.queued)
            )
            text = voice.transcript_text(transcript[0])
            if question and then is None:
                await _shown(surface.placeholder(f"{text}\n\n{messages.THINKING}"))
                reply = await voice.answer(
                    self.service, transcript[0], question, where, history=history
                )
                text += "\n\n" + messages.with_fallback(reply.text, reply)
            return text

        who = Who(where.platform, where.workspace, where.channel, where.user)
        done = await self._told(
            surface, work, deadline, f"transcribing for {where.channel}", who=who
        )
        if done and question and then is not None:
            prompt = voice.question_prompt(transcript[0], question)
            request = ChatRequest(
                platform=where.platform,
                workspace=where.workspace,
                channel=where.channel,
                thread=where.thread,
                user=where.user,
                messages=(*history, Message("user", prompt)),
            )
            await self.answer(request, await then(), deadline=deadline)

    async def _told(
        self,
        surface: Surface,
        work: Callable[[], Awaitable[str]],
        deadline: Deadline | None,
        what: str,
        model: str | None = None,
        *,
        who: Who | None = None,
    ) -> bool:
        """``work()``'s text finished on ``surface``; or its failure told there in words for
        people (also when a shutdown stops it: not silence). Whether it was finished."""
        try:
            if deadline is None:
                text = await work()
            else:
                async with asyncio.timeout_at(deadline.at):
                    text = await work()
        except _NotShown as exc:
            raise exc.error from None  # the platform refused to show anything: nothing to tell
        except TimeoutError:
            log.warning("%s ran out of time: answer cut off", what)
            await surface.fail(deadline.why if deadline else messages.INTERNAL)
        except QuotabotError as exc:
            await surface.fail(messages.explain(exc, model=model))
            if isinstance(exc, BudgetExceeded) and who is not None:
                await self._offer_more(surface, exc, who)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await surface.fail(messages.STOPPING)
            raise
        except Exception:
            log.exception("%s failed", what)
            await surface.fail(messages.INTERNAL)
        else:
            await surface.finish(text)
            return True
        return False

    # -- controls on an answer ------------------------------------------------------------------

    async def stop(self, answer: str) -> None:
        """The asker's Stop (the adapter checked it is theirs): the answer ends where it is,
        on whichever replica streams it. Raises StoreError if that cannot be passed on."""
        await self.stops.stop(answer)

    async def rate(self, answer: str, rating: int, who: Who) -> None:
        """``who``'s 👍 (1) or 👎 (-1) on ``answer``, for the digest. Raises StoreError."""
        if self.commands.feedback is None:
            return
        await self.commands.feedback.rate(
            answer=answer,
            platform=who.platform,
            workspace=who.workspace,
            channel=who.channel,
            user=who.user,
            rating=rating,
        )

    # -- more budget, asked for from chat --------------------------------------------------------

    async def _offer_more(self, surface: Surface, refused: BudgetExceeded, who: Who) -> None:
        """Under a refusal for a cap, a way to ask the admins for more (where the surface can
        show one, and grants are kept)."""
        if not (refused.cap_key and isinstance(surface, OffersMore)):
            return
        if self.commands.requests is None:
            return
        offer = MoreBudget(
            platform=who.platform,
            workspace=who.workspace,
            channel=who.channel,
            user=who.user,
            cap_key=refused.cap_key,
            label=refused.label,
            unit=refused.unit,
            resets_at=refused.resets_at,
        )
        try:
            await surface.offer_more(offer)
        except Exception:
            log.exception("could not offer to request more budget")

    async def request_more(self, offer: MoreBudget, amount: str, reason: str) -> Request:
        """Keep the asker's request for the admins. Raises ValueError with what to change."""
        if self.commands.requests is None:
            raise ValueError(messages.MORE_NO_ADMINS)
        if not reason.strip():
            raise ValueError("Say why: the admins decide on it.")
        return await self.commands.requests.ask(
            platform=offer.platform,
            workspace=offer.workspace,
            channel=offer.channel,
            user=offer.user,
            cap_key=offer.cap_key,
            label=offer.label,
            unit=offer.unit,
            amount=amount_of(amount, offer.unit),
            reason=reason,
            expires_at=offer.resets_at,
        )

    async def decide(self, request_id: int, *, grant: bool, by: str, is_admin: IsAdmin) -> Request:
        """An admin's decision, once. Raises PermissionError (not an admin), AlreadyDecided or
        LookupError, each with a message for the one who clicked."""
        if self.commands.requests is None:
            raise LookupError(f"no request {request_id}")
        if not await is_admin():
            raise PermissionError(messages.MORE_NOT_ADMIN)
        request = await self.commands.requests.decide(request_id, grant=grant, by=by)
        await self.commands.budget.reload()  # this replica at once; the others within seconds
        return request

    # -- commands ------------------------------------------------------------------------------

    async def dashboard_link(self, who: Who, is_admin: IsAdmin) -> str:
        """``/usage dashboard``: for an admin, a sign-in link to this workspace's dashboard."""
        links = self.commands.dashboard
        if links is None:
            return messages.NO_DASHBOARD
        if not await is_admin():
            return f":warning: {messages.DASHBOARD_NOT_ADMIN}"
        url = links.url(Scope(who.platform, who.workspace))
        return messages.DASHBOARD_LINK.format(minutes=round(links.ttl / 60), url=url)

    async def command(
        self,
        name: str,
        words: list[str],
        who: Who,
        *,
        is_admin: IsAdmin,
        channel_id: ChannelParser,
    ) -> str:
        """``/usage``, ``/budget [show | set SCOPE LIMIT VALUE]`` and ``/digest WORDS``: the
        answer (Markdown) for the asker only. ``channel_id`` reads a channel as the platform
        writes it (``<#C0123|general>``, ``<#123…>``)."""
        if name == "usage":
            if words == ["dashboard"]:
                return await self.dashboard_link(who, is_admin)
            return await self.commands.usage_today(who, await self.model_here(who))
        if name == "budget":
            if not words or words == ["show"]:
                return await self.commands.budget_text(who, await self.model_here(who))
            if words[0] != "set" or len(words) != 4:
                return BUDGET_HELP
            if not await is_admin():
                return f":warning: {messages.NOT_ADMIN[self.platform]}"
            try:
                return await self.commands.budget_set(*words[1:], by=who.user, who=who)
            except ValueError as exc:
                return f"{exc}\n{BUDGET_HELP}"
        if name == "digest":
            if self.commands.digests is None:
                return messages.NO_DIGESTS
            return await self.commands.digests.handle(
                words,
                platform=who.platform,
                workspace=who.workspace,
                channel=who.channel,
                user=who.user,
                is_admin=is_admin,
                channel_id=channel_id,
            )
        raise ValueError(f"no chat command {name!r}")


class _NotShown(Exception):
    def __init__(self, error: Exception):
        self.error = error


async def _shown(showing: Awaitable[None]) -> None:
    """A placeholder the platform refused: the error is the platform's, not the answer's, and
    there is nowhere to tell the asker; it ends the answer and is logged as it is."""
    try:
        await showing
    except Exception as exc:
        raise _NotShown(exc) from exc
