"""The HTTP server of ``quotabot serve``: health checks, plus whatever routes adapters bring."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web

from bot.lifecycle import AsyncResource
from bot.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool | None]]
"""One readiness check: True ready, False not, None not applicable (left out)."""
CHECK_TIMEOUT = 2.0

MAX_BODY = 1024 * 1024
"""Chat platforms send small JSON or form bodies; anything larger is refused unread."""


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


class WebServer(AsyncResource):
    """``/healthz``: the process is up. ``/readyz``: every check passes (503 and which one
    fails otherwise), for load balancers and Kubernetes readiness probes."""

    def __init__(
        self,
        routes: Iterable[web.RouteDef],
        *,
        host: str,
        port: int,
        checks: Mapping[str, Check] | None = None,
    ):
        self.checks = dict(checks or {})
        self.app = web.Application(client_max_size=MAX_BODY)
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
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": results},
            status=200 if ready else 503,
        )

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
