"""The claim rule, checked inside the write transaction (the authority for conflicts).

The in-memory allocator picks numbers it believes free, but another node (or a
stale index) may disagree; the transaction that inserts a binding re-checks every
claim against the ``claims`` table after locking the numbers involved, so two
conflicting bindings can never both commit. See :mod:`b2bua.bindings.model` for
what a claim is and why ``*`` (AXN) conflicts with everything on its number.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from b2bua.bindings.model import ANY_CALLER
from b2bua.store.base import ClaimRow, Tx

__all__ = ["LiveClaims", "chunks"]


def chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    """``items`` in slices of at most ``size`` (bound parameters per statement)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@functools.lru_cache(maxsize=512)
def _claims_by_key_sql(keys: int) -> str:
    """Live claims of ``keys`` ``(number, participant)`` pairs, then ``now``.

    A join from the listed keys, because SQLite answers ``(number, participant) IN
    (VALUES ...)`` with a scan of the whole claims table (one per group commit,
    growing with every binding ever made); the join looks each key up in the
    primary key, and PostgreSQL plans it as well.
    """
    values = ", ".join("(?, ?)" for _ in range(keys))
    return (
        f"WITH wanted (number, participant) AS (VALUES {values})"
        " SELECT c.number, c.participant, c.binding_id FROM wanted"
        " JOIN claims AS c ON c.number = wanted.number AND c.participant = wanted.participant"
        " WHERE c.free_at > ?"
    )


class LiveClaims:
    """Live claims on a set of numbers, as read inside one write transaction.

    It is updated as a batch accepts bindings, so two bindings of one batch are
    checked against each other as well as against the table.
    """

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], str] = {}
        self.by_number: dict[str, set[str]] = {}

    @classmethod
    async def load(
        cls, tx: Tx, claims: Iterable[ClaimRow], now: float, max_params: int
    ) -> LiveClaims:
        """Read the live claims that could clash with ``claims``."""
        live = cls()
        keys: set[tuple[str, str]] = set()
        star_numbers: set[str] = set()
        for claim in claims:
            keys.add((claim.number, claim.participant))
            keys.add((claim.number, ANY_CALLER))
            if claim.participant == ANY_CALLER:
                star_numbers.add(claim.number)
        ordered = sorted(keys)
        per_chunk = max(1, (max_params - 1) // 2)
        for start in range(0, len(ordered), per_chunk):
            part = ordered[start : start + per_chunk]
            args: list[object] = []
            for number, participant in part:
                args += (number, participant)
            args.append(now)
            rows = await tx.fetch(_claims_by_key_sql(len(part)), args)
            for number, participant, binding_id in rows:
                live.add(number, participant, binding_id)
        for numbers in chunks(sorted(star_numbers), max_params - 1):
            marks = ", ".join("?" * len(numbers))
            rows = await tx.fetch(
                "SELECT number, participant, binding_id FROM claims"
                f" WHERE free_at > ? AND number IN ({marks})",
                [now, *numbers],
            )
            for number, participant, binding_id in rows:
                live.add(number, participant, binding_id)
        return live

    def add(self, number: str, participant: str, binding_id: str) -> None:
        self.by_key[(number, participant)] = binding_id
        self.by_number.setdefault(number, set()).add(binding_id)

    def clashes(self, claims: Iterable[ClaimRow], binding_id: str) -> list[tuple[str, str]]:
        """Keys of ``claims`` held by another live binding (empty when all are free)."""
        clashing: list[tuple[str, str]] = []
        for claim in claims:
            key = (claim.number, claim.participant)
            if claim.participant == ANY_CALLER:
                others = self.by_number.get(claim.number, set()) - {binding_id}
                if others:
                    clashing.append(key)
                continue
            holder = self.by_key.get(key)
            star = self.by_key.get((claim.number, ANY_CALLER))
            if (holder is not None and holder != binding_id) or (
                star is not None and star != binding_id
            ):
                clashing.append(key)
        return clashing

    def take(self, claims: Iterable[ClaimRow], binding_id: str) -> None:
        """Record ``claims`` as held by ``binding_id`` (accepted into the batch)."""
        for claim in claims:
            self.add(claim.number, claim.participant, binding_id)
