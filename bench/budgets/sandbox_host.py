"""A fresh sandbox for each run, by default in a process of its own.

The systems under test are asyncio programs; a sandbox on the same event loop would take turns
with them, so a client that burns CPU (the SDK building thousands of requests) would slow the
provider's answers to everyone, and the provider's work would delay quotabot's own database
round trips. A real provider runs elsewhere: so does this one, unless ``in_process`` is asked.
Either way it is :class:`bot.sandbox.SandboxServer` on 127.0.0.1, and the figures come from
``GET /sandbox/stats``.

    python -m bench.budgets.sandbox_host --rpm 600 --tpm 60000 --seed 1   # prints its port
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from bench.budgets.harness import CallStats
from bench.budgets.workload import Workload
from bot.sandbox import SandboxConfig, SandboxServer

ROOT = Path(__file__).resolve().parents[2]
"""Where ``python -m bench.budgets.sandbox_host`` is found."""
START_TIMEOUT = 30.0


def _config(rpm: int, tpm: int, seed: int) -> SandboxConfig:
    """The given RPM and TPM for every model, no RPD, answers seeded like the workload."""
    return SandboxConfig(rpm=rpm, tpm=tpm, rpd=None, seed=seed)


class Sandbox:
    """One sandbox for one run: ``async with Sandbox(workload, log=...) as sandbox``."""

    def __init__(self, workload: Workload, *, log: Path, in_process: bool = False):
        self._args = (workload.rpm, workload.tpm, workload.seed)
        self._log = log
        self._server: SandboxServer | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._port = 0
        if in_process:
            self._server = SandboxServer(_config(*self._args))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    async def __aenter__(self) -> Self:
        if self._server is not None:
            await self._server.start()
            self._port = self._server.port
            return self
        rpm, tpm, seed = self._args
        with open(self._log, "ab") as log:  # noqa: ASYNC230 - opening a log file is instant
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.budgets.sandbox_host",
                f"--rpm={rpm}",
                f"--tpm={tpm}",
                f"--seed={seed}",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
            )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT)
        if not line.strip().isdigit():
            await self._stop()
            raise RuntimeError(f"the sandbox did not start; see {self._log}")
        self._port = int(line)
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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            await self._server.aclose()
        else:
            await self._stop()

    async def _stop(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # the child serves until its stdin closes
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _serve(config: SandboxConfig) -> None:
    async with SandboxServer(config) as server:
        print(server.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


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
