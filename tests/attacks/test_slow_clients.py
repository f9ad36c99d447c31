"""Slow and hostile clients against a running ``quotabot serve``, none of them authenticated.

1,000 connections that each announce a 1 MiB body and trickle it: the process's memory stays
within 50 MB of where it started (each body is read within a deadline, and only as many at
once as ``bot.web.POOLS`` holds), and a signed Slack mention sent meanwhile is answered, once.
Slowloris headers and bodies, and idle connections, are cut off on time; a client that goes
away mid-body is one INFO line, not an ERROR with a traceback.

The deadlines are shortened here (``QUOTABOT_HTTP_READ_TIMEOUT``, ...) to keep the tests
short; the defaults are checked in tests/bot/test_web.py.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.web import MAX_BODY
from tests.attacks.serve import Served, serving

CONNECTIONS = 1000
PIECE, PAUSE = 4096, 0.1
"""A trickle: 4 KiB every 0.1 s, so 1 MiB would take 26 s."""


async def _trickle(port: int, size: int, *, give_up: float) -> str:
    """Announce ``size`` bytes and send them slowly; what the server said, or how the
    connection ended."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return f"connect: {type(exc).__name__}"
    writer.write(
        f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n".encode()
    )

    async def send() -> None:
        sent = 0
        while sent < size - 1:  # never the last byte
            n = min(PIECE, size - 1 - sent)
            writer.write(b"x" * n)
            await writer.drain()
            sent += n
            await asyncio.sleep(PAUSE)

    sending = asyncio.create_task(send())
    try:
        line = await asyncio.wait_for(reader.readline(), give_up)
        return line.decode().split(" ", 2)[1] if line else "closed"
    except (ConnectionError, TimeoutError) as exc:
        return type(exc).__name__
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()


async def _honest_meanwhile(server: Served, until: asyncio.Task[object]) -> list[float]:
    """Signed mentions, one after another while ``until`` runs: seconds to each ack."""
    acks: list[float] = []
    n = 0
    while not until.done():
        n += 1
        acked, _ = await server.ask_slack(f"q honest {n}")
        acks.append(acked)
        await asyncio.sleep(0.2)
    return acks


async def test_a_thousand_trickled_bodies_neither_pin_memory_nor_starve_honest_requests(
    tmp_path: Path,
) -> None:
    async with serving(tmp_path, QUOTABOT_HTTP_READ_TIMEOUT="3") as server:
        await server.ask_slack("q warm up")  # encodings, bolt and the database, loaded once
        before = server.rss()
        peak = before
        attack = asyncio.gather(
            *[_trickle(server.port, MAX_BODY, give_up=15) for _ in range(CONNECTIONS)]
        )
        started = time.monotonic()
        honest = asyncio.create_task(_honest_meanwhile(server, attack))
        while not attack.done():
            peak = max(peak, server.rss())
            await asyncio.sleep(0.05)
        outcomes = await attack
        took = time.monotonic() - started
        acks = await honest
        answered, rows = await server.settled()
        after = server.rss()
    counts = {o: outcomes.count(o) for o in set(outcomes)}
    print(
        f"\n{CONNECTIONS} trickled 1 MiB bodies: {counts} in {took:.1f} s; RSS {before:.0f} MB"
        f" -> peak {peak:.0f} -> {after:.0f} MB; {len(acks)} honest mentions, ack max"
        f" {max(acks) * 1000:.0f} ms, mean {sum(acks) / len(acks) * 1000:.0f} ms"
    )
    # Read within the pools (cut off at the deadline: 408), or refused at once (503); a reset
    # when the server closed while the client was still writing.
    assert set(counts) <= {"408", "503", "ConnectionResetError"}, counts
    assert counts.get("408", 0) >= 16, counts
    assert peak - before < 50, (before, peak)
    assert after - before < 50, (before, after)
    # Within Slack's 3 s, past which it retries: an honest event is never lost or doubled.
    # (A tighter bound measured the machine: the first ack, while the thousand connections
    # open, once took 1.06 s on a busy 2-core CI machine.)
    assert len(acks) >= 3 and max(acks) < 3.0, acks
    assert answered == rows == len(acks) + 1  # each honest mention answered once, and recorded


async def _open(server: Served) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def _closed_after(reader: asyncio.StreamReader, within: float) -> tuple[float, bytes]:
    """Seconds until the server answers or closes, and what it said."""
    started = time.monotonic()
    said = await asyncio.wait_for(reader.read(65536), within)
    return time.monotonic() - started, said


async def test_slow_headers_slow_bodies_and_idle_connections_are_cut_off(
    tmp_path: Path,
) -> None:
    settings = {"QUOTABOT_HTTP_KEEPALIVE_TIMEOUT": "2", "QUOTABOT_HTTP_READ_TIMEOUT": "2"}
    async with serving(tmp_path, **settings) as server:
        # Slowloris: the headers, a byte every 0.3 s, never finished.
        reader, writer = await _open(server)
        request = b"POST /slack/events HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100

        async def drip(data: bytes) -> None:
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.3)

        dripping = asyncio.create_task(drip(request))
        took, said = await _closed_after(reader, 10)
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()
        assert said == b"" and 1.5 < took < 4, (took, said)

        # The headers at once, then the body a byte every 0.3 s: 408 at the read deadline.
        reader, writer = await _open(server)
        writer.write(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        dripping = asyncio.create_task(drip(b"{" * 100))
        took, said = await _closed_after(reader, 10)
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()
        assert said.startswith(b"HTTP/1.1 408") and 1.5 < took < 4, (took, said[:40])

        # A connection that sends nothing, and one kept alive after an answer.
        reader, writer = await _open(server)
        took, said = await _closed_after(reader, 10)
        writer.close()
        assert said == b"" and 1.5 < took < 4, took
        reader, writer = await _open(server)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b'"ok"}')).startswith(b"HTTP/1.1 200")
        took, said = await _closed_after(reader, 10)
        writer.close()
        assert said == b"" and 1.5 < took < 4, took

        # A body announced over the limit: 413 at once, without reading it.
        reader, writer = await _open(server)
        writer.write(
            f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}"
            "\r\n\r\n".encode()
        )
        took, said = await _closed_after(reader, 10)
        writer.close()
        assert said.startswith(b"HTTP/1.1 413") and took < 1, (took, said[:40])

        await server.ask_slack("q still there?")
    log = server.logged()
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("where", ["/slack/events", "/discord/interactions"])
async def test_a_client_that_goes_away_mid_body_is_one_info_line(
    tmp_path: Path, where: str
) -> None:
    async with serving(tmp_path) as server:
        for _ in range(3):
            _, writer = await _open(server)
            writer.write(
                f"POST {where} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
                + b"{" * 300
            )
            await writer.drain()
            await asyncio.sleep(0.2)
            writer.transport.abort()  # a reset, as a client that crashed sends
            await asyncio.sleep(0.2)
        await server.ask_slack("q still there?")
    lines = server.logged().splitlines()
    went = [line for line in lines if "went away" in line]
    assert len(went) == 3 and all(" INFO " in line for line in went), went
    assert not [line for line in lines if " ERROR " in line or "Traceback" in line], lines
