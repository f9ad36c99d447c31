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
    for i in range(3):
        q.push("a", f"a{i}")
    q.push("b", "b0")
    assert q.position("b0") == 2
    assert q.position("a2") == 4
    assert list(q) == ["a0", "b0", "a1", "a2"]
    assert q.peek(lambda item: not item.startswith("a")) == "b0"
    q.drop("a0")
    assert q.peek() == "b0"
    assert len(q) == 3
