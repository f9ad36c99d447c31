"""Prometheus metrics for ``GET /metrics``: what an operator watches on a dashboard.

One registry per process (not prometheus_client's global one, so that tests and several apps
in one process do not share counters). Label values are bounded: platforms, outcomes, model
and provider names, never users or channels (those are in the usage store and its reports).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "quotabot_requests",
            "Chat requests handled, by platform and outcome (ok, refused, failed).",
            ["platform", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "quotabot_request_seconds",
            "Time from a chat request reaching the core to its answer or refusal.",
            ["platform"],
            buckets=_SECONDS,
            registry=r,
        )
        self.tokens = Counter(
            "quotabot_tokens",
            "Tokens used, by model and kind (prompt, completion).",
            ["model", "kind"],
            registry=r,
        )
        self.audio_seconds = Counter(
            "quotabot_audio_seconds",
            "Seconds of audio transcribed (as billed), by model.",
            ["model"],
            registry=r,
        )
        self.cost = Counter(
            "quotabot_cost_usd", "Spend in USD by model (priced calls only).", ["model"], registry=r
        )
        self.provider_calls = Counter(
            "quotabot_provider_calls",
            "Calls sent to the provider, by model and result (ok, rate_limited, error).",
            ["model", "result"],
            registry=r,
        )
        self.retries = Counter(
            "quotabot_retries", "Provider calls retried, by model.", ["model"], registry=r
        )
        self.fallbacks = Counter(
            "quotabot_fallbacks",
            "Requests answered by a fallback model, by the model asked for and the one that "
            "answered.",
            ["asked", "answered"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "quotabot_queue_wait_seconds",
            "Time a request waited for budget before it was sent.",
            ["model"],
            buckets=_SECONDS,
            registry=r,
        )
        self.provider_seconds = Histogram(
            "quotabot_provider_seconds",
            "Provider call latency, by model.",
            ["model"],
            buckets=_SECONDS,
            registry=r,
        )
        self.budget_fallback = Gauge(
            "quotabot_budget_fallback",
            "1 while Redis is unreachable and budgets run on this process's local share.",
            registry=r,
        )
        self.events_waiting = Gauge(
            "quotabot_events_waiting",
            "Chat events waiting for a turn in this process (QUOTABOT_CONCURRENT_ANSWERS).",
            registry=r,
        )
        self.usage_quarantined = Gauge(
            "quotabot_usage_rows_quarantined",
            "Usage rows the database refused for their data since this process started, set "
            "aside in <data_dir>/usage-quarantine.jsonl.",
            registry=r,
        )

    def watch(
        self,
        name: str,
        help: str,
        read: Callable[[], Iterable[tuple[str, float]]],
        *,
        label: str = "model",
    ) -> None:
        """A gauge by model (or by ``label``) read when scraped (queue depth, budget use, a
        provider's health): always current."""
        self.registry.register(_Read(name, help, read, label))

    def answered(self, model: str, prompt: int, completion: int, cost: Decimal | None) -> None:
        self.tokens.labels(model, "prompt").inc(prompt)
        self.tokens.labels(model, "completion").inc(completion)
        if cost is not None:
            self.cost.labels(model).inc(float(cost))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Read(Collector):
    def __init__(
        self,
        name: str,
        help: str,
        read: Callable[[], Iterable[tuple[str, float]]],
        label: str = "model",
    ):
        self.name, self.help, self.read, self.label = name, help, read, label

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.help, labels=[self.label])
        for value_of, value in self.read():
            family.add_metric([value_of], value)
        yield family
