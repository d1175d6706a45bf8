"""Checking the hash chains (``b2bua cdr verify``).

Chains are per node: every node appends its finalised records to its own chain
(``chain_seq`` 1, 2, 3... with ``prev_hash`` the hash of the record before), so
several nodes on one PostgreSQL never take a global lock to write. A record joins
its chain when it is finalised, not when it is inserted, because its final fields
are what must not change afterwards; an open record has no hash yet.

:func:`verify_chains` walks each chain from its anchor (the last record purged by
retention, or the start) to its head (the last record chained, kept in
``cdr_nodes``) and reports the first record that breaks it: content that no longer
matches its hash, a ``prev_hash`` that is not its predecessor's hash, a gap in
``chain_seq`` (records deleted), or a chain shorter than its head (records deleted
at the end). What it cannot see: rewriting every hash from the tampered record to
the head together with the head row itself; export the heads (``cdr verify``
prints them) to somewhere the database's writers cannot reach to close that gap.
"""

from __future__ import annotations

from dataclasses import dataclass

from b2bua.cdr.record import chain_hash
from b2bua.store.sql_cdr import SqlCdrStore

__all__ = ["ChainReport", "verify_chains"]


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome for one node's chain; ``record_id`` names the first broken record."""

    node: str
    checked: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    record_id: str | None = None

    @property
    def ok(self) -> bool:
        """True when the chain is intact."""
        return self.problem is None


async def verify_chain(store: SqlCdrStore, node: str, *, page: int = 5000) -> ChainReport:
    """Walk ``node``'s chain; stop at the first break."""
    state = await store.chain_state(node)
    if state is None:
        return ChainReport(node, 0, 0, "", "the node's chain head row is missing")
    expected_seq, expected_prev, checked = state.anchor_seq + 1, state.anchor_hash, 0

    def broken(problem: str, record_id: str | None) -> ChainReport:
        return ChainReport(node, checked, state.head_seq, state.head_hash, problem, record_id)

    async for draft in store.iter_chain(node, after_seq=state.anchor_seq, page=page):
        if draft.chain_seq != expected_seq:
            return broken(
                f"record {draft.id} has chain_seq {draft.chain_seq} where {expected_seq} was"
                " expected: records before it were deleted",
                draft.id,
            )
        if draft.prev_hash != expected_prev:
            return broken(
                f"record {draft.id}: prev_hash does not match the hash of record"
                f" {expected_seq - 1} of the chain (one of the two was altered)",
                draft.id,
            )
        if chain_hash(draft) != draft.hash:
            return broken(f"record {draft.id} was altered: its content does not match its hash",
                          draft.id)  # fmt: skip
        checked += 1
        expected_seq += 1
        expected_prev = draft.hash
    if expected_seq - 1 != state.head_seq or expected_prev != state.head_hash:
        return broken(
            f"chain ends at chain_seq {expected_seq - 1} but its head is {state.head_seq}:"
            " records at the end were deleted or the head was altered",
            None,
        )
    return ChainReport(node, checked, state.head_seq, state.head_hash)


async def verify_chains(store: SqlCdrStore, *, page: int = 5000) -> list[ChainReport]:
    """One report per node that has a chain row or records."""
    return [await verify_chain(store, node, page=page) for node in await store.chain_nodes()]
