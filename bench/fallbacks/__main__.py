"""A cheaper answer instead of a refusal, under the budgets benchmark's workload.

    .venv/bin/python -m bench.fallbacks [--quick] [--seed N] [--out PATH]

The chat workload of ``bench.budgets`` (gpt-3.5-turbo, 600 RPM / 60,000 TPM at a fresh
sandbox in a process of its own, demand three times what the RPM lets through in the window)
meets a spend cap on gpt-3.5-turbo set to run out halfway: at half of what its limits let it
answer in the window. Twice, in the same run:

- **no fallback** (before): every request the cap refuses is a refused user request;
- **fallback** to gpt-4o-mini (``[budgets.channel] fallbacks``), which the sandbox serves
  under its own 600 RPM / 60,000 TPM.

"Allowed" is what the primary's spend cap allows plus what the fallback's limits allow once
the primary stopped, never more than the demand:

- the primary's share is its answers scaled to its whole cap (answers / share of the cap
  spent), so a cap left partly unspent counts against the figure;
- the fallback's buckets are full when the primary stops, so to the end of the window they
  let through ``rpm + rpm · t / 60`` requests, or as many of its answers' mean tokens as
  ``tpm + tpm · t / 60`` holds, whichever is less;
- the primary stopped when the sandbox took its last call or the fallback's first, whichever
  came first (the sandbox logs when it takes each call): a system slow to switch loses the
  time it took. Not when the first request the fallback answered had arrived: that one waited
  its turn for the primary first, up to 0.8 s in which the fallback was not needed yet.

Served / allowed is the figure; "failed" counts user
requests that got an error or a refusal.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

from bench.budgets.harness import CallStats, Result, WarningLog, configure_logging, drive
from bench.budgets.sandbox_host import Sandbox
from bench.budgets.systems import DEADLINE, QUEUE_SIZE
from bench.budgets.workload import Item, Workload, chat_workload
from bench.common.tables import markdown_table, write_results
from bot.app import open_app
from bot.catalog import Catalog
from bot.config import Settings
from bot.errors import RequestRejected
from bot.models import ChatRequest

RESULTS = Path(__file__).resolve().parent / "results" / "fallbacks.json"
FALLBACK = "gpt-4o-mini"
WINDOW, QUICK_WINDOW = 20.0, 8.0
LEAD = 0.3


@dataclass
class Run:
    name: str
    results: list[Result]
    models: dict[int, str] = field(default_factory=dict)
    """Which model answered each request (by index)."""
    primary_spend: Decimal = Decimal(0)
    """USD the primary's answers cost: how much of its spend cap it used."""
    admitted: dict[str, list[float]] = field(default_factory=dict)
    """Seconds from the start to each call the sandbox took and answered, by model."""
    fallback_tokens: list[int] = field(default_factory=list)
    """Each fallback answer's tokens (prompt and answer, as the provider counted them): the
    fallback counts its own tokens, in its own encoding."""
    warnings: list[str] = field(default_factory=list)
    calls: dict[str, CallStats] = field(default_factory=dict)
    """What the sandbox saw of each model by the end of the window."""


def spend_cap(workload: Workload) -> Decimal:
    """USD that half of what the primary can answer in the window costs, each request at the
    workload's mean cost (its prompt and the sandbox's answer)."""
    info = Catalog.build(tier="paid").get(workload.model)
    assert info.input_price is not None and info.output_price is not None
    prompt = sum(i.prompt_tokens for i in workload.items) / len(workload.items)
    answer = sum(i.completion_tokens for i in workload.items) / len(workload.items)
    per_request = (info.input_price * Decimal(prompt) + info.output_price * Decimal(answer)) / 1000
    half = Decimal(workload.capacity().maximum) / 2
    return (per_request * half).quantize(Decimal("0.000001"))


def settings(workload: Workload, base_url: str, data_dir: Path, *, fallback: bool) -> Settings:
    budgets: dict[str, dict[str, object]] = {
        f"model:{workload.model}": {
            "rpm": workload.rpm,
            "tpm": workload.tpm,
            "spend_day": spend_cap(workload),
        },
        f"model:{FALLBACK}": {"rpm": workload.rpm, "tpm": workload.tpm},
    }
    if fallback:
        budgets["channel"] = {"fallbacks": [workload.model, FALLBACK]}
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'quotabot.db'}",
        openai_base_url=base_url,
        openai_api_key="sk-bench",
        provider_tier="paid",
        budgets=budgets,  # type: ignore[arg-type]
        request_deadline=DEADLINE,
        queue_size=QUEUE_SIZE,
    )


async def run(workload: Workload, tmp: Path, *, fallback: bool, in_process: bool) -> Run:
    random.seed(workload.seed)
    out = Run("fallback to " + FALLBACK if fallback else "no fallback (before)", [])
    start = time.monotonic() + LEAD
    async with (
        Sandbox(workload, log=tmp / "sandbox.log", in_process=in_process) as sandbox,
        _app(
            settings(workload, sandbox.base_url, Path(tempfile.mkdtemp(dir=tmp)), fallback=fallback)
        ) as app,
    ):

        async def submit(item: Item) -> object:
            reply = await app.service.handle(
                ChatRequest(
                    platform="bench",
                    workspace="W",
                    channel=item.channel_name,
                    user=item.user,
                    messages=item.messages,
                    model=workload.model,
                    max_tokens=item.max_tokens,
                )
            )
            out.models[item.index] = reply.model
            if reply.fallback:
                out.fallback_tokens.append(reply.usage.total_tokens)
            elif reply.cost is not None:
                out.primary_spend += reply.cost
            return reply

        async def at_end() -> None:
            out.calls = {m: await sandbox.calls(m) for m in (workload.model, FALLBACK)}
            epoch = time.time() - (time.monotonic() - start)  # the start, in Unix time
            for m in (workload.model, FALLBACK):
                out.admitted[m] = [t - epoch for t in await sandbox.admitted(m)]

        with WarningLog() as log:
            out.results = await drive(
                workload.items,
                submit,
                window=workload.window,
                start=start,
                refusals=(RequestRejected,),
                at_end=at_end,
            )
        out.warnings = log.lines
    return out


