"""Schemathesis against the live admin API's own OpenAPI document: generated requests, valid
and invalid, to every operation; none may be answered with a 5xx (502/504 are the charger's
answers and need a connected charger, which nothing here connects)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.admin.conftest import Live

EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def document(live: Live) -> dict[str, Any]:
    with live.client() as api:
        response = api.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


def test_document_describes_every_route(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    for path in (
        "/api/v1/charge-points",
        "/api/v1/charge-points/{chargePointId}",
        "/api/v1/charge-points/{chargePointId}/status-history",
        "/api/v1/charge-points/{chargePointId}/messages",
        "/api/v1/id-tags",
        "/api/v1/id-tags/{idTag}",
        "/api/v1/transactions",
        "/api/v1/transactions.csv",
        "/api/v1/transactions/{transactionId}",
        "/api/v1/charge-points/{chargePointId}/commands/Reset",
        "/api/v1/charge-points/{chargePointId}/commands/TriggerMessage",
    ):
        assert path in paths, path
    reset = paths["/api/v1/charge-points/{chargePointId}/commands/Reset"]["post"]
    assert reset["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ResetRequest"
    }
    assert set(reset["responses"]) == {"200", "400", "401", "403", "404", "409", "502", "504"}
    schemas = document["components"]["schemas"]
    assert schemas["ResetRequest"]["properties"]["type"]["enum"] == ["Hard", "Soft"]
    assert "$schema" not in schemas["ResetRequest"]


def test_no_generated_request_gets_a_5xx(live: Live, document: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    headers = {"Authorization": f"Bearer {live.token}"}
    with live.client() as api:  # a charge point that exists, so more requests get past 404
        assert api.put("/api/v1/charge-points/FUZZ-CP", json={}).status_code in (200, 201)
    known = {"chargePointId": "FUZZ-CP"}
    strategy = st.one_of(
        [op.as_strategy() for op in operations]
        + [op.as_strategy(GenerationMode.NEGATIVE) for op in operations]
        + [
            op.as_strategy(path_parameters=known)
            for op in operations
            if "{chargePointId}" in op.path
        ]
    )
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES_PER_OPERATION * len(operations),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        response = case.call(base_url=live.base, headers=headers, timeout=10)
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path} {case.query}: "
                f"{response.status_code} {response.text}"
            )

    check()
    assert failures == []
