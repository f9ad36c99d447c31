"""GET /v1/organization/costs: what the sandbox served, priced as OpenAI bills it (cached prompt
tokens at the cached price, reasoning tokens as output), to the last digit."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from bot.catalog import Catalog
from bot.models import Usage
from bot.sandbox.costs import CostLedger, dumps
from tests.bot.sandbox.conftest import Serve

LONG = " ".join(["apple"] * 1_500)
_NO_DETAILS = {  # legacy completions' usage has no details
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


async def costs(client: httpx.AsyncClient, **params: Any) -> Any:
    r = await client.get(
        "/organization/costs", params={"start_time": int(time.time()) - 86_400, **params}
    )
    assert r.status_code == 200, r.text
    return json.loads(r.text, parse_float=Decimal)


def results(page: Any) -> list[Any]:
    return [result for bucket in page["data"] for result in bucket["results"]]


def total(page: Any) -> Decimal:
    return sum((Decimal(r["amount"]["value"]) for r in results(page)), Decimal(0))


def billed(model: str, usage: dict[str, Any]) -> Decimal:
    cost = (
        Catalog.build()
        .get(model)
        .cost(
            Usage(
                usage["prompt_tokens"],
                usage["completion_tokens"],
                cached_tokens=usage["prompt_tokens_details"]["cached_tokens"],
                reasoning_tokens=usage["completion_tokens_details"]["reasoning_tokens"],
            )
        )
    )
    assert cost is not None
    return cost


async def test_costs_are_the_sum_of_what_was_served_with_the_cached_discount(
    serve: Serve,
) -> None:
    _, client = await serve(rpm=None, tpm=None)
    assert total(await costs(client)) == 0
    served = []
    for model, content in [
        ("gpt-4o", LONG),
        ("gpt-4o", LONG),  # 1,408 tokens cached
        ("gpt-4o-mini", LONG),
        ("gpt-4o-mini", LONG),
        ("o4-mini", LONG),
        ("o4-mini", LONG + " apple"),
        ("gpt-5-mini", "hi"),
        ("gpt-3.5-turbo", "hi"),
    ]:
        body = {"model": model, "messages": [{"role": "user", "content": content}]}
        usage = (await client.post("/chat/completions", json=body)).json()["usage"]
        served.append((model, usage))
    legacy = await client.post(
        "/completions", json={"model": "davinci-002", "prompt": LONG, "max_tokens": 5}
    )
    served.append(("davinci-002", {**legacy.json()["usage"], **_NO_DETAILS}))

    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for _, u in served)
    reasoning = sum(u["completion_tokens_details"]["reasoning_tokens"] for _, u in served)
    assert cached == 3 * 1_408 and reasoning > 0
    expected = sum((billed(m, u) for m, u in served), Decimal(0))
    page = await costs(client)
    assert total(page) == expected
    undiscounted = sum(
        (billed(m, {**u, "prompt_tokens_details": {"cached_tokens": 0}}) for m, u in served),
        Decimal(0),
    )
    assert expected < undiscounted

    by_model = await costs(client, group_by="line_item")
    items = {r["line_item"]: Decimal(r["amount"]["value"]) for r in results(by_model)}
    assert sorted(items) == sorted({m for m, _ in served})
    for model, amount in items.items():
        assert amount == sum((billed(m, u) for m, u in served if m == model), Decimal(0))
    assert total(by_model) == expected
    assert all(r["project_id"] is None for r in results(by_model))


async def test_a_bad_group_by_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/organization/costs", params={"start_time": int(time.time()), "group_by": "model"}
    )
    assert r.status_code == 400
    assert r.json()["error"] == {
        "message": "Invalid value: 'model'. Supported values are: 'project_id', and 'line_item'.",
        "type": "invalid_request_error",
        "param": "group_by",
        "code": "invalid_value",
    }
    ok = await client.get(
        "/organization/costs",
        params=[("start_time", int(time.time())), ("group_by[]", "project_id")],
    )
    assert ok.status_code == 200


def test_amounts_are_written_with_every_digit() -> None:
    """A float keeps about 17 significant digits; an amount is written with all of its."""
    ledger = CostLedger()
    day = datetime(2026, 12, 1, 13, tzinfo=UTC)
    big = Decimal("1234.56789012345678901")
    ledger.add(big, "gpt-4o", at=day)
    ledger.add(Decimal("0.000000075"), "gpt-4o", at=day)
    ledger.add(Decimal("0.0000001"), "gpt-4o-mini", at=day)
    start = int(day.timestamp())
    text = dumps(ledger.page({"start_time": start, "end_time": start + 1, "limit": 1}))

    assert '"amount": {"value": 1234.56789029845678901, "currency": "usd"}' in text
    page = json.loads(text, parse_float=Decimal)
    assert total(page) == big + Decimal("0.000000075") + Decimal("0.0000001")
    assert float(total(page)) == json.loads(text)["data"][0]["results"][0]["amount"]["value"]


def test_dumps_is_json_dumps_but_for_decimals() -> None:
    value = {"a": [1, 2.5, None, True, "x\u00e9\n"], "b": {"c": Decimal("0.10")}, "d": ()}
    assert json.loads(dumps(value)) == json.loads(json.dumps({**value, "b": {"c": 0.1}}))
    assert dumps(Decimal("1E+2")) == "100"
    assert dumps(Decimal("0E-8")) == "0"
    assert dumps(Decimal("-0.000000125")) == "-0.000000125"
