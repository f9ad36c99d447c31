"""Attack: signed Slack events whose IDs or text the database would refuse, mixed into a burst
of honest ones, against a running `quotabot serve` on PostgreSQL that stores message text.

Before, one such event failed the group commit it shared with innocent ones: their usage rows
went to a spool that retried the poisoned group forever, and innocent events were answered
twice. Now: every honest event is answered exactly once and recorded exactly once, each bad one
is acknowledged and never answered, nothing is left spooled, and no log line carries text.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import httpx

from bot.sandbox import SandboxConfig, SandboxServer
from bot.store import Database, migrate
from tests.fakes import slack_events as ev
from tests.fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI
from tests.fakes.slack_workspace import DEFAULT_CHANNEL
from tests.ports import free_port

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
MARK = "zebra-crossing-7741"
"""In every honest question: no log line may ever show it."""
HONEST = 40


def bad_events(api: FakeSlackAPI) -> list[dict[str, object]]:
    out = []
    for field in (
        {"channel": "C0\x00INJECT"},
        {"user": "U" * 500},
        {"ts": "1712345678.000100\x00"},
        {"team": "T" * 300},
        {"thread_ts": "\x00"},
    ):
        payload = api.seed_event(ev.app_mention(f"bad {MARK}"))
        payload["event"].update(field)  # type: ignore[union-attr]
        out.append(payload)
    return out


async def test_a_burst_with_poisoned_events_loses_nothing_and_answers_each_once(
    tmp_path: Path, postgres_url: str
) -> None:
    async with Database(postgres_url) as database:  # as `quotabot db upgrade` does
        await migrate.upgrade(database)
    async with (
        SandboxServer(SandboxConfig(rpm=None, tpm=None, rpd=None, latency=0.05)) as sandbox,
        FakeSlackAPI(streaming_supported=False) as api,
    ):
        port = free_port()
        log_path = tmp_path / "serve.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QUOTABOT_", "SLACK_"))}
        env.update(
            QUOTABOT_DATA_DIR=str(tmp_path),
            QUOTABOT_DATABASE_URL=postgres_url,
            QUOTABOT_HTTP_PORT=str(port),
            QUOTABOT_PROVIDER_TIER="paid",
            QUOTABOT_STORE_MESSAGE_TEXT="true",
            OPENAI_BASE_URL=sandbox.base_url,
            OPENAI_API_KEY="sk-test",
            SLACK_BOT_TOKEN=DEFAULT_TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=api.url,
        )
        with log_path.open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "bot.cli", "--verbose", "serve", "--no-scheduler"),
                env=env,
                stderr=log,
            )
            url = f"http://127.0.0.1:{port}"
            try:
                async with httpx.AsyncClient(timeout=10) as http:
                    for _ in range(300):
                        try:
                            if (await http.get(f"{url}/healthz")).status_code == 200:
                                break
                        except httpx.HTTPError:
                            await asyncio.sleep(0.05)
                    honest = [
                        api.seed_event(ev.app_mention(f"question {n} {MARK}\x00 with a NUL"))
                        for n in range(HONEST)
                    ]
                    burst = honest[:20] + bad_events(api) + honest[20:]
                    posted = await asyncio.gather(
                        *(ev.post_event(http, f"{url}/slack/events", p, SECRET) for p in burst)
                    )
                    assert [r.status_code for r in posted] == [200] * len(burst)
                    for _ in range(400):
                        if sandbox.stats.total.requests >= HONEST:
                            break
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(1.0)  # anything doubled would show by now
            finally:
                if proc.returncode is None:
                    proc.terminate()
                await asyncio.wait_for(proc.wait(), 30)

        for payload in honest:
            ts = payload["event"]["ts"]  # type: ignore[index]
            answers = [m for m in api.messages(DEFAULT_CHANNEL, ts) if m.startswith("Sandbox")]
            assert len(answers) == 1, f"{ts}: {answers}"
        assert sandbox.stats.total.requests == HONEST  # the bad ones were never answered

    db = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        rows = await db.fetch("SELECT request_id, outcome, prompt_text FROM usage")
    finally:
        await db.close()
    assert len(rows) == HONEST and all(r["outcome"] == "ok" for r in rows)
    assert all("\x00" not in r["prompt_text"] and MARK in r["prompt_text"] for r in rows)
    assert not (tmp_path / "usage-spool.jsonl").exists()  # nothing waits for a retry
    assert not (tmp_path / "usage-quarantine.jsonl").exists()  # nothing had to be set aside
    written = log_path.read_text(errors="replace")
    assert "DEBUG" in written  # --verbose: the most quotabot ever logs
    assert MARK not in written
