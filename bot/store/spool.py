"""Usage rows the database could not take, kept on local disk until it can (the spool), or
for good when it refuses their data (the quarantine: same format, with the reason).

One JSON object per line, appended and fsynced before the caller is told its row is safe, so
a crash loses nothing that was acknowledged. The rows go to the database later with the same
idempotent insert as always (``ON CONFLICT (call_id) DO NOTHING``): a row that did reach the
database before its connection broke is not counted twice. Every operation holds an advisory
lock (on a file beside it), so processes sharing a data directory can share the spool, and rows
are dropped by writing the rest to a new file and renaming it over the old one, so a crash
leaves either.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.store.rows import UsageRow


def _encode(row: UsageRow, reason: str | None = None) -> str:
    data: dict[str, Any] = asdict(row)
    data["created_at"] = row.created_at.isoformat()
    data["cost"] = None if row.cost is None else str(row.cost)
    if reason is not None:
        data["reason"] = reason
    return json.dumps(data, separators=(",", ":"))


def _decode(line: str) -> UsageRow:
    data = json.loads(line)
    data.pop("reason", None)
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    data["cost"] = None if data["cost"] is None else Decimal(data["cost"])
    return UsageRow(**data)


class Spool:
    def __init__(self, path: Path):
        self.path = path

    async def append(self, rows: Sequence[UsageRow], *, reason: str | None = None) -> None:
        """Durable when it returns: written and fsynced. ``reason``: why the rows are kept
        (the quarantine's lines carry it; it is not read back)."""
        text = "".join(_encode(row, reason) + "\n" for row in rows)
        await asyncio.to_thread(self._append, text)

    async def take(self) -> list[UsageRow]:
        """Every row waiting, oldest first (left in place until :meth:`drop`)."""
        return await asyncio.to_thread(self._read)

    async def drop(self, count: int) -> None:
        """The first ``count`` rows are in the database: forget them."""
        await asyncio.to_thread(self._drop, count)

    def _append(self, text: str) -> None:
        with self._locked(), open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def _lines(self) -> list[str]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def _read(self) -> list[UsageRow]:
        with self._locked():
            lines = self._lines()
        rows = []
        for line in lines:
            try:
                rows.append(_decode(line))
            except (ValueError, TypeError, KeyError):
                break  # a line torn by a crash mid-write: it was never acknowledged
        return rows

    def _drop(self, count: int) -> None:
        with self._locked():
            rest = self._lines()[count:]
            if not rest:
                self.path.unlink(missing_ok=True)
                return
            new = self.path.with_name(self.path.name + ".new")
            with open(new, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in rest))
                f.flush()
                os.fsync(f.fileno())
            os.replace(new, self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
