"""The processes ``bench.load`` runs besides itself: the sandbox, the fake Slack and Discord
APIs (each with a control server), PostgreSQL's database, and the ``quotabot serve`` replicas.

    python -m bench.load.processes sandbox|slack|discord [--latency S]

prints ``{"port": ..., "control": ...}`` and serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.common.processes import free_port, stop_child, stop_quotabot

ROOT = Path(__file__).resolve().parents[2]
SECRET = "load-signing-secret-0123456789abcdef"
"""The Slack signing secret the replicas are given and the users sign with."""
START_TIMEOUT = 60.0


# -- the child processes: sandbox, fake Slack, fake Discord ----------------------------------


def _finished(text: str) -> bool:
    """A final answer or error, not a placeholder, a queue notice or a streamed preview."""
    return bool(text) and not text.startswith("_") and not text.endswith(" …")


async def _child(role: str, latency: float) -> None:
    from aiohttp import web

    control = web.Application()
    finals: list[dict[str, Any]] = []
    server: Any
    if role == "sandbox":
        from bot.sandbox import SandboxConfig, SandboxServer

        server = SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None, latency=latency))
    elif role == "slack":
        from fakes.slack_api import FakeSlackAPI

        class RecordingSlack(FakeSlackAPI):
            def _answer(self, method: str, params: Any, token: Any, error: Any) -> Any:
                status, body, headers = super()._answer(method, params, token, error)
                if body.get("ok") and method in ("chat.stopStream", "chat.update"):
                    message = self.state.find(str(params.get("channel")), str(params.get("ts")))
                    if message is not None and _finished(message.visible_text):
                        parent = self.state.find(message.channel, message.thread_ts or "")
                        finals.append(
                            {
                                "channel": message.channel,
                                "thread": message.thread_ts,
                                "text": message.visible_text[:300],
                                "parent": parent.text[:200] if parent else "",
                                "at": time.time(),
                            }
                        )
                return status, body, headers

        server = RecordingSlack()

        async def seed(request: web.Request) -> web.Response:
            for payload in await request.json():
                server.seed_event(payload)
            return web.json_response({"ok": True})

        control.router.add_post("/seed", seed)
    else:
        from fakes.discord_api import FakeDiscordAPI

        class RecordingDiscord(FakeDiscordAPI):
            async def _edit_original(self, request: web.Request) -> web.Response:
                response = await super()._edit_original(request)
                token = request.match_info["token"]
                sent = self.thread(token)
                if response.status == 200 and sent and _finished(sent[0].content):
                    finals.append(
                        {"token": token, "text": sent[0].content[:300], "at": time.time()}
                    )
                return response

        server = RecordingDiscord()

        async def acknowledged(request: web.Request) -> web.Response:
            for item in await request.json():
                server.acknowledged(item["payload"], item["response"])
            return web.json_response({"ok": True})

        control.router.add_post("/acknowledged", acknowledged)

    async def read_finals(request: web.Request) -> web.Response:
        after = int(request.query.get("after", "0"))
        return web.json_response({"finals": finals[after:], "next": len(finals)})

    control.router.add_get("/finals", read_finals)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    async with server:
        port = server.port if role == "sandbox" else int(server.url.split(":")[2].split("/")[0])
        print(json.dumps({"port": port, "control": runner.addresses[0][1]}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


class Child:
    """``python -m bench.load.processes ROLE``: prints its ports, serves until stdin closes."""

    def __init__(self, role: str, log: Path, latency: float = 0.0):
        self.role, self.log, self.latency = role, log, latency
        self.proc: asyncio.subprocess.Process | None = None
        self.port = self.control = 0

    async def __aenter__(self) -> Child:
        with open(self.log, "ab") as log:  # noqa: ASYNC230 - opening a log file is instant
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.load.processes",
                self.role,
                "--latency",
                str(self.latency),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=ROOT,
            )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT)
        try:
            ports = json.loads(line)
        except ValueError:
            raise RuntimeError(f"{self.role} did not start; see {self.log}") from None
        self.port, self.control = int(ports["port"]), int(ports["control"])
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def __aexit__(self, *exc: object) -> None:
        await stop_child(self.proc)


# -- /proc -----------------------------------------------------------------------------------


# -- PostgreSQL, Redis, the replicas ---------------------------------------------------------


async def create_database(admin_url: str) -> str:
    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"quotabot_load_{uuid.uuid4().hex[:12]}"
    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(admin_url: str, url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def quotabot_env(
    *, database: str, redis: str, prefix: str, provider: str, slack: str, discord: str, key: str
) -> dict[str, str]:
    from fakes.discord_api import APPLICATION_ID
    from fakes.slack_api import DEFAULT_TOKEN

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUOTABOT_", "OPENAI_", "SLACK_", "DISCORD_"))
    }
    env.update(
        QUOTABOT_DATABASE_URL=database,
        QUOTABOT_REDIS_URL=redis,
        QUOTABOT_REDIS_PREFIX=prefix,
        QUOTABOT_HTTP_HOST="127.0.0.1",
        QUOTABOT_LOG_LEVEL="WARNING",
        QUOTABOT_PROVIDER_TIER="paid",
        # The catalog's paid-tier gpt-3.5-turbo is 60 RPM: raised so that no budget waits.
        QUOTABOT_MODELS=json.dumps({"gpt-3.5-turbo": {"rpm": 10**7, "tpm": 10**10, "rpd": 10**9}}),
        QUOTABOT_MAX_TOKENS="64",
        QUOTABOT_SHUTDOWN_GRACE="5",
        OPENAI_BASE_URL=provider,
        OPENAI_API_KEY="sk-load",
        SLACK_BOT_TOKEN=DEFAULT_TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack,
        DISCORD_PUBLIC_KEY=key,
        DISCORD_APPLICATION_ID=APPLICATION_ID,
        DISCORD_API_URL=discord,
    )
    return env


def _quotabot() -> list[str]:
    exe = Path(sys.executable).parent / "quotabot"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "import bot.cli as c; c.main()"]


async def migrate(env: dict[str, str], log: Path) -> None:
    with open(log, "ab") as out:  # noqa: ASYNC230 - opening a log file is instant
        proc = await asyncio.create_subprocess_exec(
            *_quotabot(), "db", "upgrade", env=env, cwd=ROOT, stdout=out, stderr=out
        )
    if await proc.wait() != 0:
        raise RuntimeError(f"quotabot db upgrade failed; see {log}")


class Replica:
    def __init__(self, index: int, env: dict[str, str], data: Path):
        self.index = index
        self.port = free_port()
        self.log = data / f"replica-{index}.log"
        self.env = {
            **env,
            "QUOTABOT_HTTP_PORT": str(self.port),
            "QUOTABOT_DATA_DIR": str(data / f"replica-{index}"),
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.rss: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, http: aiohttp.ClientSession) -> None:
        with open(self.log, "ab") as log:  # noqa: ASYNC230 - opening a log file is instant
            self.proc = await asyncio.create_subprocess_exec(
                *_quotabot(),
                "serve",
                "--no-scheduler",
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{self.url}/readyz") as response:
                    if response.status == 200:
                        return
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"replica {self.index} did not start; see {self.log}")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        await stop_quotabot(self.proc, 15)

    def problems(self) -> list[str]:
        if not self.log.exists():
            return []
        quiet = ("quotabot serving on", "`token` will be unused")
        return [
            line
            for line in self.log.read_text().splitlines()
            if (" WARNING " in line or " ERROR " in line or "Traceback" in line)
            and not any(q in line for q in quiet)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load.processes")
    parser.add_argument("role", choices=("sandbox", "slack", "discord"))
    parser.add_argument("--latency", type=float, default=0.0, help="the sandbox's, per call")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_child(args.role, args.latency))


if __name__ == "__main__":
    main()
