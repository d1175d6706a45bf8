"""Errors raised by the SIP core.

Every error says whose fault it is through its class and which final status a
server should answer with (`status_hint`), the way h11 separates a peer's
protocol violation from our own bug.
"""

from __future__ import annotations


class SipError(Exception):
    """Base of every error raised by `b2bua.sip`."""

    status_hint: int = 500

    def __init__(self, reason: str, *, status_hint: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status_hint is not None:
            self.status_hint = status_hint


class ParseError(SipError, ValueError):
    """The peer sent bytes that are not a SIP message we can act on.

    `status_hint` is the status to answer with when a response can still be
    formed (400 by default, 505 for an unsupported SIP version); when not even
    that is possible the caller drops the datagram.
    """

    status_hint = 400


class TransactionError(SipError):
    """A transaction was driven in a way RFC 3261 section 17 does not allow (our bug)."""
