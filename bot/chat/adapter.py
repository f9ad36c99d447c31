"""What a chat platform's adapter offers the process that serves it.

``quotabot serve`` (``bot.cli.serve``) builds each adapter the settings turn on, and then
treats them all alike: their routes go on the one web server, their resumers to the takeover
(``bot.takeover``), their digest posters to the digests, their checks to ``/readyz``; at
shutdown each stops taking events and lets its answers finish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Self

from aiohttp import web

from bot.chat.claims import Kind
from bot.config import Settings
from bot.digest.send import DigestPoster
from bot.takeover import Resume
from bot.web import Check

if TYPE_CHECKING:
    from bot.app import App


class ChatAdapter(Protocol):
    platform: str

    @classmethod
    def from_settings(cls, settings: Settings, app: App, *, serving: bool = True) -> Self | None:
        """The adapter the settings ask for (nothing connected yet); None when they turn the
        platform off (saying why in the log). Not ``serving``: only to post digests and
        alerts (``quotabot digest --send``), which needs fewer settings. Raises ConfigError
        for a setup that cannot work, naming the variable."""
        ...

    def describe(self) -> str:
        """How it is served, for the start-up line: "HTTP + Socket Mode", "gateway", ..."""
        ...

    def routes(self) -> list[web.RouteDef]: ...

    def resumers(self) -> dict[Kind, Resume]:
        """Who answers each kind of event this adapter claims, when a stopped process left
        it unanswered."""
        ...

    def poster(self) -> DigestPoster | None:
        """What posts digests and alerts on this platform, if it can."""
        ...

    def checks(self) -> dict[str, Check]:
        """What ``/readyz`` checks of its long-lived connections."""
        ...

    async def start(self) -> None:
        """Connect what must stay connected (Socket Mode, the gateway), in the background."""
        ...

    async def aclose(self, grace: float | None = None) -> None:
        """Stop taking events, let answers under way finish; those still going after
        ``grace`` seconds are stopped, and their askers told to ask again."""
        ...
