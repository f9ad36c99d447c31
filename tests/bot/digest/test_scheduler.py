"""The digest scheduler: exactly once across replicas racing on one PostgreSQL database, the
misfire path after downtime (within and beyond the grace time), and a sender that died
between claiming a digest and posting it. Posts go through the real Slack adapter to the
fake Slack Web API, which is where "once" is counted."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import update

from adapters.slack import SlackAdapter, SlackConfig
from bot.app import App, open_app
from bot.chat.commands import Commands
from bot.config import Settings, load_settings, sync_database_url
from bot.digest.send import claim_key
from bot.scheduler import DigestScheduler, scheduled_day
from bot.store import UsageRow
from bot.store.digests import Claims, DigestConfig
from bot.store.events import EventLog
from bot.store.schema import Claim
from fakes.slack_api import DEFAULT_TOKEN, FakeSlackAPI

TEAM, CHANNEL, TZ = "T0QB0TTEST", "C0DIGEST01", "Asia/Kolkata"


def slack(app: App, api_url: str) -> SlackAdapter:
    adapter = SlackAdapter(
        SlackConfig(bot_token=DEFAULT_TOKEN, api_url=api_url),
        service=app.service,
        commands=Commands(usage=app.usage, budget=app.budget, limits=app.limits),
        events=EventLog(app.db),
    )
    app.digests.posters["slack"] = adapter
    return adapter


async def configure(app: App, fired_at: datetime) -> DigestConfig:
    """A digest due at ``fired_at`` (local HH:MM), and usage on the day it reports."""
    local = fired_at.astimezone(DigestConfig("slack", TEAM, CHANNEL, tz=TZ).zone)
    cfg = await app.digests.settings.set(
        "slack", TEAM, channel=CHANNEL, at=f"{local:%H:%M}", tz=TZ, by="test"
    )
    day = scheduled_day(cfg, datetime.now(UTC))
    noon = datetime.combine(day, datetime.min.time(), tzinfo=cfg.zone) + timedelta(hours=12)
    await app.usage.record(
        UsageRow(
            call_id=f"c-{day}",
            request_id="r",
            created_at=noon,
            platform="slack",
            workspace=TEAM,
            channel="C1",
            user="U1",
            model="gpt-4o",
            endpoint="chat",
            prompt_tokens=10,
            completion_tokens=5,
            cost=Decimal("1.2345"),
            outcome="ok",
        )
    )
    return cfg


async def wait_until(predicate: Any, within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
async def api() -> AsyncIterator[FakeSlackAPI]:
    async with FakeSlackAPI() as fake:
        yield fake


def settings_for(url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("QUOTABOT_DATABASE_URL", url)
    return load_settings()


async def make_due(app: App, when: datetime) -> str:
    """As after downtime: the stored job's next run time is ``when``, in the past."""
    sched = DigestScheduler(app.digests, database_url=app.db.url, sweep_every=0)
    await sched.start(paused=True)
    (job,) = sched.scheduler.get_jobs()  # type: ignore[union-attr]
    job.modify(next_run_time=when)
    await sched.aclose()
    return str(job.id)


class _BarrierStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """Both replicas read the due job before either marks it run: the worst interleaving."""

    def __init__(self, barrier: threading.Barrier, **kw: Any):
        super().__init__(**kw)
        self.barrier = barrier
        self.met = False

    def get_due_jobs(self, now: datetime) -> list[Any]:
        jobs = super().get_due_jobs(now)
        if jobs and not self.met:
            self.met = True
            self.barrier.wait()
        return jobs  # type: ignore[no-any-return]


