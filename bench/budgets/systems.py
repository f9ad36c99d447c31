"""quotabot as the benchmark runs it: the real Service, built by :func:`bot.app.open_app` and
configured only through Settings; as a replica, with ``redis_url`` and ``redis_prefix`` too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bench.budgets.harness import Submit
from bench.budgets.workload import Item, Workload
from bot.app import open_app
from bot.config import Settings
from bot.errors import RequestRejected
from bot.models import ChatRequest
from bot.service import Service

REFUSALS: tuple[type[BaseException], ...] = (RequestRejected,)
DEADLINE = 600.0
"""Longer than any run, so quotabot never gives up on a request the window could still serve."""
QUEUE_SIZE = 100_000
"""Holds the whole workload: the default (1,000) would refuse part of the burst up front."""


def settings(
    workload: Workload,
    *,
    base_url: str,
    data_dir: Path,
    batching: bool = True,
    deadline: float = DEADLINE,
    **extra: Any,
) -> Settings:
    """Everything set explicitly (the benchmark clears QUOTABOT_* and OPENAI_* first).

    The budgets start from the sandbox's limits. ``provider_tier="paid"``: the default free
    tier's catalog RPD for gpt-3.5-turbo (200) would otherwise stay in force, and budgets
    cannot switch an RPD off.
    """
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'quotabot.db'}",
        openai_base_url=base_url,
        openai_api_key="sk-bench",
        provider_tier="paid",
        budgets={f"model:{workload.model}": {"rpm": workload.rpm, "tpm": workload.tpm}},
        request_deadline=deadline,
        queue_size=QUEUE_SIZE,
        batching=batching,
        **extra,
    )


def submitter(service: Service, workload: Workload) -> Submit:
    async def submit(item: Item) -> object:
        return await service.handle(
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

    return submit


@asynccontextmanager
async def open_quotabot(config: Settings) -> AsyncIterator[Service]:
    """One quotabot process, exactly as ``open_app`` builds it."""
    async with open_app(config) as app:
        yield app.service
