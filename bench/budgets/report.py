"""The benchmark's output: the tables on stdout, budgets.json and budgets.md."""

from __future__ import annotations

from dataclasses import dataclass

from bench.budgets.figures import ANSWERS_FOR_TIME, BatchRun, Comparison, Figures, Target, num
from bench.budgets.workload import Workload
from bench.common.tables import markdown_table

HEADERS = (
    "system",
    "answers",
    "% of max",
    "calls",
    "429s",
    "429 %",
    "refused/failed",
    "not served",
    "p50 s",
    "p95 s",
    f"s to {ANSWERS_FOR_TIME} answers",
    "Jain 5 equal",
    "Jain max-min",
    "Jain max-min 2nd half",
)
BATCH_HEADERS = (
    "system",
    "answers",
    "calls",
    "429s",
    "refused",
    "answers/min",
    "steady answers/min",
)


def row(f: Figures) -> list[str]:
    return [
        f.system,
        f"{f.served:,}",
        f"{100 * f.share:.1f}%",
        f"{f.calls:,}",
        f"{f.rate_limited:,}",
        f"{f.rate_limited_pct:.1f}%",
        f"{f.refused:,}/{f.failed:,}",
        f"{f.unserved:,}",
        num(f.p50),
        num(f.p95),
        num(f.time_to_n),
        num(f.jain_equal, 3),
        num(f.jain_maxmin, 3),
        num(f.jain_maxmin_late, 3),
    ]


def batch_row(r: BatchRun) -> list[str]:
    return [
        r.system,
        f"{r.served:,}",
        f"{r.calls:,}",
        f"{r.rate_limited:,}",
        f"{r.refused:,}",
        f"{r.per_minute:,.0f}",
        f"{r.steady_per_minute:,.0f}",
    ]


@dataclass(frozen=True, kw_only=True)
class Report:
    meta: dict[str, object]
    workload: Workload
    rows: list[Figures]
    comparisons: list[Comparison]
    batch: Workload
    batch_runs: list[BatchRun]
    batch_warnings: dict[str, list[str]]
    targets: list[Target]

    @property
    def batching_factor(self) -> float | None:
        """Answers per minute with batching on over off, over the whole window."""
        on, off = self.batch_runs[0], self.batch_runs[1]
        return on.per_minute / off.per_minute if off.per_minute else None

    @property
    def steady_factor(self) -> float | None:
        """The same over the second half of the window, once the full RPM bucket is spent."""
        on, off = self.batch_runs[0], self.batch_runs[1]
        return on.steady_per_minute / off.steady_per_minute if off.steady_per_minute else None

    def to_json(self) -> dict[str, object]:
        return {
            "meta": self.meta,
            "workload": self.workload.summary(),
            "systems": [f.to_json() for f in self.rows],
            "comparisons": [c.to_json() for c in self.comparisons],
            "batching": {
                "workload": self.batch.summary(),
                "runs": [r.to_json() for r in self.batch_runs],
                "factor": self.batching_factor,
                "steady_factor": self.steady_factor,
                "warnings": self.batch_warnings,
            },
            "targets": [{"target": t.name, "met": t.met, "value": t.value} for t in self.targets],
        }

    def _factors(self) -> str:
        return (
            f"batching factor (answers per minute, on / off): x{num(self.batching_factor)} over "
            f"the window, x{num(self.steady_factor)} in its second half"
        )

    def _warnings(self) -> list[str]:
        out = []
        for f in self.rows:
            out += [f"{f.system}: {w}" for w in f.warnings]
        for label, lines in self.batch_warnings.items():
            out += [f"{label}: {w}" for w in lines]
        return out

    def text(self) -> str:
        parts = [
            markdown_table(HEADERS, [row(f) for f in self.rows]),
            "\n".join(c.line() for c in self.comparisons),
            markdown_table(BATCH_HEADERS, [batch_row(r) for r in self.batch_runs]),
            self._factors(),
            "\n".join(t.line() for t in self.targets),
        ]
        if warnings := self._warnings():
            parts.append("quotabot logged:\n" + "\n".join(f"  {w}" for w in warnings))
        parts.append(f"total runtime {self.meta['runtime_s']} s")
        return "\n\n".join(parts)

    def markdown(self) -> str:
        w, cap, m = self.workload, self.workload.capacity(), self.meta
        parts = [
            "# quotabot rate budgets: benchmark results",
            f"`{m['command']}` (seed {m['seed']}, {m['finished_at']}, runtime {m['runtime_s']} s, "
            f"sandbox in {m['sandbox']}). {w.model} at {w.rpm:,} RPM / {w.tpm:,} TPM, window "
            f"{w.window:g} s; {len(w.items):,} requests from 8 channels (demand "
            f"{w.demand()}); theoretical maximum {cap.maximum:,} answers ({cap.binding} binds). "
            "bench/README.md says what each column means.",
            markdown_table(HEADERS, [row(f) for f in self.rows]),
            "\n".join(f"- {c.line()}" for c in self.comparisons),
            f"Batching: {self.batch.model} at {self.batch.rpm} RPM (which binds), window "
            f"{self.batch.window:g} s, {len(self.batch.items):,} requests.",
            markdown_table(BATCH_HEADERS, [batch_row(r) for r in self.batch_runs]),
            self._factors() + ".",
            "Targets:\n\n" + "\n".join(f"- {t.line()}" for t in self.targets),
        ]
        if warnings := self._warnings():
            parts.append("quotabot logged:\n\n" + "\n".join(f"- {w}" for w in warnings))
        return "\n\n".join(parts) + "\n"
