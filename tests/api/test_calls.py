"""``/v1/calls`` over the assumed ``call_records`` table, and without one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from b2bua.api.call_records import NoCallRecords
from b2bua.cdr.record import RECORD_COLUMNS, RecordDraft

from .conftest import OPERATOR, START, Api, ApiFactory, assert_error


def record(index: int, **overrides: Any) -> RecordDraft:
    base: dict[str, Any] = {
        "id": f"c{index:03d}", "node": "n1", "shown_number": "700000000000000",
        "chain_seq": index + 1, "inbound_call_id": f"in-{index}",
        "outbound_call_id": f"out-{index}",
        "tenant_id": "t_a", "binding_id": "b1", "order_id": "o1", "mode": "AXB",
        "x": "700000000000000", "caller": "13800138000", "callee": "13900139000",
        "direction": "a_to_b", "inbound_trunk": "carrier-a", "source_address": "127.0.0.1:5070",
        "outbound_trunk": "carrier-a", "invite_at": START + index, "ringing_at": START + index + 1,
        "answered_at": START + index + 2, "ended_at": START + index + 32, "duration_s": 30.0,
        "pdd_ms": 1000, "final_status": 200, "end_reason": "normal", "released_by": "caller",
        "hash": f"h{index}", "prev_hash": f"h{index - 1}",
    }  # fmt: skip
    base.update(overrides)
    return RecordDraft(**base)


@pytest.fixture
async def calls_api(make_api: ApiFactory) -> tuple[Api, list[RecordDraft]]:
    """The API over a store holding four call records (rows written directly)."""
    api = await make_api()
    records = [
        record(0),
        record(1, caller="13700137000", binding_id="b2"),
        record(2, x="700000000000001", tenant_id="t_b", binding_id="b3"),
        record(3, callee=None, answered_at=None, ended_at=None, duration_s=None,
               final_status=None, end_reason=None, released_by=None),
    ]  # fmt: skip
    async with api.store._driver.transaction() as tx:  # type: ignore[attr-defined]
        marks = ", ".join("?" * len(RECORD_COLUMNS))
        await tx.executemany(
            f"INSERT INTO call_records ({', '.join(RECORD_COLUMNS)}) VALUES ({marks})",
            [r.to_row() for r in records],
        )
    return api, records


async def _alias(api: Api, tenant: Any, tenant_id: str) -> dict[str, str]:
    """Give the fixed ``tenant_id`` records to a tenant created through the API."""
    async with api.store._driver.transaction() as tx:  # type: ignore[attr-defined]
        await tx.execute("UPDATE call_records SET tenant_id = ? WHERE tenant_id = ?",
                         (tenant.id, tenant_id))  # fmt: skip
    return tenant.auth


async def test_operator_lists_all_newest_first(calls_api: tuple[Api, list[RecordDraft]]) -> None:
    api, _ = calls_api
    response = await api.client.get("/v1/calls", headers=OPERATOR)
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["id"] for i in items] == ["c003", "c002", "c001", "c000"]
    first = items[-1]
    assert first["invite_at"] == datetime.fromtimestamp(START, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    assert first["final_status"] == 200 and first["end_reason"] == "normal"
    assert (first["node"], first["chain_seq"], first["hash"]) == ("n1", 1, "h0")
    assert first["shown_number"] == "700000000000000"
    assert first["duration_s"] == 30.0 and first["pdd_ms"] == 1000
    assert items[0]["answered_at"] is None and items[0]["callee"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"x": "+86700000000000001"}, ["c002"]),
        ({"number": "+8613700137000"}, ["c001"]),
        ({"number": "13900139000"}, ["c002", "c001", "c000"]),
        ({"binding_id": "b2"}, ["c001"]),
        ({"tenant_id": "t_b"}, ["c002"]),
        ({"since": "2027-01-15T08:00:01Z"}, ["c003", "c002", "c001"]),
        ({"until": "2027-01-15T08:00:01Z"}, ["c000"]),
        ({"since": "2027-01-15T16:00:01+08:00", "until": "2027-01-15T08:00:03"}, ["c002", "c001"]),
        ({"since": START + 3}, ["c003"]),
    ],
)
async def test_filters(
    calls_api: tuple[Api, list[RecordDraft]], params: dict[str, Any], expected: list[str]
) -> None:
    api, _ = calls_api
    assert datetime.fromtimestamp(START, UTC).isoformat() == "2027-01-15T08:00:00+00:00"
    response = await api.client.get("/v1/calls", params=params, headers=OPERATOR)
    assert response.status_code == 200, response.text
    assert [i["id"] for i in response.json()["items"]] == expected


async def test_paging(calls_api: tuple[Api, list[RecordDraft]]) -> None:
    api, _ = calls_api
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/v1/calls", params=params, headers=OPERATOR)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["c003", "c002", "c001", "c000"]
    bad = await api.client.get("/v1/calls", params={"cursor": "%%%"}, headers=OPERATOR)
    assert_error(bad, 422, field="cursor")


async def test_tenant_sees_only_its_calls(calls_api: tuple[Api, list[RecordDraft]]) -> None:
    api, _ = calls_api
    mine = await _alias(api, await api.tenant("b", pool=0), "t_b")
    listed = await api.client.get("/v1/calls", headers=mine)
    assert [i["id"] for i in listed.json()["items"]] == ["c002"]
    assert (await api.client.get("/v1/calls/c002", headers=mine)).status_code == 200
    assert_error(await api.client.get("/v1/calls/c001", headers=mine), 404, "not_found")
    assert_error(await api.client.get("/v1/calls/nope", headers=mine), 404, "not_found")
    assert (await api.client.get("/v1/calls/c001", headers=OPERATOR)).json()["id"] == "c001"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"x": "1"}, "x"),
        ({"number": "abc"}, "number"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2027-13-01T00:00:00Z"}, "until"),
        ({"limit": 0}, "limit"),
    ],
)
async def test_invalid_call_queries(
    calls_api: tuple[Api, list[RecordDraft]], params: dict[str, Any], field: str
) -> None:
    api, _ = calls_api
    response = await api.client.get("/v1/calls", params=params, headers=OPERATOR)
    assert_error(response, 422, field=field)


async def test_without_call_records(make_api: ApiFactory) -> None:
    api = await make_api(calls=NoCallRecords())
    tenant = await api.tenant()
    listed = await api.client.get("/v1/calls", headers=tenant.auth)
    assert listed.json() == {"items": [], "next_cursor": None}
    assert_error(await api.client.get("/v1/calls/c1", headers=tenant.auth), 404)
    bad = await api.client.get("/v1/calls", params={"cursor": "%%%"}, headers=tenant.auth)
    assert_error(bad, 422, field="cursor")
