"""Block-list entries: the one policy object that is persisted and shared by nodes.

This module imports nothing of the project so that the store can name the type
without pulling the policy engine (or its imports) in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["GLOBAL_SCOPE", "BlockEntry", "BlockSource"]

GLOBAL_SCOPE = ""
"""``BlockEntry.scope`` of the operator's global list; otherwise the scope is a tenant id."""


class BlockSource(StrEnum):
    """Who put a number on a block list."""

    MANUAL = "manual"  # the operator or a tenant, through the API or the CLI
    AUTO = "auto"  # a fraud rule tripped; such entries always expire


@dataclass(frozen=True, slots=True)
class BlockEntry:
    """A real number that may not call: globally (``scope == ""``) or into one tenant.

    ``expires_at`` is wall-clock epoch seconds, ``None`` for a block that lasts until
    removed. ``reason`` is free text for people (``"fraud:distinct_numbers"`` for
    automatic entries).
    """

    scope: str
    number: str
    source: BlockSource
    reason: str
    created_at: float
    created_by: str
    expires_at: float | None = None

    @property
    def tenant_id(self) -> str | None:
        """The tenant whose list this is, or None for the global list."""
        return self.scope or None

    @property
    def key(self) -> str:
        """The identity of the entry in the change sequence (``scope|number``)."""
        return f"{self.scope}|{self.number}"

    def active_at(self, now: float) -> bool:
        """Whether the block still holds at wall-clock ``now``."""
        return self.expires_at is None or self.expires_at > now

    def to_dict(self) -> dict[str, object]:
        """JSON-ready mapping for the CLI."""
        return {
            "number": self.number,
            "tenant_id": self.tenant_id,
            "source": self.source.value,
            "reason": self.reason,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
        }


def split_key(key: str) -> tuple[str, str]:
    """Inverse of :attr:`BlockEntry.key`: ``(scope, number)``."""
    scope, _, number = key.partition("|")
    return scope, number
