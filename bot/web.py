"""The HTTP server of ``quotabot serve``: health checks, plus whatever routes adapters bring."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from bot.lifecycle import AsyncResource

MAX_BODY = 1024 * 1024
"""Chat platforms send small JSON or form bodies; anything larger is refused unread."""


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


class WebServer(AsyncResource):
    def __init__(self, routes: Iterable[web.RouteDef], *, host: str, port: int):
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.add_routes([web.get("/healthz", healthz), *routes])
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

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
