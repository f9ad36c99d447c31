"""Budget alerts: one message to a workspace's digest channel when a cap passes 80% and when
it reaches 100%, once per cap and window (UTC day or month), across every replica.

Checked at each scheduler sweep (every minute) from the usage rows; a claim row per
(cap, window, threshold) makes one replica say it, once. A cap that jumps past 100% at once
gets the 100% message only (its 80% one is marked as superseded).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from bot.digest.figures import BudgetUse
from bot.digest.send import Digests
from bot.messages import format_cost

log = logging.getLogger(__name__)

THRESHOLDS = (1.0, 0.8)
_NEVER = timedelta(days=3650)
"""An alert's claim is never taken over: a rare lost alert beats a repeated one."""


class BudgetAlerts:
    def __init__(self, digests: Digests):
        self.digests = digests

    async def check(self, now: datetime | None = None) -> list[str]:
        """Send what is due; returns the claim keys of the alerts sent."""
        now = now or datetime.now(UTC)
        sent: list[str] = []
        for cfg in await self.digests.settings.all():
            poster = self.digests.posters.get(cfg.platform)
            if not cfg.enabled or poster is None:
                continue
            for use in await self.digests.builder.current_budgets(cfg, now):
                reached = [t for t in THRESHOLDS if use.share >= t]
                if not reached:
                    continue
                keys = [_key(cfg.platform, cfg.workspace, use, t) for t in reached]
                if not await self.digests.claims.claim(keys[0], lease=_NEVER):
                    continue
                try:
                    ref = await poster.post_alert(cfg.workspace, cfg.channel, alert_text(use))
                except Exception as exc:
                    await self.digests.claims.release(keys[0])
                    log.warning("could not post a budget alert to %s: %s", cfg.channel, exc)
                    continue
                await self.digests.claims.done(keys[0], ref)
                for lower in keys[1:]:
                    if await self.digests.claims.claim(lower, lease=_NEVER):
                        await self.digests.claims.done(lower, f"superseded by {keys[0]}")
                sent.append(keys[0])
        return sent


def _key(platform: str, workspace: str, use: BudgetUse, threshold: float) -> str:
    return f"alert:{platform}:{workspace}:{use.label}:{use.window}:{round(threshold * 100)}"[:250]


def alert_text(use: BudgetUse) -> str:
    if use.unit == "usd":
        amounts = f"{format_cost(use.used)} of {format_cost(use.limit)}"
    else:
        amounts = f"{use.used:,.0f} of {use.limit:,.0f} {use.unit}"
    if use.share >= 1:
        return (
            f"🛑 *Budget reached*: {use.label} is at {use.share:.0%} ({amounts}, {use.window}). "
            "Requests it covers are refused until it resets; an admin can raise it with "
            "`/budget set`."
        )
    return (
        f"⚠️ *Budget alert*: {use.label} has passed 80% ({use.share:.0%}: {amounts}, {use.window})."
    )
