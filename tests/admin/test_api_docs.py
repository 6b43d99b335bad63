"""The OpenAPI document's request bodies: each has an example, and the example is valid for
the schema the server checks (and the server takes it)."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs

from tests.admin.conftest import Live
from voltaro.admin.examples import resolve


def resolved(schema: Any, schemas: dict[str, Any]) -> Any:
    """``schema`` with every ``$ref`` replaced by what it names."""
    if isinstance(schema, dict):
        schema = resolve(schema, schemas)
        return {key: resolved(value, schemas) for key, value in schema.items()}
    if isinstance(schema, list):
        return [resolved(item, schemas) for item in schema]
    return schema


def bodies(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation["requestBody"]["content"]["application/json"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]


def test_every_request_body_has_a_valid_example(api: httpx.Client) -> None:
    document = api.get("/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]
    found = bodies(document)
    commands = [path for _, path, _ in found if "/commands/" in path]
    assert len(commands) >= 10 and len(found) > len(commands)  # commands and the PUT bodies
    for method, path, content in found:
        assert "example" in content, (method, path)
        schema = resolved(content["schema"], schemas)
        assert "$ref" not in repr(schema)
        validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
        assert validator.is_valid(content["example"]), (path, content["example"])
    by_path = {path: content["example"] for _, path, content in found}
    assert by_path["/api/v1/charge-points/{chargePointId}/commands/Reset"] == {"type": "Hard"}
    assert by_path["/api/v1/id-tags/{idTag}"] == {
        "status": "Accepted",
        "expiryDate": "2027-01-01T00:00:00Z",
        "parentIdTag": "FLEET-1",
    }


def test_the_server_takes_the_examples(live: Live, api: httpx.Client) -> None:
    """Sent as documented, each PUT example is accepted (not just schema-valid on paper)."""
    document = api.get("/api/v1/openapi.json").json()
    for method, path, content in bodies(document):
        if method != "PUT":
            continue
        url = path.replace("{chargePointId}", "CP-EXAMPLE").replace("{idTag}", "TAG-EXAMPLE")
        url = url.replace("{name}", "example-operator")
        answer = api.put(url, json=content["example"])
        assert answer.status_code in (200, 201), (url, answer.text)


def test_every_date_filter_has_an_example_the_server_takes(api: httpx.Client) -> None:
    """Each list's ``from``/``to`` (any date-time query parameter) shows how a date-time is
    written, and a GET with the examples is answered 200."""
    document = api.get("/api/v1/openapi.json").json()
    checked = []
    for path, item in document["paths"].items():
        get = item.get("get")
        if get is None or "{" in path:
            continue
        dates = {
            p["name"]: p
            for p in get["parameters"]
            if p["in"] == "query" and p["schema"].get("format") == "date-time"
        }
        if not dates:
            continue
        for name, parameter in dates.items():
            assert parameter["example"].endswith("Z"), (path, name)
        params = {name: p["example"] for name, p in dates.items()}
        assert params.get("from", "") < params.get("to", "~"), path  # a range, not empty
        answer = api.get(path, params=params)
        assert answer.status_code == 200, (path, answer.text)
        checked.append(path)
    for path in ("charge-points", "id-tags", "transactions", "messages", "audit"):
        assert f"/api/v1/{path}" in checked
