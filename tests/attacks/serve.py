"""A real ``quotabot serve`` to attack: one subprocess on 127.0.0.1 with both HTTP endpoints
(Slack events and Discord interactions), the sandbox as its provider and the fake Slack and
Discord APIs behind it, SQLite in the test's directory.

    async with serving(tmp_path) as server:
        ...  # attack server.url
        latency = await server.ask_slack("q still there?")  # an honest request is answered
    # the process has exited 0 on SIGTERM
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bot.sandbox import SandboxConfig, SandboxServer
from fakes import slack_events as ev
from fakes.discord_api import APPLICATION_ID, FakeDiscordAPI, Signer
from fakes.ports import free_port
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from fakes.slack_workspace import DEFAULT_CHANNEL

SECRET = "attack-signing-secret-0123456789abcdef"
SIGNER = Signer()


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` (Linux ``/proc``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    port: int
    data: Path
    log: Path
    slack: FakeSlackAPI
    discord: FakeDiscordAPI
    sandbox: SandboxServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def slack_url(self) -> str:
        return f"{self.url}/slack/events"

    @property
    def discord_url(self) -> str:
        return f"{self.url}/discord/interactions"

    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    def logged(self) -> str:
        return self.log.read_text(errors="replace")

    def rows(self, table: str = "usage") -> int:
        with sqlite3.connect(self.data / "quotabot.db") as db:
            return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    async def settled(self, within: float = 5.0) -> tuple[int, int]:
        """Provider calls and usage rows, once every answer's row is written (or ``within``
        seconds have passed): each answer is delivered, then recorded."""
        for _ in range(int(within / 0.02)):
            if self.rows() >= self.sandbox.stats.total.requests:
                break
            await asyncio.sleep(0.02)
        return self.sandbox.stats.total.requests, self.rows()

    async def ask_slack(self, text: str, *, within: float = 15.0) -> tuple[float, float]:
        """Mention the bot with a signed event, over a fresh connection: seconds to the ack,
        and to the sandbox's answer in the thread (exactly one)."""
        payload = self.slack.seed_event(ev.app_mention(text))
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=within) as http:
            response = await ev.post_event(http, self.slack_url, payload, SECRET)
        acked = time.monotonic() - started
        assert response.status_code == 200, (response.status_code, response.text[:200])
        ts = payload["event"]["ts"]
        while time.monotonic() - started < within:
            answers = [
                t for t in self.slack.messages(DEFAULT_CHANNEL, ts) if t.startswith("Sandbox")
            ]
            if answers:
                assert len(answers) == 1, answers
                return acked, time.monotonic() - started
            await asyncio.sleep(0.02)
        raise AssertionError(f"no answer to {text!r}: {self.slack.messages(DEFAULT_CHANNEL, ts)}")


@asynccontextmanager
async def serving(
    tmp_path: Path,
    *,
    verbose: bool = False,
    sandbox_config: SandboxConfig | None = None,
    **settings: str,
) -> AsyncIterator[Served]:
    """``quotabot serve --no-scheduler`` (``quotabot -v serve`` with ``verbose``) with
    ``settings`` as extra environment variables; stopped with SIGTERM at the end, which it
    must survive with exit status 0. The sandbox is unlimited unless ``sandbox_config``."""
    config = sandbox_config or SandboxConfig(rpm=None, tpm=None, rpd=None)
    async with (
        SandboxServer(config) as sandbox,
        FakeSlackAPI(streaming_supported=False) as slack,
        FakeDiscordAPI() as discord,
    ):
        port = free_port()
        log_path = tmp_path / "serve.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("QUOTABOT_", "SLACK_", "DISCORD_", "OPENAI_"))
        }
        env.update(
            QUOTABOT_DATA_DIR=str(tmp_path),
            QUOTABOT_HTTP_PORT=str(port),
            QUOTABOT_PROVIDER_TIER="paid",
            QUOTABOT_SHUTDOWN_GRACE="5",
            OPENAI_BASE_URL=sandbox.base_url,
            OPENAI_API_KEY="sk-test",
            SLACK_BOT_TOKEN=DEFAULT_TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.url,
            DISCORD_PUBLIC_KEY=SIGNER.public_key,
            DISCORD_APPLICATION_ID=APPLICATION_ID,
            DISCORD_API_URL=discord.url,
        )
        env.update(settings)
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "import bot.cli as c; c.main()",
                *(["-v"] if verbose else []),
                "serve",
                "--no-scheduler",
                env=env,
                stderr=log,
            )
        served = Served(proc, port, tmp_path, log_path, slack, discord, sandbox)
        try:
            await _wait_ready(served)
            yield served
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0, served.logged()[-3000:]
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _wait_ready(served: Served) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(400):
            if served.proc.returncode is not None:
                raise AssertionError(f"serve exited: {served.logged()[-3000:]}")
            try:
                if (await http.get(f"{served.url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"serve did not start: {served.logged()[-3000:]}")
