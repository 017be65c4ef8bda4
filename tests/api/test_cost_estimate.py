"""``POST /api/v1/costs/estimate``: a month of stated traffic priced by the cost model in force
(the free allowance, then the price per GB, in whole cents), for any role of the project; bad
input refused naming the field; nothing stored."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from conftest import Api
from edgeplane.costs.estimate import TrafficEstimate, estimate
from edgeplane.costs.model import DEFAULT_MODEL
from edgeplane.model.enums import Role
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import AuditRow

ESTIMATE = "/api/v1/costs/estimate"


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def refused(r: Any, field: str) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    doc: dict[str, Any] = r.json()
    assert doc["field"] == field, doc
    return doc


def audit_rows(api: Api) -> int:
    with api.db.read(LOCAL, "default") as tx:
        return len(list(tx.session.query(AuditRow)))


def test_default_prices(api: Api) -> None:
    """The specification's prices: 100 GB free, then $0.08 per GB; requests free."""
    doc = ok(api.post(ESTIMATE, json={"cdn_gb": 250, "requests": 12_000_000}))
    assert doc["currency"] == "USD"
    assert doc["monthly"] == 12.0  # 150 GB x 0.08
    assert (doc["free_gb"], doc["billable_gb"], doc["per_gb"]) == (100.0, 150.0, 0.08)
    assert doc["requests"] == 12_000_000
    lines = {line["item"]: line for line in doc["lines"]}
    assert lines["CDN traffic"]["amount"] == 12.0 and lines["CDN traffic"]["quantity"] == 150.0
    assert lines["requests"] == {
        "item": "requests", "quantity": 12_000_000.0, "unit": "request", "unit_price": 0.0,
        "amount": 0.0,
    }  # fmt: skip
    assert sum(line["amount"] for line in doc["lines"]) == doc["monthly"]
    # Within the allowance: nothing to pay.
    doc = ok(api.post(ESTIMATE, json={"cdn_gb": 99.5}))
    assert (doc["monthly"], doc["free_gb"], doc["billable_gb"], doc["requests"]) == (
        0.0, 99.5, 0.0, 0,
    )  # fmt: skip


def test_the_model_in_force_and_exact_cents(api: Api) -> None:
    model = {"cdn_free_gb_month": 10, "cdn_per_gb": 0.015, "currency": "EUR"}
    ok(api.call("PUT", "/api/v1/costs/model", json=model))
    # 10.1 GB beyond the allowance x 0.015 = 0.1515 -> 0.15; 10.3 x 0.015 = 0.1545 -> 0.15;
    # 10.5 x 0.015 = 0.1575 -> 0.16 (half up on the exact decimal, not the binary float).
    for gb, cents in ((20.1, 15), (20.3, 15), (20.5, 16), (10, 0), (0, 0)):
        doc = ok(api.post(ESTIMATE, json={"cdn_gb": gb}))
        assert doc["currency"] == "EUR"
        assert round(doc["monthly"] * 100) == cents, (gb, doc)
        exact = max(Fraction(repr(float(gb))) - 10, Fraction(0)) * Fraction(15, 1000)
        assert abs(Fraction(repr(doc["monthly"])) - exact) <= Fraction(1, 200)


def test_pure_function_matches_the_api(api: Api) -> None:
    local = estimate(DEFAULT_MODEL, TrafficEstimate(cdn_gb=1234.567, requests=5))
    remote = ok(api.post(ESTIMATE, json={"cdn_gb": 1234.567, "requests": 5}))
    assert local.model_dump(mode="json") == remote
    assert local.monthly == 90.77  # 1134.567 x 0.08 = 90.76536


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cdn_gb": -1}, "cdn_gb"),
        ({"cdn_gb": "lots"}, "cdn_gb"),
        ({"cdn_gb": True}, "cdn_gb"),
        ({"cdn_gb": 2e9}, "cdn_gb"),
        ({"cdn_gb": 1, "requests": -5}, "requests"),
        ({"cdn_gb": 1, "requests": 1.5}, "requests"),
        ({"requests": 10}, "cdn_gb"),
        ({"cdn_gb": 1, "region": "eu"}, "region"),
    ],
)
def test_bad_input_names_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    refused(api.post(ESTIMATE, json=body), field)


def test_every_role_may_ask_and_nothing_is_stored(api: Api) -> None:
    viewer = api.token(Role.VIEWER)
    before = audit_rows(api)
    doc = ok(api.call("POST", ESTIMATE, viewer, json={"cdn_gb": 300}))
    assert doc["monthly"] == 16.0
    assert audit_rows(api) == before
    # A project the token has no role in, and no token at all.
    ok(api.post("/api/v1/projects", json={"id": "other", "name": "other"}), 201)
    assert api.call("POST", ESTIMATE, viewer, json={"cdn_gb": 1}, params={"project": "other"}
                    ).status_code == 403  # fmt: skip
    assert api.client.post(ESTIMATE, json={"cdn_gb": 1}).status_code == 401
