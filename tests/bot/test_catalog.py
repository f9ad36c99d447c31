from __future__ import annotations

from decimal import Decimal

import pytest

from bot.catalog import Catalog, ModelOverride, RateLimits
from bot.models import Usage


@pytest.mark.parametrize(
    ("model", "prompt", "completion", "usd"),
    [
        # USD per 1,000 tokens, input/output, as the README's price table documents.
        ("gpt-3.5-turbo", 1_000, 1_000, "0.0035"),
        ("gpt-3.5-turbo", 1, 1, "0.0000035"),
        ("gpt-3.5-turbo", 123, 45, "0.0002745"),
        ("gpt-4", 1_000, 500, "0.06"),
        ("gpt-4", 7, 3, "0.00039"),
        ("gpt-4-32k", 1_000, 1_000, "0.18"),
        ("gpt-4o-mini", 1, 0, "0.00000015"),
        ("gpt-4o-2024-08-06", 1_000_000, 1_000_000, "12.5"),  # dated snapshot, base price
    ],
)
def test_cost_is_exact(model: str, prompt: int, completion: int, usd: str) -> None:
    assert Catalog.build().get(model).cost(Usage(prompt, completion)) == Decimal(usd)


def test_a_million_calls_add_up_to_the_micro_dollar() -> None:
    info = Catalog.build().get("gpt-3.5-turbo")
    one = info.cost(Usage(17, 9))
    assert one is not None
    assert sum((one for _ in range(1_000_000)), Decimal(0)) == Decimal("43.5")


def test_default_limits_follow_the_tier() -> None:
    assert Catalog.build(tier="free").get("gpt-3.5-turbo").limits == RateLimits(3, 40_000, 200)
    assert Catalog.build(tier="paid").get("gpt-3.5-turbo").limits == RateLimits(60, 150_000, 6_000)
    assert Catalog.build(tier="paid").get("gpt-4").limits == RateLimits(20, 40_000, 1_000)


def test_unknown_models_are_served_by_chat_and_unpriced() -> None:
    info = Catalog.build().get("llama3.1:8b")
    assert (info.known, info.endpoint, info.priced, info.context_window) == (
        False,
        "chat",
        False,
        None,
    )
    assert info.cost(Usage(10, 10)) is None
    assert "llama3.1:8b" not in Catalog.build()
    # A suffix that is not a date is another model, not a snapshot.
    assert Catalog.build().get("gpt-4-experimental").known is False


def test_config_overrides_and_declares_models() -> None:
    catalog = Catalog.build(
        overrides={
            "gpt-4": ModelOverride(input_price=Decimal("0.01"), rpm=5),
            "llama3": ModelOverride(
                context_window=8192, input_price=Decimal("0"), output_price=Decimal("0")
            ),
            "local-instruct": ModelOverride(endpoint="completions"),
        }
    )
    gpt4 = catalog.get("gpt-4")
    assert (gpt4.input_price, gpt4.output_price, gpt4.limits.rpm) == (
        Decimal("0.01"),
        Decimal("0.06"),
        5,
    )
    assert gpt4.limits.tpm == 40_000  # not overridden: kept
    llama = catalog.get("llama3")
    assert (llama.known, llama.context_window, llama.cost(Usage(5, 5))) == (True, 8192, Decimal(0))
    assert catalog.get("local-instruct").endpoint == "completions"


def test_completion_models_use_the_legacy_endpoint() -> None:
    catalog = Catalog.build()
    assert catalog.get("gpt-3.5-turbo-instruct").endpoint == "completions"
    assert catalog.get("gpt-4o").endpoint == "chat"
    assert catalog.get("gpt-4o").encoding == "o200k_base"
