"""Weighted fair queueing across channels, so that one channel that floods cannot starve others.

Self-clocked fair queueing: each item gets a finish tag ``max(V, last tag of its flow) + 1 /
weight``, where V is the tag of the item served last, and the smallest tag among the flows'
heads goes next. With equal weights this is round robin between busy channels; a channel of
weight 2 gets twice the turns of a channel of weight 1.

One change for bursts: a flow that was idle starts again at V as it was ``credit`` seconds
ago, not at V now. The requests of a burst reach the budget over a fraction of a second, one
channel's before another's (whichever finished its preparation first); plain SCFQ would let
the first channel keep everything it was served alone in that time. With the credit, the
channels that come a moment later are served first until they have caught up. A flow away
longer banks no more than ``credit`` seconds. Requests granted at once, without queueing,
count against their flow too (:meth:`charge`), and tags are forgotten when nothing waits and
no burst is under way (:meth:`forget`).

A burst can queue thousands of requests: every operation is O(log n) or a C-speed list move,
never a sort of the whole queue.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_Key = tuple[float, int]


class FairQueue(Generic[T]):
    def __init__(self, *, credit: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.credit = credit
        self.clock = clock
        self._history: deque[tuple[float, float]] = deque()
        """(time, V just before it moved), for the last ``credit`` seconds."""
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

    def __contains__(self, item: object) -> bool:
        return id(item) in self._keys

    def flow_len(self, flow: Hashable) -> int:
        return len(self._flows.get(flow, ()))

    def push(self, flow: Hashable, item: T, weight: float = 1.0) -> None:
        tag = max(self._start(), self._last.get(flow, 0.0)) + 1.0 / weight
        self._last[flow] = tag
        key = (tag, next(self._seq))
        self._flows.setdefault(flow, deque()).append(key)
        self._items[key] = (flow, item)
        self._keys[id(item)] = key
        bisect.insort(self._order, key)

    def charge(self, flow: Hashable, weight: float = 1.0) -> None:
        """``flow`` had an item served without queueing."""
        self._last[flow] = max(self._start(), self._last.get(flow, 0.0)) + 1.0 / weight

    def uncharge(self, flow: Hashable, weight: float = 1.0) -> None:
        """Undo :meth:`charge`: the item was not served after all."""
        if flow in self._last:
            self._last[flow] -= 1.0 / weight

    def forget(self) -> None:
        """Start afresh, if nothing waits: no flow carries its past use any further."""
        if not self._order:
            self._last.clear()
            self._history.clear()
            self._virtual = 0.0

    def peek(self, eligible: Callable[[T], bool] = lambda _: True) -> T | None:
        """The next item to serve among the flows whose head is eligible, left in place."""
        heads = [q[0] for q in self._flows.values() if eligible(self._items[q[0]][1])]
        return self._items[min(heads)][1] if heads else None

    def take(self, item: T) -> None:
        """Remove ``item``, served: the virtual clock moves to its tag."""
        key = self._remove(item)
        if key[0] > self._virtual:
            if self.credit > 0:
                self._history.append((self.clock(), self._virtual))
            self._virtual = key[0]

    def drop(self, item: T) -> None:
        """Remove ``item`` unserved (it gave up or was refused)."""
        self._remove(item)

    def position(self, item: T) -> int:
        """1 + the number of items that will be served before ``item``."""
        return bisect.bisect_left(self._order, self._key(item)) + 1

    def _start(self) -> float:
        """Where an idle flow starts: V as it was ``credit`` seconds ago."""
        since = self.clock() - self.credit
        while self._history and self._history[0][0] < since:
            self._history.popleft()
        return self._history[0][1] if self._history else self._virtual

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
        return key