@pytest.mark.postgres
async def test_two_replicas_racing_post_once(
    postgres_url: str, api: FakeSlackAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(postgres_url, monkeypatch)
    fired = datetime.now(UTC) - timedelta(minutes=3)
    async with open_app(settings, auto_migrate=True) as app:
        cfg = await configure(app, fired)
        await make_due(app, fired.replace(second=0, microsecond=0))
    barrier = threading.Barrier(2, timeout=20)

    async def replica(name: str) -> list[tuple[str, date, str]]:
        async with open_app(settings) as app:
            app.digests.claims.owner = name
            adapter = slack(app, api.url)
            store = _BarrierStore(barrier, url=sync_database_url(app.db.url))
            sched = DigestScheduler(
                app.digests, database_url=app.db.url, sweep_every=0, jobstore=store
            )
            await sched.start()
            await wait_until(lambda: sched.runs)
            await sched.aclose()
            await adapter.aclose()
            return sched.runs

    runs = await asyncio.gather(
        *(asyncio.to_thread(asyncio.run, replica(n)) for n in ("replica-a", "replica-b"))
    )
    day = scheduled_day(cfg, datetime.now(UTC))
    outcomes = sorted(run[0][2].split(" ")[0] for run in runs)
    assert outcomes == ["posted", "sent"]  # both fired; one posted, the other found the claim
    assert all(run[0][1] == day for run in runs)
    (posted,) = api.history(CHANNEL)
    assert day.strftime("%d %b %Y") in posted.text or day.strftime("%d %b %Y") in str(posted.blocks)
    assert len(api.uploads) == 1


async def test_a_digest_missed_while_down_is_sent_once_on_restart(
    db_url: str, api: FakeSlackAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(db_url, monkeypatch)
    fired = datetime.now(UTC) - timedelta(minutes=20)
    async with open_app(settings, auto_migrate=True) as app:
        adapter = slack(app, api.url)
        cfg = await configure(app, fired)
        jid = await make_due(app, fired.replace(second=0, microsecond=0))
        sched = DigestScheduler(app.digests, database_url=app.db.url, sweep_every=0)
        await sched.start()  # the restart
        await wait_until(lambda: sched.runs)
        await asyncio.sleep(0.3)  # nothing more comes
        job = sched.scheduler.get_job(jid)  # type: ignore[union-attr]
        await sched.aclose()
        await adapter.aclose()
    day = scheduled_day(cfg, datetime.now(UTC))
    assert [(j, d, o.split(" ")[0]) for j, d, o in sched.runs] == [(jid, day, "posted")]
    assert len(api.history(CHANNEL)) == 1
    assert job.next_run_time > datetime.now(UTC) + timedelta(hours=20)  # tomorrow's, once


async def test_a_digest_older_than_the_grace_time_is_skipped_and_logged(
    db_url: str, api: FakeSlackAPI, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    settings = settings_for(db_url, monkeypatch)
    fired = datetime.now(UTC) - timedelta(hours=3)
    async with open_app(settings, auto_migrate=True) as app:
        adapter = slack(app, api.url)
        await configure(app, fired)
        await make_due(app, fired.replace(second=0, microsecond=0))
        sched = DigestScheduler(
            app.digests, database_url=app.db.url, sweep_every=0, misfire_grace=3600
        )
        with caplog.at_level(logging.WARNING, logger="bot.scheduler"):
            await sched.start()
            await wait_until(lambda: sched.runs)
        await sched.aclose()
        await adapter.aclose()
    assert [o for _, _, o in sched.runs] == ["missed"]
    assert api.history(CHANNEL) == []
    assert "more than the misfire grace time" in caplog.text
    assert "quotabot digest --send" in caplog.text


async def test_a_sender_that_died_after_claiming_is_replaced_once(
    db_url: str, api: FakeSlackAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(db_url, monkeypatch)
    async with open_app(settings, auto_migrate=True) as app:
        adapter = slack(app, api.url)
        cfg = await configure(app, datetime.now(UTC) - timedelta(minutes=1))
        day = scheduled_day(cfg, datetime.now(UTC))
        dead, slow = Claims(app.db, owner="dead"), Claims(app.db, owner="slow")
        lease = timedelta(minutes=10)
        assert await dead.claim(claim_key("slack", TEAM, day), lease=lease)
        other_day = claim_key("slack", TEAM, day - timedelta(days=1))
        assert await slow.claim(other_day, lease=lease)  # still within its lease
        async with app.db.session() as s, s.begin():
            await s.execute(
                update(Claim)
                .where(Claim.key == claim_key("slack", TEAM, day))
                .values(claimed_at=datetime.now(UTC) - timedelta(hours=1))
            )
        app.digests.lease = lease
        replicas = [app.digests, app.digests]
        results = await asyncio.gather(*(d.retry_stale() for d in replicas))
        assert sorted(len(r) for r in results) in ([0, 1], [1, 1])
        assert [o.split(" ")[0] for r in results for o in r].count("posted") == 1
        assert await app.digests.retry_stale() == []  # done now; the slow one is left alone
        claim = await app.digests.claims.get(claim_key("slack", TEAM, day))
        assert claim is not None and claim.done_at is not None and claim.attempts == 2
        assert (await app.digests.claims.get(other_day)).done_at is None  # type: ignore[union-attr]
        await adapter.aclose()
    assert len(api.history(CHANNEL)) == 1


async def test_a_sender_that_died_after_posting_is_not_doubled(
    db_url: str, api: FakeSlackAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posted, then died before marking the claim done: the take-over finds the message (its
    metadata carries the claim's key) and does not post again."""
    settings = settings_for(db_url, monkeypatch)
    async with open_app(settings, auto_migrate=True) as app:
        adapter = slack(app, api.url)
        cfg = await configure(app, datetime.now(UTC) - timedelta(minutes=1))
        day = scheduled_day(cfg, datetime.now(UTC))
        key = claim_key("slack", TEAM, day)
        assert await Claims(app.db, owner="dead").claim(key, lease=timedelta(minutes=10))
        message = await app.digests.compose(cfg, day)
        ts = await adapter.post_digest(TEAM, CHANNEL, message, key=key)  # ...and then it died
        other = await app.digests.compose(cfg, day - timedelta(days=1))
        assert await adapter.find_digest(TEAM, CHANNEL, other, key + "x") is None
        async with app.db.session() as s, s.begin():
            await s.execute(
                update(Claim)
                .where(Claim.key == key)
                .values(claimed_at=datetime.now(UTC) - timedelta(hours=1))
            )
        assert await app.digests.retry_stale() == [f"already posted {ts}"]
        claim = await app.digests.claims.get(key)
        assert claim is not None and claim.result == ts and claim.attempts == 2
        await adapter.aclose()
    assert len(api.history(CHANNEL)) == 1


async def test_jobs_follow_the_settings(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One job per enabled workspace at its local time; changed, it is rescheduled; switched
    off, removed. A second scheduler on the same table (another replica) sees the same."""
    settings = settings_for(f"sqlite:///{tmp_path / 'q.db'}", monkeypatch)
    async with open_app(settings) as app:
        a = DigestScheduler(app.digests, database_url=app.db.url, sweep_every=0)
        b = DigestScheduler(app.digests, database_url=app.db.url, sweep_every=0)
        await a.start(paused=True)
        await b.start(paused=True)
        await app.digests.settings.set("slack", TEAM, channel=CHANNEL, at="07:15", tz=TZ)
        await a.sync_jobs()
        (job,) = b.scheduler.get_jobs()  # type: ignore[union-attr]
        assert (job.id, job.name) == (f"digest:slack:{TEAM}", "07:15 Asia/Kolkata")
        local = job.next_run_time.astimezone(DigestConfig("s", "w", "c", tz=TZ).zone)
        assert (local.hour, local.minute) == (7, 15)
        await app.digests.settings.set("slack", TEAM, at="18:45")
        await b.sync_jobs()
        (job,) = a.scheduler.get_jobs()  # type: ignore[union-attr]
        assert job.name == "18:45 Asia/Kolkata"
        await app.digests.settings.set("slack", TEAM, enabled=False)
        await a.sync_jobs()
        assert b.scheduler.get_jobs() == []  # type: ignore[union-attr]
        await a.aclose()
        await b.aclose()
