"""Usage rows: one per provider call, answered or failed, chat or transcription."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from bot.catalog import ModelInfo
from bot.errors import StoreError
from bot.models import ChatRequest, TranscriptionRequest
from bot.store.rows import UsageRow
from bot.store.usage import UsageStore

log = logging.getLogger(__name__)


def row(
    request: ChatRequest | TranscriptionRequest,
    model: ModelInfo,
    call_id: str,
    outcome: str,
    *,
    prompt_text: str | None = None,
) -> UsageRow:
    """The row of one call of ``request``, with nothing counted yet: what the call took is
    filled in with ``dataclasses.replace`` once it is known."""
    return UsageRow(
        call_id=call_id,
        request_id=request.request_id,
        created_at=datetime.now(UTC),
        platform=request.platform,
        workspace=request.workspace,
        channel=request.channel,
        thread=request.thread,
        user=request.user,
        model=model.name,
        provider=model.provider,
        endpoint=model.endpoint,
        prompt_tokens=0,
        completion_tokens=0,
        cost=None,
        outcome=outcome,
        prompt_text=prompt_text,
    )


async def record(usage: UsageStore, row: UsageRow) -> None:
    """Store ``row``; a store that fails never fails the request."""
    try:
        await usage.record(row)
    except StoreError:
        # The answer was paid for: deliver it, and leave every figure in the log so the row
        # can be restored. (A durable spool for this case is planned.)
        safe = replace(row, prompt_text=None, reply_text=None)
        log.exception("usage row NOT stored: %s", safe)
