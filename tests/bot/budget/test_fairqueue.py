from __future__ import annotations

from collections import Counter

from bot.budget.fairqueue import FairQueue


def drain(q: FairQueue[str], n: int | None = None) -> list[str]:
    out = []
    while len(q) and (n is None or len(out) < n):
        item = q.peek()
        assert item is not None
        q.take(item)
        out.append(item)
    return out


def test_a_flooding_channel_cannot_starve_the_others() -> None:
    q: FairQueue[str] = FairQueue()
    for i in range(100):
        q.push("flood", f"flood-{i}")
    q.push("quiet", "quiet-0")
    q.push("other", "other-0")
    assert set(drain(q, 3)) == {"flood-0", "quiet-0", "other-0"}


def test_equal_weights_take_turns_and_weights_share_in_proportion() -> None:
    q: FairQueue[str] = FairQueue()
    for i in range(30):
        q.push("a", f"a{i}")
        q.push("b", f"b{i}", weight=2.0)
    first = drain(q, 30)
    counts = Counter(item[0] for item in first)
    assert counts == {"b": 20, "a": 10}

    q2: FairQueue[str] = FairQueue()
    for i in range(5):
        for f in "xyz":
            q2.push(f, f"{f}{i}")
    served = drain(q2)
    for i in range(0, 15, 3):  # every round serves each channel once
        assert {s[0] for s in served[i : i + 3]} == {"x", "y", "z"}


def test_an_idle_channel_banks_no_credit() -> None:
    q: FairQueue[str] = FairQueue()
    for i in range(10):
        q.push("busy", f"busy{i}")
    drain(q, 5)
    for i in range(5):
        q.push("late", f"late{i}")
    nxt = drain(q, 4)
    assert Counter(s[:4] for s in nxt) == {"busy": 2, "late": 2}


def test_positions_follow_service_order_and_ineligible_flows_are_skipped() -> None:
    q: FairQueue[str] = FairQueue()
    items = {name: name for name in ("a0", "a1", "a2", "b0")}  # the queue keys on identity
    for name in ("a0", "a1", "a2"):
        q.push("a", items[name])
    q.push("b", items["b0"])
    assert q.position(items["b0"]) == 2
    assert q.position(items["a2"]) == 4
    assert list(q) == ["a0", "b0", "a1", "a2"]
    assert q.peek(lambda item: not item.startswith("a")) == "b0"
    q.drop(items["a0"])
    assert q.peek() == "b0"
    assert len(q) == 3


def test_a_burst_of_thousands_is_served_in_turns() -> None:
    q: FairQueue[tuple[int, int]] = FairQueue()
    for i in range(20_000):
        item = (i % 8, i)
        q.push(f"c{i % 8}", item)
        assert q.position(item) == i + 1  # arrivals in turn: served in arrival order
    served = []
    while len(q):
        head = q.peek()
        assert head is not None
        q.take(head)
        served.append(head[1])
    assert served == list(range(20_000))


def test_a_channel_that_comes_a_moment_late_catches_up_within_the_credit() -> None:
    now = [0.0]
    q: FairQueue[str] = FairQueue(credit=2.0, clock=lambda: now[0])
    for i in range(20):
        q.push("early", f"early{i}")
    for _ in range(6):  # served alone for a moment
        now[0] += 0.1
        drain(q, 1)
    for i in range(10):
        q.push("late", f"late{i}")
    # The late channel is served until it has had as many as the early one...
    assert drain(q, 6) == [f"late{i}" for i in range(6)]
    # ...then they take turns.
    assert Counter(s[:4] for s in drain(q, 4)) == {"earl": 2, "late": 2}


def test_the_credit_is_bounded() -> None:
    now = [0.0]
    q: FairQueue[str] = FairQueue(credit=0.5, clock=lambda: now[0])
    for i in range(30):
        q.push("early", f"early{i}")
    for _ in range(20):  # 2 s alone, 20 served; only the last 0.5 s (5) are credited
        now[0] += 0.1
        drain(q, 1)
    for i in range(10):
        q.push("late", f"late{i}")
    first = drain(q, 8)
    assert first[:5] == [f"late{i}" for i in range(5)] or first[:6] == [
        f"late{i}" for i in range(6)
    ]
    assert Counter(s[:4] for s in first) != {"late": 8}


def test_grants_made_without_queueing_count_against_their_channel() -> None:
    q: FairQueue[str] = FairQueue()
    for _ in range(3):
        q.charge("a")
    q.push("a", "a0")
    q.push("b", "b0")
    q.push("b", "b1")
    assert drain(q) == ["b0", "b1", "a0"]
