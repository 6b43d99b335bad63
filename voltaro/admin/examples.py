"""Example values made from JSON schemas, for the OpenAPI document and its docs page.

Every request body gets an example, the commands' OCPP payloads included, without anyone
writing (and keeping up to date) one per action: the example is built from the schema the
server validates against, so it is valid by construction (the tests check that it is, for
every body the API documents). It has every required property and the optional ones that are
plain values (not the nested objects an operator rarely sends, like a charging profile),
enum values and defaults as the schema gives them, and for text the usual value of an OCPP
field of that name where there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JsonObject = dict[str, Any]

DATE_TIME_EXAMPLE = "2027-01-01T00:00:00Z"
"""How a date-time looks, in examples and messages: RFC 3339 in UTC."""
DATE_RANGE_EXAMPLE = (DATE_TIME_EXAMPLE, "2027-02-01T00:00:00Z")
"""A list's ``from`` and ``to`` in the OpenAPI document: January 2027."""

# Text for a property of this name (OCPP's and the admin API's names).
TEXT_BY_NAME: Mapping[str, str] = {
    "idTag": "04A2B3C4",
    "parentIdTag": "FLEET-1",
    "key": "HeartbeatInterval",
    "value": "300",
    "vendorId": "com.example",
    "messageId": "Hello",
    "data": "hello",
    "password": "s3cret-passw0rd",
    "chargePointId": "CP-0001",
}
TEXT_BY_FORMAT: Mapping[str, str] = {
    "date-time": DATE_TIME_EXAMPLE,
    "uri": "ftp://files.example.com/voltaro/",
}

_DEPTH = 12  # deeper than any OCPP 1.6 schema; a guard against a schema that refers to itself


def example(schema: object, components: Mapping[str, Any], name: str = "") -> Any:
    """An example instance of ``schema`` (refs ``#/components/schemas/NAME`` resolved in
    ``components``); ``name`` is the property it is for, if any."""
    return _example(schema, components, name, 0)


def _example(schema: object, components: Mapping[str, Any], name: str, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > _DEPTH:
        return None
    schema = resolve(schema, components)
    for keyword in ("example", "default", "const"):
        if keyword in schema:
            return schema[keyword]
    if schema.get("enum"):
        return schema["enum"][0]
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            branches = [b for b in schema[keyword] if b != {"type": "null"}]
            return _example(branches[0] if branches else {}, components, name, depth + 1)
    if "allOf" in schema:
        merged: JsonObject = {}
        for part in schema["allOf"]:
            value = _example(part, components, name, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        return _object(schema, components, depth)
    if kind == "array":
        items = schema.get("items", {})
        return [
            _example(items, components, name, depth + 1)
            for _ in range(max(1, schema.get("minItems", 1)))
        ]
    if kind == "string":
        return _text(schema, name)
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    return None


def _object(schema: JsonObject, components: Mapping[str, Any], depth: int) -> JsonObject:
    required = set(schema.get("required", ()))
    out: JsonObject = {}
    for name, sub in schema.get("properties", {}).items():
        if name in required or _plain(sub, components):
            out[name] = _example(sub, components, name, depth + 1)
    return out


def _plain(schema: object, components: Mapping[str, Any]) -> bool:
    """A value rather than a structure: not an object, nor a list of objects."""
    if not isinstance(schema, dict):
        return False
    schema = resolve(schema, components)
    if schema.get("type") == "object" or "properties" in schema:
        return False
    if schema.get("type") == "array":
        return _plain(schema.get("items", {}), components)
    return True


def _text(schema: JsonObject, name: str) -> str:
    text = TEXT_BY_NAME.get(name) or TEXT_BY_FORMAT.get(str(schema.get("format")), "text")
    longest = schema.get("maxLength")
    if isinstance(longest, int):
        text = text[:longest]
    shortest = int(schema.get("minLength", 0))
    return text + "x" * max(0, shortest - len(text))


def _number(schema: JsonObject, *, integer: bool) -> int | float:
    value: float = 1
    if "minimum" in schema:
        value = max(value, schema["minimum"])
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        value = schema["exclusiveMinimum"] + 1
    if "maximum" in schema:
        value = min(value, schema["maximum"])
    return int(value) if integer else float(value)


def resolve(schema: JsonObject, components: Mapping[str, Any]) -> JsonObject:
    """``schema`` itself, or the component its ``$ref`` names (followed to the end)."""
    seen: set[str] = set()
    while isinstance(schema.get("$ref"), str) and schema["$ref"] not in seen:
        seen.add(schema["$ref"])
        target = components.get(schema["$ref"].rpartition("/")[2])
        if not isinstance(target, dict):
            break
        schema = target
    return schema
