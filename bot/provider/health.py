"""Whether a provider is answering, from what its calls met.

A call *fails the provider* when the server answers 5xx, the call times out (connecting,
sending, or waiting for the answer), or no connection could be made or kept (refused, no such
host, dropped). Anything else it answers, 4xx and 429 included, shows it up.

``after`` failures in a row mark it down until ``down_for`` seconds after its latest
failure; a call that it answers meanwhile marks it up at once. While it is down its calls are
still sent (there is no other model to send them to); /readyz and /metrics report it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

log = logging.getLogger(__name__)

DOWN_AFTER = 3
DOWN_FOR = 30.0


class Health:
    def __init__(
        self,
        name: str = "default",
        *,
        after: int = DOWN_AFTER,
        down_for: float = DOWN_FOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if after < 1 or down_for <= 0:
            raise ValueError("after must be 1 or more, down_for more than 0")
        self.name, self.after, self.down_for, self._clock = name, after, down_for, clock
        self.failures = 0
        """Failed calls in a row."""
        self._until: float | None = None
        """Down until then (on ``clock``); None: up."""

    def __repr__(self) -> str:
        return f"Health({self.name!r}, up={self.up}, failures={self.failures})"

    @property
    def up(self) -> bool:
        if self._until is not None and self._clock() >= self._until:
            self._until, self.failures = None, 0
            log.info(
                "provider %s is counted up again: %g s without a failure", self.name, self.down_for
            )
        return self._until is None

    def answered(self, status: int) -> None:
        """The server answered a call with ``status``."""
        if status >= 500:
            self._failed(f"HTTP {status}")
            return
        if self._until is not None:
            log.info("provider %s answers again: up", self.name)
        self._until, self.failures = None, 0

    def unanswered(self, exc: httpx.RequestError) -> None:
        """A call got no (complete) answer."""
        if isinstance(exc, httpx.PoolTimeout):
            return  # no free connection of our own: the calls in flight, not the server
        self._failed(type(exc).__name__)

    def _failed(self, why: str) -> None:
        was_up = self.up
        self.failures += 1
        if self.failures < self.after:
            return
        self._until = self._clock() + self.down_for
        if was_up:
            log.warning(
                "provider %s is down: %d failed calls in a row, the latest %s; counted down "
                "until %g s pass without a failure or a call succeeds",
                self.name,
                self.failures,
                why,
                self.down_for,
            )
