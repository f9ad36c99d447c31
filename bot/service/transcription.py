"""One recording's provider calls, as the attempt loop makes them, under the same budgets as
a question: one request of the transcription model's RPM and RPD, and the most it can cost
(its measured length at the model's price per minute), settled at what it did cost."""

from __future__ import annotations

import uuid
from dataclasses import replace

from bot.access import Access
from bot.budget.tickets import Ticket
from bot.catalog import ModelInfo
from bot.errors import AudioOverBudget, BudgetExceeded, ChannelDisabled, RequestRejected
from bot.messages import format_cost
from bot.models import Transcript, TranscriptionRequest, Usage
from bot.provider import OpenAIClient
from bot.service import rows
from bot.service.attempts import Paid, Reserve
from bot.store.channels import ChannelStore
from bot.store.rows import UsageRow


async def allowed(
    access: Access, channels: ChannelStore, platform: str, workspace: str, channel: str
) -> None:
    """Raises ChannelDisabled where recordings are not to be transcribed."""
    if not access.allows(workspace, channel):
        raise ChannelDisabled(channel)
    if not (await channels.get(platform, workspace, channel)).enabled:
        raise ChannelDisabled(channel)


class TranscriptionJob:
    """A :class:`bot.service.attempts.Job` turning one recording into text."""

    def __init__(
        self,
        request: TranscriptionRequest,
        info: ModelInfo,
        *,
        provider: OpenAIClient,
        store_message_text: bool,
    ) -> None:
        self.request = request
        self.info = info
        self.provider = provider
        self.store_message_text = store_message_text
        self.reserve = Reserve(tokens=0, cost=info.audio_cost(request.clip.seconds))

    @property
    def model(self) -> ModelInfo:
        return self.info

    @property
    def retryable(self) -> bool:
        return True  # nothing of a transcript is shown before it is whole

    def refused(self, exc: BudgetExceeded) -> RequestRejected | None:
        """Says how long the recording is and what it would have cost."""
        return AudioOverBudget(
            exc,
            seconds=self.request.clip.seconds,
            cost=format_cost(self.reserve.cost),
            model=self.info.name,
        )

    def row(self, call_id: str, outcome: str) -> UsageRow:
        return rows.row(self.request, self.info, call_id, outcome)

    async def call(self, ticket: Ticket) -> Paid[Transcript]:
        request, info, clip = self.request, self.info, self.request.clip
        with clip.open() as recording:  # streamed from the file as it is sent
            result = await self.provider.transcribe(
                model=info.name,
                file=(clip.name, recording, clip.media_type),
                prompt=request.prompt,
                on_send=ticket.sending,
            )
        seconds = result.seconds or clip.seconds
        cost = info.audio_cost(seconds)
        usage = result.usage or Usage(0, 0)
        row = replace(
            self.row(uuid.uuid4().hex, "ok"),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            audio_seconds=seconds,
            cost=cost,
            latency_ms=round(result.latency * 1000),
            provider_request_id=result.request_id,
            reply_text=result.text if self.store_message_text else None,
        )
        transcript = Transcript(
            text=result.text,
            model=info.name,
            seconds=seconds,
            cost=cost,
            latency=result.latency,
            request_id=request.request_id,
        )
        return Paid(
            result=transcript,
            usage=usage,
            cost=cost,
            latency=result.latency,
            rate_limits=result.rate_limits,
            row=row,
        )
