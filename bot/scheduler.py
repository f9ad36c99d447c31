"""The daily digests on a clock: APScheduler 3's AsyncIOScheduler in ``quotabot serve``.

    digest_settings (DB) --sync--> one cron job per workspace, in ``apscheduler_jobs`` (same DB)
    job fires -> run_digest_job -> DigestScheduler.run -> Digests.send_scheduled (claim, post)

The jobs live in the database (SQLAlchemyJobStore on the table migration 0004 creates), so a
restart knows when each digest was due: one missed while the service was down is sent when it
comes back, once (``coalesce``), if it is no later than ``misfire_grace`` seconds; an older
one is skipped and logged. Every replica runs a scheduler on the same table; the claim row
makes one of them send. A sweep every ``sweep_every`` seconds picks up jobs that admins
changed on another replica, retries digests whose sender died, and checks budget alerts.

The job store's calls are synchronous (APScheduler 3 has no async job stores): each is one
short indexed query on the event loop's thread, a few times a minute.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.config import sync_database_url
from bot.digest.figures import Period
from bot.digest.send import Digests
from bot.digest.window import previous_period
from bot.lifecycle import AsyncResource
from bot.store.digests import DigestConfig, ReportConfig
from bot.store.usage import UsageStore

log = logging.getLogger(__name__)

JOB_PREFIX = "digest:"
REPORT_PREFIX = "report:"
_OWNER: contextvars.ContextVar[DigestScheduler] = contextvars.ContextVar("digest_scheduler")


async def run_digest_job(platform: str, workspace: str) -> None:
    """The job's function, stored by reference (``bot.scheduler:run_digest_job``) in the job
    table; it runs for whichever scheduler's executor started it."""
    await _OWNER.get().run(platform, workspace)


async def run_report_job(platform: str, workspace: str, period: Period) -> None:
    """A weekly or monthly report's job (``bot.scheduler:run_report_job``)."""
    await _OWNER.get().run_report(platform, workspace, period)


class _Executor(AsyncIOExecutor):  # type: ignore[misc]  # APScheduler 3 is untyped
    """Runs jobs as tasks that know their scheduler (a job in a shared table cannot carry
    it), and leaves a running digest to finish at shutdown instead of cancelling it."""

    def __init__(self, owner: DigestScheduler):
        super().__init__()
        self.owner = owner

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        token = _OWNER.set(self.owner)  # the task created below copies this context
        try:
            super()._do_submit_job(job, run_times)
        finally:
            _OWNER.reset(token)

    def shutdown(self, wait: bool = True) -> None:
        self._pending_futures.clear()


