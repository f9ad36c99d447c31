"""Legacy-completions questions queued in Slack: answers per minute with batching on and off.

    .venv/bin/python -m bench.slack_batching              # 20 questions each way, ~1 min
    .venv/bin/python -m bench.slack_batching --questions 40 --rpm 20

Slack streams every answer, and batching used to be off for any streamed request, so it never
applied there. Now a legacy-completions request that has to wait for the per-minute request
limit joins a batch. Here ``--questions`` signed app_mentions reach one Slack adapter (the real
signed endpoint, bolt, the chat layer) at once, for gpt-3.5-turbo-instruct under a per-minute
request limit of ``--rpm``; the sandbox answers and the fake Slack Web API records the posts.
Reported, each way in the same run: the time until every question had its answer, answers
per minute, and the provider calls made.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx

from adapters.slack import SlackAdapter, SlackConfig
from bench.common.tables import markdown_table, write_results
from bot.app import open_app
from bot.config import load_settings
from bot.sandbox import SandboxConfig, SandboxServer
from bot.web import WebServer
from fakes import slack_events as ev
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from fakes.slack_workspace import DEFAULT_CHANNEL

RESULTS = Path(__file__).resolve().parent / "results" / "slack_batching.json"
MODEL = "gpt-3.5-turbo-instruct"
SECRET = "bench-signing-secret"


async def one_way(*, batching: bool, questions: int, rpm: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="quotabot-bench-") as data:
        os.environ.update(
            QUOTABOT_DATA_DIR=data,
            QUOTABOT_DEFAULT_MODEL=MODEL,
            QUOTABOT_BATCHING="true" if batching else "false",
            QUOTABOT_REQUEST_DEADLINE="600",
        )
        async with (
            SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None)) as sandbox,
            FakeSlackAPI() as api,
        ):
            os.environ.update(OPENAI_BASE_URL=sandbox.base_url, OPENAI_API_KEY="sk-bench")
            async with open_app(load_settings()) as app:
                await app.limits.set(f"model:{MODEL}", "rpm", str(rpm), by="bench")
                await app.budget.reload()
                adapter = SlackAdapter(
                    SlackConfig(bot_token=DEFAULT_TOKEN, signing_secret=SECRET, api_url=api.url),
                    service=app.service,
                    commands=app.commands(),
                    events=app.events,
                )
                server = WebServer(adapter.routes(), host="127.0.0.1", port=0)
                await server.start()
                try:
                    async with httpx.AsyncClient(timeout=30) as http:
                        url = f"{server.url}/slack/events"
                        mentions = [
                            api.seed_event(ev.app_mention(f"question {i}: say something"))
                            for i in range(questions)
                        ]
                        started = time.monotonic()
                        for m in mentions:
                            await ev.post_event(http, url, m, SECRET)
                        roots = [str(m["event"]["ts"]) for m in mentions]
                        for _ in range(12_000):  # ten minutes at most
                            if all(_answered(api, ts) for ts in roots):
                                break
                            await asyncio.sleep(0.05)
                        else:
                            raise SystemExit("not every question was answered in 10 minutes")
                        elapsed = time.monotonic() - started
                finally:
                    await server.aclose()
                    await adapter.aclose(grace=5)
            calls = sandbox.stats.models[MODEL].requests
    return {"seconds": elapsed, "per_minute": questions / elapsed * 60, "calls": calls}


def _answered(api: FakeSlackAPI, ts: str) -> bool:
    return any(m.startswith("Sandbox") for m in api.messages(DEFAULT_CHANNEL, ts))


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--questions", type=int, default=20)
    p.add_argument("--rpm", type=int, default=10, help="the model's requests per minute")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    results = {}
    for batching in (False, True):
        name = "batching on" if batching else "batching off"
        results[name] = await one_way(batching=batching, questions=args.questions, rpm=args.rpm)
    off, on = results["batching off"], results["batching on"]
    table = markdown_table(
        ["way", "all answered (s)", "answers/min", "provider calls"],
        [
            [name, f"{r['seconds']:.1f}", f"{r['per_minute']:.0f}", str(int(r["calls"]))]
            for name, r in results.items()
        ],
    )
    ratio = on["per_minute"] / off["per_minute"]
    text = (
        f"{args.questions} questions at once in Slack, {MODEL} at {args.rpm} RPM\n\n{table}\n\n"
        f"answers per minute, batching on / off: x{ratio:.1f}\n"
    )
    print(text)
    write_results(args.out, {"args": vars(args) | {"out": str(args.out)}, **results}, text)


if __name__ == "__main__":
    asyncio.run(main())
