"""The record draft: what events may change, and a hash that stays the same across versions."""

from __future__ import annotations

from dataclasses import replace

from b2bua.calls.events import CallForwarded
from b2bua.cdr.record import (
    MUTABLE_COLUMNS,
    RECORD_COLUMNS,
    apply_event,
    chain_hash,
    draft_from_attempt,
    interrupt,
)
from cdr.conftest import call_events


def test_events_after_the_attempt_change_only_mutable_columns() -> None:
    """The upsert rewrites only MUTABLE_COLUMNS: nothing else may move after the attempt."""
    start, forwarded, *rest = call_events("c1", at=1_790_000_000.0)
    draft = draft_from_attempt(start, "node-a")
    before = dict(zip(RECORD_COLUMNS, draft.to_row(), strict=True))
    assert isinstance(forwarded, CallForwarded)
    # A next trunk, then a next hunt member: the outbound leg is replaced twice.
    apply_event(draft, forwarded)
    apply_event(draft, replace(forwarded, outbound_call_id="out-2", callee="13900000009"))
    for event in rest:
        apply_event(draft, event)
    draft.chain_seq, draft.prev_hash = 1, ""
    draft.hash = chain_hash(draft)
    interrupted = draft_from_attempt(start, "node-a")
    interrupt(interrupted, ended_at=1_790_000_005.0)
    for changed in (draft, interrupted):
        after = dict(zip(RECORD_COLUMNS, changed.to_row(), strict=True))
        moved = {name for name in RECORD_COLUMNS if after[name] != before[name]}
        assert moved <= set(MUTABLE_COLUMNS), moved - set(MUTABLE_COLUMNS)
    assert {"callee", "ended_at", "hash"} <= {
        name for name in RECORD_COLUMNS if getattr(draft, name) != before[name]
    }
    assert "id" not in MUTABLE_COLUMNS and set(MUTABLE_COLUMNS) <= set(RECORD_COLUMNS)


def test_chain_hash_is_the_same_as_in_earlier_versions() -> None:
    """Chains written by an earlier version must still verify: the canonical form is fixed.

    The expected value was computed by the code that wrote the first chains
    (`json.dumps` of the typed row); a change to the encoding breaks it.
    """
    start, *rest = call_events("c-golden", at=1_790_000_000.25)
    draft = draft_from_attempt(start, "node-ü")
    for event in rest:
        apply_event(draft, event)
    draft.chain_seq, draft.prev_hash = 7, "ab" * 32
    assert chain_hash(draft) == "ff2251b06c142dbd694c6305a1a5d1ab09b8d982c02561a917c3e7f70444cac3"
