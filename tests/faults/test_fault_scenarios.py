"""Break a two-replica quotabot under load and check that nothing is lost or doubled.

Each test runs its own deployment (see ``rig.py``): a throwaway PostgreSQL and Redis, the
sandbox as a process, the fake Slack and Discord APIs and two ``quotabot serve`` replicas, with
signed Slack events (each a new message in a thread of its own) and, in the tests that kill
no replica, signed Discord ``/ask`` interactions (every third question) spread over both.
After the fault and the recovery, it compares three independent records:

- the sandbox's log of every completion it served (``GET /sandbox/responses``: the
  ``x-request-id`` of each, with its tokens),
- the usage table (each ``ok`` row names the response it records in ``provider_request_id``),
- what each asker sees: every message the bot posted in the Slack thread, as edited last, or
  the interaction's response and follow-ups on Discord.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.discord.texts import warn
from bot import messages
from tests.faults.rig import Check, Deliveries, Rig

pytestmark = pytest.mark.timeout(120)


def assert_exactly_once(check: Check, deliveries: Deliveries) -> None:
    """Nothing lost, nothing doubled, for a fault that no process died of:

    - every event was acknowledged, and every thread has exactly one message from the bot, and
      it is the answer;
    - the served responses and the ok usage rows are the same set, one row each, with the
      same tokens, so the usage table's token total is the sandbox's;
    - every thread has exactly one ok row.
    """
    assert not deliveries.unacked, [e.number for e in deliveries.unacked]
    unanswered = [(t.event.number, t.bot_messages) for t in check.threads if not t.answered]
    assert not unanswered, (unanswered, check.summary())
    check.assert_rows_match_served()
    assert set(check.rows_by_response()) == set(check.served)
    assert check.recorded_tokens() == check.served_tokens() == check.stats["total"]["total_tokens"]
    per_thread = Counter(r.thread for r in check.ok_rows)
    assert all(per_thread[t.event.key] == 1 for t in check.threads), per_thread


@dataclass
class KillRun:
    check: Check
    deliveries: Deliveries
    unsettled_at_kill: set[str]
    """Threads (ts) unanswered at the kill: the only ones a killed process can have had."""
    restarted_at: float
    logs: str


async def kill_and_restart(tmp_path: Path, env: dict[str, str]) -> KillRun:
    """Replica 0 is killed (SIGKILL) 1.5 s into the load, with answers under way (the sandbox
    takes 1 s per call), and started again 1.5 s later on the same port and data directory;
    then more events, to both."""
    async with Rig(tmp_path, latency=1.0, replica_env=env) as rig:
        await rig.start_replicas(2)
        deliveries = Deliveries()
        load = asyncio.create_task(rig.drive(48, rate=12, deliveries=deliveries))
        await asyncio.sleep(1.5)
        unsettled = {e.key for e in deliveries.events if not rig.thread(e).settled}
        # An answer already in its thread is not done until its claim is marked so: one
        # killed in between is taken over, and may be answered (and recorded) once more.
        claimed = await rig.open_claims()
        unsettled |= {e.key for e in deliveries.events if any(e.key in c for c in claimed)}
        await rig.replicas[0].kill()
        await asyncio.sleep(1.5)
        await rig.replicas[0].start()
        restarted_at = time.monotonic()
        await load
        await rig.drive(12, rate=12, deliveries=deliveries)  # to both again
        await rig.settle(deliveries.events)
        check = await rig.check(deliveries.events)
        logs = "\n".join(r.log.read_text(errors="replace")[-3000:] for r in rig.replicas)
        return KillRun(check, deliveries, unsettled, restarted_at, logs)


@pytest.mark.parametrize("ack_after_claim", [False, True], ids=["default", "ack-after-claim"])
async def test_kill_9_of_a_replica_with_answers_in_flight_then_restart(
    tmp_path: Path, ack_after_claim: bool
) -> None:
    """Slack redelivers what got no 200 (the driver does: ``X-Slack-Retry-Num``, to whichever
    replica is up); what the killed replica acknowledged, a live one takes over once its lease
    has run out (3 s here). Asserted:

    - every event was acknowledged in the end, some only on redelivery, and the restarted
      replica acknowledged and answered events again;
    - every thread has exactly one message from the bot, and it is the answer: also those
      the killed replica had acknowledged, and left a placeholder or half an answer in. By
      default the ack does not wait for the claim: an event acknowledged in the moment before
      the kill, not claimed yet, is in the killed replica's journal, which its restart on the
      same data directory claims; with ``QUOTABOT_ACK_AFTER_CLAIM`` it was claimed already;
    - every ok usage row records a response the sandbox served, with its tokens, and no
      response has two rows: the table's tokens are the served tokens of those responses;
    - a response served but never recorded can only be a call the killed replica had under
      way: there are no more of them than threads unanswered at the kill;
    - every thread has exactly one ok row, but one that the killed replica's call may have
      answered too (recorded before the kill, delivered by nobody): at most two.
    """
    env = {"QUOTABOT_ACK_AFTER_CLAIM": "true"} if ack_after_claim else {}
    run = await kill_and_restart(tmp_path, env)
    check, deliveries = run.check, run.deliveries
    assert run.unsettled_at_kill, "the kill hit no answer under way"
    assert not deliveries.unacked, [e.number for e in deliveries.unacked]
    assert any(n > 1 for n in deliveries.posts.values()), "no event needed a redelivery"
    after = [
        eid
        for eid, (name, at) in deliveries.acked_by.items()
        if name == "replica-0" and at > run.restarted_at
    ]
    assert after, "the restarted replica took no event"

    unanswered = [(t.event.number, t.bot_messages) for t in check.threads if not t.answered]
    assert not unanswered, (unanswered, check.summary(), run.logs)
    assert "taking over event slack:" in run.logs, "no event was taken over"
    check.assert_rows_match_served()
    recorded = {r.provider_request_id for r in check.ok_rows}
    assert check.recorded_tokens() == check.served_tokens({i for i in recorded if i})
    lost = set(check.served) - recorded
    assert len(lost) <= len(run.unsettled_at_kill), (lost, check.summary())
    per_thread = Counter(r.thread for r in check.ok_rows)
    for t in check.threads:
        most = 2 if t.event.key in run.unsettled_at_kill else 1
        assert 1 <= per_thread[t.event.key] <= most, (t.event.number, per_thread)


async def test_postgresql_stopped_and_started_during_load(tmp_path: Path) -> None:
    """PostgreSQL goes away for 12 s under load (``pg_ctl stop -m fast``: connections cut), then
    comes back. Answers go on; the rows the database could not take are spooled and written
    when it is back, once. Asserted: :func:`assert_exactly_once`, and that rows were spooled
    (the fault did hit writes)."""
    async with Rig(tmp_path, latency=0.3) as rig:
        await rig.start_replicas(2)
        deliveries = Deliveries()
        load = asyncio.create_task(rig.drive(90, rate=6, deliveries=deliveries, discord_every=3))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(rig.pg.stop, "fast")
        await asyncio.sleep(12)
        await asyncio.to_thread(rig.pg.start)
        await load
        await rig.settle(deliveries.events)
        check = await rig.check(deliveries.events)
        logs = rig.logs()

    assert "the database did not take" in logs
    assert "spooled usage rows to the database" in logs
    assert_exactly_once(check, deliveries)


async def test_a_replica_killed_with_usage_spooled_writes_it_after_its_restart(
    tmp_path: Path,
) -> None:
    """PostgreSQL stops under load; once replica 1 has usage rows in its spool, it is killed
    (SIGKILL). Started again while the database is still down, it exits at once with a
    one-line reason (it checks the schema first); started once the database is back, it writes
    what it had spooled. Asserted: every row in the spool at the kill (fsynced: acknowledged)
    is in the table exactly once afterwards, and the spool is gone; and, as in the kill test, no
    thread has two answers, every ok row is a served response with its tokens and no response
    has two rows, the responses served but not recorded are no more than the threads
    unanswered at the kill, and threads left unanswered were all unanswered at the kill (the
    victim's claims made while the database was down could not be kept for a takeover)."""
    async with Rig(tmp_path, latency=0.3) as rig:
        await rig.start_replicas(2)
        victim = rig.replicas[1]
        deliveries = Deliveries()
        load = asyncio.create_task(rig.drive(60, rate=6, deliveries=deliveries))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(rig.pg.stop, "fast")
        for _ in range(100):  # until the victim has spooled a few rows
            if rig.spool(victim).exists() and len(rig.spool(victim).read_text().splitlines()) >= 3:
                break
            await asyncio.sleep(0.1)
        unsettled = {e.key for e in deliveries.events if not rig.thread(e).settled}
        await victim.kill()
        spooled = [
            json.loads(line)["call_id"] for line in rig.spool(victim).read_text().splitlines()
        ]
        await asyncio.sleep(1.0)
        with pytest.raises(RuntimeError, match="ended at start"):
            await victim.start()  # the database is still down: it cannot start, and says so
        refused = victim.tail(1)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(rig.pg.start)
        await victim.start()
        await load
        await rig.settle(deliveries.events, expect_stuck=len(unsettled))
        check = await rig.check(deliveries.events)
        logs = rig.logs()

    assert len(spooled) >= 3, "the victim had spooled nothing"
    assert refused.startswith("quotabot: The database at ") and "does not answer" in refused
    in_table = Counter(r.call_id for r in check.rows)
    assert all(in_table[call] == 1 for call in spooled), (spooled, logs)
    assert not rig.spool(victim).exists()
    assert not deliveries.unacked, [e.number for e in deliveries.unacked]
    doubled = [(t.event.number, t.bot_messages) for t in check.doubled_answers()]
    assert not doubled, doubled
    check.assert_rows_match_served()
    recorded = {r.provider_request_id for r in check.ok_rows}
    stuck = [t for t in check.threads if not t.settled]
    assert {t.event.key for t in stuck} <= unsettled, check.summary()
    # Calls the victim had under way at the kill: served, never recorded; their threads were
    # unanswered then (and were answered by a takeover since, when their claim was written).
    assert len(set(check.served) - recorded) <= len(unsettled), check.summary()


async def test_redis_stopped_and_started_during_load(tmp_path: Path) -> None:
    """Redis is killed under load and started again (empty) 4 s later. Budgets fall back to
    each replica's share, then go back to Redis. Asserted: :func:`assert_exactly_once`, that
    the replicas did fall back and came back (logs), and that no replica reports the
    fallback any more (``quotabot_budget_fallback 0`` in ``/metrics``)."""
    async with Rig(tmp_path, latency=0.3) as rig:
        await rig.start_replicas(2)
        deliveries = Deliveries()
        load = asyncio.create_task(rig.drive(64, rate=8, deliveries=deliveries, discord_every=3))
        await asyncio.sleep(1.5)
        await asyncio.to_thread(rig.redis.kill)
        await asyncio.sleep(4)
        await asyncio.to_thread(rig.redis.start)
        await load
        await rig.settle(deliveries.events)
        check = await rig.check(deliveries.events)
        metrics = [await rig.metrics(r) for r in rig.replicas]
        logs = rig.logs()

    assert "unreachable" in logs and "answers again" in logs
    for text in metrics:
        assert "\nquotabot_budget_fallback 0.0" in text
    assert_exactly_once(check, deliveries)


MAX_ATTEMPTS = 3


async def test_provider_500s_and_dropped_connections(tmp_path: Path) -> None:
    """The sandbox fails half its calls (500, 503 or a dropped connection, seeded); quotabot
    tries each request at most 3 times. Asserted:

    - every thread has exactly one message from the bot: the answer, or the message that the
      provider is not answering (never silence, never the placeholder, never two);
    - the ok rows are exactly the served responses, one each, with the same tokens (totals
      equal); every fault the sandbox injected is one failed row (its count of failures is
      the number of failed rows);
    - retries are bounded: at most 3 rows per thread; an answered thread has one ok row, a
      failed one has 3 failed rows and no ok row.
    """
    env = {
        "QUOTABOT_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "QUOTABOT_RETRY_BASE": "0.05",
        "QUOTABOT_RETRY_MAX": "0.2",
    }
    async with Rig(tmp_path, latency=0.2, failure_rate=0.5, replica_env=env) as rig:
        await rig.start_replicas(2)
        deliveries = await rig.drive(45, rate=10, discord_every=3)
        await rig.settle(deliveries.events)
        check = await rig.check(deliveries.events)

    assert not deliveries.unacked
    told = {"slack": f":warning: {messages.PROVIDER_DOWN}", "discord": warn(messages.PROVIDER_DOWN)}
    for t in check.threads:
        assert t.answered or t.bot_messages == [told[t.event.platform]], (
            t.event.number,
            t.bot_messages,
        )
    check.assert_rows_match_served()
    assert set(check.rows_by_response()) == set(check.served)
    assert check.recorded_tokens() == check.served_tokens() == check.stats["total"]["total_tokens"]
    failed_rows = [r for r in check.rows if r.outcome != "ok"]
    assert len(failed_rows) == check.stats["total"]["failures"] > 0
    rows = Counter(r.thread for r in check.rows)
    ok = Counter(r.thread for r in check.ok_rows)
    for t in check.threads:
        assert 1 <= rows[t.event.key] <= MAX_ATTEMPTS
        assert ok[t.event.key] == (1 if t.answered else 0)
        if not t.answered:
            assert rows[t.event.key] == MAX_ATTEMPTS
    # The seeded faults make both outcomes happen (retries that worked, and users told).
    assert any(rows[t.event.key] > 1 for t in check.threads if t.answered)
    assert any(not t.answered for t in check.threads)
