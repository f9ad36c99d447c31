"""The load generator of ``bench.slack_ack``: an open-loop sender of signed Slack events.

Distinct signed ``app_mention`` events (new ts and event_id each, ``CHANNELS`` channels) at a
fixed rate, over one aiohttp session with a keep-alive pool (not httpx: its pool's cost grows
with queued requests times connections, and made the sender the bottleneck). Latency is
measured from the moment each event was due to be sent (so a backlog in the sender or its pool
counts against the ack, not hidden) to its HTTP response.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import httpx

from bench.slack_ack.processes import SECRET

CHANNELS = 64
POOL = 64
"""Keep-alive connections from the load generator (Slack itself opens many)."""
WARMUP = 20

Delivery = tuple[bytes, dict[str, str]]
Sent = tuple[float, float, int]
"""(how late the sender was, latency, HTTP status or 0), in seconds from when it was due."""


def events(n: int, tag: str) -> list[Delivery]:
    """``n`` distinct signed app_mention deliveries, built before the clock starts."""
    from fakes import slack_events as ev

    out = []
    for i in range(n):
        payload = ev.app_mention(f"bench {tag} question {i}", channel=f"CBENCH{i % CHANNELS:04d}")
        body = ev.encode_event(payload)
        headers = {"Content-Type": "application/json", **ev.signed_request(body, SECRET)}
        out.append((body, headers))
    return out


async def _fire(
    client: aiohttp.ClientSession,
    url: str,
    delivery: Delivery,
    due: float,
    out: list[Sent],
) -> None:
    started = time.perf_counter()
    try:
        async with client.post(url, data=delivery[0], headers=delivery[1]) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    out.append((started - due, time.perf_counter() - due, status))


async def load(url: str, deliveries: list[Delivery], rate: float) -> tuple[list[Sent], float]:
    """Open loop: event ``i`` is due at ``start + i / rate`` whether or not earlier ones were
    answered. Returns [(lag, latency, status)] and the wall time from start to the last ack."""
    out: list[Sent] = []
    # aiohttp, not httpx: httpcore's pool costs O(queued x connections) per request, which
    # made this load generator, not quotabot, the bottleneck once requests queued.
    connector = aiohttp.TCPConnector(limit=POOL)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        tasks = []
        start = time.perf_counter() + 0.05
        for i, delivery in enumerate(deliveries):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_fire(client, url, delivery, due, out)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return out, elapsed


async def warm_up(url: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for body, headers in events(WARMUP, "warmup"):
            response = await client.post(url, content=body, headers=headers)
            response.raise_for_status()
