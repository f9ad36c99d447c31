"""Images through the core against the real sandbox: their tokens are reserved like text, the
usage row holds what the sandbox reports, and what cannot work is refused before any call."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image as PILImage

from bot import images, tokens
from bot.app import channel_defaults
from bot.budget.manager import Budget
from bot.budget.memory import MemoryBackend
from bot.budget.policy import Policy
from bot.catalog import Catalog, ModelOverride
from bot.config import load_settings
from bot.errors import BudgetExceeded, NoVision
from bot.models import ChatRequest, Image, Message
from bot.provider import OpenAIClient
from bot.sandbox import SandboxServer
from bot.service import Service
from bot.store import ChannelStore, Database, UsageStore
from tests.bot.service.test_accounting import FakeOpenAI


def picture(width: int = 1024, height: int = 1024) -> Image:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), (10, 120, 200)).save(out, format="PNG")
    return images.read("chart.png", out.getvalue())


def ask(*messages: Message, model: str = "gpt-4o") -> ChatRequest:
    return ChatRequest(
        platform="slack",
        workspace="T1",
        channel="C1",
        user="U1",
        messages=messages,
        model=model,
        max_tokens=50,
    )


def make_service(
    db: Database,
    provider: OpenAIClient,
    *,
    limits: dict[str, dict[str, object]] | None = None,
    catalog: Catalog | None = None,
) -> Service:
    settings = load_settings()
    return Service(
        provider=provider,
        catalog=catalog or settings.catalog(),
        usage=UsageStore(db),
        channels=ChannelStore(db, channel_defaults(settings)),
        budget=Budget(MemoryBackend(), Policy(limits or {})),  # type: ignore[arg-type]
    )


async def test_an_images_tokens_are_sent_counted_and_recorded(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    question = Message("user", "What does this chart show?", images=(picture(),))
    reply = await service.handle(ask(question))

    served = sandbox.stats.model("gpt-4o")
    assert served.images == 1
    system = Message("system", load_settings().system_prompt)
    text_only = tokens.count_messages([system, Message("user", question.content)], "o200k_base")
    assert served.prompt_tokens == text_only + 765  # 1024x1024, high detail, on gpt-4o
    (row,) = await service.usage.rows()
    assert row.prompt_tokens == reply.usage.prompt_tokens == served.prompt_tokens
    assert not row.usage_estimated


async def test_a_budget_without_room_for_the_image_refuses_it_before_any_call(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider, limits={"user": {"tokens_day": 900}})
    await service.handle(ask(Message("user", "Hello?")))  # about 80 of the 900 spent
    # The image alone (765 tokens) and its question would fit a fresh day, not what is left.
    with pytest.raises(BudgetExceeded, match="this user's tokens per day"):
        await service.handle(ask(Message("user", "And this?", images=(picture(),))))
    assert sandbox.stats.total.requests == 1
    # The same question without the image fits.
    await service.handle(ask(Message("user", "And this?")))
    assert sandbox.stats.total.requests == 2


async def test_a_model_that_cannot_see_refuses_naming_those_that_can(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    service = make_service(db, provider)
    with pytest.raises(NoVision, match=r"gpt-3\.5-turbo cannot see images.*gpt-4o"):
        await service.handle(
            ask(Message("user", "What is it?", images=(picture(),)), model="gpt-3.5-turbo")
        )
    assert sandbox.stats.total.requests == 0
    assert await service.usage.rows() == []
    # Images earlier in the thread are left out for it: the question is still answered.
    thread = (Message("user", "look", images=(picture(),)), Message("user", "Summarise."))
    await service.handle(ask(*thread, model="gpt-3.5-turbo"))
    assert sandbox.stats.total.requests == 1
    assert sandbox.stats.total.images == 0


async def test_older_images_leave_a_full_context_first(
    db: Database, sandbox: SandboxServer, provider: OpenAIClient
) -> None:
    small = Catalog.build(tier="paid", overrides={"gpt-4o": ModelOverride(context_window=1_200)})
    service = make_service(db, provider, catalog=small)
    thread = (
        Message("user", "first chart", images=(picture(),)),
        Message("assistant", "It rises."),
        Message("user", "and now?", images=(picture(),)),
    )
    reply = await service.handle(ask(*thread))
    assert sandbox.stats.model("gpt-4o").images == 1  # the question's own
    assert reply.usage.prompt_tokens > 765


async def test_the_image_goes_as_a_content_part_and_the_row_holds_the_providers_count(
    db: Database,
) -> None:
    """Against a provider that counts otherwise than the estimate: its figure is recorded."""
    fake = FakeOpenAI()
    fake.usage = {"prompt_tokens": 900, "completion_tokens": 5}
    http = httpx.AsyncClient(transport=httpx.MockTransport(fake))
    async with OpenAIClient(base_url="http://openai.test/v1", api_key="sk-x", http=http) as c:
        service = make_service(db, c)
        image = picture(64, 64)
        reply = await service.handle(ask(Message("user", "Which colour?", images=(image,))))
    await http.aclose()
    (body,) = fake.bodies
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "Which colour?"},
        {"type": "image_url", "image_url": {"url": image.data_url, "detail": "high"}},
    ]
    assert image.data_url.startswith("data:image/png;base64,iVBOR")
    (row,) = await service.usage.rows()
    assert row.prompt_tokens == reply.usage.prompt_tokens == 900
