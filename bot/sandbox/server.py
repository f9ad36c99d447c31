"""Running the sandbox: in-process for tests (:class:`SandboxServer`) or in the foreground for
demos and benchmarks in other processes (:func:`run_sandbox`)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.lifecycle import AsyncResource
from bot.sandbox.app import SANDBOX, create_app
from bot.sandbox.config import SandboxConfig
from bot.sandbox.stats import SandboxStats
from bot.web import cannot_listen

# Streams in flight when the server stops get this long to finish.
_SHUTDOWN_TIMEOUT = 2.0


class SandboxServer(AsyncResource):
    """A sandbox listening on a real TCP port; port 0 picks a free one."""

    def __init__(
        self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ):
        self.config = config or SandboxConfig()
        self._host = host
        self._port = port
        self._app = create_app(self.config)
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    @property
    def stats(self) -> SandboxStats:
        return self._app[SANDBOX].stats

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("The sandbox is not listening: start it first.")
        return self._bound_port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What OPENAI_BASE_URL would be set to."""
        return f"{self.url}/v1"

    async def start(self) -> None:
        if self._runner is not None or self._app.frozen:
            raise RuntimeError("A SandboxServer starts once; make a new one to serve again.")
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise cannot_listen(self._host, self._port, exc, "--port") from exc
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


async def run_sandbox(config: SandboxConfig, host: str, port: int) -> None:
    """Serve until cancelled (Ctrl-C under ``asyncio.run`` cancels this task)."""
    async with SandboxServer(config, host=host, port=port) as server:
        print(
            f"quotabot sandbox listening on {server.base_url} "
            f"(rpm={_limit(config.rpm)}, tpm={_limit(config.tpm)}, rpd={_limit(config.rpd)})",
            flush=True,
        )
        await asyncio.Event().wait()
