"""RFC 3261 section 17 timer values (Table 4, with the RFC 6026 additions).

Only T1, T2, T4 and Timer D are settings; every other timer derives from them
as the RFC says. Timers that exist to absorb retransmissions (D, I, J, K) are
zero on a reliable transport, and the retransmission timers (A, E, G) are not
started there at all.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """T1 (RTT estimate), T2 (max non-INVITE retransmit interval), T4 (network lifetime).

    `timer_d` is "at least 32 seconds" in the RFC rather than a multiple of T1,
    so it is set on its own; tests and integration runs shrink all of them.
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d_unreliable: float = 32.0

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2:
            raise ValueError(f"need 0 < T1 <= T2, got T1={self.t1} T2={self.t2}")
        if self.t4 <= 0 or self.timer_d_unreliable < 0:
            raise ValueError("T4 must be positive and Timer D not negative")

    @property
    def timer_a(self) -> float:
        """INVITE request retransmit interval, initial value (doubles, no cap)."""
        return self.t1

    @property
    def timer_b(self) -> float:
        """INVITE transaction timeout while Calling."""
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        """Wait time for response retransmits in the INVITE client's Completed state."""
        return 0.0 if reliable else self.timer_d_unreliable

    @property
    def timer_e(self) -> float:
        """Non-INVITE request retransmit interval, initial value (doubles up to T2)."""
        return self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE transaction timeout."""
        return 64 * self.t1

    @property
    def timer_g(self) -> float:
        """INVITE final response retransmit interval, initial value (doubles up to T2)."""
        return self.t1

    @property
    def timer_h(self) -> float:
        """Wait time for an ACK after a non-2xx final response."""
        return 64 * self.t1

    def timer_i(self, reliable: bool) -> float:
        """Wait time for ACK retransmits in the INVITE server's Confirmed state."""
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        """Wait time for request retransmits in the non-INVITE server's Completed state."""
        return 0.0 if reliable else 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        """Wait time for response retransmits in the non-INVITE client's Completed state."""
        return 0.0 if reliable else self.t4

    @property
    def timer_l(self) -> float:
        """RFC 6026: wait time for ACK/INVITE retransmits in the INVITE server's Accepted state."""
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        """RFC 6026: wait time for 2xx retransmits in the INVITE client's Accepted state."""
        return 64 * self.t1


DEFAULT_TIMERS = TimerConfig()
