"""Errors of the policy service (the block-list management side)."""

from __future__ import annotations

__all__ = ["BlockNotFound", "InvalidBlock"]


class InvalidBlock(ValueError):
    """A block request the client got wrong; ``field`` names the offending input."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class BlockNotFound(LookupError):
    """No block entry for that number in that list."""
