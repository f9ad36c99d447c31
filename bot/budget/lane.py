"""One model's queue and the task that serves it: fair across channels (bot.budget.fairqueue),
paced (bot.budget.pacer), grouping legacy-completions requests into batches where it can."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

from bot.budget.backend import BudgetBackend
from bot.budget.fairqueue import FairQueue
from bot.budget.limits import Ask, Cap, Granted, Rate, Refused, units_usd
from bot.budget.pacer import Pacer
from bot.budget.policy import Policy, Who
from bot.budget.tickets import (
    Batch,
    OnQueued,
    QueueInfo,
    Ticket,
    shared_requests,
    without_shared_requests,
)
from bot.catalog import ModelInfo
from bot.errors import BudgetExceeded, QueueFull, RequestRejected, TooLargeForLimit, WaitTooLong
from bot.messages import STOPPING, quantity


class Host(Protocol):
    """What a lane needs of the budget that owns it (bot.budget.manager.Budget)."""

    backend: BudgetBackend
    policy: Policy
    clock: Callable[[], float]
    spread: float
    queue_size: int
    batch_max: int
    no_batch: set[str]

    def issue(self, ticket: Ticket) -> Ticket: ...

    def held(self, cap: Cap) -> int: ...

    async def release(self, ticket: Ticket) -> None: ...


# Sleep at most this long between looks at a waiting queue: other replicas may give back
# capacity that this process is not told about.
_MAX_NAP = 1.0


@dataclass(eq=False)
class _Waiter:
    who: Who
    ask: Ask
    deadline: float
    future: asyncio.Future[Ticket]
    batch_key: Hashable | None
    prompt: str | None
    queued_at: float
    refused: Refused | None = None
    """The cap that has no room for it unless calls in flight give some back: what it is
    refused with if its deadline comes first."""


def windows_of(ask: Ask, granted: Granted) -> dict[str, str]:
    return {cap.key: w for (cap, _), w in zip(ask.caps, granted.windows, strict=True)}


def _share(waiter: _Waiter, cap: Cap) -> int | None:
    """What ``waiter`` asks of ``cap``; None if it is not under it."""
    return next((amount for c, amount in waiter.ask.caps if c.key == cap.key), None)


def may_fit(refused: Refused, ask: Ask, spare: int) -> bool:
    """Could ``ask`` fit ``refused``'s cap once calls in flight that hold ``spare`` of it
    settle? They reserved prompt and max_tokens at full price and give back what they did
    not use, so a cap that looks spent may not be: then the request waits for them rather
    than being refused."""
    share = sum(amount for cap, amount in ask.caps if cap.key == refused.cap.key)
    return spare > 0 and refused.used + share <= refused.cap.limit + spare


def refusal(outcome: Refused) -> BudgetExceeded:
    cap, now = outcome.cap, datetime.now(UTC)
    return BudgetExceeded(
        label=cap.label,
        used=_amount(cap, outcome.used, cap.limit),
        limit=_amount(cap, cap.limit, cap.limit, unit=True),
        resets_at=outcome.resets_at,
        now=now,
        cap_key=cap.key,
        unit=cap.unit,
    )


def _amount(cap: Cap, units: int, scale: int, *, unit: bool = False) -> str:
    """``$0.0060``; ``1`` (used) and ``1 request`` (the limit): "1 of 1 request used"."""
    if cap.unit == "usd":  # cents, unless the cap itself is under a dollar (or a cent)
        limit = units_usd(scale)
        places = 2 if limit >= 1 else 4 if limit >= Decimal("0.01") else 6
        return f"${units_usd(units):,.{places}f}"
    return quantity(units, cap.unit) if unit else f"{units:,}"


def too_large(rate: Rate, ask: Ask) -> TooLargeForLimit:
    needed = dict(ask.rates).get(rate, 0)
    return TooLargeForLimit(label=rate.label, needed=needed, limit=rate.limit, unit=rate.unit)


class Lane:
    """One model's queue and the task that serves it."""

    def __init__(self, budget: Host, model: ModelInfo):
        self.budget = budget
        self.model = model
        self.queue: FairQueue[_Waiter] = FairQueue(credit=budget.spread, clock=budget.clock)
        self.pacer = Pacer(budget.spread, budget.clock)
        self.queued: Counter[Rate] = Counter()
        """What every waiter together needs of each bucket."""
        self.blocked: dict[str, float] = {}
        self._next_expiry_check = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def at_once(self, who: Who, ask: Ask) -> bool:
        """May ``ask`` skip the queue? If so it is counted as served (undo: not_at_once)."""
        if self.pacer.full():
            self.queue.forget()
        if not self.pacer.try_take(ask):
            return False
        self.queue.charge(who.flow, self.budget.policy.weight(who))
        return True

    def not_at_once(self, who: Who, ask: Ask) -> None:
        self.pacer.give_back(ask)
        self.queue.uncharge(who.flow, self.budget.policy.weight(who))

    def wake(self) -> None:
        """Capacity came back: look at every waiter again."""
        self.blocked.clear()
        self._wake.set()

    async def wait(
        self,
        who: Who,
        ask: Ask,
        deadline: float,
        on_queued: OnQueued | None,
        batch_key: Hashable | None,
        prompt: str | None,
    ) -> Ticket:
        b = self.budget
        if len(self.queue) >= b.queue_size:
            raise QueueFull(model=self.model.name, waiting=len(self.queue))
        future = asyncio.get_running_loop().create_future()
        waiter = _Waiter(who, ask, deadline, future, batch_key, prompt, b.clock())
        self._push(waiter, b.policy.weight(who))
        position = self.queue.position(waiter)
        eta = await self._estimate(waiter)
        now = b.clock()
        if now + eta > deadline:
            self._remove(waiter)
            raise WaitTooLong(model=self.model.name, wait=eta, deadline=deadline - now)
        self._ensure_running()
        self._wake.set()  # the newcomer may be eligible while everyone else waits
        if on_queued is not None:
            await on_queued(QueueInfo(self.model.name, position, eta))
        try:
            return await asyncio.shield(waiter.future)
        except asyncio.CancelledError:
            if (
                waiter.future.done()
                and not waiter.future.cancelled()
                and waiter.future.exception() is None
            ):
                await b.release(waiter.future.result())  # granted as we gave up: give it back
            elif not waiter.future.done():
                waiter.future.cancel()
                self._remove(waiter)
            raise

    async def _estimate(self, waiter: _Waiter) -> float:
        """Seconds until ``waiter`` is sent: for each of its buckets, what the requests ahead
        of it take (a share of what the whole queue takes, by its place), less what is there
        now, at the bucket's refill rate. Batched requests share one request each."""
        share = self.queue.position(waiter) / len(self.queue)
        batch = self.budget.batch_max if self._batches(waiter) else 1
        worst = 0.0
        for rate, amount in waiter.ask.rates:
            need = self.queued[rate] * share
            if shared_requests(rate):
                need /= batch
            state = await self.budget.backend.rate_state(rate)
            missing = max(need, amount) - state.level
            refill = missing * rate.period / state.limit if missing > 0 else 0.0
            worst = max(worst, state.blocked_for, refill)
        return worst

    def _batches(self, waiter: _Waiter) -> bool:
        return waiter.batch_key is not None and self.model.name not in self.budget.no_batch

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"budget-lane-{self.model.name}"
            )

    async def _run(self) -> None:
        b = self.budget
        while len(self.queue):
            self._wake.clear()  # anything that happens from here on wakes the next nap
            now = b.clock()
            self._expire(now)
            self.blocked = {k: t for k, t in self.blocked.items() if t > now}
            head = self.queue.peek(self._eligible)
            if head is None:
                await self._nap(now)
                continue
            group = self._group(head)
            ask = self._combined(group)
            if pace := self.pacer.delay(ask):
                await self._nap(now, until=now + pace)
                continue
            outcome = await b.backend.acquire(ask)
            if not isinstance(outcome, Granted) and len(group) > 1:
                group, ask = [head], head.ask
                outcome = await b.backend.acquire(ask)
            if isinstance(outcome, Granted):
                self.pacer.take(ask)
                self._grant(group, outcome)
            elif isinstance(outcome, Refused):
                if may_fit(outcome, head.ask, b.held(outcome.cap)):
                    head.refused = outcome
                    self.blocked[outcome.cap.key] = now + _MAX_NAP  # or until a call settles
                    self._refuse_behind(outcome, kept=head)
                else:
                    self._fail(head, refusal(outcome))
                    self._refuse_behind(outcome)
            elif math.isinf(outcome.seconds):
                self._fail(head, too_large(outcome.rate, head.ask))
            else:
                self.blocked[outcome.rate.key] = now + outcome.seconds

    def _refuse_behind(self, refused: Refused, *, kept: _Waiter | None = None) -> None:
        """Everyone else waiting whose share of the same cap cannot fit is refused now, not
        when the rates let them reach the head: a spent cap refuses at once, as it does a
        newcomer (and a fallback model can take them while its buckets are full). Those that
        might fit, in the order they would be served, wait: as many as the cap's room plus
        what the calls in flight could give back would hold."""
        room = refused.cap.limit - refused.used + self.budget.held(refused.cap)
        if kept is not None:
            room -= _share(kept, refused.cap) or 0
        for w in list(self.queue):
            amount = _share(w, refused.cap)
            if w is kept or amount is None:
                continue
            if amount > room:
                self._fail(w, refusal(Refused(refused.cap, refused.used, refused.resets_at)))
            else:
                room -= amount
                w.refused = refused

    def _eligible(self, waiter: _Waiter) -> bool:
        return not any(rate.key in self.blocked for rate, _ in waiter.ask.rates) and not any(
            cap.key in self.blocked for cap, _ in waiter.ask.caps
        )

    async def _nap(self, now: float, *, until: float = math.inf) -> None:
        until = min(until, *self.blocked.values(), now + _MAX_NAP)
        until = min(until, min((w.deadline for w in self.queue), default=until))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(until - now, _MAX_NAP)))

    def _push(self, waiter: _Waiter, weight: float) -> None:
        self.queue.push(waiter.who.flow, waiter, weight)
        self.queued.update(dict(waiter.ask.rates))

    def _remove(self, waiter: _Waiter, *, served: bool = False) -> None:
        if waiter not in self.queue:
            # Its caller gave up while the backend was being asked for it (a real await with
            # Redis): already removed then; the grant gives its share back.
            return
        if served:
            self.queue.take(waiter)
        else:
            self.queue.drop(waiter)
        self.queued.subtract(dict(waiter.ask.rates))

    def _expire(self, now: float) -> None:
        if now < self._next_expiry_check:
            return
        self._next_expiry_check = now + 0.25  # a scan of the whole queue: not every turn
        for w in [w for w in self.queue if w.deadline <= now]:
            if w.refused is not None:  # the calls in flight gave back too little in time
                self._fail(w, refusal(w.refused))
                continue
            waited = now - w.queued_at
            self._fail(w, WaitTooLong(model=self.model.name, wait=waited, deadline=waited))

    def _fail(self, waiter: _Waiter, exc: Exception) -> None:
        self._remove(waiter)
        if not waiter.future.done():
            waiter.future.set_exception(exc)

    def _group(self, head: _Waiter) -> list[_Waiter]:
        b = self.budget
        if not self._batches(head):
            return [head]
        group = [head]
        for w in self.queue:
            if len(group) >= b.batch_max:
                break
            if w is not head and w.batch_key == head.batch_key and self._eligible(w):
                group.append(w)
        return group

    @staticmethod
    def _combined(group: list[_Waiter]) -> Ask:
        ask = group[0].ask
        for w in group[1:]:
            ask = ask + without_shared_requests(w.ask)
        return ask

    def _grant(self, group: list[_Waiter], outcome: Granted) -> None:
        windows = windows_of(self._combined(group), outcome)
        batch = Batch([w.prompt or "" for w in group]) if len(group) > 1 else None
        for i, w in enumerate(group):
            self._remove(w, served=True)
            ask = w.ask if i == 0 else without_shared_requests(w.ask)
            ticket = self.budget.issue(Ticket(self.model, ask, windows, batch, i))
            if batch is not None:
                batch.tickets.append(ticket)
            if w.future.done():  # its caller gave up meanwhile
                asyncio.get_running_loop().create_task(self.budget.release(ticket))
            else:
                w.future.set_result(ticket)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for w in list(self.queue):
            self._fail(w, RequestRejected(STOPPING))
