"""Answer-once claims on SQLite: quotabot's group commit against one transaction per event.

    .venv/bin/python -m bench.claims                 # 1,000 claims each way, ~15 s
    .venv/bin/python -m bench.claims --claims 3000

Every chat event is claimed (``EventLog.first``) before any other work, so that Slack's
retries, the app_mention/message twins and other replicas answer it once. Both ways write the
same rows to a fresh SQLite file (WAL, as quotabot configures it), in the same run:

* **burst**: all claims at once, as a burst of events arrives;
* **groups of 5**: five at a time, one group after another, as events trickle in.

Reported: wall time and CPU time of this process per claim, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.dialects import sqlite

from bench.common.tables import markdown_table, write_results
from bot.store import Database, migrate
from bot.store.events import EventLog
from bot.store.schema import SeenEvent

RESULTS = Path(__file__).resolve().parent / "results" / "claims.json"

Claim = Callable[[str], Awaitable[bool]]


def one_transaction_each(db: Database) -> Claim:
    """The baseline: what EventLog.first did before the group commit."""

    async def first(key: str) -> bool:
        stmt = (
            sqlite.insert(SeenEvent)
            .values(key=key, created_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=["key"])
        )
        async with db.session() as s, s.begin():
            result = await s.execute(stmt)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    return first


async def measure(claim: Claim, n: int, group: int | None, tag: str) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    keys = [f"{tag}:{i}" for i in range(n)]
    if group is None:
        won = await asyncio.gather(*(claim(k) for k in keys))
    else:
        won = []
        for start in range(0, n, group):
            won += await asyncio.gather(*(claim(k) for k in keys[start : start + group]))
    assert all(won), "every key is new: every claim must win"
    return time.perf_counter() - wall, time.process_time() - cpu


async def run(n: int) -> list[dict[str, object]]:
    out = []
    for shape, group in (("burst", None), ("groups of 5", 5)):
        row: dict[str, object] = {"shape": shape, "claims": n}
        for name in ("one transaction each", "quotabot"):
            with tempfile.TemporaryDirectory() as tmp:
                db = Database(f"sqlite:///{tmp}/claims.db")
                await migrate.upgrade(db)
                claim = one_transaction_each(db) if name != "quotabot" else EventLog(db).first
                wall, cpu = await measure(claim, n, group, name)
                await db.aclose()
            row[f"{name} wall ms/claim"] = 1000 * wall / n
            row[f"{name} cpu ms/claim"] = 1000 * cpu / n
        before, after = row["one transaction each wall ms/claim"], row["quotabot wall ms/claim"]
        row["wall ratio"] = float(before) / float(after)  # type: ignore[arg-type]
        out.append(row)
    return out


def table(rows: list[dict[str, object]]) -> str:
    return markdown_table(
        (
            "shape",
            "claims",
            "one transaction each: wall / CPU ms per claim",
            "quotabot: wall / CPU ms per claim",
            "wall ratio",
        ),
        [
            (
                str(r["shape"]),
                str(r["claims"]),
                f"{r['one transaction each wall ms/claim']:.2f} / "
                f"{r['one transaction each cpu ms/claim']:.2f}",
                f"{r['quotabot wall ms/claim']:.2f} / {r['quotabot cpu ms/claim']:.2f}",
                f"x{r['wall ratio']:.1f}",
            )
            for r in rows
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = asyncio.run(run(args.claims))
    text = table(rows)
    print(text)
    write_results(
        args.out, rows, f"# Answer-once claims on SQLite ({datetime.now(UTC):%Y-%m-%d})\n\n{text}\n"
    )


if __name__ == "__main__":
    main()
