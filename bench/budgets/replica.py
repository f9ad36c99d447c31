"""Two quotabot processes sharing one budget in Redis, against one sandbox.

The orchestrator (:func:`run_replicas`) starts a sandbox and each worker as
``python -m bench.budgets.replica SPEC``, with ``QUOTABOT_REDIS_URL`` and
``QUOTABOT_REDIS_PREFIX`` (a prefix of the run's own) in its environment. A worker rebuilds the
(seeded) workload, keeps its half of every channel's requests, opens quotabot with ``open_app``,
announces itself, and waits for ``go <unix time>`` on stdin so both start together. At the end
of the window it cancels what is still waiting and writes its outcomes to the file the spec
names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.budgets import systems
from bench.budgets.harness import CallStats, Result, configure_logging, drive
from bench.budgets.sandbox_host import Sandbox
from bench.budgets.workload import Item, Workload, chat_workload
from bench.common.processes import Child, announce
from bot.budget.redis import RedisBackend

READY_TIMEOUT = 60.0
START_DELAY = 0.5
"""Seconds between ``go`` and the start, so both workers hear it before it is time."""


@dataclass(frozen=True, slots=True)
class Spec:
    window: float
    seed: int
    replica: int
    replicas: int
    base_url: str
    data_dir: str
    results: str

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Spec:
        return cls(**json.loads(path.read_text()))

    def write_results(self, results: list[Result]) -> None:
        Path(self.results).write_text(json.dumps([r.to_json() for r in results]))

    def read_results(self) -> list[Result]:
        return [Result.from_json(r) for r in json.loads(Path(self.results).read_text())]

    @property
    def stderr(self) -> Path:
        return Path(self.data_dir) / "stderr.log"

    def logged(self) -> str:
        return self.stderr.read_text() if self.stderr.exists() else ""


def share(workload: Workload, replica: int, replicas: int) -> list[Item]:
    """This replica's requests: every ``replicas``-th request of each channel, as a load
    balancer spreading a channel's events over the replicas would."""
    seen = [0] * workload.channels
    mine = []
    for item in workload.items:
        if seen[item.channel] % replicas == replica:
            mine.append(item)
        seen[item.channel] += 1
    return mine


# -- the worker ------------------------------------------------------------------------------


async def _worker(spec: Spec) -> None:
    workload = chat_workload(window=spec.window, seed=spec.seed)
    config = systems.settings(workload, base_url=spec.base_url, data_dir=Path(spec.data_dir))
    async with systems.open_quotabot(config) as service:
        announce(replica=spec.replica)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        command, _, when = line.partition(" ")
        if command != "go":
            raise SystemExit(f"expected 'go <time>', got {line!r}")
        start = time.monotonic() + (float(when) - time.time())
        results = await drive(
            share(workload, spec.replica, spec.replicas),
            systems.submitter(service, workload),
            window=workload.window,
            start=start,
            refusals=systems.REFUSALS,
        )
    spec.write_results(results)


def main() -> None:
    configure_logging()
    asyncio.run(_worker(Spec.load(Path(sys.argv[1]))))


# -- the orchestrator ------------------------------------------------------------------------


async def redis_problem(url: str) -> str | None:
    """Why Redis at ``url`` cannot be used, or None when it answers."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        await client.ping()
    except Exception as exc:  # any reason at all means: skip the row
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None


@dataclass(frozen=True, slots=True)
class ReplicaRun:
    results: list[Result]
    calls: CallStats
    warnings: list[str]
    """What the workers logged (WARNING and above), each distinct line once."""


async def run_replicas(
    workload: Workload, *, redis_url: str, tmp: Path, replicas: int = 2, in_process: bool = False
) -> ReplicaRun:
    """Every request of ``workload`` through ``replicas`` worker processes against one sandbox:
    their outcomes, what the sandbox saw by the end of the window, and what they logged."""
    prefix = f"quotabot-bench-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "QUOTABOT_REDIS_URL": redis_url, "QUOTABOT_REDIS_PREFIX": prefix}
    specs = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            sandbox = await stack.enter_async_context(
                Sandbox(workload, log=tmp / "replicas-sandbox.log", in_process=in_process)
            )
            workers = []
            for k in range(replicas):
                base = tmp / f"replica-{k}"
                base.mkdir(parents=True, exist_ok=True)
                spec = Spec(
                    window=workload.window,
                    seed=workload.seed,
                    replica=k,
                    replicas=replicas,
                    base_url=sandbox.base_url,
                    data_dir=str(base),
                    results=str(base / "results.json"),
                )
                spec.dump(base / "spec.json")
                specs.append(spec)
                worker = Child(
                    "bench.budgets.replica",
                    str(base / "spec.json"),
                    log=spec.stderr,
                    env=env,
                    timeout=READY_TIMEOUT,
                )
                workers.append(await stack.enter_async_context(worker))
            start_at = time.time() + START_DELAY
            start = time.monotonic() + START_DELAY
            for worker in workers:
                await worker.tell(f"go {start_at}")
            await asyncio.sleep(max(0.0, start + workload.window - time.monotonic()))
            calls = await sandbox.calls(workload.model)
            for spec, worker in zip(specs, workers, strict=True):
                if await asyncio.wait_for(worker.wait(), READY_TIMEOUT) != 0:
                    raise RuntimeError(f"a replica failed: {spec.logged()[-2000:]}")
    finally:
        async with RedisBackend(redis_url, prefix=prefix) as backend:
            with contextlib.suppress(Exception):
                await backend.delete_all()
    results: list[Result] = []
    warnings: list[str] = []
    for spec in specs:
        results += spec.read_results()
        warnings += [
            f"replica {spec.replica}: {line}"
            for line in spec.logged().splitlines()
            if line.startswith(("WARNING", "ERROR", "CRITICAL"))
        ]
    return ReplicaRun(sorted(results, key=lambda r: r.index), calls, list(dict.fromkeys(warnings)))


if __name__ == "__main__":
    main()
