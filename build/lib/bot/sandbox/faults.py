"""Seeded fault injection: the same seed fails the same requests, so a flaky-looking run can be
replayed exactly."""

from __future__ import annotations

import random

from bot.sandbox.config import SandboxConfig


class FaultPicker:
    def __init__(self, config: SandboxConfig):
        self._rate = config.failure_rate
        self._kinds = config.failures
        self._rng = random.Random(config.seed)

    def pick(self) -> str | None:
        """The fault for the next request ("500", "503" or "drop"), or None to answer it."""
        if self._rate <= 0:
            return None
        if self._rng.random() < self._rate:
            return self._rng.choice(self._kinds)
        return None
