"""From outcomes to figures: throughput against the theoretical maximum, 429s, failures,
time to answer and fairness; quotabot against each baseline; the project's targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from bench.budgets.harness import CallStats, Result
from bench.budgets.workload import CHANNEL_WEIGHTS, Workload
from bench.common.stats import percentile

ANSWERS_FOR_TIME = 400
"""Fewer than any system gives in the window (the cookbook's ~413 is the fewest)."""

EQUAL_CHANNELS = tuple(c for c, w in enumerate(CHANNEL_WEIGHTS) if w == 1)
"""The channels of equal (the smallest) demand: C3..C7."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    system: str
    served: int
    maximum: int
    calls: int
    rate_limited: int
    refused: int
    failed: int
    unserved: int
    """Still waiting when the window closed (cancelled)."""
    p50: float | None
    p95: float | None
    time_to_n: float | None
    """Seconds from the start until the N-th answer (N = ANSWERS_FOR_TIME): time at equal
    work. p50/p95 are over each system's own answers, so a system that fails or drops the
    requests that would have waited looks faster on them."""
    jain_equal: float | None
    jain_maxmin: float | None
    jain_maxmin_late: float | None
    """Jain max-min over the second half of the window only (see max_min_jain)."""
    served_per_channel: list[int]
    warnings: list[str]
    """What quotabot logged at WARNING and above during the run (distinct lines)."""

    @property
    def share(self) -> float:
        return self.served / self.maximum if self.maximum else 0.0

    @property
    def rate_limited_pct(self) -> float:
        return 100 * self.rate_limited / self.calls if self.calls else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "share_of_max": self.share,
            "rate_limited_pct": self.rate_limited_pct,
        }


def jain(values: Sequence[float]) -> float | None:
    """Jain's index (sum x)^2 / (n * sum x^2): 1 when all equal, 1/n when one gets all."""
    squares = sum(x * x for x in values)
    if not values or squares == 0:
        return None
    return sum(values) ** 2 / (len(values) * squares)


def max_min_shares(demand: Sequence[int], total: float) -> list[float]:
    """Max-min fair split of ``total`` answers (water filling): every channel gets an equal
    share, except that none gets more than it asked for; what it leaves goes to the others."""
    shares = [0.0] * len(demand)
    active = [i for i, d in enumerate(demand) if d > 0]
    left = float(total)
    while active and left > 1e-9:
        give = min(left / len(active), min(demand[i] - shares[i] for i in active))
        for i in active:
            shares[i] += give
        left -= give * len(active)
        active = [i for i in active if demand[i] - shares[i] > 1e-9]
    return shares


def max_min_jain(served: Sequence[int], demand: Sequence[int]) -> float | None:
    """Jain's index of each channel's answers over its max-min fair share of all the answers
    given (so it judges how they were shared, not how many there were)."""
    fair = max_min_shares(demand, sum(served))
    return jain([s / f for s, f in zip(served, fair, strict=True) if f > 0])


def figures(
    system: str,
    workload: Workload,
    results: Sequence[Result],
    calls: CallStats,
    warnings: Sequence[str] = (),
) -> Figures:
    maximum = workload.capacity().maximum
    demand = workload.demand()
    half = workload.window / 2
    served = [0] * workload.channels
    early = [0] * workload.channels  # answered in the first half of the window
    latencies = []
    answer_times = []
    for r in results:
        if r.outcome == "ok":
            assert r.latency is not None and r.answered_at is not None
            served[r.channel] += 1
            early[r.channel] += r.answered_at <= half
            latencies.append(r.latency)
            answer_times.append(r.answered_at)
    equal_share = maximum / workload.channels
    jain_equal = jain([served[c] / min(demand[c], equal_share) for c in EQUAL_CHANNELS])
    late = [s - e for s, e in zip(served, early, strict=True)]
    still_wanted = [d - e for d, e in zip(demand, early, strict=True)]
    count = {o: sum(1 for r in results if r.outcome == o) for o in ("refused", "failed", "pending")}
    return Figures(
        system=system,
        served=sum(served),
        maximum=maximum,
        calls=calls.calls,
        rate_limited=calls.rate_limited,
        refused=count["refused"],
        failed=count["failed"],
        unserved=count["pending"],
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
        time_to_n=(
            sorted(answer_times)[ANSWERS_FOR_TIME - 1]
            if len(answer_times) >= ANSWERS_FOR_TIME
            else None
        ),
        jain_equal=jain_equal,
        jain_maxmin=max_min_jain(served, demand),
        jain_maxmin_late=max_min_jain(late, still_wanted),
        served_per_channel=served,
        warnings=list(warnings),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchRun:
    system: str
    served: int
    calls: int
    rate_limited: int
    refused: int
    window: float
    steady: int
    """Answers in the second half of the window, once the initial RPM bucket is spent."""

    @property
    def per_minute(self) -> float:
        return 60 * self.served / self.window

    @property
    def steady_per_minute(self) -> float:
        return 60 * self.steady / (self.window / 2)

    def to_json(self) -> dict[str, object]:
        return {
            **asdict(self),
            "answers_per_minute": self.per_minute,
            "steady_answers_per_minute": self.steady_per_minute,
        }


def batch_run(
    system: str, workload: Workload, results: Sequence[Result], calls: CallStats
) -> BatchRun:
    ok = [r for r in results if r.outcome == "ok"]
    half = workload.window / 2
    return BatchRun(
        system=system,
        served=len(ok),
        calls=calls.calls,
        rate_limited=calls.rate_limited,
        refused=sum(1 for r in results if r.outcome == "refused"),
        window=workload.window,
        steady=sum(1 for r in ok if r.answered_at is not None and r.answered_at > half),
    )


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


@dataclass(frozen=True, slots=True)
class Comparison:
    """quotabot against one baseline, figure by figure."""

    quotabot: Figures
    baseline: Figures

    def better(self) -> dict[str, bool]:
        """Whether quotabot does better (or as well, for counts that can be zero)."""
        q, b = self.quotabot, self.baseline
        return {
            "answers": q.served > b.served,
            "429s": q.rate_limited <= b.rate_limited and q.rate_limited_pct <= b.rate_limited_pct,
            "refused/failed": q.refused + q.failed <= b.refused + b.failed,
            "p50": _lower(q.p50, b.p50),
            "p95": _lower(q.p95, b.p95),
            f"time to {ANSWERS_FOR_TIME} answers": _lower(q.time_to_n, b.time_to_n),
            "fairness (5 equal)": _higher(q.jain_equal, b.jain_equal),
            "fairness (max-min)": _higher(q.jain_maxmin, b.jain_maxmin),
        }

    def worse(self) -> list[str]:
        return [figure for figure, ok in self.better().items() if not ok]

    def to_json(self) -> dict[str, object]:
        q, b = self.quotabot, self.baseline
        return {
            "quotabot": q.system,
            "baseline": b.system,
            "answers_ratio": ratio(q.served, b.served),
            "p50_ratio": ratio(q.p50, b.p50),
            "p95_ratio": ratio(q.p95, b.p95),
            "time_to_n_ratio": ratio(q.time_to_n, b.time_to_n),
            "better": self.better(),
        }

    def line(self) -> str:
        q, b = self.quotabot, self.baseline
        worse = self.worse()
        verdict = "better on every figure" if not worse else f"NOT better on: {', '.join(worse)}"
        return (
            f"{q.system} vs {b.system}: answers x{num(ratio(q.served, b.served))}, "
            f"429s {q.rate_limited:,} vs {b.rate_limited:,}, "
            f"refused/failed {q.refused + q.failed:,} vs {b.refused + b.failed:,}, "
            f"p50 x{num(ratio(q.p50, b.p50))}, p95 x{num(ratio(q.p95, b.p95))}, "
            f"time to {ANSWERS_FOR_TIME} answers x{num(ratio(q.time_to_n, b.time_to_n))}, "
            f"Jain max-min {num(q.jain_maxmin, 3)} vs {num(b.jain_maxmin, 3)} "
            f"(2nd half {num(q.jain_maxmin_late, 3)} vs {num(b.jain_maxmin_late, 3)}) -> {verdict}"
        )


def _lower(a: float | None, b: float | None) -> bool:
    return a is not None and (b is None or a < b)


def _higher(a: float | None, b: float | None) -> bool:
    return a is not None and (b is None or a >= b)


def num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    met: bool
    value: str

    def line(self) -> str:
        return f"{'met   ' if self.met else 'MISSED'}  {self.name}: {self.value}"


def targets(
    quotabots: Sequence[Figures],
    comparisons: Sequence[Comparison],
    batching_factor: float | None,
) -> list[Target]:
    """The project's hopes for quotabot, each met or not, with the measured value."""
    out = []
    for f in quotabots:
        out.append(
            Target(
                f"{f.system}: >= 98% of the theoretical maximum", f.share >= 0.98, f"{f.share:.1%}"
            )
        )
        out.append(
            Target(
                f"{f.system}: 429s <= 0.5% of calls",
                f.rate_limited_pct <= 0.5,
                f"{f.rate_limited_pct:.2f}%",
            )
        )
        # Not the 2nd-half figure: with the whole window shared fairly, the second half makes up
        # for the first (channels served less early are served more late), which that figure,
        # looking at the second half alone, counts as unfair. It stays in the table.
        for label, value in (
            ("5 equal channels", f.jain_equal),
            ("max-min", f.jain_maxmin),
        ):
            out.append(
                Target(
                    f"{f.system}: fairness ({label}) >= 0.95",
                    value is not None and value >= 0.95,
                    num(value, 3),
                )
            )
        for c in comparisons:
            if c.quotabot is f:
                worse = c.worse()
                out.append(
                    Target(
                        f"{f.system}: better than {c.baseline.system} on every figure",
                        not worse,
                        "yes" if not worse else "not on " + ", ".join(worse),
                    )
                )
    out.append(
        Target(
            "batching multiplies answers per minute once RPM binds (2nd half, >= 2x)",
            batching_factor is not None and batching_factor >= 2,
            "x" + num(batching_factor),
        )
    )
    return out
