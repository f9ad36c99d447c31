"""The provider's own reported cost: OpenAI's organization costs endpoint, with an admin key.

    GET {OPENAI_BASE_URL}/organization/costs?start_time=..&end_time=..&bucket_width=1d
    -> {"data": [{"start_time", "end_time", "results": [{"amount": {"value", "currency"}}]}],
        "has_more", "next_page"}

Buckets are UTC days, so the digest compares the UTC day that overlaps its local day most,
over every workspace (the provider bills the organization, not a workspace).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx

from bot.digest import window
from bot.digest.content import DigestBuilder
from bot.digest.figures import Digest, ProviderCost
from bot.errors import DigestError
from bot.lifecycle import AsyncResource


class OrganizationCosts(AsyncResource):
    def __init__(self, *, base_url: str, admin_key: str, timeout: float = 15.0):
        self.url = base_url.rstrip("/") + "/organization/costs"
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {admin_key}"}, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def total(self, start: datetime, end: datetime) -> Decimal:
        """USD the provider reports for [start, end), whole UTC days. Raises DigestError."""
        params: dict[str, Any] = {
            "start_time": int(start.timestamp()),
            "end_time": int(end.timestamp()),
            "bucket_width": "1d",
            "limit": 31,
        }
        total = Decimal(0)
        for _ in range(100):  # pages
            try:
                response = await self._http.get(self.url, params=params)
            except httpx.HTTPError as exc:
                raise DigestError(f"The provider's costs endpoint did not answer: {exc!r}") from exc
            if response.status_code != 200:
                raise DigestError(
                    f"The provider's costs endpoint answered HTTP {response.status_code}: "
                    f"{response.text[:200]}. OPENAI_ADMIN_KEY must be an admin key of the "
                    "organization (Settings, Organization, Admin keys)."
                )
            body = json.loads(response.text, parse_float=Decimal)
            for bucket in body.get("data") or []:
                for result in bucket.get("results") or []:
                    amount = result.get("amount") or {}
                    if str(amount.get("currency", "usd")).lower() == "usd":
                        total += Decimal(str(amount.get("value", 0)))
            if not body.get("has_more") or not body.get("next_page"):
                return total
            params["page"] = body["next_page"]
        raise DigestError("The provider's costs endpoint kept paging: giving up.")


def provider_cost(costs: OrganizationCosts, builder: DigestBuilder) -> Any:
    """What ``Digests.provider_cost`` calls: the provider's figure beside quotabot's own."""

    async def figure(digest: Digest) -> ProviderCost:
        lo, hi = window.utc_day_of(digest.start, digest.end)
        return ProviderCost(
            amount=await costs.total(lo, hi),
            ours=await builder.recorded_cost(lo, hi),
            window=f"UTC day {lo:%Y-%m-%d}",
        )

    return figure
