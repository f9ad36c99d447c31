"""What the sandbox has served, in USD per UTC day, as OpenAI's organization costs endpoint
reports it (``GET /v1/organization/costs``), so that the digest's comparison of the
provider's figure with quotabot's can be tested end to end."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.sandbox import errors

_DAY = 86_400
_MAX_LIMIT = 180


class CostLedger:
    def __init__(self) -> None:
        self.days: defaultdict[int, Decimal] = defaultdict(Decimal)
        """Start of a UTC day (Unix seconds) -> USD served that day."""

    def add(self, cost: Decimal | None, at: datetime | None = None) -> None:
        if cost:
            when = int((at or datetime.now(UTC)).timestamp())
            self.days[when - when % _DAY] += cost

    def page(self, query: Any) -> dict[str, Any]:
        """OpenAI's answer: a page of daily buckets from ``start_time`` (required) to
        ``end_time`` (default now), ``limit`` buckets at most (default 7), ``page`` to go on."""
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
        buckets: list[dict[str, Any]] = []
        day = first
        while day < end and len(buckets) < limit:
            amount = self.days.get(day, Decimal(0))
            results = [
                {
                    "object": "organization.costs.result",
                    "amount": {"value": float(amount), "currency": "usd"},
                    "line_item": None,
                    "project_id": None,
                }
            ]
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
        return web.json_response(self.page(request.query))
