"""Time to the first visible token of a 400-token answer on Discord, streamed and not.

    .venv/bin/python -m bench.discord_stream                 # 5 slash commands each way, ~1 min
    .venv/bin/python -m bench.discord_stream --repeat 2

Each run posts a signed ``/ask`` to quotabot's HTTP interactions endpoint, as Discord does;
quotabot defers, asks the sandbox, which streams a 400-token answer at a hosted model's pace
(three tokens every 40 ms: 75 tokens a second), and edits the response through the fake
Discord REST API, which records when each edit arrives. Measured, from the POST: the first
edit that shows answer text, and the edit with the whole answer. Both ways run in the same
process, one after the other: ``streaming`` off (the answer posted when done, as before) and
on (edited in at most once per ``--interval`` seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from adapters.discord import CommandRunner, DiscordREST, InteractionsConfig, InteractionsEndpoint
from bench.common.stats import percentile_or_zero
from bench.common.tables import markdown_table, write_results
from bot.app import open_app
from bot.chat.commands import Commands
from bot.config import load_settings
from bot.sandbox import SandboxConfig, SandboxServer
from bot.store.events import EventLog
from bot.web import WebServer
from fakes.discord_api import APPLICATION_ID, FakeDiscordAPI, Signer, interaction, option

RESULTS = Path(__file__).resolve().parent / "results" / "discord_stream.json"
TOKENS = 400
PACE = 0.04
"""Seconds between the sandbox's chunks of three tokens."""


async def run(repeat: int, interval: float) -> dict[str, Any]:
    for name in [k for k in os.environ if k.startswith(("QUOTABOT_", "OPENAI_"))]:
        del os.environ[name]
    signer = Signer()
    sandbox_config = SandboxConfig(
        rpm=None, tpm=None, rpd=None, chunk_interval=PACE, reply_tokens=TOKENS
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["QUOTABOT_DATABASE_URL"] = f"sqlite:///{tmp}/bench.db"
        os.environ["QUOTABOT_PROVIDER_TIER"] = "paid"  # no answer waits for budget here
        async with SandboxServer(sandbox_config) as sandbox, FakeDiscordAPI() as api:
            os.environ["OPENAI_BASE_URL"] = sandbox.base_url
            os.environ["OPENAI_API_KEY"] = "sk-bench"
            async with open_app(load_settings()) as app, DiscordREST(base_url=api.url) as rest:
                runner = CommandRunner(
                    service=app.service,
                    commands=Commands(usage=app.usage, budget=app.budget, limits=app.limits),
                    events=EventLog(app.db),
                    edit_interval=interval,
                )
                endpoint = InteractionsEndpoint(
                    InteractionsConfig(application_id=APPLICATION_ID, public_key=signer.public_key),
                    runner=runner,
                    rest=rest,
                )
                server = WebServer(endpoint.routes(), host="127.0.0.1", port=0)
                await server.start()
                url = f"{server.url}/discord/interactions"
                async with httpx.AsyncClient(timeout=30) as http:
                    for streaming in (False, True):
                        runner.streaming = streaming
                        runs = [await one(http, url, signer, api, runner, n) for n in range(repeat)]
                        results["on" if streaming else "off"] = runs
                await server.aclose()
                await endpoint.aclose()
    return results


async def one(
    http: httpx.AsyncClient,
    url: str,
    signer: Signer,
    api: FakeDiscordAPI,
    runner: CommandRunner,
    n: int,
) -> dict[str, float]:
    """Seconds from the POST to the first edit with answer text, and to the last edit."""
    payload = interaction("ask", [option("prompt", f"explain token buckets, take {n}")])
    path = f"/webhooks/{APPLICATION_ID}/{payload['token']}/messages/@original"
    started = time.monotonic()
    response = await signer.post(http, url, payload)
    api.acknowledged(payload, response.json())
    await runner.drain()
    edits = [c for c in api.calls if c.path == path and c.method == "PATCH"]
    shown = [c for c in edits if "Sandbox answer" in str(c.body.get("content"))]
    return {
        "first_token": shown[0].at - started,
        "whole_answer": edits[-1].at - started,
        "edits": len(edits),
    }


def table(results: dict[str, Any]) -> str:
    rows = []
    for way, runs in results.items():
        first = [r["first_token"] for r in runs]
        whole = [r["whole_answer"] for r in runs]
        rows.append(
            [
                f"streaming {way}",
                f"{percentile_or_zero(first, 50) * 1000:,.0f} ms",
                f"{max(first) * 1000:,.0f} ms",
                f"{percentile_or_zero(whole, 50) * 1000:,.0f} ms",
                f"{sum(r['edits'] for r in runs) / len(runs):.1f}",
            ]
        )
    headers = ["400-token answer", "first token p50", "first token max", "whole answer p50"]
    return markdown_table([*headers, "edits"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.discord_stream")
    parser.add_argument("--repeat", type=int, default=5, help="slash commands each way")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="QUOTABOT_DISCORD_EDIT_INTERVAL"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(run(args.repeat, args.interval))
    markdown = table(results) + "\n"
    print(markdown)
    write_results(
        args.out,
        {"tokens": TOKENS, "pace": PACE, "interval": args.interval, "runs": results},
        markdown,
    )
    print(f"took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
