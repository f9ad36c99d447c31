"""The budget in front of the provider: reserve, wait fairly, or refuse; then reconcile.

    ticket = await budget.acquire(who, model, tokens=prompt + max_tokens, cost=worst_case)
    ... call the provider ...
    await budget.settle(ticket, tokens=actual, cost=actual_cost)   # or release(ticket)

A request that fits goes at once. One that must wait joins its model's queue, served fairly
across channels (bot.budget.fairqueue) by one dispatcher task per model; its caller is told
its position and the expected wait. One that cannot fit a cap, or could not be served before
its deadline, is refused at once with the reason.

    bot.budget.lane     one model's queue and its dispatcher task
    bot.budget.pacer    a full bucket is handed out over seconds, not in one instant
    bot.budget.tickets  Ticket, Batch, QueueInfo: what callers get back
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from bot.budget.backend import BudgetBackend
from bot.budget.lane import Lane, may_fit, refusal, too_large, windows_of
from bot.budget.limits import (
    Ask,
    Cap,
    Granted,
    Learned,
    Refused,
    units_usd,
    usd_units,
    window,
    window_start,
)
from bot.budget.policy import SCOPES, Limits, Policy, ScopeKind, Who
from bot.budget.tickets import OnQueued, Standing, Ticket, shared_requests
from bot.catalog import ModelInfo
from bot.errors import (
    TooLargeForLimit,
    UnpricedModel,
)
from bot.lifecycle import AsyncResource

log = logging.getLogger(__name__)

# Seconds of refill kept back when "remaining" is learned: the provider's bucket and this one
# refill on different clocks and see each call at slightly different moments. Without it, two
# replicas on Redis overshot by a few dozen tokens now and then (429s "try again in 10ms").
_HEADROOM = 0.25


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
        grants: Callable[[], Awaitable[Mapping[str, Decimal]]] | None = None,
        refresh: float = 10.0,
        seed: Callable[[Cap, datetime], Awaitable[int]] | None = None,
    ):
        self.backend = backend
        self.policy = policy
        self._overrides = overrides
        self._grants = grants
        self._refresh_every = refresh
        self._next_refresh = 0.0
        self._seed = seed
        self._seeded: set[tuple[str, str]] = set()
        self._unsent: Counter[str] = Counter()
        """What granted calls not sent yet hold of each account-wide bucket."""
        self._held: Counter[str] = Counter()
        """What the calls not settled yet hold of each cap, by cap."""
        self._sent: deque[Ticket] = deque()
        """Sent calls in the order they left (settled ones are dropped from the left):
        learning from a header looks only at the few sent after the answering call."""
        self.queue_size = queue_size
        self.batch_max = batch_max
        self.spread = spread
        self.clock = clock
        self._lanes: dict[str, Lane] = {}
        self.no_batch: set[str] = set()
        """Models whose server mishandles prompt arrays: sent one prompt per call."""

    def stop_batching(self, model: str) -> bool:
        """Send ``model`` one prompt per call from now on; False if that was already so."""
        if model in self.no_batch:
            return False
        self.no_batch.add(model)
        return True

    def lane(self, model: ModelInfo) -> Lane:
        if model.name not in self._lanes:
            self._lanes[model.name] = Lane(self, model)
        return self._lanes[model.name]

    def queue_depths(self) -> list[tuple[str, float]]:
        """Requests waiting, by model (for metrics)."""
        return [(name, float(len(lane.queue))) for name, lane in self._lanes.items()]

    def queued(self, model: str) -> int:
        lane = self._lanes.get(model)
        return len(lane.queue) if lane else 0

    def waiting(self, platform: str, workspace: str, user: str) -> list[tuple[str, int]]:
        """The requests of one person waiting in this process's queues: (model, place in
        line, 1 being next). Another replica's queue is its own and not seen here."""
        return [
            (name, lane.queue.position(w))
            for name, lane in self._lanes.items()
            for w in lane.queue
            if (w.who.platform, w.who.workspace, w.who.user) == (platform, workspace, user)
        ]

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
        self._check_fits(model, ask)
        await self._seed_caps(ask)
        lane = self.lane(model)
        if not lane.queue and lane.at_once(who, ask):
            outcome = await self.backend.acquire(ask)
            if isinstance(outcome, Granted):
                return self.issue(Ticket(model, ask, windows_of(ask, outcome)))
            lane.not_at_once(who, ask)
            if isinstance(outcome, Refused):
                if not may_fit(outcome, ask, self.held(outcome.cap)):
                    raise refusal(outcome)
            elif math.isinf(outcome.seconds):
                raise too_large(outcome.rate, ask)
        return await lane.wait(who, ask, deadline, on_queued, batch_key, prompt)

    def held(self, cap: Cap) -> int:
        """What this process's calls not settled yet hold of ``cap`` that settling may give
        back: tokens and spend, not requests (another replica's calls are its own)."""
        return max(0, self._held[cap.key])

    async def check(self, who: Who, model: ModelInfo, *, cost: Decimal | None) -> None:
        """Raise what :meth:`acquire` would for a call costing ``cost`` if a cap has no room
        for it now, or a limit could never hold it; reserve nothing. For work to refuse
        before it starts (downloading a recording): what passes here may still be refused by
        ``acquire``, since others spend in between (and a cap that calls in flight may give
        back room in passes, as ``acquire`` would wait for them). Rates are not looked at: a
        request waits for them, it is not refused."""
        await self._refresh()
        ask = self.policy.ask(who, model, tokens=0, cost=cost)
        self._check_fits(model, ask)
        await self._seed_caps(ask)
        for cap, amount in ask.caps:
            state = await self.backend.cap_state(cap)
            refused = Refused(cap, state.used, state.resets_at)
            if state.used + amount > state.limit and not may_fit(refused, ask, self.held(cap)):
                raise refusal(refused)

    async def zone(self, workspace: str) -> str:
        """The time zone whose days, weeks and months ``workspace``'s caps count."""
        await self._refresh()
        return self.policy.zone("workspace", workspace)

    async def fallbacks(
        self, who: Who, model: str
    ) -> tuple[tuple[str, ...], frozenset[str] | None]:
        """The models to try after ``model`` for ``who``, in order, and the models ``who`` may
        use (None: any), as admins set them now."""
        await self._refresh()
        return self.policy.fallbacks(who, model), self.policy.allowed_models(who)[0]

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
            if self._grants is not None:
                self.policy.grants = await self._grants()
        except Exception:
            log.exception("could not read the run-time budget limits; keeping the last ones")

    async def _seed_caps(self, ask: Ask) -> None:
        """A backend that keeps nothing across restarts learns each cap's use so far from the
        usage store, once per window, before its first charge."""
        if self._seed is None:
            return
        now = datetime.now(UTC)
        for cap, _ in ask.caps:
            w = window(cap.period, now, cap.zone)
            if (cap.key, w) in self._seeded:
                continue
            self._seeded.add((cap.key, w))
            used = await self._seed(cap, window_start(cap.period, now, cap.zone))
            if used:
                await self.backend.adjust([], [(cap, w, used)])

    async def reload(self) -> None:
        await self._refresh(now=True)

    async def status(
        self, who: Who, model: ModelInfo, *, scopes: tuple[ScopeKind, ...] = SCOPES
    ) -> list[Standing]:
        """Every limit ``who`` is under for ``model`` (in ``scopes``), with its use now."""
        await self._refresh()
        ask = self.policy.ask(who, model, tokens=0, cost=None, scopes=scopes)
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

    def _check_fits(self, model: ModelInfo, ask: Ask) -> None:
        """Refuse what no wait could ever let through: a model with no price under a spend
        cap (it would count as free), or more than a limit holds."""
        if not model.priced:
            for cap, _ in ask.caps:
                if cap.unit == "usd":
                    raise UnpricedModel(model=model.name, cap=cap.label)
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
        self._held.update(dict(_refundable(ticket)))
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
        self._held.subtract(dict(_refundable(ticket)))
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

    async def release(self, ticket: Ticket, *, reached: bool = True) -> None:
        """The call failed: give everything back, except the account's request count (the
        provider counts failed requests against its per-minute and per-day limits too) when
        the call ``reached`` it."""
        if not self._retire(ticket):
            return
        rates = [
            (r, -amount) for r, amount in ticket.ask.rates if not reached or not shared_requests(r)
        ]
        caps = [(c, ticket.windows[c.key], -amount) for c, amount in ticket.ask.caps]
        await self.backend.adjust(rates, caps)
        self.lane(ticket.model).wake()

    async def observe(
        self, model: ModelInfo, learned: Learned | None, ticket: Ticket | None = None
    ) -> None:
        """Learn the account's real limits from what the provider said (its x-ratelimit-*
        headers).

        "Remaining" was true when the provider took ``ticket``'s call: calls sent after it are
        not in it yet, so what they hold is taken off it. Calls sent before it are, and taking
        them off too would lose their share of the bucket for good (a burst with hundreds of
        calls in flight lost 5% of the quota that way). Without ``ticket``, every call in
        flight counts as not seen."""
        if learned is None:
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
            said = {"rpm": learned.requests, "tpm": learned.tokens}.get(kind)
            if said is None:
                continue
            limit, remaining = said
            if limit:
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


def _refundable(ticket: Ticket) -> Iterator[tuple[str, int]]:
    """What ``ticket`` holds of caps that settling adjusts (what the call did not use comes
    back), by cap."""
    return ((cap.key, amount) for cap, amount in ticket.ask.caps if cap.unit != "requests")