class DigestScheduler(AsyncResource):
    def __init__(
        self,
        digests: Digests,
        *,
        database_url: str,
        misfire_grace: float = 3600.0,
        sweep_every: float = 60.0,
        alerts: Any = None,
        jobstore: Any = None,
        retention: Retention | None = None,
    ):
        self.digests = digests
        self.database_url = sync_database_url(database_url)
        self.misfire_grace = misfire_grace
        self.sweep_every = sweep_every
        self.alerts = alerts
        """A :class:`bot.digest.alerts.BudgetAlerts`, checked at every sweep (optional)."""
        self.retention = retention
        self.jobstore = jobstore
        """An APScheduler job store instead of the SQLAlchemy one on ``database_url``."""
        self.scheduler: AsyncIOScheduler | None = None
        self.runs: list[tuple[str, date, str]] = []
        """(job, day, outcome) of every run in this process, newest last: for tests and logs."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, *, paused: bool = False) -> None:
        store = self.jobstore or SQLAlchemyJobStore(
            url=self.database_url, tablename="apscheduler_jobs"
        )
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": store},
            executors={"default": _Executor(self)},
            job_defaults={
                "coalesce": True,
                "misfire_grace_time": int(self.misfire_grace),
                "max_instances": 1,
            },
            timezone=UTC,
            # A replica that cannot reach the database retries this often.
            jobstore_retry_interval=30,
        )
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        self.scheduler.start(paused=paused)
        await self.sync_jobs()
        if self.sweep_every > 0:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    def resume(self) -> None:
        assert self.scheduler is not None
        self.scheduler.resume()

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._tasks:  # digests being posted: let them finish (or fail) first
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def sync_jobs(self) -> None:
        """One job per enabled workspace, at its HH:MM in its zone. A job whose settings did
        not change is left alone: its next run time (maybe in the past, after downtime) is
        what the misfire handling needs."""
        assert self.scheduler is not None
        wanted = {job_id(c): c for c in await self.digests.settings.all() if c.enabled}
        for job in self.scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
                self.scheduler.remove_job(job.id)
        for jid, cfg in wanted.items():
            job = self.scheduler.get_job(jid)
            if job is not None and job.name == _spec(cfg):
                continue
            self.scheduler.add_job(
                run_digest_job,
                CronTrigger(hour=cfg.hour, minute=cfg.minute, timezone=cfg.zone),
                args=[cfg.platform, cfg.workspace],
                id=jid,
                name=_spec(cfg),
                replace_existing=True,
            )
            log.info(
                "digest for %s %s scheduled daily at %s", cfg.platform, cfg.workspace, _spec(cfg)
            )
        await self.sync_reports()

    async def sync_reports(self) -> None:
        """One job per enabled weekly or monthly report, like the daily digests'."""
        assert self.scheduler is not None
        if self.digests.reports is None:
            return
        wanted = {report_id(r): r for r in await self.digests.reports.all() if r.enabled}
        for job in self.scheduler.get_jobs():
            if job.id.startswith(REPORT_PREFIX) and job.id not in wanted:
                self.scheduler.remove_job(job.id)
        for jid, cfg in wanted.items():
            job = self.scheduler.get_job(jid)
            if job is not None and job.name == _report_spec(cfg):
                continue
            day = {"day_of_week": cfg.weekday} if cfg.period == "week" else {"day": 1}
            self.scheduler.add_job(
                run_report_job,
                CronTrigger(hour=cfg.hour, minute=cfg.minute, timezone=cfg.zone, **day),
                args=[cfg.platform, cfg.workspace, cfg.period],
                id=jid,
                name=_report_spec(cfg),
                replace_existing=True,
            )
            log.info(
                "%sly report for %s %s scheduled %s",
                cfg.period,
                cfg.platform,
                cfg.workspace,
                cfg.when(),
            )

    async def run_report(self, platform: str, workspace: str, period: Period) -> None:
        """One firing: the last whole week or month before it, in the workspace's zone."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self.digests.reports is None:
            return
        cfg = await self.digests.reports.get(platform, workspace, period)
        if cfg is None:
            return
        first = scheduled_period(cfg, datetime.now(UTC))
        jid = f"{REPORT_PREFIX}{period}:{platform}:{workspace}"
        try:
            outcome = await self.digests.send_scheduled(platform, workspace, first, period)
        except Exception as exc:
            self.runs.append((jid, first, f"failed: {exc}"))
            log.exception("the report %s for %s failed; it will be retried", jid, first)
            self._retry_later(platform, workspace, first, period=period)
            return
        self.runs.append((jid, first, outcome))

    async def run(self, platform: str, workspace: str) -> None:
        """One firing: the digest of the day before the scheduled time, in the workspace's
        zone (a late, misfired run still reports the day it was due for)."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        cfg = await self.digests.settings.get(platform, workspace)
        if cfg is None:
            return
        day = scheduled_day(cfg, datetime.now(UTC))
        jid = f"{JOB_PREFIX}{platform}:{workspace}"
        try:
            outcome = await self.digests.send_scheduled(platform, workspace, day)
        except Exception as exc:
            self.runs.append((jid, day, f"failed: {exc}"))
            log.exception("the digest %s for %s failed; it will be retried", jid, day)
            self._retry_later(platform, workspace, day)
            return
        self.runs.append((jid, day, outcome))

    def _retry_later(
        self,
        platform: str,
        workspace: str,
        day: date,
        delay: float = 300,
        *,
        period: Period = "day",
    ) -> None:
        """A failed send (Slack down, say) is tried again in a few minutes, in this process."""

        async def again() -> None:
            await asyncio.sleep(delay)
            try:
                outcome = await self.digests.send_scheduled(platform, workspace, day, period)
                self.runs.append((f"{JOB_PREFIX}{platform}:{workspace}", day, outcome))
            except Exception:
                log.exception(
                    "retrying the digest of %s %s for %s failed", platform, workspace, day
                )

        task = asyncio.get_running_loop().create_task(again())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def sweep(self) -> None:
        """Pick up other replicas' changes, retry orphaned claims, check budget alerts."""
        await self.sync_jobs()
        if self.scheduler is not None:
            self.scheduler.wakeup()
        await self.digests.retry_stale()
        if self.alerts is not None:
            await self.alerts.check()
        if self.retention is not None:
            await self.retention.maybe_prune()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            try:
                await self.sweep()
            except Exception:
                log.exception("the digest sweep failed; trying again in %s s", self.sweep_every)

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            late = datetime.now(UTC) - event.scheduled_run_time
            log.warning(
                "digest job %s was due at %s and is %s late, more than the misfire grace time "
                "(%s s): skipped. `quotabot digest --send` can still post it.",
                event.job_id,
                event.scheduled_run_time,
                str(late).split(".")[0],
                int(self.misfire_grace),
            )
            self.runs.append((event.job_id, event.scheduled_run_time.date(), "missed"))
        elif event.exception is not None:
            log.error("digest job %s failed: %s", event.job_id, event.exception)


