"""Store errors: every database failure surfaces as a :class:`StoreError`."""

from __future__ import annotations

__all__ = ["ConflictError", "NotFoundError", "RetryableError", "StoreError", "UnavailableError"]


class StoreError(Exception):
    """Base of all storage errors; wraps the driver's own exception as ``__cause__``."""


class ConflictError(StoreError):
    """A uniqueness rule refused the write (a claim on a number, a duplicate id...).

    ``keys`` names what clashed, e.g. ``[("700...", "138...")]`` for claims.
    """

    def __init__(self, message: str, keys: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.keys = keys or []


class NotFoundError(StoreError, LookupError):
    """The row asked for does not exist."""


class UnavailableError(StoreError):
    """The database cannot be reached or is closed."""


class RetryableError(StoreError):
    """A transient failure (deadlock, serialisation, busy database): try again."""
