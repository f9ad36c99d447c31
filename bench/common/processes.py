"""What the benchmarks that run quotabot and its peers as processes of their own share."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def stop_child(proc: asyncio.subprocess.Process | None) -> None:
    """A helper process (sandbox, fake APIs) ends when its stdin closes; killed after 5 s."""
    if proc is None or proc.returncode is not None:
        return
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 5)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def stop_quotabot(proc: asyncio.subprocess.Process | None, wait: float) -> None:
    """SIGTERM (quotabot then lets answers under way finish), killed after ``wait`` seconds."""
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), wait)
    except TimeoutError:
        proc.kill()
        await proc.wait()
