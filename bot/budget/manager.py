"""The budget in front of the provider: reserve, wait fairly, or refuse; then reconcile.

    ticket = await budget.acquire(who, model, tokens=prompt + max_tokens, cost=worst_case)
    ... call the provider ...
    await budget.settle(ticket, tokens=actual, cost=actual_cost)   # or release(ticket)

A request that fits goes at once. One that must wait joins its model's queue, served fairly
across channels (bot.budget.fairqueue) by one dispatcher task per model; its caller is told
its position and the expected wait. One that cannot fit a cap, or could not be served before
its deadline, is refused at once with the reason.

A full bucket is not handed out in one instant (see :class:`Pacer`): otherwise the first
channel of a burst to reach the budget takes the whole minute's quota, fair queue or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from bot.budget.backend import BudgetBackend
from bot.budget.fairqueue import FairQueue
from bot.budget.limits import (
    Ask,
    Cap,
    Granted,
    Rate,
    Refused,
    units_usd,
    usd_units,
    window,
    window_start,
)
from bot.budget.policy import Limits, Policy, ScopeKind, Who
from bot.catalog import ModelInfo
from bot.errors import (
    BudgetExceeded,
    QueueFull,
    RequestRejected,
    TooLargeForLimit,
    UnpricedModel,
    WaitTooLong,
)
from bot.lifecycle import AsyncResource
from bot.provider import Completion, RateLimitInfo

log = logging.getLogger(__name__)

# Sleep at most this long between looks at a waiting queue: other replicas may give back
# capacity that this process is not told about.
_MAX_NAP = 1.0
# Seconds of refill kept back when "remaining" is learned: the provider's bucket and this one
# refill on different clocks and see each call at slightly different moments. Without it, two
# replicas on Redis overshot by a few dozen tokens now and then (429s "try again in 10ms").
_HEADROOM = 0.25
STOPPING = "quotabot is restarting: please ask again in a moment."


class Pacer:
    """Hands out a model's account-wide buckets no faster than all of them in ``spread``
    seconds, holding at most ``burst`` (a share of each bucket) for immediate grants.

    Requests of a burst that arrive within ``spread`` then meet in the fair queue and are
    served in fair order instead of arrival order. No quota is lost: the provider's buckets
    refill from the first grant on, and ``spread`` is far shorter than their period. Small
    buckets are not paced: a request that takes over 1% of one (3 RPM, say) goes at once.
    """

    def __init__(self, spread: float, clock: Callable[[], float], *, burst: float = 0.1):
        self.burst = burst
        self.rate = 1.0 / spread if spread > 0 else math.inf
        self.clock = clock
        self.level = burst
        self._at = clock()

    def delay(self, ask: Ask) -> float:
        """Seconds until ``ask`` may go; 0 when it may go now."""
        self._refill()
        missing = self._share(ask) - self.level
        return 0.0 if missing <= 0 or math.isinf(self.rate) else missing / self.rate

    def take(self, ask: Ask) -> None:
        self._refill()
        self.level -= self._share(ask)

    def try_take(self, ask: Ask) -> bool:
        """Take ``ask``'s share if it may go now. (Taken before the backend is asked: many
        requests check at once while the backend's answer is awaited.)"""
        if self.delay(ask):
            return False
        self.take(ask)
        return True

    def give_back(self, ask: Ask) -> None:
        self.level += self._share(ask)

    def full(self) -> bool:
        """No burst under way: nothing was granted for a while."""
        self._refill()
        return self.level >= self.burst

    def _share(self, ask: Ask) -> float:
        shares = (amount / rate.limit for rate, amount in ask.rates if rate.shared and rate.limit)
        share = max(shares, default=0.0)
        return 0.0 if share > self.burst / 10 else share

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self._at) * self.rate)
        self._at = now


@dataclass(frozen=True, slots=True)
class QueueInfo:
    model: str
    position: int
    """1 means next in line."""
    wait: float
    """Estimated seconds until the request is sent."""


