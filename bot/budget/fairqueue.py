"""Weighted fair queueing across channels, so that one channel that floods cannot starve others.

Self-clocked fair queueing: each item gets a finish tag ``max(V, last tag of its flow) + 1 /
weight``, where V is the tag of the item served last, and the smallest tag among the flows'
heads goes next. A flow that was idle starts again at V: it does not bank credit while away.
With equal weights this is round robin between busy channels; a channel of weight 2 gets
twice the turns of a channel of weight 1.

A burst can queue thousands of requests: every operation is O(log n) or a C-speed list move,
never a sort of the whole queue.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_Key = tuple[float, int]


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._flows: dict[Hashable, deque[_Key]] = {}
        self._items: dict[_Key, tuple[Hashable, T]] = {}
        self._keys: dict[int, _Key] = {}  # id(item) -> key
        self._order: list[_Key] = []  # every key, in service order
        self._last: dict[Hashable, float] = {}
        self._virtual = 0.0
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[T]:
        """Every item, in the order they would be served."""
        return (self._items[k][1] for k in list(self._order))

    def flow_len(self, flow: Hashable) -> int:
        return len(self._flows.get(flow, ()))

    def push(self, flow: Hashable, item: T, weight: float = 1.0) -> None:
        tag = max(self._virtual, self._last.get(flow, 0.0)) + 1.0 / weight
        self._last[flow] = tag
        key = (tag, next(self._seq))
        self._flows.setdefault(flow, deque()).append(key)
        self._items[key] = (flow, item)
        self._keys[id(item)] = key
        bisect.insort(self._order, key)

    def peek(self, eligible: Callable[[T], bool] = lambda _: True) -> T | None:
        """The next item to serve among the flows whose head is eligible, left in place."""
        heads = [q[0] for q in self._flows.values() if eligible(self._items[q[0]][1])]
        return self._items[min(heads)][1] if heads else None

    def take(self, item: T) -> None:
        """Remove ``item``, served: the virtual clock moves to its tag."""
        key = self._remove(item)
        self._virtual = max(self._virtual, key[0])

    def drop(self, item: T) -> None:
        """Remove ``item`` unserved (it gave up or was refused)."""
        self._remove(item)

    def position(self, item: T) -> int:
        """1 + the number of items that will be served before ``item``."""
        return bisect.bisect_left(self._order, self._key(item)) + 1

    def _key(self, item: T) -> _Key:
        try:
            return self._keys[id(item)]
        except KeyError:
            raise KeyError("item is not queued") from None

    def _remove(self, item: T) -> _Key:
        key = self._key(item)
        flow, _ = self._items.pop(key)
        del self._keys[id(item)]
        del self._order[bisect.bisect_left(self._order, key)]
        q = self._flows[flow]
        q.remove(key)  # almost always the head
        if not q:
            del self._flows[flow]
            if not self._flows:
                # Everyone is served: forget old tags so the clock does not grow forever.
                self._last.clear()
                self._virtual = 0.0
        return key
