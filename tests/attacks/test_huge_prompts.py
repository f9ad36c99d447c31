"""A prompt of nearly 1 MiB in one word, signed and well formed, sent to a running
``quotabot serve``: it is counted off the event loop (tiktoken took about a second for it,
during which no other request was even acknowledged), then refused with a message that says
what to do; signed mentions sent meanwhile are acknowledged at once and answered."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from fakes import slack_events as ev
from fakes.slack_workspace import DEFAULT_CHANNEL
from tests.attacks.serve import SECRET, serving


async def test_a_megabyte_prompt_neither_stalls_the_server_nor_reaches_the_provider(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path) as server:
        await server.ask_slack("q warm up")
        before = server.rss()
        huge = ev.app_mention("q " + "a" * 1_000_000)
        del huge["event"]["blocks"]  # the text once: the body stays under 1 MiB
        server.slack.seed_event(huge)
        async with httpx.AsyncClient(timeout=10) as http:
            response = await ev.post_event(http, server.slack_url, huge, SECRET)
        assert response.status_code == 200
        acks = []
        started = time.monotonic()
        while time.monotonic() - started < 3:
            acked, _ = await server.ask_slack(f"q meanwhile {len(acks)}")
            acks.append(acked)
        thread = server.slack.messages(DEFAULT_CHANNEL, huge["event"]["ts"])
        answered, rows = await server.settled()
        after = server.rss()
    print(
        f"\n1 MB prompt: honest acks max {max(acks) * 1000:.0f} ms over {len(acks)};"
        f" RSS {before:.0f} -> {after:.0f} MB"
    )
    assert max(acks) < 0.25, acks
    assert any("shorten the prompt" in t for t in thread), [t[:200] for t in thread]
    assert answered == rows == len(acks) + 1  # the huge one never reached the provider
