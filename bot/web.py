"""The HTTP server of ``quotabot serve``: health checks, plus whatever routes adapters bring.

Every request body is read here, before any handler sees it, within limits that hold for
clients nobody has authenticated yet (a signature can only be checked on the whole body):

    headers  within ``keepalive_timeout`` of connecting or of the previous answer (aiohttp)
    body     declared over MAX_BODY: 413 at once, unread
             no room left in the body pool: 503 at once, unread
             not all there within ``read_timeout``: 408; the client went away: one INFO line
    malformed HTTP, a compressed body: 400 (aiohttp's parser), one INFO line

aiohttp logs a client's malformed request as an ERROR with a traceback (which echoes the
offending line): anyone could fill the logs with them. Those are one short INFO line here;
errors of quotabot's own keep their traceback.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.errors import ConfigError
from bot.lifecycle import AsyncResource
from bot.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool | None]]
"""One readiness check: True ready, False not, None not applicable (left out)."""
States = Callable[[], Mapping[str, str]]
"""What /readyz lists beside its checks, e.g. each provider: ``{"azure": "down"}``."""
CHECK_TIMEOUT = 2.0

MAX_BODY = 1024 * 1024
"""Chat platforms send small JSON or form bodies; anything larger is refused unread."""
SMALL_BODY = 64 * 1024
"""Events, commands and interactions are a few KB: bodies up to this size have a pool of their
own, which clients announcing big bodies cannot fill."""
POOLS = {True: 8 * MAX_BODY, False: 16 * MAX_BODY}
"""Bytes of bodies being read or handled at once, small bodies and the others: what request
bodies can hold of the process's memory, however many clients send them."""
KEEPALIVE_TIMEOUT = 15.0
"""Seconds an idle connection is kept, and that a client has to send a request's headers."""
READ_TIMEOUT = 10.0
"""Seconds a client has to send a request's body once its headers are in."""
MAX_DEPTH = 64
"""JSON nested deeper is refused: Slack's and Discord's payloads nest about 10 levels, and the
recursion limit (about 1,000, less the stack in use) raised in parsers, encoders and loggers."""
LINGERING = 2.0
"""Seconds the unread rest of a refused body is still taken in (and dropped) before the
connection closes, so that the client can read the answer (aiohttp's default is 10)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT_ERRORS = (HttpProcessingError, web.RequestPayloadError, ConnectionError)
"""What a client's malformed or broken-off request raises in aiohttp."""


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


class BodyPools:
    """What request bodies may hold of memory: bytes reserved by a request's declared length
    (a chunked one, of unknown length, reserves MAX_BODY) until its handler is done."""

    def __init__(self, sizes: Mapping[bool, int] = POOLS):
        self.free = dict(sizes)

    def take(self, size: int) -> bool:
        small = size <= SMALL_BODY
        if self.free[small] < size:
            return False
        self.free[small] -= size
        return True

    def give(self, size: int) -> None:
        self.free[size <= SMALL_BODY] += size


