"""Compose a digest and hand it to the platform's poster, exactly once per workspace and day.

    scheduler -> Digests.send_scheduled(platform, workspace, day) -> claim -> compose -> poster

The claim row decides which replica sends. A failed send gives its claim back (the next
attempt may take it); a process that dies between claim and send leaves a claim that expires
after ``lease`` and is then taken over by exactly one other attempt (``retry_stale``), which
first looks in the channel for the digest, in case it died after posting it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from bot.digest.chart import render_chart
from bot.digest.content import DigestBuilder
from bot.digest.figures import Digest, Period, ProviderCost
from bot.digest.render import to_text
from bot.digest.window import local_today
from bot.errors import DigestError
from bot.store.digests import Claims, DigestConfig, DigestSettingsStore, ReportSettingsStore

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=10)
"""Longer than any send takes (the platforms' clients give up within a couple of minutes)."""
GIVE_UP_AFTER = timedelta(days=2)
"""A digest whose sender died is retried up to this long after its day; later it is stale news."""


@dataclass(frozen=True, slots=True)
class DigestMessage:
    digest: Digest
    text: str
    """Plain text that stands alone, for the CLI and where no chart can be shown."""
    chart: bytes | None
    """PNG of the last 14 days' spend by model; None when there was none to draw."""


class DigestPoster(Protocol):
    """What a chat adapter offers the digest: post into a channel of one workspace."""

    platform: str

    async def post_digest(
        self, workspace: str, channel: str, message: DigestMessage, *, key: str | None = None
    ) -> str:
        """Post the digest (chart attached); returns the platform's id of the message.
        ``key`` (the claim's) goes with it where the platform can carry it unseen."""
        ...

    async def find_digest(
        self, workspace: str, channel: str, message: DigestMessage, key: str
    ) -> str | None:
        """The id of this digest if it is already in ``channel`` (posted by a sender that
        died before it could record so); None if it is not."""
        ...

    async def post_alert(self, workspace: str, channel: str, text: str) -> str: ...


class Digests:
    def __init__(
        self,
        *,
        builder: DigestBuilder,
        settings: DigestSettingsStore,
        claims: Claims,
        posters: dict[str, DigestPoster] | None = None,
        provider_cost: Callable[[Digest], Awaitable[ProviderCost | None]] | None = None,
        lease: timedelta = DEFAULT_LEASE,
        reports: ReportSettingsStore | None = None,
    ):
        self.builder = builder
        self.settings = settings
        self.claims = claims
        self.posters: dict[str, DigestPoster] = dict(posters or {})
        self.provider_cost = provider_cost
        self.lease = lease
        self.reports = reports
        """Weekly and monthly reports; None where not wired (some tests)."""

    async def compose(self, cfg: DigestConfig, day: date, period: Period = "day") -> DigestMessage:
        digest = await self.builder.build(cfg, day, period)
        if self.provider_cost is not None and period == "day":
            try:
                digest = replace(digest, provider_cost=await self.provider_cost(digest))
            except Exception as exc:  # the digest goes out without it, and the log says why
                log.warning("could not read the provider's reported cost: %s", exc)
        chart = None
        if digest.has_chart_data:
            chart = render_chart(
                digest.series_days,
                digest.series,
                title=f"Spend by model, last {len(digest.series_days)} days (USD, {digest.tz})",
            )
        return DigestMessage(digest, to_text(digest), chart)

    async def send_now(self, cfg: DigestConfig) -> str:
        """``/digest now``: today so far, posted at once (an admin asked: no claim)."""
        message = await self.compose(cfg, local_today(cfg.zone))
        return await self._poster(cfg.platform).post_digest(cfg.workspace, cfg.channel, message)

    async def send_scheduled(
        self, platform: str, workspace: str, day: date, period: Period = "day"
    ) -> str:
        """The digest of ``day`` (or the week or month from it), unless another replica or an
        earlier run has it. Returns what happened, for the log. Raises if the send failed
        (the claim is given back)."""
        cfg = await self.settings.get(platform, workspace)
        if cfg is None:
            return "off"
        if period == "day" and not cfg.enabled:
            return "off"
        if period != "day":
            report = await self.reports.get(platform, workspace, period) if self.reports else None
            if report is None or not report.enabled:
                return "off"
        key = claim_key(platform, workspace, day, period)
        attempt = await self.claims.claim(key, lease=self.lease)
        if not attempt:
            return "sent or being sent by another process"
        try:
            message = await self.compose(cfg, day, period)
            poster = self._poster(platform)
            if attempt > 1 and (
                ref := await poster.find_digest(workspace, cfg.channel, message, key)
            ):
                # Its first sender posted it, then died before recording so: not again.
                await self.claims.done(key, ref)
                log.warning("digest %s was already posted (%s): not posted again", key, ref)
                return f"already posted {ref}"
            ref = await poster.post_digest(workspace, cfg.channel, message, key=key)
        except BaseException:
            await self.claims.release(key)
            raise
        await self.claims.done(key, ref)
        log.info("digest %s posted to %s (%s)", key, cfg.channel, ref)
        return f"posted {ref}"

    async def retry_stale(self) -> list[str]:
        """Digests whose sender died between claim and send: each is retried by exactly one
        process (the claim's conditional take-over decides). Too old ones are given up."""
        done = []
        for key in await self.claims.stale("digest:", lease=self.lease):
            platform, workspace, period, day = parse_claim_key(key)
            if datetime.now(UTC).date() - day > GIVE_UP_AFTER:
                await self.claims.done(key, "given up: too old to send")
                log.warning("digest %s was never sent and is now too old: given up", key)
                continue
            if platform not in self.posters:
                continue  # another replica, with that platform configured, will take it
            log.warning("digest %s was claimed but not sent (its process died?): retrying", key)
            done.append(await self.send_scheduled(platform, workspace, day, period))
        return done

    def _poster(self, platform: str) -> DigestPoster:
        try:
            return self.posters[platform]
        except KeyError:
            raise DigestError(
                f"quotabot cannot post to {platform} from this process: it is not configured "
                "here (see the Slack and Discord settings)."
            ) from None


def claim_key(platform: str, workspace: str, day: date, period: Period = "day") -> str:
    """``digest:slack:T1:2026-11-24``; a report's: ``digest:slack:T1:week:2026-11-23``."""
    within = "" if period == "day" else f"{period}:"
    return f"digest:{platform}:{workspace}:{within}{day.isoformat()}"


def parse_claim_key(key: str) -> tuple[str, str, Period, date]:
    _, platform, workspace, *rest = key.split(":")
    period: Period = "week" if rest[0] == "week" else "month" if rest[0] == "month" else "day"
    return platform, workspace, period, date.fromisoformat(rest[-1])
