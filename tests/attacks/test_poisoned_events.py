"""Attack: signed Slack events whose IDs or text the database would refuse, mixed into a burst
of honest ones, against a running `quotabot serve` on PostgreSQL that stores message text.

Before, one such event failed the group commit it shared with innocent ones: their usage rows
went to a spool that retried the poisoned group forever, and innocent events were answered
twice. Now: every honest event is answered exactly once and recorded exactly once, each bad one
is acknowledged and never answered, nothing is left spooled, and no log line carries text.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx

from bot.store import Database, migrate
from fakes import slack_events as ev
from fakes.slack_api import FakeSlackAPI
from fakes.slack_workspace import DEFAULT_CHANNEL
from tests.attacks.serve import SECRET, serving

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
    settings = {"QUOTABOT_DATABASE_URL": postgres_url, "QUOTABOT_STORE_MESSAGE_TEXT": "true"}
    async with serving(tmp_path, verbose=True, **settings) as server:
        api = server.slack
        honest = [
            api.seed_event(ev.app_mention(f"question {n} {MARK}\x00 with a NUL"))
            for n in range(HONEST)
        ]
        burst = honest[:20] + bad_events(api) + honest[20:]
        async with httpx.AsyncClient(timeout=10) as http:
            posted = await asyncio.gather(
                *(ev.post_event(http, server.slack_url, p, SECRET) for p in burst)
            )
        assert [r.status_code for r in posted] == [200] * len(burst)
        for _ in range(400):
            if server.sandbox.stats.total.requests >= HONEST:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # anything doubled would show by now
        for payload in honest:
            ts = payload["event"]["ts"]  # type: ignore[index]
            answers = [m for m in api.messages(DEFAULT_CHANNEL, ts) if m.startswith("Sandbox")]
            assert len(answers) == 1, f"{ts}: {answers}"
        assert server.sandbox.stats.total.requests == HONEST  # the bad ones never answered
    written = server.logged()

    db = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        rows = await db.fetch("SELECT request_id, outcome, prompt_text FROM usage")
    finally:
        await db.close()
    assert len(rows) == HONEST and all(r["outcome"] == "ok" for r in rows)
    assert all("\x00" not in r["prompt_text"] and MARK in r["prompt_text"] for r in rows)
    assert not (tmp_path / "usage-spool.jsonl").exists()  # nothing waits for a retry
    assert not (tmp_path / "usage-quarantine.jsonl").exists()  # nothing had to be set aside
    assert "DEBUG" in written  # --verbose: the most quotabot ever logs
    assert MARK not in written
