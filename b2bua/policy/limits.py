"""Counting primitives of the abuse controls: small, allocation-light, O(1) per key.

Both keep state in two generations of plain dictionaries, one per fixed window:
when a window ends the older generation is dropped whole, so keys idle for two
windows are evicted without any scan on the call path. Time is the wall clock the
router is given (epoch seconds); a clock stepping backwards is treated as still
inside the current window, never as a reason to forget counts.
"""

from __future__ import annotations

__all__ = ["DistinctTracker", "SlidingCounter"]


class SlidingCounter:
    """Events per key in a sliding window, estimated from two fixed windows.

    The estimate is ``previous * (time left of the window) / window + current``
    (the approach of Cloudflare's rate limiter): one integer per key per window,
    accurate to a few percent for steady traffic and never under the fixed-window
    count of the current window.
    """

    __slots__ = ("current", "previous", "started", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self.current: dict[str, int] = {}
        self.previous: dict[str, int] = {}
        self.started = 0.0

    def _roll(self, now: float) -> None:
        if now - self.started < self.window:
            return
        # Two or more windows have passed: nothing of the last one is relevant.
        self.previous = self.current if now - self.started < 2 * self.window else {}
        self.current = {}
        self.started = now - now % self.window

    def hit(self, key: str, limit: int, now: float) -> bool:
        """Count one event for ``key`` unless that would exceed ``limit``.

        Returns False (and counts nothing) when ``key`` already had ``limit``
        events in the sliding window, so refused attempts do not extend a penalty.
        """
        if now - self.started >= self.window:
            self._roll(now)
        count = self.current.get(key, 0)
        previous = self.previous.get(key)
        if previous:
            left = min(1.0, 1.0 - (now - self.started) / self.window)
            if count + previous * left >= limit:
                return False
        elif count >= limit:
            return False
        self.current[key] = count + 1
        return True

    def __len__(self) -> int:
        """Keys remembered (for the metrics gauge)."""
        return len(self.current) + len(self.previous)


class DistinctTracker:
    """Distinct items seen per key within a window, remembered up to a limit.

    Each key holds ``{item: last seen}`` with at most ``limit + 1`` entries: items
    older than the window are pruned only when the map grows past ``limit``, which
    keeps the common call (an item already known) at one dictionary store.
    """

    __slots__ = ("current", "previous", "started", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self.current: dict[str, dict[str, float]] = {}
        self.previous: dict[str, dict[str, float]] = {}
        self.started = 0.0

    def add(self, key: str, item: str, limit: int, now: float) -> int:
        """Record ``item`` for ``key``; return how many distinct items are in the window.

        The count is exact whenever it exceeds ``limit`` (that is when it is pruned);
        below the limit it may include items slightly older than the window.
        """
        if now - self.started >= self.window:
            self.previous = self.current if now - self.started < 2 * self.window else {}
            self.current = {}
            self.started = now - now % self.window
        seen = self.current.get(key)
        if seen is None:
            seen = self.previous.pop(key, None)
            if seen is None:
                seen = {}
            self.current[key] = seen
        seen[item] = now
        if len(seen) > limit:
            cutoff = now - self.window
            for old in [i for i, at in seen.items() if at <= cutoff]:
                del seen[old]
        return len(seen)

    def forget(self, key: str) -> None:
        """Start ``key`` afresh (after its pattern tripped)."""
        self.current.pop(key, None)
        self.previous.pop(key, None)

    def __len__(self) -> int:
        return len(self.current) + len(self.previous)