@asynccontextmanager
async def _app(config: Settings) -> AsyncIterator[object]:
    async with open_app(config) as app:
        yield app


def switched_at(workload: Workload, r: Run) -> float | None:
    """Seconds from the start to the moment the primary stopped: the sandbox took its last call,
    or the fallback's first if that came sooner; None if the fallback never answered."""
    fallback = r.admitted.get(FALLBACK)
    if not fallback:
        return None
    return min(max(r.admitted.get(workload.model, [0.0])), min(fallback))


def allowed(workload: Workload, r: Run) -> int:
    """What the primary's spend cap allows, plus what the fallback's limits allow once the
    primary stopped.

    The primary's share is its answers scaled to the whole cap (answers / share of the cap
    spent): a cap stopped short of its end, as when a cap refused while calls in flight still
    held reservations they gave back later, counts against the figure."""
    primary = sum(
        1 for x in r.results if x.outcome == "ok" and r.models.get(x.index) == workload.model
    )
    used = r.primary_spend / spend_cap(workload)
    by_primary = primary / float(used) if used else 0.0
    switch = switched_at(workload, r)
    by_fallback = 0.0
    if switch is not None:
        left = max(0.0, workload.window - switch)
        mean_cost = sum(r.fallback_tokens) / len(r.fallback_tokens)
        scale = 1 + left / 60
        by_fallback = min(workload.rpm * scale, workload.tpm * scale / mean_cost)
    return min(len(workload.items), math.floor(by_primary + by_fallback))


def row(workload: Workload, r: Run) -> dict[str, object]:
    ok = [x for x in r.results if x.outcome == "ok"]
    by_fallback = sum(1 for x in ok if r.models.get(x.index) == FALLBACK)
    refused = sum(1 for x in r.results if x.outcome == "refused")
    failed = sum(1 for x in r.results if x.outcome == "failed")
    allow = allowed(workload, r)
    return {
        "system": r.name,
        "served": len(ok),
        "by_primary": len(ok) - by_fallback,
        "by_fallback": by_fallback,
        "refused": refused,
        "errors": failed,
        "failed_user_requests": refused + failed,
        "allowed": allow,
        "served_of_allowed": len(ok) / allow if allow else 0.0,
        "fallback_from_s": switched_at(workload, r),
        "primary_cap_used": float(r.primary_spend / spend_cap(workload)),
        "provider_calls": {m: asdict(c) for m, c in r.calls.items()},
        "warnings": r.warnings,
    }


def table(rows: list[dict[str, object]]) -> str:
    heads = [
        "system",
        "served",
        "by primary",
        "primary's cap used",
        "by fallback",
        "failed requests",
        "allowed",
        "served / allowed",
        "switched at",
    ]

    def cells(x: dict[str, object]) -> list[str]:
        since = x["fallback_from_s"]
        return [
            str(x["system"]),
            f"{x['served']:,}",
            f"{x['by_primary']:,}",
            f"{float(x['primary_cap_used']):.1%}",  # type: ignore[arg-type]
            f"{x['by_fallback']:,}",
            f"{x['failed_user_requests']:,}",
            f"{x['allowed']:,}",
            f"{float(x['served_of_allowed']):.1%}",  # type: ignore[arg-type]
            f"{since:.1f} s" if isinstance(since, float) else "-",
        ]

    return markdown_table(heads, [cells(x) for x in rows])


async def bench(args: argparse.Namespace) -> None:
    window = QUICK_WINDOW if args.quick else WINDOW
    workload = chat_workload(window=window, seed=args.seed)
    cap = spend_cap(workload)
    print(
        f"{len(workload.items):,} requests for {workload.model} over {window:.0f} s "
        f"(capacity {workload.capacity().maximum:,}), its spend cap ${cap} (half of that)",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for fallback in (False, True):
            r = await run(
                workload, Path(tmp), fallback=fallback, in_process=args.sandbox_in_process
            )
            rows.append(row(workload, r))
            print(f"  ran {r.name}: {rows[-1]['served']:,} answers", flush=True)
    text = table(rows)
    print(text)
    intro = (
        f"# Fallbacks\n\n`python -m bench.fallbacks{' --quick' if args.quick else ''}`: "
        f"{len(workload.items):,} requests for {workload.model} over {window:.0f} s, its spend "
        f"cap ${cap} (half of what it can answer in the window), fallback {FALLBACK}.\n\n"
    )
    data = {"workload": workload.summary(), "spend_cap": str(cap), "rows": rows}
    write_results(args.out, data, intro + text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fallbacks")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--sandbox-in-process", action="store_true")
    args = parser.parse_args()
    for name in list(os.environ):
        if name.startswith(("QUOTABOT_", "OPENAI_")):
            del os.environ[name]
    configure_logging()
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
