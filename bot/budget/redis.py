"""Budgets in Redis: every quotabot process pointed at one Redis shares one budget.

Each method is one Lua script (:mod:`bot.budget.redis_scripts`), so N replicas never let N times
a limit through, and time is the Redis server's, not each replica's. The semantics are
:class:`~bot.budget.memory.MemoryBackend`'s, exactly.

When Redis is unreachable, chat goes on: the backend answers from this process's share
(:mod:`bot.budget.share`: limit // N of every limit, N being the replicas the heartbeat last
saw), and tries Redis again at most once per ``retry_interval``. Cap charges made meanwhile are
added to Redis when it returns, so the day's spend is not forgotten.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import BusyLoadingError, MasterDownError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.budget import redis_scripts
from bot.budget.limits import (
    Ask,
    Cap,
    CapState,
    Granted,
    Outcome,
    Rate,
    RateState,
    Refused,
    Wait,
    windows_around,
    zone_info,
)
from bot.budget.share import LocalShare
from bot.lifecycle import AsyncResource

log = logging.getLogger(__name__)

# Redis cannot answer budgets right now; anything else (a script error) is a bug and raises.
# READONLY and MASTERDOWN are what a replica says during a failover: seconds, not a bug.
_UNREACHABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    MasterDownError,
    OSError,
)

_LIVE_SECONDS = 30
"""A replica that has not been heard from for this long no longer counts for the shares."""

_T = TypeVar("_T")


class RedisBackend(AsyncResource):
    """A :class:`~bot.budget.backend.BudgetBackend` shared by every process on one Redis.

    Keys live under ``{prefix}:`` (the braces are a hash tag: one cluster slot for all, which
    multi-key scripts need): ``rate:<key>`` hashes and ``cap:<key>:<window>`` counters, both
    expiring once unused, and the ``replicas`` sorted set of the heartbeat.
    """

    name = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "quotabot",
        client: aioredis.Redis | None = None,
        replicas: int | None = None,
        retry_interval: float = 1.0,
        timeout: float = 2.0,
        heartbeat_interval: float = 5.0,
        max_connections: int = 50,
    ):
        """``url`` or ``client`` (which stays open: its owner closes it). ``replicas`` fixes the
        number of processes the fallback divides limits by instead of counting them; ``timeout``
        bounds how long one call waits for Redis before answering from the local share."""
        if (url is None) == (client is None):
            raise ValueError("RedisBackend takes a url or a client, not both or neither")
        if replicas is not None and replicas < 1:
            raise ValueError(f"replicas must be at least 1, not {replicas}")
        self._owns_client = client is None
        if client is None:
            assert url is not None
            # No retries inside redis-py: a script is not idempotent, and a budget call that
            # cannot reach Redis at once answers from the local share instead of waiting.
            client = aioredis.Redis.from_url(
                url,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
        self._client = client
        self._address = _address(client)
        self._prefix = prefix if _has_hash_tag(prefix) else f"{{{prefix}}}"
        self._replicas_key = f"{self._prefix}:replicas"
        self._id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._acquire = client.register_script(redis_scripts.ACQUIRE)
        self._adjust = client.register_script(redis_scripts.ADJUST)
        self._learn = client.register_script(redis_scripts.LEARN)
        self._block = client.register_script(redis_scripts.BLOCK)
        self._rate_state = client.register_script(redis_scripts.RATE_STATE)
        self._cap_state = client.register_script(redis_scripts.CAP_STATE)
        self._heartbeat = client.register_script(redis_scripts.HEARTBEAT)

        self._slots = asyncio.Semaphore(max_connections)
        self._replicas_override = replicas
        self._replicas_seen = 1
        self._heartbeat_interval = heartbeat_interval
        self._next_heartbeat = 0.0
        self._joined = False

        self._local = LocalShare(lambda: self.replicas)
        self._retry_interval = retry_interval
        self._retry_at = 0.0
        self._probing = False
        self._degraded = False
        self._fallbacks = 0

    def __repr__(self) -> str:
        return f"RedisBackend({self._address!r}, prefix={self._prefix!r})"

    @property
    def degraded(self) -> bool:
        """Answering from this process's share because Redis is unreachable."""
        return self._degraded

    @property
    def fallbacks(self) -> int:
        """How many times Redis was lost (for metrics)."""
        return self._fallbacks

    @property
    def replicas(self) -> int:
        """The number of processes the fallback divides every limit by."""
        return self._replicas_override or self._replicas_seen

    # -- BudgetBackend ---------------------------------------------------------------------

    async def start(self) -> None:
        """Join the replica count now, and learn early if Redis is down."""

        async def nothing() -> None:
            return None

        await self._run(nothing, nothing)

    async def acquire(self, ask: Ask) -> Outcome:
        if not ask.rates and not ask.caps:
            return Granted()
        return await self._run(lambda: self._acquire_remote(ask), lambda: self._local.acquire(ask))

    async def adjust(
        self, rates: Sequence[tuple[Rate, int]], caps: Sequence[tuple[Cap, str, int]]
    ) -> None:
        if not rates and not caps:
            return
        await self._run(
            lambda: self._adjust_remote(rates, caps), lambda: self._local.adjust(rates, caps)
        )

    async def learn(self, rate: Rate, limit: int, remaining: int) -> None:
        async def remote() -> None:
            await self._learn(
                keys=[self._rate_key(rate)], args=[rate.limit, rate.period, limit, remaining]
            )

        await self._run(remote, lambda: self._local.learn(rate, limit, remaining))

    async def block(self, rates: Sequence[Rate], seconds: float) -> None:
        if not rates:
            return

        async def remote() -> None:
            args: list[float] = [seconds]
            for rate in rates:
                args += [rate.limit, rate.period]
            await self._block(keys=[self._rate_key(r) for r in rates], args=args)

        await self._run(remote, lambda: self._local.block(rates, seconds))

    async def claim(self, name: str, seconds: float) -> bool:
        async def remote() -> bool:
            key = f"{self._prefix}:claim:{name}"
            return bool(
                await self._client.set(key, self._id, nx=True, px=max(1, int(seconds * 1000)))
            )

        return await self._run(remote, lambda: self._local.claim(name, seconds))

    async def rate_state(self, rate: Rate) -> RateState:
        async def remote() -> RateState:
            limit, level, blocked_for = await self._rate_state(
                keys=[self._rate_key(rate)], args=[rate.limit, rate.period]
            )
            return RateState(int(limit), float(level), float(blocked_for))

        return await self._run(remote, lambda: self._local.rate_state(rate))

    async def cap_state(self, cap: Cap) -> CapState:
        async def remote() -> CapState:
            used, ends = await self._cap_state(keys=[self._cap_stem(cap)], args=_windows(cap))
            return CapState(cap.limit, int(used), _local(ends, cap))

        return await self._run(remote, lambda: self._local.cap_state(cap))

    async def delete_all(self) -> None:
        """Forget every budget under this prefix (tests, ``quotabot budget reset``).

        Unlike the budget calls this needs Redis, and raises if it is unreachable."""
        batch: list[Any] = []
        async for key in self._client.scan_iter(match=f"{_glob_escape(self._prefix)}:*"):
            batch.append(key)
            if len(batch) >= 500:
                await self._client.unlink(*batch)
                batch = []
        if batch:
            await self._client.unlink(*batch)
        self._local = LocalShare(lambda: self.replicas)

    async def aclose(self) -> None:
        """Leave the replica count at once (the others' shares grow), then close."""
        try:
            if self._joined and not self._degraded:
                self._joined = False
                await self._client.zrem(self._replicas_key, self._id)
        except _UNREACHABLE:
            pass
        finally:
            if self._owns_client:
                await self._client.aclose()

    # -- through Redis -----------------------------------------------------------------------

    def _rate_key(self, rate: Rate) -> str:
        return f"{self._prefix}:rate:{rate.key}"

    def _cap_stem(self, cap: Cap) -> str:
        """The counter's key without its window, which the script adds from the server's time."""
        return f"{self._prefix}:cap:{cap.key}:"

    async def _acquire_remote(self, ask: Ask) -> Outcome:
        keys = [self._rate_key(r) for r, _ in ask.rates] + [self._cap_stem(c) for c, _ in ask.caps]
        args: list[str | int | float] = [len(ask.rates)]
        for rate, amount in ask.rates:
            args += [rate.limit, rate.period, amount]
        for cap, amount in ask.caps:
            args += [cap.limit, cap.period, amount, *_windows(cap)]
        reply = await self._acquire(keys=keys, args=args)
        kind = _text(reply[0])
        if kind == "granted":
            return Granted(tuple(_text(w) for w in reply[1:]))
        if kind == "wait":
            return Wait(float(_text(reply[2])), ask.rates[int(reply[1]) - 1][0])
        cap = ask.caps[int(reply[1]) - 1][0]
        return Refused(cap, int(reply[2]), _local(reply[3], cap))

    async def _adjust_remote(
        self, rates: Sequence[tuple[Rate, int]], caps: Sequence[tuple[Cap, str, int]]
    ) -> None:
        keys = [self._rate_key(r) for r, _ in rates]
        keys += [f"{self._cap_stem(c)}{w}" for c, w, _ in caps]
        args: list[str | int | float] = [len(rates)]
        for rate, amount in rates:
            args += [rate.limit, rate.period, amount]
        for cap, _, amount in caps:
            args += [amount, cap.period]
        await self._adjust(keys=keys, args=args)

    async def _call_redis(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """``call``, after a heartbeat when one is due (at most one per interval, not per call).

        A burst of budget calls waits for one of ``max_connections`` slots: past its pool
        size redis-py fails with "Too many connections", which would look like Redis being
        down and send every replica to its local share."""
        async with self._slots:
            return await self._call_redis_now(call)

    async def _call_redis_now(self, call: Callable[[], Awaitable[_T]]) -> _T:
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self._heartbeat_interval
            try:
                seen = await self._heartbeat(
                    keys=[self._replicas_key], args=[self._id, _LIVE_SECONDS]
                )
            except BaseException:
                self._next_heartbeat = 0.0
                raise
            self._replicas_seen = max(1, int(seen))
            self._joined = True
        return await call()

    # -- the fallback ------------------------------------------------------------------------

    async def _run(
        self, remote: Callable[[], Awaitable[_T]], local: Callable[[], Awaitable[_T]]
    ) -> _T:
        """``remote`` while Redis answers; ``local`` at once while it does not, except for one
        try per ``retry_interval`` (one coroutine tries, the others do not wait for it)."""
        if self._degraded:
            now = time.monotonic()
            if self._probing or now < self._retry_at:
                return await local()
            self._probing = True
            self._retry_at = now + self._retry_interval
            try:
                await self._sync_local_charges()
                result = await self._call_redis(remote)
            except _UNREACHABLE as exc:
                log.debug("Redis at %s still unreachable: %s: %s", self._address, _name(exc), exc)
                return await local()
            finally:
                self._probing = False
            self._degraded = False
            log.info(
                "Redis at %s answers again: budgets are shared by all replicas again",
                self._address,
            )
            return result
        try:
            return await self._call_redis(remote)
        except _UNREACHABLE as exc:
            self._fall_back(exc)
            return await local()

    def _fall_back(self, exc: BaseException) -> None:
        if self._degraded:
            return  # other calls that were in flight when Redis went away
        self._degraded = True
        self._fallbacks += 1
        self._retry_at = time.monotonic() + self._retry_interval
        log.warning(
            "Redis at %s unreachable (%s: %s): budgets fall back to this process's share "
            "(1/%d) of every limit until it returns",
            self._address,
            _name(exc),
            exc,
            self.replicas,
        )

    async def _sync_local_charges(self) -> None:
        """Add the cap charges made while degraded to Redis: they were spent for real."""
        charges = self._local.take_charges()
        if not charges:
            return
        try:
            await self._adjust_remote([], charges)
        except BaseException:
            self._local.put_back(charges)
            raise


def _has_hash_tag(prefix: str) -> bool:
    """Whether Redis Cluster would hash only part of the prefix already (``a{b}``)."""
    start = prefix.find("{")
    return start >= 0 and prefix.find("}", start + 1) > start + 1


def _glob_escape(text: str) -> str:
    for special in "\\*?[]":
        text = text.replace(special, "\\" + special)
    return text


def _address(client: aioredis.Redis) -> str:
    """Where the client connects, for logs: never the URL, which may hold a password."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _local(unix_seconds: object, cap: Cap) -> datetime:
    """A window's end from the script, in the cap's zone."""
    return datetime.fromtimestamp(int(_text(unix_seconds)), zone_info(cap.zone))


def _windows(cap: Cap) -> list[str | int]:
    """The windows around now, by this process's clock, for the script to choose from by the
    server's."""
    return [x for w in windows_around(cap.period, datetime.now(UTC), cap.zone) for x in w]


def _name(exc: BaseException) -> str:
    return type(exc).__name__
