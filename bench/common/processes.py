"""The processes a benchmark starts besides itself, all on 127.0.0.1.

* A helper (a sandbox, the fake Slack or Discord API, a worker) is ``python -m MODULE ARGS``
  from the repository root, a :class:`Child`. It prints one JSON line when it is ready
  (:func:`announce`: its port and whatever else its parent needs), may answer a line on its
  stdin with a line on its stdout (:meth:`Child.ask`), and ends when its stdin closes
  (:func:`stdin_lines` ends then).
* quotabot is ``quotabot serve`` with an environment of its own, a :class:`QuotabotServe`:
  ready once a health endpoint answers, stopped with SIGTERM (it lets answers under way finish).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

from fakes.ports import free_port

__all__ = [
    "ROOT",
    "Child",
    "QuotabotServe",
    "announce",
    "clean_environ",
    "cpu_seconds",
    "cpu_times",
    "free_port",
    "quotabot_command",
    "rss_mb",
    "stdin_lines",
]

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: where ``python -m bench...`` and ``quotabot`` run."""
START_TIMEOUT = 60.0
ANSWER_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
"""Seconds a helper gets to end once its stdin is closed, before it is killed."""
QUIET = ("quotabot serving on", "`token` will be unused")
"""Lines quotabot logs at WARNING that say nothing about the run."""


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    return sum(cpu_times(pid))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _tail(log: Path, chars: int = 2000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else ""


# -- helpers ---------------------------------------------------------------------------------


def announce(**info: Any) -> None:
    """In a helper: tell the parent it is ready (one JSON line on stdout)."""
    print(json.dumps(info), flush=True)


async def stdin_lines() -> AsyncIterator[str]:
    """In a helper: the lines its parent writes, stripped, until the parent closes stdin."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        yield line.strip()


class Child:
    """``async with Child(module, *args, log=...) as child``: ``python -m module args`` with its
    stderr in ``log``, once it has announced itself (``child.info``, ``child.port``)."""

    def __init__(
        self,
        module: str,
        *args: str,
        log: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = START_TIMEOUT,
    ):
        self.module, self.args, self.log = module, args, log
        self.env = dict(env) if env is not None else None
        self.timeout = timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Child({' '.join([self.module, *self.args])})"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.info["port"])

    async def start(self) -> None:
        with open(self.log, "ab") as log:  # noqa: ASYNC230 - opening a log file is instant
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                *self.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=self.env,
                cwd=ROOT,
            )
        try:
            info = json.loads(await asyncio.wait_for(self._readline(), self.timeout))
            if not isinstance(info, dict):
                raise ValueError(info)
        except (ValueError, TimeoutError):
            await self.stop()
            raise RuntimeError(f"{self!r} did not start; {self.log}:\n{_tail(self.log)}") from None
        self.info = info

    async def _readline(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        return (await self.proc.stdout.readline()).decode().strip()

    async def tell(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()

    async def ask(self, line: str) -> str:
        """Send one line, read the one it answers (within ``ANSWER_TIMEOUT`` seconds)."""
        await self.tell(line)
        return await asyncio.wait_for(self._readline(), ANSWER_TIMEOUT)

    async def wait(self) -> int:
        """Its exit code, once it ends by itself."""
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self) -> None:
        """Close its stdin; killed if it is still there after ``STOP_TIMEOUT`` seconds."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


# -- quotabot --------------------------------------------------------------------------------


def clean_environ() -> dict[str, str]:
    """This process's environment without quotabot's or the platforms' settings."""
    own = ("QUOTABOT_", "OPENAI_", "SLACK_", "DISCORD_")
    return {k: v for k, v in os.environ.items() if not k.startswith(own)}


def quotabot_command() -> list[str]:
    """The ``quotabot`` console script beside this Python, or the same through ``-c``."""
    exe = Path(sys.executable).parent / "quotabot"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "import bot.cli as c; c.main()"]


class QuotabotServe:
    """``quotabot serve`` on a free port with ``env`` (stdout and stderr in ``log``): ready once
    ``ready_path`` answers 200; stopped with SIGTERM, killed after ``stop_wait`` seconds."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        log: Path,
        args: Sequence[str] = ("serve",),
        ready_path: str = "/healthz",
        stop_wait: float = 15.0,
    ):
        self.port = free_port()
        self.env = {**env, "QUOTABOT_HTTP_HOST": "127.0.0.1", "QUOTABOT_HTTP_PORT": str(self.port)}
        self.log, self.args = log, tuple(args)
        self.ready_path, self.stop_wait = ready_path, stop_wait
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    async def start(self) -> None:
        with open(self.log, "ab") as log:  # noqa: ASYNC230 - opening a log file is instant
            self.proc = await asyncio.create_subprocess_exec(
                *quotabot_command(), *self.args, env=self.env, cwd=ROOT, stdout=log, stderr=log
            )
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(self.url + self.ready_path) as response:
                        if response.status == 200:
                            return
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    await self.stop()
                    raise RuntimeError(f"quotabot did not start; {self.log}:\n{_tail(self.log)}")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.stop_wait)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def logged(self) -> list[str]:
        """What it logged, less the lines in ``QUIET`` and blank ones."""
        if not self.log.exists():
            return []
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if line.strip() and not any(q in line for q in QUIET)]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
