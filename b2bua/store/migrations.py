"""Versioned schema migrations, applied in order at start.

Later features append to :data:`MIGRATIONS`: a new ``Migration(version, name,
sqlite, postgres)`` with the next version number; never edit an applied one. Each
migration runs in one transaction together with its ``schema_version`` row.

Conventions shared by both dialects so that one SQL text serves both at run time:
times are epoch seconds (REAL / DOUBLE PRECISION), flags are INTEGER 0/1, JSON is
TEXT in SQLite and JSONB in PostgreSQL (written as a JSON string either way).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "Migration"]


@dataclass(frozen=True)
class Migration:
    """One schema step; ``sqlite`` and ``postgres`` are ';'-separated statements."""

    version: int
    name: str
    sqlite: str
    postgres: str


_V1_COMMON = """
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    webhook_url TEXT,
    suspended INTEGER NOT NULL DEFAULT 0,
    created_at {time} NOT NULL,
    updated_at {time} NOT NULL
);
CREATE TABLE numbers (
    number TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    retired INTEGER NOT NULL DEFAULT 0,
    added_at {time} NOT NULL,
    retired_at {time}
);
CREATE INDEX numbers_tenant ON numbers (tenant_id, number);
CREATE TABLE bindings (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    mode TEXT NOT NULL,
    x TEXT NOT NULL,
    y TEXT,
    a TEXT,
    b TEXT,
    grp TEXT NOT NULL DEFAULT '',
    order_id TEXT,
    direction TEXT NOT NULL,
    max_call_s INTEGER,
    label TEXT,
    record INTEGER NOT NULL DEFAULT 0,
    consent INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    expires_at {time} NOT NULL,
    version INTEGER NOT NULL,
    created_at {time} NOT NULL,
    updated_at {time} NOT NULL,
    released_at {time},
    created_by TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    released_by TEXT
);
CREATE INDEX bindings_live_expiry ON bindings (expires_at) WHERE state = 'active';
CREATE INDEX bindings_x ON bindings (x);
CREATE INDEX bindings_a ON bindings (a);
CREATE INDEX bindings_b ON bindings (b);
CREATE INDEX bindings_order ON bindings (order_id);
-- A claim (number, participant) is what makes (caller, number dialled) pick one
-- binding; the primary key enforces it across every node sharing the database.
CREATE TABLE claims (
    number TEXT NOT NULL,
    participant TEXT NOT NULL,
    binding_id TEXT NOT NULL,
    free_at {time} NOT NULL,
    PRIMARY KEY (number, participant)
);
CREATE INDEX claims_binding ON claims (binding_id);
CREATE TABLE changes (
    seq {serial},
    at {time} NOT NULL,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL
);
CREATE TABLE audit (
    id {serial},
    at {time} NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    tenant_id TEXT,
    binding_id TEXT,
    detail {json} NOT NULL
);
CREATE INDEX audit_binding ON audit (binding_id);
CREATE INDEX audit_tenant ON audit (tenant_id, at);
"""

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "tenants, numbers, bindings, claims, changes, audit",
        _V1_COMMON.format(time="REAL", serial="INTEGER PRIMARY KEY AUTOINCREMENT", json="TEXT"),
        _V1_COMMON.format(time="DOUBLE PRECISION", serial="BIGSERIAL PRIMARY KEY", json="JSONB"),
    ),
]


def split_statements(script: str) -> list[str]:
    """Split a migration script into statements (no ';' inside our literals)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# Call records (DESIGN section 5), the per-node heartbeat and hash-chain head, and
# the webhook outbox. Every lookup index ends in (invite_at, id) so that each
# GET /v1/calls filter is an ordered index range and keyset pages never sort.
_V2_COMMON = """
CREATE TABLE call_records (
    id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    inbound_call_id TEXT NOT NULL,
    outbound_call_id TEXT,
    tenant_id TEXT,
    binding_id TEXT,
    order_id TEXT,
    mode TEXT,
    x TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT,
    shown_number TEXT,
    direction TEXT,
    inbound_trunk TEXT,
    source_address TEXT,
    outbound_trunk TEXT,
    invite_at {time} NOT NULL,
    ringing_at {time},
    answered_at {time},
    ended_at {time},
    duration_s {time},
    pdd_ms INTEGER,
    final_status INTEGER,
    end_reason TEXT,
    released_by TEXT,
    rejection TEXT,
    chain_seq {bigint},
    prev_hash TEXT,
    hash TEXT
);
CREATE UNIQUE INDEX call_records_chain ON call_records (node, chain_seq);
CREATE INDEX call_records_open ON call_records (node, invite_at) WHERE hash IS NULL;
CREATE INDEX call_records_invite ON call_records (invite_at, id);
CREATE INDEX call_records_tenant ON call_records (tenant_id, invite_at, id);
CREATE INDEX call_records_x ON call_records (x, invite_at, id);
CREATE INDEX call_records_caller ON call_records (caller, invite_at, id);
CREATE INDEX call_records_callee ON call_records (callee, invite_at, id);
CREATE INDEX call_records_binding ON call_records (binding_id, invite_at, id);
CREATE INDEX call_records_inbound ON call_records (inbound_call_id);
CREATE TABLE cdr_nodes (
    node TEXT PRIMARY KEY,
    started_at {time} NOT NULL,
    heartbeat_at {time} NOT NULL,
    head_seq {bigint} NOT NULL DEFAULT 0,
    head_hash TEXT NOT NULL DEFAULT '',
    anchor_seq {bigint} NOT NULL DEFAULT 0,
    anchor_hash TEXT NOT NULL DEFAULT ''
);
CREATE TABLE webhook_outbox (
    id {serial},
    event_key TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at {time} NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at {time} NOT NULL,
    last_error TEXT,
    failed_at {time}
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at) WHERE failed_at IS NULL;
ALTER TABLE tenants ADD COLUMN webhook_secret TEXT
"""

MIGRATIONS.append(
    Migration(
        2,
        "call records, cdr node heartbeats and chain heads, webhook outbox",
        _V2_COMMON.format(
            time="REAL", bigint="INTEGER", serial="INTEGER PRIMARY KEY AUTOINCREMENT"
        ),
        _V2_COMMON.format(time="DOUBLE PRECISION", bigint="BIGINT", serial="BIGSERIAL PRIMARY KEY"),
    )
)


# Block lists of the abuse controls (b2bua.policy); the SQL lives with its queries.
from b2bua.store.sql_policy import BLOCKLIST_POSTGRES, BLOCKLIST_SQLITE  # noqa: E402

MIGRATIONS.append(Migration(3, "policy block lists", BLOCKLIST_SQLITE, BLOCKLIST_POSTGRES))