class WebServer(AsyncResource):
    """``/healthz``: the process is up. ``/readyz``: every check passes (503 and which one
    fails otherwise), for load balancers and Kubernetes readiness probes; it also lists the
    ``states`` (each provider's), which say more than a check but decide nothing."""

    def __init__(
        self,
        routes: Iterable[web.RouteDef],
        *,
        host: str,
        port: int,
        checks: Mapping[str, Check] | None = None,
        states: Mapping[str, States] | None = None,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ):
        self.checks = dict(checks or {})
        self.states = dict(states or {})
        self.keepalive_timeout, self.read_timeout = keepalive_timeout, read_timeout
        self.pools = BodyPools()
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._read_body])
        self.app.add_routes(
            [web.get("/healthz", healthz), web.get("/readyz", self.readyz), *routes]
        )
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    def add_metrics(self, metrics: Metrics) -> None:
        """``GET /metrics`` in Prometheus' text format."""

        async def scrape(_: web.Request) -> web.Response:
            return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

        self.app.router.add_get("/metrics", scrape)

    async def readyz(self, _: web.Request) -> web.Response:
        results: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                ok = await asyncio.wait_for(check(), CHECK_TIMEOUT)
            except Exception as exc:
                log.warning("readiness check %s failed: %r", name, exc)
                ok = False
            if ok is not None:
                results[name] = "ok" if ok else "failing"
        ready = all(v == "ok" for v in results.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": results}
        body |= {name: dict(read()) for name, read in self.states.items()}
        return web.json_response(body, status=200 if ready else 503)

    @web.middleware
    async def _read_body(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The whole body, within the limits above, before the handler runs (its own
        ``request.read()`` then returns it at once)."""
        if not request.body_exists:
            return await handler(request)
        declared = request.content_length
        if declared is not None and declared > MAX_BODY:
            log.info("refused a %d-byte body from %s: over %d", declared, request.remote, MAX_BODY)
            return _closing(413, "request body too large")
        size = MAX_BODY if declared is None else declared
        if not self.pools.take(size):
            log.warning("refused a %d-byte body from %s: too many at once", size, request.remote)
            return _closing(503, "busy: try again", {"Retry-After": "1"})
        try:
            try:
                async with asyncio.timeout(self.read_timeout):
                    await request.read()
            except TimeoutError:
                log.info("%s did not send its body within %s s", request.remote, self.read_timeout)
                return _closing(408, "request body too slow")
            except CLIENT_ERRORS as exc:
                why = type(exc).__name__
                log.info("%s went away while sending its body (%s)", request.remote, why)
                return _closing(400, "incomplete request body")
            return await handler(request)
        finally:
            self.pools.give(size)

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            keepalive_timeout=self.keepalive_timeout,
            lingering_time=LINGERING,
            # Slack and Discord send plain bodies: a gzip one is passed on as it is (its
            # signature then fails), never inflated.
            auto_decompress=False,
            logger=_ServerLog(logging.getLogger("aiohttp.server")),
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise cannot_listen(self.host, self.port, exc, "--port or QUOTABOT_HTTP_PORT") from exc
        self.port = int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _closing(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """An answer after which the connection closes: what is left of the body is not read."""
    response = web.Response(status=status, text=text, headers=headers)
    response.force_close()
    return response


def too_deep(value: object, limit: int = MAX_DEPTH) -> bool:
    """Whether parsed JSON nests lists and objects more than ``limit`` levels deep. Walked
    level by level, without recursion."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        if not level:
            return False
        level = [
            child
            for v in level
            for child in (v.values() if isinstance(v, dict) else v)
            if isinstance(child, dict | list)
        ]
    return bool(level)


class _ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]  # generic from 3.11 only
    """aiohttp's server logger: a client's malformed HTTP is one short INFO line."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        if isinstance(exc_info, CLIENT_ERRORS):
            self.info("malformed request refused: %s", _first_line(exc_info))
        else:
            super().exception(msg, *args, exc_info=exc_info, **kw)


def _first_line(exc: BaseException) -> str:
    """``BadHttpMessage: Content-Length overflow``, not the 300 digits that follow it."""
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    line = str(text).strip().split("\n", 1)[0].split(" b'", 1)[0].rstrip(":")
    return f"{type(exc).__name__}: {line[:80]}"


def cannot_listen(host: str, port: int, exc: OSError, choose: str) -> ConfigError:
    """Why a server could not take its address, and what to do: one line, no traceback."""
    if exc.errno == errno.EADDRINUSE:
        why = "is in use (another quotabot, or another program)"
    elif exc.errno == errno.EACCES:
        why = "needs privileges (ports under 1024)"
    else:
        why = f"cannot be used ({exc.strerror or exc})"
    return ConfigError(f"{host}:{port} {why}: choose another with {choose}.")
