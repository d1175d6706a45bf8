"""``/v1/bindings``: every mode, the lifecycle, search and paging, and every error."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from b2bua.api.context import ApiSettings
from b2bua.bindings.settings import BindingSettings

from .conftest import OPERATOR, START, Api, ApiFactory, assert_error, axb

A, B, C, D = "13800138000", "13900139000", "13700137000", "01012345678"


def rfc3339(text: str) -> float:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text).timestamp()


async def test_create_axb_allocates_x_and_answers_rfc3339(api: Api) -> None:
    tenant = await api.tenant()
    response = await api.client.post(
        "/v1/bindings",
        json=axb(a="+8613800138000", b="tel:+86-139-0013-9000", label="Courier", record=True),
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"]
    assert body["x"] in tenant.numbers
    assert body["y"] is None
    assert (body["a"], body["b"]) == (A, B)  # stored in national form
    assert rfc3339(body["expires_at"]) == pytest.approx(START + 600)
    assert rfc3339(body["created_at"]) == pytest.approx(START)
    assert body["released_at"] is None
    assert body["state"] == "active"
    assert body["created_by"] == f"tenant:{tenant.id}"
    assert (body["label"], body["record"], body["direction"]) == ("Courier", True, "both")
    shown = await api.client.get(f"/v1/bindings/{body['id']}", headers=tenant.auth)
    assert shown.json() == body


@pytest.mark.parametrize(
    ("request_body", "expect"),
    [
        ({"mode": "AXYB", "a": A, "b": B}, {"a": A, "b": B}),
        ({"mode": "GXB", "group": [A, C, "+86" + D[1:]], "b": B}, {"group": [A, C, D], "b": B}),
        ({"mode": "AXN", "a": A}, {"a": A, "b": None}),
        ({"mode": "AXN", "a": A, "b": B}, {"a": A, "b": B}),
    ],
)
async def test_create_every_mode(api: Api, request_body: dict[str, Any], expect: dict) -> None:
    tenant = await api.tenant()
    body = {"ttl_s": 60, "order_id": "o", **request_body}
    response = await api.client.post("/v1/bindings", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["mode"] == request_body["mode"]
    for key, value in expect.items():
        assert created[key] == value
    if request_body["mode"] == "AXYB":
        assert created["y"] in tenant.numbers and created["y"] != created["x"]
    else:
        assert created["y"] is None


async def test_requested_x_and_y(api: Api) -> None:
    tenant = await api.tenant()
    x, y = tenant.numbers[2], "+86" + tenant.numbers[1]
    body = {"mode": "AXYB", "a": A, "b": B, "x": x, "y": y, "ttl_s": 60, "order_id": "o"}
    response = await api.client.post("/v1/bindings", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    assert (response.json()["x"], response.json()["y"]) == (x, tenant.numbers[1])
    # The same participants on the same X clash: 409.
    again = await api.client.post("/v1/bindings", json=body, headers=tenant.auth)
    assert_error(again, 409)


async def test_operator_creates_for_a_named_tenant(api: Api) -> None:
    tenant = await api.tenant()
    missing = await api.client.post("/v1/bindings", json=axb(), headers=OPERATOR)
    assert_error(missing, 422, field="tenant_id")
    unknown = await api.client.post(
        "/v1/bindings", params={"tenant_id": "t_nobody"}, json=axb(), headers=OPERATOR
    )
    assert_error(unknown, 404)
    response = await api.client.post(
        "/v1/bindings", params={"tenant_id": tenant.id}, json=axb(), headers=OPERATOR
    )
    assert response.status_code == 201
    assert response.json()["tenant_id"] == tenant.id
    assert response.json()["created_by"] == "operator"


INVALID: list[tuple[dict[str, Any], str, str | None]] = [
    (axb(a="12345"), "a", "invalid_number"),
    (axb(b="70012345678901"), "b", "invalid_number"),
    (axb(a="+1 212 555 0100"), "a", "invalid_number"),
    (axb(x="13800138000"), "x", "invalid_number"),
    (axb(x="70012345"), "x", "invalid_number"),
    ({**axb(mode="GXB", a=...), "group": [A, "999", C]}, "group.1", "invalid_number"),
    ({**axb(mode="GXB", a=...), "group": [A, 5]}, "group.1", None),
    ({**axb(mode="GXB", a=...), "group": []}, "group", None),
    (axb(mode="GXB", a=...), "group", None),
    ({**axb(mode="GXB", a=..., b=...), "group": [A]}, "b", None),
    ({**axb(mode="GXB", b=A), "group": [A, C]}, "group", None),
    (axb(b=...), "b", None),
    (axb(mode="AXYB", a=...), "a", None),
    (axb(mode="AXN", a=..., b=B), "a", None),
    (axb(b=A), "b", None),
    (axb(mode="AXYZ"), "mode", None),
    (axb(mode=...), "mode", "required"),
    (axb(ttl_s=...), "ttl_s", "required"),
    (axb(ttl_s=0), "ttl_s", None),
    (axb(ttl_s=-5), "ttl_s", None),
    (axb(ttl_s=90 * 24 * 3600 + 1), "ttl_s", None),
    (axb(ttl_s=10**30), "ttl_s", None),
    (axb(ttl_s="60"), "ttl_s", None),
    (axb(ttl_s=60.5), "ttl_s", None),
    (axb(ttl_s=True), "ttl_s", None),
    (axb(order_id=...), "order_id", None),
    (axb(order_id=""), "order_id", None),
    (axb(order_id="x" * 129), "order_id", None),
    (axb(direction="sideways"), "direction", None),
    (axb(max_call_s=0), "max_call_s", None),
    (axb(label='say "hi"'), "label", None),
    (axb(label="x" * 65), "label", None),
    (axb(record="yes"), "record", None),
    (axb(consent=1), "consent", None),
    (axb(y="700000000000002"), "y", None),
    (axb(a=None), "a", None),
    (axb(surprise=1), "surprise", "unknown_field"),
    ({**axb(), "group": [A], "mode": "AXB"}, "group", None),
]


@pytest.mark.parametrize(("body", "field", "code"), INVALID)
async def test_invalid_bindings_name_the_field(
    api: Api, body: dict[str, Any], field: str, code: str | None
) -> None:
    tenant = await api.tenant()
    response = await api.client.post("/v1/bindings", json=body, headers=tenant.auth)
    assert_error(response, 422, code, field)


@pytest.mark.parametrize("body", [[], "AXB", 5, None])
async def test_body_must_be_an_object(api: Api, body: object) -> None:
    tenant = await api.tenant()
    response = await api.client.post("/v1/bindings", json=body, headers=tenant.auth)
    assert_error(response, 422, field="body")


async def test_configured_rules(make_api: ApiFactory) -> None:
    api = await make_api(
        binding_settings=BindingSettings(
            require_order_id=False, max_ttl_s=100, allowed_modes=frozenset({"AXB"})
        ),
        api_settings=ApiSettings(require_consent=True),
    )
    tenant = await api.tenant()
    no_consent = await api.client.post("/v1/bindings", json=axb(), headers=tenant.auth)
    assert_error(no_consent, 422, "consent_required", "consent")
    too_long = await api.client.post(
        "/v1/bindings", json=axb(ttl_s=101, consent=True), headers=tenant.auth
    )
    assert_error(too_long, 422, field="ttl_s")
    gxb = {"mode": "GXB", "group": [A], "b": B, "ttl_s": 5, "consent": True}
    not_allowed = await api.client.post("/v1/bindings", json=gxb, headers=tenant.auth)
    assert_error(not_allowed, 422, "mode_not_allowed", "mode")
    ok = await api.client.post(
        "/v1/bindings", json=axb(ttl_s=100, order_id=..., consent=True), headers=tenant.auth
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["order_id"] is None and ok.json()["consent"] is True


async def test_no_free_number_is_409(api: Api) -> None:
    tenant = await api.tenant(pool=1)
    first = await api.client.post("/v1/bindings", json=axb(), headers=tenant.auth)
    assert first.status_code == 201
    second = await api.client.post("/v1/bindings", json=axb(b=C), headers=tenant.auth)
    assert_error(second, 409, "no_number_available")
    empty = await api.tenant("empty", pool=0)
    nothing = await api.client.post("/v1/bindings", json=axb(), headers=empty.auth)
    assert_error(nothing, 409, "no_number_available")


async def test_foreign_x_is_rejected(api: Api) -> None:
    alice = await api.tenant("alice", start=0)
    bob = await api.tenant("bob", start=100)
    response = await api.client.post("/v1/bindings", json=axb(x=alice.numbers[0]), headers=bob.auth)
    assert_error(response, 422, field="x")


async def test_suspended_tenant_cannot_create(api: Api) -> None:
    tenant = await api.tenant()
    patch = await api.client.patch(
        f"/v1/tenants/{tenant.id}", json={"suspended": True}, headers=OPERATOR
    )
    assert patch.status_code == 200 and patch.json()["suspended"] is True
    response = await api.client.post("/v1/bindings", json=axb(), headers=tenant.auth)
    assert_error(response, 403, "tenant_suspended")
    # Reading still works for a suspended tenant.
    assert (await api.client.get("/v1/bindings", headers=tenant.auth)).status_code == 200
    await api.client.patch(f"/v1/tenants/{tenant.id}", json={"suspended": False}, headers=OPERATOR)
    response = await api.client.post("/v1/bindings", json=axb(), headers=tenant.auth)
    assert response.status_code == 201


async def test_patch_changes_what_was_sent(api: Api) -> None:
    tenant = await api.tenant()
    created = (
        await api.client.post(
            "/v1/bindings", json=axb(label="Rider", max_call_s=300), headers=tenant.auth
        )
    ).json()
    url = f"/v1/bindings/{created['id']}"
    api.clock.now += 100
    response = await api.client.patch(
        url, json={"ttl_s": 1000, "b": "+86" + C, "direction": "a_to_b"}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert rfc3339(changed["expires_at"]) == pytest.approx(START + 100 + 1000)
    assert changed["b"] == C
    assert changed["direction"] == "a_to_b"
    assert (changed["label"], changed["max_call_s"]) == ("Rider", 300)  # untouched
    assert changed["version"] == created["version"] + 1
    cleared = (
        await api.client.patch(url, json={"label": None, "max_call_s": None}, headers=tenant.auth)
    ).json()
    assert (cleared["label"], cleared["max_call_s"]) == (None, None)
    same = await api.client.patch(url, json={}, headers=tenant.auth)
    assert same.json()["version"] == cleared["version"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"ttl_s": 0}, "ttl_s"),
        ({"ttl_s": None}, "ttl_s"),
        ({"b": "abc"}, "b"),
        ({"b": None}, "b"),
        ({"b": A}, "b"),
        ({"group": [A]}, "group"),
        ({"direction": "up"}, "direction"),
        ({"label": "\u0007"}, "label"),
        ({"mode": "AXN"}, "mode"),
        ({"x": "700000000000001"}, "x"),
    ],
)
async def test_invalid_patch(api: Api, patch: dict[str, Any], field: str) -> None:
    tenant = await api.tenant()
    created = (await api.client.post("/v1/bindings", json=axb(), headers=tenant.auth)).json()
    response = await api.client.patch(
        f"/v1/bindings/{created['id']}", json=patch, headers=tenant.auth
    )
    assert_error(response, 422, field=field)


async def test_patch_group_with_dotted_field(api: Api) -> None:
    tenant = await api.tenant()
    body = {"mode": "GXB", "group": [A], "b": B, "ttl_s": 60, "order_id": "o"}
    created = (await api.client.post("/v1/bindings", json=body, headers=tenant.auth)).json()
    url = f"/v1/bindings/{created['id']}"
    bad = await api.client.patch(url, json={"group": [C, "0"]}, headers=tenant.auth)
    assert_error(bad, 422, "invalid_number", "group.1")
    good = await api.client.patch(url, json={"group": [C, A]}, headers=tenant.auth)
    assert good.json()["group"] == [C, A]


async def test_release_and_lifecycle(api: Api) -> None:
    tenant = await api.tenant()
    created = (await api.client.post("/v1/bindings", json=axb(), headers=tenant.auth)).json()
    url = f"/v1/bindings/{created['id']}"
    api.clock.now += 5
    released = await api.client.delete(url, headers=tenant.auth)
    assert released.status_code == 200
    body = released.json()
    assert body["state"] == "released"
    assert rfc3339(body["released_at"]) == pytest.approx(START + 5)
    assert body["released_by"] == f"tenant:{tenant.id}"
    # Never hard-deleted: still readable; releasing again answers the same binding.
    assert (await api.client.get(url, headers=tenant.auth)).json()["state"] == "released"
    again = await api.client.delete(url, headers=tenant.auth)
    assert again.status_code == 200 and again.json()["version"] == body["version"]
    # A released binding cannot be changed.
    assert_error(await api.client.patch(url, json={"ttl_s": 5}, headers=tenant.auth), 409)


async def test_expiry_shows_as_expired(api: Api) -> None:
    tenant = await api.tenant()
    created = (
        await api.client.post("/v1/bindings", json=axb(ttl_s=10), headers=tenant.auth)
    ).json()
    api.clock.now += 11
    shown = await api.client.get(f"/v1/bindings/{created['id']}", headers=tenant.auth)
    assert shown.json()["state"] == "expired"
    listed = await api.client.get("/v1/bindings", params={"state": "expired"}, headers=tenant.auth)
    assert [b["id"] for b in listed.json()["items"]] == [created["id"]]


async def test_search_filters(api: Api) -> None:
    tenant = await api.tenant(pool=5)
    made = []
    for index, (a, order) in enumerate(((A, "o1"), (C, "o2"), (D, "o1"))):
        api.clock.now = START + index
        body = axb(a=a, order_id=order, x=tenant.numbers[index])
        made.append((await api.client.post("/v1/bindings", json=body, headers=tenant.auth)).json())
    await api.client.delete(f"/v1/bindings/{made[1]['id']}", headers=tenant.auth)

    async def ids(**params: Any) -> list[str]:
        response = await api.client.get("/v1/bindings", params=params, headers=tenant.auth)
        assert response.status_code == 200, response.text
        return [b["id"] for b in response.json()["items"]]

    assert await ids() == [made[2]["id"], made[1]["id"], made[0]["id"]]  # newest first
    assert await ids(x="+86" + tenant.numbers[0]) == [made[0]["id"]]
    assert await ids(number="+86" + C) == [made[1]["id"]]
    assert await ids(number=B) == [b["id"] for b in reversed(made)]
    assert await ids(order_id="o1") == [made[2]["id"], made[0]["id"]]
    assert await ids(state="released") == [made[1]["id"]]
    assert await ids(state="active", order_id="o1") == [made[2]["id"], made[0]["id"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"x": "123"}, "x"),
        ({"number": "700000000000001"}, "number"),
        ({"state": "dormant"}, "state"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "eDox"}, "cursor"),
        ({"cursor": "bzo5OTk5OTk5OTk5OTk5"}, "cursor"),
    ],
)
async def test_invalid_search(api: Api, params: dict[str, Any], field: str) -> None:
    tenant = await api.tenant()
    response = await api.client.get("/v1/bindings", params=params, headers=tenant.auth)
    assert_error(response, 422, field=field)


async def test_paging_with_cursor(api: Api) -> None:
    tenant = await api.tenant(pool=7)
    created = []
    for index in range(7):
        api.clock.now = START + index
        body = axb(a=f"1380013800{index}", x=tenant.numbers[index])
        created.append(
            (await api.client.post("/v1/bindings", json=body, headers=tenant.auth)).json()
        )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await api.client.get("/v1/bindings", params=params, headers=tenant.auth)).json()
        seen += [b["id"] for b in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [b["id"] for b in reversed(created)]


async def test_every_change_is_audited(api: Api) -> None:
    tenant = await api.tenant()
    created = (await api.client.post("/v1/bindings", json=axb(), headers=tenant.auth)).json()
    url = f"/v1/bindings/{created['id']}"
    await api.client.patch(url, json={"ttl_s": 60}, headers=tenant.auth)
    await api.client.delete(url, headers=OPERATOR)
    await api.client.patch(f"/v1/tenants/{tenant.id}", json={"suspended": True}, headers=OPERATOR)
    trail = await api.store.list_audit(tenant_id=tenant.id)
    assert [(e.action, e.actor, e.binding_id) for e in trail] == [
        ("tenant.create", "operator", None),
        ("numbers.import", "operator", None),
        ("binding.create", f"tenant:{tenant.id}", created["id"]),
        ("binding.update", f"tenant:{tenant.id}", created["id"]),
        ("binding.release", "operator", created["id"]),
        ("tenant.update", "operator", None),
    ]
    assert all(e.at == START for e in trail)
    assert all(e.tenant_id == tenant.id for e in trail)
