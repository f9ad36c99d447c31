"""Weighted fair queueing across channels, so that one channel that floods cannot starve others.

Self-clocked fair queueing: each item gets a finish tag ``max(V, last tag of its flow) + 1 /
weight``, where V is the tag of the item served last, and the smallest tag among the flows'
heads goes next. A flow that was idle starts again at V: it does not bank credit while away.
With equal weights this is round robin between busy channels; a channel of weight 2 gets
twice the turns of a channel of weight 1.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True, slots=True)
class _Entry(Generic[T]):
    tag: float
    seq: int
    flow: Hashable = field(compare=False)
    item: T = field(compare=False)


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._flows: dict[Hashable, deque[_Entry[T]]] = {}
        self._last: dict[Hashable, float] = {}
        self._virtual = 0.0
        self._seq = itertools.count()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[T]:
        """Every item, in the order they would be served."""
        return (e.item for e in sorted(e for q in self._flows.values() for e in q))

    def flow_len(self, flow: Hashable) -> int:
        return len(self._flows.get(flow, ()))

    def push(self, flow: Hashable, item: T, weight: float = 1.0) -> None:
        tag = max(self._virtual, self._last.get(flow, 0.0)) + 1.0 / weight
        self._last[flow] = tag
        self._flows.setdefault(flow, deque()).append(_Entry(tag, next(self._seq), flow, item))
        self._size += 1

    def peek(self, eligible: Callable[[T], bool] = lambda _: True) -> T | None:
        """The next item to serve among the flows whose head is eligible, left in place."""
        heads = [q[0] for q in self._flows.values() if q and eligible(q[0].item)]
        return min(heads).item if heads else None

    def take(self, item: T) -> None:
        """Remove ``item``, served: the virtual clock moves to its tag."""
        entry = self._remove(item)
        self._virtual = max(self._virtual, entry.tag)

    def drop(self, item: T) -> None:
        """Remove ``item`` unserved (it gave up or was refused)."""
        self._remove(item)

    def position(self, item: T) -> int:
        """1 + the number of items that will be served before ``item``."""
        mine = self._find(item)
        return 1 + sum(1 for q in self._flows.values() for e in q if e < mine)

    def _find(self, item: T) -> _Entry[T]:
        for q in self._flows.values():
            for e in q:
                if e.item == item:
                    return e
        raise KeyError("item is not queued")

    def _remove(self, item: T) -> _Entry[T]:
        entry = self._find(item)
        q = self._flows[entry.flow]
        q.remove(entry)
        if not q:
            del self._flows[entry.flow]
            if not self._flows:
                # Everyone is served: forget old tags so the clock does not grow forever.
                self._last.clear()
                self._virtual = 0.0
        self._size -= 1
        return entry
