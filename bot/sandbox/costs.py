"""What the sandbox has served, in USD per UTC day, as OpenAI's organization costs endpoint
reports it (``GET /v1/organization/costs``), so that the digest's comparison of the
provider's figure with quotabot's can be tested end to end.

Amounts are exact: each is the sum of the catalog's ``cost`` of what was served (cached prompt
tokens at the cached price, reasoning tokens as output), written as a JSON number with every
digit of that ``Decimal`` rather than through a float. With ``group_by=line_item`` a day has one
result per model (the ``line_item``), as OpenAI breaks costs down.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.sandbox import errors

_DAY = 86_400
_MAX_LIMIT = 180
_GROUPS = ("project_id", "line_item")


def dumps(value: object) -> str:
    """``json.dumps``, except that a ``Decimal`` is written as the exact number it is."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {dumps(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


class CostLedger:
    def __init__(self) -> None:
        self.days: defaultdict[int, defaultdict[str, Decimal]] = defaultdict(
            lambda: defaultdict(Decimal)
        )
        """Start of a UTC day (Unix seconds) -> line item (the model) -> USD served that day."""

    def add(self, cost: Decimal | None, line_item: str, at: datetime | None = None) -> None:
        if cost:
            when = int((at or datetime.now(UTC)).timestamp())
            self.days[when - when % _DAY][line_item] += cost

    def page(self, query: Any) -> dict[str, Any]:
        """OpenAI's answer: a page of daily buckets from ``start_time`` (required) to
        ``end_time`` (default now), ``limit`` buckets at most (default 7), ``page`` to go on;
        ``group_by`` (repeated, or ``group_by[]``) ``line_item`` and/or ``project_id`` (the
        sandbox has no projects: always null)."""
        try:
            start = int(query["start_time"])
            end = int(query.get("end_time") or datetime.now(UTC).timestamp())
            limit = int(query.get("limit") or 7)
            first = int(query.get("page") or start - start % _DAY)
        except KeyError:
            raise errors.missing("start_time") from None
        except ValueError:
            raise errors.wrong_type("start_time", "integer", query.get("start_time")) from None
        if query.get("bucket_width", "1d") != "1d":
            raise errors.bad_value("bucket_width", query.get("bucket_width"), ("1d",))
        if not 1 <= limit <= _MAX_LIMIT:
            raise errors.above_max("limit", _MAX_LIMIT, limit)
        groups = _group_by(query)
        buckets: list[dict[str, Any]] = []
        day = first
        while day < end and len(buckets) < limit:
            items: dict[str, Decimal] = self.days.get(day) or {}
            if "line_item" in groups:
                results = [_result(amount, item) for item, amount in sorted(items.items())]
            else:
                results = [_result(sum(items.values(), Decimal(0)), None)]
            buckets.append(
                {"object": "bucket", "start_time": day, "end_time": day + _DAY, "results": results}
            )
            day += _DAY
        more = day < end
        return {
            "object": "page",
            "data": buckets,
            "has_more": more,
            "next_page": str(day) if more else None,
        }

    async def handle(self, request: web.Request, _call: Any) -> web.StreamResponse:
        return web.json_response(self.page(request.query), dumps=dumps)


def _group_by(query: Any) -> set[str]:
    getall = getattr(query, "getall", None)
    if getall is not None:
        values = [*getall("group_by", []), *getall("group_by[]", [])]
    else:
        values = [v for v in (query.get("group_by"), query.get("group_by[]")) if v is not None]
    for value in values:
        if value not in _GROUPS:
            raise errors.bad_value("group_by", value, _GROUPS)
    return set(values)


def _result(amount: Decimal, line_item: str | None) -> dict[str, Any]:
    return {
        "object": "organization.costs.result",
        "amount": {"value": amount, "currency": "usd"},
        "line_item": line_item,
        "project_id": None,
    }