class Retention:
    """Prunes raw usage rows older than ``days``, at most once an hour (from any replica; a
    second one finds nothing left to delete)."""

    def __init__(self, usage: UsageStore, days: int, *, every: float = 3600.0):
        self.usage, self.days, self.every = usage, days, every
        self._last = -math.inf

    async def maybe_prune(self) -> int:
        now = time.monotonic()
        if now - self._last < self.every:
            return 0
        self._last = now
        deleted = await self.usage.prune(datetime.now(UTC) - timedelta(days=self.days))
        if deleted:
            log.info("pruned %d usage rows older than %d days (rollups kept)", deleted, self.days)
        return deleted


def report_id(cfg: ReportConfig) -> str:
    return f"{REPORT_PREFIX}{cfg.period}:{cfg.platform}:{cfg.workspace}"


def _report_spec(cfg: ReportConfig) -> str:
    return f"{cfg.weekday} {cfg.at} {cfg.tz}"


def scheduled_period(cfg: ReportConfig, now: datetime) -> date:
    """The first day of what a run at ``now`` reports: the last whole week (from Monday) or
    month before the day it was due."""
    local = now.astimezone(cfg.zone)
    fired = local.date()
    if (local.hour, local.minute) < (cfg.hour, cfg.minute):
        fired -= timedelta(days=1)
    return previous_period(fired, cfg.period)


def job_id(cfg: DigestConfig) -> str:
    return f"{JOB_PREFIX}{cfg.platform}:{cfg.workspace}"


def _spec(cfg: DigestConfig) -> str:
    return f"{cfg.at} {cfg.tz}"


def scheduled_day(cfg: DigestConfig, now: datetime) -> date:
    """The day a run at ``now`` reports: the day before the latest scheduled time at or
    before ``now`` (grace times are far shorter than a day)."""
    local = now.astimezone(cfg.zone)
    fired = local.date()
    if (local.hour, local.minute) < (cfg.hour, cfg.minute):
        fired -= timedelta(days=1)
    return fired - timedelta(days=1)
