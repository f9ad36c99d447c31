"""Where one answer appears in chat: what an adapter implements, once per kind of reply.

    placeholder("Thinking…")  -> queued(position, wait)* -> delta(text)* -> finish(answer)
                                                                           \\ fail(sentence)

The chat layer (``bot.chat.answers``) calls these in that order and nothing else; a surface
turns them into platform calls: a Slack message edited or streamed in a thread, a Discord
interaction's deferred response and its follow-ups, a reply to a Discord message. Texts are
the core's Markdown; the surface converts them to its platform's format and cuts them to its
message size (``bot.chat.split``). ``fail`` gets one sentence for people (``bot.messages``):
the surface marks it as a warning the way its platform does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from bot.budget.tickets import QueueInfo


class Surface(Protocol):
    streaming: bool
    """Whether ``delta`` shows the answer as it is generated; if not, only ``finish`` does,
    and the provider is asked for the whole answer at once (which allows batching)."""

    async def placeholder(self, text: str) -> None:
        """Shown until the answer comes ("Thinking…"), replacing whatever was shown."""

    async def queued(self, info: QueueInfo) -> None:
        """The request waits for budget: its place in the queue and the expected wait."""

    async def delta(self, text: str) -> None:
        """The next piece of the answer (only when ``streaming``)."""

    async def finish(self, text: str) -> None:
        """The whole answer, in place of the placeholder (in as many messages as it needs)."""

    async def fail(self, text: str) -> None:
        """What went wrong, in words for people, in place of the answer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MoreBudget:
    """What a "Request more" offer carries: the cap that refused, and who was refused."""

    platform: str
    workspace: str
    channel: str
    user: str
    cap_key: str
    label: str
    unit: str
    resets_at: datetime


@runtime_checkable
class OffersMore(Protocol):
    """A surface that can put a "Request more" button under a refusal for a cap."""

    async def offer_more(self, offer: MoreBudget) -> None: ...


@runtime_checkable
class ShowsControls(Protocol):
    """A surface that puts controls on an answer: a Stop button while it streams (its asker's
    click reaches ``Chat.stop``), 👍 and 👎 once it is finished (``Chat.rate``)."""

    def controls(self, answer: str) -> None:
        """The answer's id, for its buttons to carry; called before ``placeholder``."""