OnQueued = Callable[[QueueInfo], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Standing:
    """One limit and how much of it is used now."""

    label: str
    unit: str
    used: float | int | Decimal
    limit: float | int | Decimal
    resets_at: datetime | None
    """For caps; rates refill continuously."""

    @property
    def share(self) -> float:
        return float(self.used) / float(self.limit) if self.limit else 0.0


@dataclass(eq=False)
class Batch:
    """Several legacy-completions requests sent as one call with an array ``prompt``."""

    prompts: list[str]
    result: asyncio.Future[Completion] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    sent_at: float | None = None
    tickets: list[Ticket] = field(default_factory=list)
    """Its members' tickets: they leave together, with the first member's call."""


@dataclass(eq=False)
class Ticket:
    """A reservation: what this request took, to be settled or released exactly once."""

    model: ModelInfo
    ask: Ask
    windows: dict[str, str]
    batch: Batch | None = None
    index: int = 0
    """This request's prompt and choice index in ``batch``."""
    done: bool = False
    sent_at: float | None = None
    """Real time (not the budget's clock): compared with when the provider's headers came."""
    _on_sent: Callable[[Ticket], None] | None = field(default=None, repr=False)

    def sending(self) -> None:
        """Called as the call leaves for the provider (a batch leaves once, for all)."""
        now = time.monotonic()
        if self.batch is not None:
            self.batch.sent_at = now
        for ticket in self.batch.tickets if self.batch is not None else [self]:
            if ticket.sent_at is None:
                ticket.sent_at = now
                if ticket._on_sent is not None:
                    ticket._on_sent(ticket)

    def shared(self) -> Iterator[tuple[str, int]]:
        """What it holds of its model's account-wide buckets, by bucket."""
        return ((rate.key, amount) for rate, amount in self.ask.rates if rate.shared)


@dataclass(eq=False)
class _Waiter:
    who: Who
    ask: Ask
    deadline: float
    future: asyncio.Future[Ticket]
    batch_key: Hashable | None
    prompt: str | None
    queued_at: float


def _shared_requests(rate: Rate) -> bool:
    return rate.shared and rate.unit == "requests"


class Budget(AsyncResource):
    def __init__(
        self,
        backend: BudgetBackend,
        policy: Policy,
        *,
        queue_size: int = 1000,
        batch_max: int = 20,
        spread: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        overrides: Callable[[], Awaitable[Limits]] | None = None,
        refresh: float = 10.0,
        seed: Callable[[Cap, datetime], Awaitable[int]] | None = None,
    ):
        self.backend = backend
        self.policy = policy
        self._overrides = overrides
        self._refresh_every = refresh
        self._next_refresh = 0.0
        self._seed = seed
        self._seeded: set[tuple[str, str]] = set()
        self._unsent: Counter[str] = Counter()
        """What granted calls not sent yet hold of each account-wide bucket."""
        self._sent: deque[Ticket] = deque()
        """Sent calls in the order they left (settled ones are dropped from the left):
        learning from a header looks only at the few sent after the answering call."""
        self.queue_size = queue_size
        self.batch_max = batch_max
        self.spread = spread
        self.clock = clock
        self._lanes: dict[str, _Lane] = {}
        self.no_batch: set[str] = set()
        """Models whose server mishandles prompt arrays: sent one prompt per call."""

    def lane(self, model: ModelInfo) -> _Lane:
        if model.name not in self._lanes:
            self._lanes[model.name] = _Lane(self, model)
        return self._lanes[model.name]

    def queue_depths(self) -> list[tuple[str, float]]:
        """Requests waiting, by model (for metrics)."""
        return [(name, float(len(lane.queue))) for name, lane in self._lanes.items()]

    def queued(self, model: str) -> int:
        lane = self._lanes.get(model)
        return len(lane.queue) if lane else 0

    async def acquire(
        self,
        who: Who,
        model: ModelInfo,
        *,
        tokens: int,
        cost: Decimal | None,
        deadline: float,
        on_queued: OnQueued | None = None,
        batch_key: Hashable | None = None,
        prompt: str | None = None,
    ) -> Ticket:
        """Reserve ``tokens`` (prompt + max_tokens) and ``cost`` (the most it can cost). A model
        with no price is refused where a spend cap applies: the cap could not count it.

        ``batch_key`` (legacy completions only): requests with equal keys may be combined into
        one call; then the ticket's ``batch`` says so and ``prompt`` is this request's part.
        """
        await self._refresh()
        ask = self.policy.ask(who, model, tokens=tokens, cost=cost)
        if not model.priced:
            for cap, _ in ask.caps:
                if cap.unit == "usd":  # it would count the model as free
                    raise UnpricedModel(model=model.name, cap=cap.label)
        self._check_fits(ask)
        await self._seed_caps(ask)
        lane = self.lane(model)
        if not lane.queue and lane.at_once(who, ask):
            outcome = await self.backend.acquire(ask)
            if isinstance(outcome, Granted):
                return self.issue(Ticket(model, ask, _windows(ask, outcome)))
            lane.not_at_once(who, ask)
            if isinstance(outcome, Refused):
                raise _refusal(outcome)
            if math.isinf(outcome.seconds):
                raise _too_large(outcome.rate, ask)
        return await lane.wait(who, ask, deadline, on_queued, batch_key, prompt)

    async def check(self, who: Who, model: ModelInfo, *, cost: Decimal | None) -> None:
        """Raise what :meth:`acquire` would for a call costing ``cost`` if a cap has no room
        for it now, or a limit could never hold it; reserve nothing. For work to refuse
        before it starts (downloading a recording): what passes here may still be refused by
        ``acquire``, since others spend in between. Rates are not looked at: a request waits
        for them, it is not refused."""
        await self._refresh()
        ask = self.policy.ask(who, model, tokens=0, cost=cost)
        if not model.priced:
            for cap, _ in ask.caps:
                if cap.unit == "usd":
                    raise UnpricedModel(model=model.name, cap=cap.label)
        self._check_fits(ask)
        await self._seed_caps(ask)
        for cap, amount in ask.caps:
            state = await self.backend.cap_state(cap)
            if state.used + amount > state.limit:
                raise _refusal(Refused(cap, state.used, state.resets_at))

    async def allowed_models(self, who: Who) -> tuple[frozenset[str] | None, ScopeKind]:
        """The models ``who`` may use (None: any), and the scope whose list says so."""
        await self._refresh()
        return self.policy.allowed_models(who)

    async def _refresh(self, *, now: bool = False) -> None:
        """Pick up limits that admins changed at run time (perhaps on another replica)."""
        if self._overrides is None or (not now and self.clock() < self._next_refresh):
            return
        self._next_refresh = self.clock() + self._refresh_every
        try:
            self.policy.overrides = await self._overrides()
        except Exception:
            log.exception("could not read the run-time budget limits; keeping the last ones")

    async def _seed_caps(self, ask: Ask) -> None:
        """A backend that keeps nothing across restarts learns each cap's use so far from the
        usage store, once per window, before its first charge."""
        if self._seed is None:
            return
        now = datetime.now(UTC)
        for cap, _ in ask.caps:
            w = window(cap.period, now)
            if (cap.key, w) in self._seeded:
                continue
            self._seeded.add((cap.key, w))
            used = await self._seed(cap, window_start(cap.period, now))
            if used:
                await self.backend.adjust([], [(cap, w, used)])

    async def reload(self) -> None:
        await self._refresh(now=True)

    async def status(self, who: Who, model: ModelInfo) -> list[Standing]:
        """Every limit ``who`` is under for ``model``, with its use now: for /usage."""
        await self._refresh()
        ask = self.policy.ask(who, model, tokens=0, cost=None)
        await self._seed_caps(ask)
        out = []
        for rate, _ in ask.rates:
            r = await self.backend.rate_state(rate)
            out.append(Standing(rate.label, rate.unit, r.limit - max(0.0, r.level), r.limit, None))
        for cap, _ in ask.caps:
            c = await self.backend.cap_state(cap)
            used, limit = (
                (units_usd(c.used), units_usd(c.limit)) if cap.unit == "usd" else (c.used, c.limit)
            )
            out.append(Standing(cap.label, cap.unit, used, limit, c.resets_at))
        return out

    def _check_fits(self, ask: Ask) -> None:
        for rate, amount in ask.rates:
            if amount > rate.limit:
                raise TooLargeForLimit(
                    label=rate.label, needed=amount, limit=rate.limit, unit=rate.unit
                )
        for cap, amount in ask.caps:
            if amount > cap.limit and cap.unit != "usd":
                raise TooLargeForLimit(
                    label=cap.label, needed=amount, limit=cap.limit, unit=cap.unit
                )

    def issue(self, ticket: Ticket) -> Ticket:
        self._unsent.update(dict(ticket.shared()))
        ticket._on_sent = self._sent_one
        return ticket

    def _sent_one(self, ticket: Ticket) -> None:
        if not ticket.done:
            self._unsent.subtract(dict(ticket.shared()))
            self._sent.append(ticket)

    def _retire(self, ticket: Ticket) -> bool:
        """Mark ``ticket`` settled or released; False if it already was."""
        if ticket.done:
            return False
        ticket.done = True
        if ticket.sent_at is None:
            self._unsent.subtract(dict(ticket.shared()))
        while self._sent and self._sent[0].done:
            self._sent.popleft()
        return True

    async def settle(self, ticket: Ticket, *, tokens: int, cost: Decimal | None) -> None:
        """The call was answered: charge what it really took instead of what was reserved."""
        if not self._retire(ticket):
            return
        rates = [(r, tokens - amount) for r, amount in ticket.ask.rates if r.unit == "tokens"]
        caps = []
        for cap, amount in ticket.ask.caps:
            if cap.unit == "tokens":
                caps.append((cap, ticket.windows[cap.key], tokens - amount))
            elif cap.unit == "usd":
                caps.append((cap, ticket.windows[cap.key], usd_units(cost or Decimal(0)) - amount))
        await self.backend.adjust(rates, caps)
        self.lane(ticket.model).wake()

    async def release(self, ticket: Ticket) -> None:
        """The call failed: give everything back, except the account's request count (the
        provider counts failed requests against its per-minute and per-day limits too)."""
        if not self._retire(ticket):
            return
        rates = [(r, -amount) for r, amount in ticket.ask.rates if not _shared_requests(r)]
        caps = [(c, ticket.windows[c.key], -amount) for c, amount in ticket.ask.caps]
        await self.backend.adjust(rates, caps)
        self.lane(ticket.model).wake()

    async def observe(
        self, model: ModelInfo, info: RateLimitInfo | None, ticket: Ticket | None = None
    ) -> None:
        """Learn the account's real limits from the provider's x-ratelimit-* headers.

        "Remaining" was true when the provider took ``ticket``'s call: calls sent after it are
        not in it yet, so what they hold is taken off it. Calls sent before it are, and taking
        them off too would lose their share of the bucket for good (a burst with hundreds of
        calls in flight lost 5% of the quota that way). Without ``ticket``, every call in
        flight counts as not seen."""
        if info is None:
            return
        seen_until = -math.inf
        if ticket is not None and ticket.sent_at is not None:
            seen_until = ticket.sent_at
        unseen = Counter({key: n for key, n in self._unsent.items() if n > 0})
        for other in reversed(self._sent):  # newest first: only those after ``ticket``
            assert other.sent_at is not None
            if other.sent_at <= seen_until:
                break
            if not other.done:
                unseen.update(dict(other.shared()))
        for rate in self.policy.model_rates(model):
            kind = rate.key.rsplit(":", 1)[1]
            if kind == "rpm":
                limit, remaining = info.limit_requests, info.remaining_requests
            elif kind == "tpm":
                limit, remaining = info.limit_tokens, info.remaining_tokens
            else:
                continue
            if limit and remaining is not None:
                headroom = int(limit * _HEADROOM / rate.period)  # none for small buckets
                left = remaining - unseen[rate.key] - headroom
                await self.backend.learn(rate, limit, max(0, left))

    async def backoff(self, model: ModelInfo, seconds: float) -> None:
        """After a 429 the whole model waits, not only the request that got it."""
        await self.backend.block(self.policy.model_rates(model), seconds)
        self.lane(model).wake()

    async def aclose(self) -> None:
        for lane in self._lanes.values():
            await lane.aclose()


def _windows(ask: Ask, granted: Granted) -> dict[str, str]:
    return {cap.key: w for (cap, _), w in zip(ask.caps, granted.windows, strict=True)}


def _refusal(outcome: Refused) -> BudgetExceeded:
    cap, now = outcome.cap, datetime.now(UTC)
    return BudgetExceeded(
        label=cap.label,
        used=_amount(cap, outcome.used, cap.limit),
        limit=_amount(cap, cap.limit, cap.limit),
        resets_at=outcome.resets_at,
        now=now,
    )


def _amount(cap: Cap, units: int, scale: int) -> str:
    if cap.unit == "usd":  # cents, unless the cap itself is under a dollar
        places = 2 if units_usd(scale) >= 1 else 4
        return f"${units_usd(units):,.{places}f}"
    return f"{units:,} {cap.unit}"


def _too_large(rate: Rate, ask: Ask) -> TooLargeForLimit:
    needed = dict(ask.rates).get(rate, 0)
    return TooLargeForLimit(label=rate.label, needed=needed, limit=rate.limit, unit=rate.unit)


class _Lane:
    """One model's queue and the task that serves it."""

    def __init__(self, budget: Budget, model: ModelInfo):
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
            if _shared_requests(rate):
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
                self._fail(head, _refusal(outcome))
            elif math.isinf(outcome.seconds):
                self._fail(head, _too_large(outcome.rate, head.ask))
            else:
                self.blocked[outcome.rate.key] = now + outcome.seconds

    def _eligible(self, waiter: _Waiter) -> bool:
        return not any(rate.key in self.blocked for rate, _ in waiter.ask.rates)

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
            ask = ask + _without_shared_requests(w.ask)
        return ask

    def _grant(self, group: list[_Waiter], outcome: Granted) -> None:
        windows = _windows(self._combined(group), outcome)
        batch = Batch([w.prompt or "" for w in group]) if len(group) > 1 else None
        for i, w in enumerate(group):
            self._remove(w, served=True)
            ask = w.ask if i == 0 else _without_shared_requests(w.ask)
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


def _without_shared_requests(ask: Ask) -> Ask:
    """A batch is one provider request: only its first member counts it."""
    return Ask(tuple((r, a) for r, a in ask.rates if not _shared_requests(r)), ask.caps)
