"""A fresh sandbox for each run, by default in a process of its own.

The systems under test are asyncio programs; a sandbox on the same event loop would take turns
with them, so a client that burns CPU (the SDK building thousands of requests) would slow the
provider's answers to everyone, and the provider's work would delay quotabot's own database
round trips. A real provider runs elsewhere: so does this one, unless ``in_process`` is asked.
Either way it is :class:`bot.sandbox.SandboxServer` on 127.0.0.1, and the figures come from
``GET /sandbox/stats``.

    python -m bench.budgets.sandbox_host --rpm 600 --tpm 60000 --seed 1   # announces its port
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from bench.budgets.harness import CallStats
from bench.budgets.workload import Workload
from bench.common.processes import Child, announce, stdin_lines
from bot.sandbox import SandboxConfig, SandboxServer


def _config(rpm: int, tpm: int, seed: int) -> SandboxConfig:
    """The given RPM and TPM for every model, no RPD, answers seeded like the workload."""
    return SandboxConfig(rpm=rpm, tpm=tpm, rpd=None, seed=seed)


class Sandbox:
    """One sandbox for one run: ``async with Sandbox(workload, log=...) as sandbox``."""

    def __init__(self, workload: Workload, *, log: Path, in_process: bool = False):
        rpm, tpm, seed = workload.rpm, workload.tpm, workload.seed
        self._server: SandboxServer | None = None
        self._child: Child | None = None
        self._port = 0
        if in_process:
            self._server = SandboxServer(_config(rpm, tpm, seed))
        else:
            args = (f"--rpm={rpm}", f"--tpm={tpm}", f"--seed={seed}")
            self._child = Child("bench.budgets.sandbox_host", *args, log=log)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    async def __aenter__(self) -> Self:
        if self._server is not None:
            await self._server.start()
            self._port = self._server.port
        else:
            assert self._child is not None
            await self._child.start()
            self._port = self._child.port
        return self

    async def calls(self, model: str) -> CallStats:
        """What the sandbox has seen of ``model`` so far."""
        if self._server is not None:
            s = self._server.stats.model(model)
            return CallStats(s.requests, s.rate_limited, s.failures)
        # Long timeout: at the window's end a baseline may have thousands of connections queued
        # at the sandbox (tenacity's retries), ahead of this one.
        async with httpx.AsyncClient(timeout=60.0) as client:
            response = await client.get(f"http://127.0.0.1:{self._port}/sandbox/stats")
        stats = response.json()["models"].get(model, {})
        return CallStats(
            stats.get("requests", 0), stats.get("rate_limited", 0), stats.get("failures", 0)
        )

    async def admitted(self, model: str) -> list[float]:
        """Unix times at which the sandbox took each call of ``model`` it answered, in order."""
        if self._server is not None:
            served = [r.to_json() for r in self._server.stats.responses]
        else:
            async with httpx.AsyncClient(timeout=60.0) as client:
                response = await client.get(f"http://127.0.0.1:{self._port}/sandbox/responses")
            served = response.json()["data"]
        return sorted(float(r["admitted_at"]) for r in served if r["model"] == model)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.aclose()
        elif self._child is not None:
            await self._child.stop()


async def _serve(config: SandboxConfig) -> None:
    async with SandboxServer(config) as server:
        announce(port=server.port)
        async for _ in stdin_lines():
            pass


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.budgets.sandbox_host")
    parser.add_argument("--rpm", type=int, required=True)
    parser.add_argument("--tpm", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    # Clients cancelled at the end of a window drop their connections: not worth a traceback.
    logging.basicConfig(level=logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_config(args.rpm, args.tpm, args.seed)))


if __name__ == "__main__":
    main()
