"""The processes ``bench.load`` runs besides itself: the sandbox, the fake Slack and Discord
APIs (each with a control server), and the ``quotabot serve`` replicas.

    python -m bench.load.processes sandbox|slack|discord [--latency S]

announces ``{"port": ..., "control": ...}`` and serves until its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from bench.common.processes import (
    ROOT,
    Child,
    QuotabotServe,
    announce,
    clean_environ,
    quotabot_command,
    stdin_lines,
)

SECRET = "load-signing-secret-0123456789abcdef"
"""The Slack signing secret the replicas are given and the users sign with."""


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
        announce(port=port, control=runner.addresses[0][1])
        async for _ in stdin_lines():
            pass
    await runner.cleanup()


class Helper(Child):
    """``python -m bench.load.processes ROLE``: the sandbox, the fake Slack or Discord API."""

    def __init__(self, role: str, log: Path, latency: float = 0.0):
        super().__init__("bench.load.processes", role, "--latency", str(latency), log=log)
        self.role = role

    @property
    def control(self) -> int:
        """The port of its control server."""
        return int(self.info["control"])


# -- the replicas ---------------------------------------------------------


def quotabot_env(
    *, database: str, redis: str, prefix: str, provider: str, slack: str, discord: str, key: str
) -> dict[str, str]:
    from fakes.discord_api import APPLICATION_ID
    from fakes.slack_api import DEFAULT_TOKEN

    env = clean_environ()
    env.update(
        QUOTABOT_DATABASE_URL=database,
        QUOTABOT_REDIS_URL=redis,
        QUOTABOT_REDIS_PREFIX=prefix,
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


async def migrate(env: dict[str, str], log: Path) -> None:
    with open(log, "ab") as out:  # noqa: ASYNC230 - opening a log file is instant
        proc = await asyncio.create_subprocess_exec(
            *quotabot_command(), "db", "upgrade", env=env, cwd=ROOT, stdout=out, stderr=out
        )
    if await proc.wait() != 0:
        raise RuntimeError(f"quotabot db upgrade failed; see {log}")


class Replica(QuotabotServe):
    """``quotabot serve --no-scheduler``, ready once ``/readyz`` answers."""

    def __init__(self, index: int, env: dict[str, str], data: Path):
        super().__init__(
            {**env, "QUOTABOT_DATA_DIR": str(data / f"replica-{index}")},
            log=data / f"replica-{index}.log",
            args=("serve", "--no-scheduler"),
            ready_path="/readyz",
            stop_wait=15,
        )
        self.index = index
        self.rss: list[float] = []

    def problems(self) -> list[str]:
        return [
            line
            for line in self.logged()
            if " WARNING " in line or " ERROR " in line or "Traceback" in line
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
