"""The counting primitives: sliding windows, distinct sets, eviction, clock steps."""

from __future__ import annotations

from b2bua.policy.blocklist import BlockList
from b2bua.policy.limits import DistinctTracker, SlidingCounter
from b2bua.policy.model import BlockEntry, BlockSource, split_key

T0 = 1_800_000_000.0  # a multiple of 60 and of 600


def test_sliding_counter_limits_and_weights_the_previous_window() -> None:
    counter = SlidingCounter(60)
    assert all(counter.hit("a", 3, T0 + i) for i in range(3))
    assert not counter.hit("a", 3, T0 + 10)
    assert counter.hit("b", 3, T0 + 10)
    # Halfway through the next window, 3 * 0.5 = 1.5 of the old ones still count.
    assert counter.hit("a", 3, T0 + 90)  # 0 + 1.5 < 3
    assert counter.hit("a", 3, T0 + 90)  # 1 + 1.5 < 3
    assert not counter.hit("a", 3, T0 + 90)  # 2 + 1.5 >= 3
    # Near the end of that window almost nothing of the old window is left.
    assert counter.hit("a", 3, T0 + 119)


def test_sliding_counter_evicts_idle_keys_after_two_windows() -> None:
    counter = SlidingCounter(60)
    counter.hit("a", 3, T0)
    counter.hit("b", 3, T0 + 61)
    assert len(counter) == 2
    counter.hit("c", 3, T0 + 130)  # a is two windows old now
    assert "a" not in counter.current and "a" not in counter.previous
    counter.hit("c", 3, T0 + 500)
    assert len(counter) == 1


def test_sliding_counter_tolerates_a_clock_stepping_back() -> None:
    counter = SlidingCounter(60)
    counter.hit("a", 2, T0 + 70)
    counter.hit("a", 2, T0 + 10)  # stepped back: still counted, nothing forgotten
    assert not counter.hit("a", 2, T0 + 71)


def test_distinct_tracker_counts_within_the_window_and_stays_bounded() -> None:
    tracker = DistinctTracker(600)
    counts = [tracker.add("caller", f"x{i}", 3, T0 + i) for i in range(4)]
    assert counts == [1, 2, 3, 4]
    assert tracker.add("caller", "x0", 3, T0 + 5) == 4  # a repeat adds nothing
    # Items older than the window are pruned once the limit is passed.
    assert tracker.add("caller", "x9", 3, T0 + 602) == 3
    assert len(tracker.current["caller"]) <= 4
    tracker.forget("caller")
    assert tracker.add("caller", "x1", 3, T0 + 603) == 1


def test_distinct_tracker_moves_keys_across_windows_and_evicts_idle_ones() -> None:
    tracker = DistinctTracker(600)
    tracker.add("k", "1", 5, T0)
    tracker.add("idle", "1", 5, T0)
    assert tracker.add("k", "2", 5, T0 + 700) == 2  # carried into the new window
    tracker.add("k", "3", 5, T0 + 1300)
    assert "idle" not in tracker.current and "idle" not in tracker.previous


def test_block_list_scopes_expiry_and_purge() -> None:
    blocklist = BlockList()
    forever = BlockEntry("", "13800000001", BlockSource.MANUAL, "", T0, "op")
    brief = BlockEntry("t1", "13800000002", BlockSource.AUTO, "", T0, "policy", T0 + 10)
    blocklist.put(forever)
    blocklist.put(brief)
    assert blocklist.blocked_globally("13800000001", T0 + 1e6) is forever
    assert blocklist.blocked_globally("13800000002", T0) is None
    assert blocklist.blocked_for_tenant("13800000002", "t1", T0) is brief
    assert blocklist.blocked_for_tenant("13800000002", "t2", T0) is None
    assert blocklist.blocked_for_tenant("13800000002", "t1", T0 + 10) is None
    assert len(blocklist) == 2
    assert blocklist.purge(T0 + 11) == 1
    assert blocklist.by_tenant == {}
    assert blocklist.remove("", "13800000001") is forever
    assert len(blocklist) == 0
    assert split_key(brief.key) == ("t1", "13800000002")
    assert split_key(forever.key) == ("", "13800000001")
