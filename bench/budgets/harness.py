"""Play a workload against one system for a fixed window and record what became of each request.

Every request is started at its arrival time and given until the end of the window: an answer
that arrives in time is ``ok``; a system's refusal (it said no before calling the provider)
is ``refused``; any other error is ``failed``; a request still waiting at the end is cancelled
and counted ``pending`` (not served).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from bench.budgets.workload import Item

Outcome = Literal["ok", "refused", "failed", "pending"]
Submit = Callable[[Item], Awaitable[object]]


@dataclass(slots=True)
class Result:
    index: int
    channel: int
    outcome: Outcome = "pending"
    latency: float | None = None
    """Seconds from arrival to answer (``ok`` only)."""
    answered_at: float | None = None
    """Seconds from the start of the run to the answer (``ok`` only)."""
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Result:
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class CallStats:
    """What the sandbox saw of one model up to the end of the window (its /sandbox/stats)."""

    answered: int
    rate_limited: int
    failures: int

    @property
    def calls(self) -> int:
        return self.answered + self.rate_limited + self.failures


def configure_logging() -> None:
    """quotabot's warnings on stderr, one line each; not the noise of the window's end."""
    level = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Cancelling requests at the end of a window interrupts database sessions and HTTP
    # connections in flight; their clean-up complains, and that is expected.
    for name in ("sqlalchemy.pool", "aiohttp.server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


class WarningLog(logging.Handler):
    """Collects quotabot's warnings during a run: ``with WarningLog() as log: ...``."""

    keep = 20
    """Distinct lines kept; the rest are only counted."""

    def __init__(self, logger: str = "bot"):
        super().__init__(logging.WARNING)
        self._logger = logging.getLogger(logger)
        self.lines: list[str] = []
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        line = f"{record.levelname} {record.name}: {record.getMessage()}"[:400]
        if line not in self.lines and len(self.lines) < self.keep:
            self.lines.append(line)

    def __enter__(self) -> WarningLog:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)


async def drive(
    items: Iterable[Item],
    submit: Submit,
    *,
    window: float,
    start: float,
    refusals: tuple[type[BaseException], ...] = (),
    at_end: Callable[[], Awaitable[None]] | None = None,
) -> list[Result]:
    """Run ``submit(item)`` for each item from ``start + item.at`` (``time.monotonic``) until
    ``start + window``; ``at_end`` runs at that moment, before the stragglers are cancelled."""
    results: list[Result] = []

    async def one(item: Item, result: Result) -> None:
        arrival = start + item.at
        await asyncio.sleep(max(0.0, arrival - time.monotonic()))
        outcome: Outcome
        try:
            await submit(item)
        except refusals as exc:
            outcome, result.error = "refused", type(exc).__name__
        except Exception as exc:  # every other failure counts: that is what is measured
            outcome, result.error = "failed", type(exc).__name__
        else:
            outcome = "ok"
        now = time.monotonic()
        if now > start + window:
            return  # too late to count: still "pending"
        result.outcome = outcome
        if outcome == "ok":
            result.latency = now - arrival
            result.answered_at = now - start

    tasks = []
    for item in items:
        result = Result(item.index, item.channel)
        results.append(result)
        tasks.append(asyncio.create_task(one(item, result)))
    await asyncio.sleep(max(0.0, start + window - time.monotonic()))
    if at_end is not None:
        await at_end()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return results
