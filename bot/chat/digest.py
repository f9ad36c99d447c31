"""``/digest`` in chat, the same on every platform: show, set, now, on, off.

Adapters pass the words after ``/digest``, where it was typed, and how to check that the
user is an admin (their own rule); the text returned is the answer, for the user only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.digest.send import Digests
from bot.errors import DigestError, QuotabotError
from bot.messages import explain
from bot.store.digests import parse_weekday

log = logging.getLogger(__name__)

DIGEST_HELP = (
    "Usage: `/digest` shows where and when the daily digest is posted; admins can "
    "`/digest set <channel> <HH:MM> <time zone>` (e.g. `/digest set #finance 09:00 "
    "Europe/Berlin`; `here` means this channel), `/digest now` to post today's so far, and "
    "`/digest off` or `/digest on`. Weekly and monthly reports go to the same channel: "
    "`/digest set weekly monday 09:00 Europe/Paris`, `/digest set monthly 09:00 UTC`, "
    "`/digest weekly off` (or `on`, and the same for `monthly`)."
)
NOT_ADMIN = "Only admins can change the digest or post one."
OnChange = Callable[[], Awaitable[None]]
ChannelParser = Callable[[str], str | None]
"""A channel's ID from how its platform writes it (``<#C0123|general>``, ``<#123…>``, a bare
ID); None when it is not one."""


def parse_channel(value: str, here: str, channel_id: ChannelParser) -> str:
    """``here``, or a channel as the platform writes it (``channel_id`` reads that)."""
    if value.lower() == "here":
        return here
    found = channel_id(value.strip())
    if found is None:
        raise ValueError(
            f"{value!r} is not a channel quotabot can post to: pick it with # from the list "
            "(so that its ID is sent), give its ID, or write `here`."
        )
    return found


class DigestCommands:
    def __init__(self, digests: Digests, *, on_change: OnChange | None = None):
        self.digests = digests
        self.on_change = on_change
        """Called after a change, so that this process's scheduler follows it at once."""

    async def handle(
        self,
        words: list[str],
        *,
        platform: str,
        workspace: str,
        channel: str,
        user: str,
        is_admin: Callable[[], Awaitable[bool]],
        channel_id: ChannelParser,
    ) -> str:
        """The answer to ``/digest <words>``. Never raises: errors become the answer."""
        verb = words[0].lower() if words else "show"
        try:
            if verb == "show":
                return await self.show(platform, workspace)
            if verb not in ("set", "now", "on", "off", "weekly", "monthly"):
                return DIGEST_HELP
            if not await is_admin():
                return NOT_ADMIN
            if verb in ("weekly", "monthly"):
                if len(words) != 2 or words[1].lower() not in ("on", "off"):
                    return DIGEST_HELP
                return await self.switch_report(
                    platform, workspace, _PERIODS[verb], words[1].lower() == "on", user
                )
            if verb == "set" and len(words) > 1 and words[1].lower() in _PERIODS:
                return await self.set_report(platform, workspace, words[1:], user)
            if verb == "set":
                if len(words) != 4:
                    return DIGEST_HELP
                return await self.set(
                    platform,
                    workspace,
                    parse_channel(words[1], channel, channel_id),
                    words[2],
                    words[3],
                    user,
                )
            if verb == "now":
                return await self.now(platform, workspace)
            return await self.switch(platform, workspace, verb == "on", user)
        except ValueError as exc:
            return f"{exc}\n{DIGEST_HELP}"
        except DigestError as exc:
            return str(exc)
        except QuotabotError as exc:
            return explain(exc)
        except Exception:
            log.exception("/digest %s failed in %s %s", " ".join(words), platform, workspace)
            return explain(RuntimeError())

    async def show(self, platform: str, workspace: str) -> str:
        cfg = await self.digests.settings.get(platform, workspace)
        if cfg is None:
            return "No daily digest is set up here yet.\n" + DIGEST_HELP
        state = "on" if cfg.enabled else "off"
        lines = [
            f"The daily digest is {state}: posted in {_mention(cfg.channel)} at "
            f"{cfg.at} {cfg.tz}, for the day before (budget alerts go there too)."
        ]
        for period in ("week", "month"):
            report = (
                await self.digests.reports.get(platform, workspace, period)
                if self.digests.reports is not None
                else None
            )
            if report is not None:
                on = "on" if report.enabled else "off"
                lines.append(f"The {period}ly report is {on}: {report.when()}.")
        return "\n".join(lines)

    async def set(
        self, platform: str, workspace: str, channel: str, at: str, tz: str, by: str
    ) -> str:
        cfg = await self.digests.settings.set(
            platform, workspace, channel=channel, at=at, tz=tz, enabled=True, by=by
        )
        await self._changed()
        return (
            f"Done: the daily digest goes to {_mention(cfg.channel)} at {cfg.at} "
            f"{cfg.tz}, with yesterday's figures. `/digest now` shows one at once."
        )

    async def set_report(self, platform: str, workspace: str, words: list[str], by: str) -> str:
        """``weekly <day> <HH:MM> <zone>`` or ``monthly <HH:MM> <zone>``."""
        period = _PERIODS[words[0].lower()]
        wanted = 4 if period == "week" else 3
        if len(words) != wanted:
            raise ValueError(
                "Write `/digest set weekly <day> <HH:MM> <time zone>` or "
                "`/digest set monthly <HH:MM> <time zone>`."
            )
        if await self.digests.settings.get(platform, workspace) is None:
            raise ValueError(
                "Reports go to the digest channel: `/digest set <channel> <HH:MM> <time zone>` "
                "first."
            )
        if self.digests.reports is None:
            raise ValueError("Reports are not available in this quotabot.")
        weekday = parse_weekday(words[1]) if period == "week" else None
        cfg = await self.digests.reports.set(
            platform,
            workspace,
            period,
            weekday=weekday,
            at=words[-2],
            tz=words[-1],
            enabled=True,
            by=by,
        )
        await self._changed()
        covers = "the week before (Monday to Sunday)" if period == "week" else "the month before"
        return f"Done: the {period}ly report goes out {cfg.when()}, with {covers}."

    async def switch_report(
        self, platform: str, workspace: str, period: str, on: bool, by: str
    ) -> str:
        reports = self.digests.reports
        if reports is None or await reports.get(platform, workspace, period) is None:
            raise ValueError(f"No {period}ly report is set up here yet.")
        await reports.set(platform, workspace, period, enabled=on, by=by)
        await self._changed()
        return f"The {period}ly report is {'on' if on else 'off'}."

    async def switch(self, platform: str, workspace: str, on: bool, by: str) -> str:
        await self.digests.settings.set(platform, workspace, enabled=on, by=by)
        await self._changed()
        return "The daily digest is on." if on else "The daily digest is off."

    async def now(self, platform: str, workspace: str) -> str:
        cfg = await self.digests.settings.get(platform, workspace)
        if cfg is None:
            raise ValueError("Set a digest channel first.")
        await self.digests.send_now(cfg)
        return f"Posted today's digest so far in {_mention(cfg.channel)}."

    async def _changed(self) -> None:
        if self.on_change is not None:
            try:
                await self.on_change()
            except Exception:  # the other replicas' sweep will pick it up anyway
                log.exception("could not reschedule the digests after a change")


_PERIODS = {"weekly": "week", "monthly": "month"}


def _mention(channel: str) -> str:
    """Slack and Discord both show ``<#ID>`` as a link to the channel."""
    return f"<#{channel}>"
