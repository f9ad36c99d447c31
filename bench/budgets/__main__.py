"""quotabot's rate budgets against three baselines, on one seeded workload.

    .venv/bin/python -m bench.budgets [--quick] [--seed N] [--out PATH]

Each system gets a fresh sandbox (600 RPM / 60,000 TPM for gpt-3.5-turbo, no RPD) and the same
workload for a fixed window; then quotabot runs as two replicas on Redis, and on a completions
model whose 60 RPM binds, with batching on and off. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.budgets import baselines, systems
from bench.budgets.figures import BatchRun, Comparison, Figures, batch_run, figures, targets
from bench.budgets.harness import CallStats, Result, Submit, WarningLog, configure_logging, drive
from bench.budgets.replica import redis_problem, run_replicas
from bench.budgets.report import Report
from bench.budgets.sandbox_host import Sandbox
from bench.budgets.workload import Workload, batching_workload, chat_workload
from bench.common.tables import write_results
from bot.config import Settings

RESULTS = Path(__file__).resolve().parent / "results" / "budgets.json"
WINDOW, QUICK_WINDOW = 20.0, 8.0
BATCH_WINDOW, QUICK_BATCH_WINDOW = 8.0, 4.0
BATCH_MAX = Settings.model_fields["batch_max"].default
DEFAULT_DEADLINE = Settings.model_fields["request_deadline"].default
LEAD = 0.3
"""Seconds between setting up a system and the first arrival."""

System = Callable[[Workload, str], AbstractAsyncContextManager[Submit]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    seed: int
    quick: bool
    in_process: bool
    redis_url: str
    tmp: Path


@dataclass(frozen=True, slots=True)
class Run:
    results: list[Result]
    calls: CallStats
    warnings: list[str]


async def run_system(
    workload: Workload,
    system: System,
    opts: Options,
    *,
    refusals: tuple[type[BaseException], ...] = (),
) -> Run:
    """``system`` against a fresh sandbox, from a fixed random state."""
    random.seed(opts.seed)  # the SDK's and tenacity's jitter draw from the random module
    calls: list[CallStats] = []
    async with (
        Sandbox(workload, log=opts.tmp / "sandbox.log", in_process=opts.in_process) as sandbox,
        system(workload, sandbox.base_url) as submit,
    ):

        async def at_end() -> None:
            calls.append(await sandbox.calls(workload.model))

        with WarningLog() as log:
            results = await drive(
                workload.items,
                submit,
                window=workload.window,
                start=time.monotonic() + LEAD,
                refusals=refusals,
                at_end=at_end,
            )
    warnings = log.lines + ([f"... {log.count} in all"] if log.count > len(log.lines) else [])
    return Run(results, calls[0], warnings)


def quotabot(tmp: Path, **options: object) -> System:
    """quotabot built by ``open_app`` from Settings (``options`` go to ``systems.settings``)."""

    @asynccontextmanager
    async def open_system(workload: Workload, base_url: str) -> AsyncIterator[Submit]:
        data_dir = Path(tempfile.mkdtemp(dir=tmp))
        config = systems.settings(
            workload,
            base_url=base_url,
            data_dir=data_dir,
            redis_url=None,
            **options,  # type: ignore[arg-type]
        )
        async with systems.open_quotabot(config) as service:
            yield systems.submitter(service, workload)

    return open_system


async def bench(args: argparse.Namespace, tmp: Path) -> Report:
    began = time.monotonic()
    opts = Options(
        seed=args.seed,
        quick=args.quick,
        in_process=args.sandbox_in_process,
        redis_url=args.redis_url,
        tmp=tmp,
    )
    window = QUICK_WINDOW if args.quick else WINDOW
    chat = chat_workload(window=window, seed=args.seed)
    print(intro(chat), flush=True)

    rows: list[Figures] = []
    plan: list[tuple[str, System, tuple[type[BaseException], ...]]] = [
        ("quotabot", quotabot(tmp), systems.REFUSALS),
        ("openai SDK (max_retries=2)", baselines.openai_sdk, ()),
        ("tenacity backoff", baselines.tenacity_backoff, ()),
        ("cookbook parallel processor", baselines.cookbook, ()),
    ]
    for name, system, refusals in plan:
        run = await run_system(chat, system, opts, refusals=refusals)
        rows.append(figures(name, chat, run.results, run.calls, run.warnings))
        print(f"  ran {name}: {rows[-1].served:,} answers", flush=True)

    replicas: Figures | None = None
    redis_skip = await redis_problem(args.redis_url)
    if redis_skip is None:
        random.seed(args.seed)
        rep = await run_replicas(
            chat, redis_url=args.redis_url, tmp=tmp, in_process=args.sandbox_in_process
        )
        replicas = figures(
            "quotabot, 2 replicas on Redis", chat, rep.results, rep.calls, rep.warnings
        )
        rows.insert(1, replicas)
        print(f"  ran 2 replicas: {replicas.served:,} answers", flush=True)
    else:
        print(f"  skipped 2 replicas: Redis at {args.redis_url} is unreachable ({redis_skip})")

    batch_window = QUICK_BATCH_WINDOW if args.quick else BATCH_WINDOW
    batch = batching_workload(window=batch_window, seed=args.seed, batch_max=BATCH_MAX)
    batch_runs: list[BatchRun] = []
    batch_warnings: dict[str, list[str]] = {}
    for label, options in (
        ("quotabot, batching on", {"batching": True}),
        ("quotabot, batching off", {"batching": False}),
        (
            f"quotabot, batching on, default deadline ({DEFAULT_DEADLINE:g} s)",
            {"batching": True, "deadline": DEFAULT_DEADLINE},
        ),
    ):
        run = await run_system(batch, quotabot(tmp, **options), opts, refusals=systems.REFUSALS)
        batch_runs.append(batch_run(label, batch, run.results, run.calls))
        batch_warnings[label] = run.warnings
        print(f"  ran {label}: {batch_runs[-1].served:,} answers", flush=True)

    runtime = time.monotonic() - began
    return report(
        args, chat, batch, rows, replicas, batch_runs, batch_warnings, redis_skip, runtime
    )


def intro(chat: Workload) -> str:
    cap = chat.capacity()
    return (
        f"quotabot budgets benchmark: seed {chat.seed}, window {chat.window:g} s, "
        f"{chat.model} at {chat.rpm:,} RPM / {chat.tpm:,} TPM (sandbox, no RPD)\n"
        f"workload: {len(chat.items):,} requests from {chat.channels} channels, demand "
        f"{chat.demand()}, half at t=0, the rest evenly over the first {chat.window / 4:g} s\n"
        f"theoretical max: min({cap.requests:,.0f} by RPM, {cap.by_tokens:,.1f} by TPM "
        f"= {cap.tokens:,.0f} tokens / {cap.mean_cost:.1f} per answer) = {cap.maximum:,} "
        f"answers ({cap.binding} binds)"
    )


def report(
    args: argparse.Namespace,
    chat: Workload,
    batch: Workload,
    rows: list[Figures],
    replicas: Figures | None,
    batch_runs: list[BatchRun],
    batch_warnings: dict[str, list[str]],
    redis_skip: str | None,
    runtime: float,
) -> Report:
    quotabots = [rows[0]] + ([replicas] if replicas else [])
    base = [f for f in rows if f not in quotabots]
    comparisons = [Comparison(q, b) for q in quotabots for b in base]
    on, off = batch_runs[0], batch_runs[1]
    factor = on.steady_per_minute / off.steady_per_minute if off.steady_per_minute else None
    return Report(
        meta={
            "command": " ".join(["python -m bench.budgets", *sys.argv[1:]]),
            "seed": args.seed,
            "quick": args.quick,
            "sandbox": "this process" if args.sandbox_in_process else "its own process",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "runtime_s": round(runtime, 1),
            "redis": f"skipped: {redis_skip}" if redis_skip else args.redis_url,
        },
        workload=chat,
        rows=rows,
        comparisons=comparisons,
        batch=batch,
        batch_runs=batch_runs,
        batch_warnings=batch_warnings,
        targets=targets(quotabots, comparisons, factor),
    )


def _clean_environment() -> None:
    """Everything is configured explicitly: no QUOTABOT_CONFIG file or key may leak in."""
    for key in list(os.environ):
        if key.startswith(("QUOTABOT_", "OPENAI_")):
            del os.environ[key]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.budgets", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short windows, for a smoke test")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("QUOTABOT_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis for the two-replica run (default: QUOTABOT_REDIS_URL, else the local one)",
    )
    parser.add_argument(
        "--sandbox-in-process",
        action="store_true",
        help="run each sandbox on the benchmark's own event loop instead of its own process",
    )
    args = parser.parse_args()
    configure_logging()
    _clean_environment()
    with tempfile.TemporaryDirectory(prefix="quotabot-bench-") as tmp:
        result = asyncio.run(bench(args, Path(tmp)))
    print(result.text())
    write_results(args.out, result.to_json(), result.markdown())


if __name__ == "__main__":
    main()
