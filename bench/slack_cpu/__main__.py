"""CPU time of one quotabot process per Slack event and per answer, by process CPU time.

    .venv/bin/python -m bench.slack_cpu            # ~1 min; prints ms per event and per answer

Latency (``bench.slack_ack``) swings with whatever else runs on the machine; the CPU time the
serve process spends (``/proc/<pid>/stat``) hardly does, so this is the figure to compare
changes with. Two processes, the same setup as ``bench.slack_ack``:

* events: one answer at a time (``QUOTABOT_CONCURRENT_ANSWERS=1``), 300 events/s for 10 s:
  almost nothing is answered, so the CPU time over the window, per event, is what an event
  costs up to and including its wait for a turn;
* answers: 100 at a time, 40 events/s for 5 s, every one answered: the CPU time until the last
  answer is posted, less the events' own cost, per answer.

``BENCH_PYTHONPATH=<an exported checkout>`` runs quotabot from that code instead (as in
``bench.slack_ack``): interleave runs of two commits to compare them. ``BENCH_PROFILE=DIR``
also records each phase with py-spy (``pip install py-spy``; raw folded stacks) into DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common.processes import cpu_times
from bench.common.stats import percentile_or_zero
from bench.slack_ack.processes import Helper, quotabot
from bench.slack_ack.sender import events, load

EVENT_RATE, EVENT_SECONDS = 300.0, 10.0
ANSWER_RATE, ANSWER_SECONDS = 40.0, 5.0
PREWARM = 100
SETTLE = 1.0
"""Seconds after the last ack for group-committed claims to land."""


async def _profiled(pid: int, name: str, seconds: float) -> asyncio.subprocess.Process | None:
    out = os.environ.get("BENCH_PROFILE")
    if not out:
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    return await asyncio.create_subprocess_exec(
        str(py_spy),
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        "200",
        "--duration",
        str(int(seconds)),
        "--output",
        str(Path(out) / f"{name}.txt"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _phase(workdir: Path, name: str, concurrent: int, rate: float, seconds: float) -> float:
    """CPU seconds of quotabot for ``rate`` x ``seconds`` events, until all are answered
    (``concurrent`` > 1) or just acknowledged."""
    data = workdir / name
    data.mkdir()
    n = int(rate * seconds)
    deliveries = events(n, name)
    async with (
        Helper("sandbox", data / "sandbox.log") as sandbox,
        Helper("slack-api", data / "slack_api.log") as slack,
        quotabot(
            provider=f"http://127.0.0.1:{sandbox.port}/v1",
            slack_api=f"http://127.0.0.1:{slack.port}/api/",
            data_dir=data,
            concurrent=concurrent,
        ) as bot,
    ):
        url = f"{bot.url}/slack/events"
        # Warm up (imports, connections, caches) with the same kind of load, then let it end.
        await load(url, events(PREWARM, name + "warm"), 100.0)
        for _ in range(100):
            if concurrent == 1 or (await slack.stats())["answers"] >= PREWARM:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(SETTLE)
        before = (await slack.stats())["answers"]
        profile = await _profiled(bot.pid, name, seconds + (0 if concurrent == 1 else 3))
        cpu0, us0 = bot.cpu(), cpu_times(bot.pid)
        await load(url, deliveries, rate)
        for _ in range(1200 if concurrent > 1 else 0):  # at most a minute
            if (await slack.stats())["answers"] - before >= n:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(SETTLE)
        cpu = bot.cpu() - cpu0
        us1 = cpu_times(bot.pid)
        print(f"  {name}: user {us1[0] - us0[0]:.2f} s, system {us1[1] - us0[1]:.2f} s")
        if profile is not None:
            await profile.wait()
        return cpu


async def main_async(repeat: int) -> None:
    per_event, per_answer = [], []
    for i in range(repeat):
        with tempfile.TemporaryDirectory(prefix="quotabot-slack-cpu-") as tmp:
            events = await _phase(Path(tmp), f"events{i}", 1, EVENT_RATE, EVENT_SECONDS)
            event_ms = 1000 * events / (EVENT_RATE * EVENT_SECONDS)
            answers = await _phase(Path(tmp), f"answers{i}", 100, ANSWER_RATE, ANSWER_SECONDS)
            n = ANSWER_RATE * ANSWER_SECONDS
            answer_ms = (1000 * answers - n * event_ms) / n
        per_event.append(event_ms)
        per_answer.append(answer_ms)
        print(f"run {i + 1}: {event_ms:.2f} ms CPU per event, {answer_ms:.2f} ms per answer")
    if repeat > 1:
        print(
            f"median: {percentile_or_zero(per_event, 50):.2f} ms per event, "
            f"{percentile_or_zero(per_answer, 50):.2f} ms per answer"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slack_cpu", description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    started = time.monotonic()
    asyncio.run(main_async(parser.parse_args().repeat))
    print(f"{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
