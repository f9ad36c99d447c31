"""The processes of ``bench.slack_ack`` (and ``bench.slack_cpu``) besides the load generator.

    python -m bench.slack_ack.processes sandbox|slack-api

* the sandbox provider (``bot.sandbox.SandboxServer``, ``LATENCY`` s a call, no RPM/TPM/RPD);
* the fake Slack Web API (``fakes.slack_api.FakeSlackAPI``);
* quotabot itself, ``quotabot serve`` (Slack on, temporary SQLite data dir unless a database
  is given, paid tier, the model's RPM/TPM/RPD raised so that no budget holds anything back).

Each helper announces its port and answers ``stats`` on stdin with a JSON line of what it saw.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from bench.common.processes import Child, QuotabotServe, announce, clean_environ, stdin_lines

SECRET = "bench-signing-secret-0123456789abcdef"
"""The Slack signing secret quotabot is given and the sender signs with."""
LATENCY = 2.0
"""Seconds the sandbox takes for every provider call."""
PROVIDER_CONNECTIONS = 100
"""quotabot's default: at 2 s per call, about 50 answers a second from one process."""


async def _helper(role: str) -> None:
    if role == "sandbox":
        from bot.sandbox import SandboxConfig, SandboxServer

        server: Any = SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None, latency=LATENCY))

        def stats() -> dict[str, Any]:
            return {"requests": server.stats.total.requests}
    else:
        from fakes.slack_api import FakeSlackAPI

        server = FakeSlackAPI()

        def stats() -> dict[str, Any]:
            # However the adapter delivers it (chat.update of the placeholder, or Slack's
            # streaming methods), an answer is a finished message with the sandbox's text.
            methods: dict[str, int] = {}
            for call in server.calls:
                methods[call.method] = methods.get(call.method, 0) + 1
            answers = sum(
                m.visible_text.startswith("Sandbox answer") and not m.streaming
                for messages in server.state.messages.values()
                for m in messages
            )
            return {"answers": answers, "calls": len(server.calls), "methods": methods}

    async with server:
        port = server.port if role == "sandbox" else int(server.base_url.rsplit(":", 1)[1])
        announce(port=port)
        async for line in stdin_lines():
            if line == "stats":
                print(json.dumps(stats()), flush=True)


class Helper(Child):
    """``python -m bench.slack_ack.processes ROLE``: the sandbox or the fake Slack Web API."""

    def __init__(self, role: str, log: Path):
        super().__init__("bench.slack_ack.processes", role, log=log)

    async def stats(self) -> dict[str, Any]:
        return dict(json.loads(await self.ask("stats")))


def quotabot(
    *,
    provider: str,
    slack_api: str,
    data_dir: Path,
    concurrent: int | None = None,
    database: str | None = None,
) -> QuotabotServe:
    """``quotabot serve`` with Slack on (over HTTP), against ``provider`` and ``slack_api``.

    ``BENCH_PYTHONPATH`` runs it from other code (an exported checkout), ``BENCH_LOG_LEVEL``
    sets its log level (WARNING), ``BENCH_ACK_AFTER_CLAIM=true`` makes acks wait for claims.
    """
    from fakes.slack_api import DEFAULT_TOKEN

    env = clean_environ()
    if os.environ.get("BENCH_PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["BENCH_PYTHONPATH"]
    env.update(
        QUOTABOT_DATA_DIR=str(data_dir),
        QUOTABOT_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        # BENCH_ACK_AFTER_CLAIM=true: acks wait for each event's claim (see README).
        QUOTABOT_ACK_AFTER_CLAIM=os.environ.get("BENCH_ACK_AFTER_CLAIM", "false"),
        QUOTABOT_PROVIDER_TIER="paid",
        # Paid-tier gpt-3.5-turbo is 60 RPM in the catalog: raised so nothing waits on it.
        QUOTABOT_MODELS=json.dumps({"gpt-3.5-turbo": {"rpm": 10**7, "tpm": 10**10, "rpd": 10**9}}),
        QUOTABOT_QUEUE_SIZE="100000",
        QUOTABOT_REQUEST_DEADLINE="600",
        QUOTABOT_MAX_TOKENS="64",
        QUOTABOT_PROVIDER_CONNECTIONS=str(PROVIDER_CONNECTIONS),
        QUOTABOT_CONCURRENT_ANSWERS=str(concurrent or PROVIDER_CONNECTIONS),
        **({"QUOTABOT_DATABASE_URL": database} if database else {}),
        OPENAI_BASE_URL=provider,
        OPENAI_API_KEY="sk-bench",
        SLACK_BOT_TOKEN=DEFAULT_TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=slack_api,
    )
    # Letting answers under way finish when it stops: not worth waiting for here.
    return QuotabotServe(env, log=data_dir / "quotabot.log", stop_wait=3)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slack_ack.processes")
    parser.add_argument("role", choices=("sandbox", "slack-api"))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_helper(parser.parse_args().role))


if __name__ == "__main__":
    main()
