"""Tests of voltaro.ocppj.validation: error codes, paths, lenient mode, and agreement with
the pure-Python ``jsonschema`` package used as an oracle on generated payloads."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.validators
import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

from voltaro.ocppj import validation
from voltaro.ocppj.actions import Direction
from voltaro.ocppj.dialect import OCPP16, Dialect
from voltaro.ocppj.errors import ErrorCode
from voltaro.ocppj.validation import CheckResult, Deviation, SchemaRegistry, Violation

REQ = Direction.REQUEST
RES = Direction.RESPONSE
TYPE = ErrorCode.TYPE_CONSTRAINT_VIOLATION
OCCURENCE = ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION
PROPERTY = ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
FORMATION = ErrorCode.FORMATION_VIOLATION

REGISTRY = SchemaRegistry.load()
NOW = "2026-03-01T12:00:00Z"


def boot(**fields: Any) -> dict[str, Any]:
    return {"chargePointVendor": "Acme", "chargePointModel": "Volt-1", **fields}


def meter_values(*sampled: dict[str, Any]) -> dict[str, Any]:
    values = list(sampled) or [{"value": "1200", "unit": "Wh"}]
    return {"connectorId": 1, "meterValue": [{"timestamp": NOW, "sampledValue": values}]}


def charging_profile(limit: float, min_rate: float | None = None) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 16},
            {"startPeriod": 60, "limit": limit},
        ],
    }
    if min_rate is not None:
        schedule["minChargingRate"] = min_rate
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": schedule,
    }
    return {"connectorId": 1, "csChargingProfiles": profile}


def assert_violation(violation: Violation | None, code: ErrorCode, path: str, *words: str) -> None:
    assert violation is not None, "expected a violation"
    assert (violation.code, violation.path) == (code, path), violation
    field = re.split(r"[.\[]", path)[-1].strip('"]') if path != "$" else "$"
    assert path in violation.message, violation.message
    assert field in violation.message, violation.message
    for word in words:
        assert word in violation.message, violation.message


# --- loading ---------------------------------------------------------------------------


def test_all_78_official_schema_files_compile() -> None:
    files = sorted(OCPP16.schema_dir().glob("*.json"))
    assert len(files) == 78
    for file in files:
        action = file.stem.removesuffix("Response")
        direction = RES if file.stem.endswith("Response") else REQ
        # Compiled and callable: {} is either valid or a Violation, never a KeyError.
        result = REGISTRY.validate(action, direction, {})
        assert result is None or isinstance(result, Violation)


def test_knows_every_action_and_no_other() -> None:
    assert len(OCPP16.actions) == 39
    for action in OCPP16.actions:
        assert REGISTRY.knows(action), action
    for made_up in ("MadeUpAction", "BootNotificationResponse", "", "bootnotification"):
        assert not REGISTRY.knows(made_up)


def test_unknown_action_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="MadeUpAction"):
        REGISTRY.validate("MadeUpAction", REQ, {})
    with pytest.raises(KeyError, match="MadeUpAction"):
        REGISTRY.check("MadeUpAction", RES, {}, lenient=True)


def test_default_folder_must_be_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for file in OCPP16.schema_dir().glob("*.json"):
        shutil.copy(file, tmp_path / file.name)
    (tmp_path / "ResetResponse.json").unlink()
    monkeypatch.setattr(Dialect, "schema_dir", lambda self: tmp_path)
    with pytest.raises(FileNotFoundError, match=r"ResetResponse\.json"):
        SchemaRegistry.load()
    # An explicit folder holds what it holds: Reset is simply not known.
    partial = SchemaRegistry.load(folder=tmp_path)
    assert not partial.knows("Reset")
    assert partial.knows("Heartbeat")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{not json", "cannot read"),
        ("[1, 2]", "a schema must be a JSON object"),
        ('{"type": 5}', "not a valid"),
    ],
)
def test_a_broken_schema_file_is_named(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "Broken.json").write_text(text)
    with pytest.raises(ValueError, match=rf"Broken\.json: {error}"):
        SchemaRegistry.load(folder=tmp_path)


def test_format_validation_is_on_for_both_drafts() -> None:
    # draft-04 (core) and draft-06 (security whitepaper) schemas both check date-time.
    bad = "yesterday"
    assert_violation(
        REGISTRY.validate("Heartbeat", RES, {"currentTime": bad}), PROPERTY, "$.currentTime"
    )
    event_ = {"type": "FirmwareUpdated", "timestamp": bad}
    assert_violation(
        REGISTRY.validate("SecurityEventNotification", REQ, event_), PROPERTY, "$.timestamp"
    )


# --- the error-code table ----------------------------------------------------------------


def test_valid_payloads_pass() -> None:
    assert (
        REGISTRY.validate("BootNotification", REQ, boot(chargePointSerialNumber="S" * 25)) is None
    )
    assert REGISTRY.validate("MeterValues", REQ, meter_values()) is None
    assert REGISTRY.validate("Heartbeat", REQ, {}) is None
    assert REGISTRY.validate("SetChargingProfile", REQ, charging_profile(16.1, 0.3)) is None
    # maxLength counts characters (code points), not bytes.
    assert REGISTRY.validate("BootNotification", REQ, boot(chargePointVendor="é" * 20)) is None


@pytest.mark.parametrize("value", [5, None, True, ["Acme"], {"name": "Acme"}])
def test_type(value: object) -> None:
    violation = REGISTRY.validate("BootNotification", REQ, boot(chargePointVendor=value))
    assert_violation(violation, TYPE, "$.chargePointVendor", "expected string")


def test_type_nested_and_integer_is_not_number() -> None:
    payload = meter_values({"value": "1"}, {"value": 2})
    assert_violation(
        REGISTRY.validate("MeterValues", REQ, payload),
        TYPE,
        "$.meterValue[0].sampledValue[1].value",
        "expected string, got integer 2",
    )
    assert_violation(
        REGISTRY.validate("MeterValues", REQ, {**meter_values(), "connectorId": 1.5}),
        TYPE,
        "$.connectorId",
        "expected integer",
    )
    # Draft-04: 1.0 is a number, not an integer (draft-06 would accept it).
    assert_violation(
        REGISTRY.validate("MeterValues", REQ, {**meter_values(), "connectorId": 1.0}),
        TYPE,
        "$.connectorId",
    )


@pytest.mark.parametrize("payload", [[], [1, 2], "text", 7, None, True])
def test_a_payload_that_is_not_an_object(payload: object) -> None:
    violation = REGISTRY.validate("Heartbeat", REQ, payload)
    assert_violation(violation, TYPE, "$", "must be a JSON object")
    result = REGISTRY.check("Heartbeat", REQ, payload, lenient=True)
    assert result.violation == violation


def test_required() -> None:
    payload = {"chargePointVendor": "Acme"}
    assert_violation(
        REGISTRY.validate("BootNotification", REQ, payload),
        OCCURENCE,
        "$.chargePointModel",
        "required",
    )
    mv = meter_values()
    del mv["meterValue"][0]["timestamp"]
    assert_violation(
        REGISTRY.validate("MeterValues", REQ, mv), OCCURENCE, "$.meterValue[0].timestamp"
    )


def test_min_items() -> None:
    assert_violation(
        REGISTRY.validate("MeterValues", REQ, {"connectorId": 1, "meterValue": []}),
        OCCURENCE,
        "$.meterValue",
        "at least 1",
    )
    empty = {"connectorId": 1, "meterValue": [{"timestamp": NOW, "sampledValue": []}]}
    assert_violation(
        REGISTRY.validate("MeterValues", REQ, empty), OCCURENCE, "$.meterValue[0].sampledValue"
    )


def test_max_length() -> None:
    violation = REGISTRY.validate("BootNotification", REQ, boot(chargePointVendor="x" * 21))
    assert_violation(violation, PROPERTY, "$.chargePointVendor", "21 characters", "20")
    # A very long value is cut in the message.
    violation = REGISTRY.validate("BootNotification", REQ, boot(chargePointVendor="x" * 5000))
    assert violation is not None and len(violation.message) < 200


@pytest.mark.parametrize(
    ("action", "payload", "path"),
    [
        (
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Broken"},
            "$.status",
        ),
        (
            "StatusNotification",
            {"connectorId": 1, "errorCode": "Oops", "status": "Available"},
            "$.errorCode",
        ),
        # additionalProperties:false on a *string* enum is a no-op: still a bad enum value.
        (
            "MeterValues",
            meter_values({"value": "1", "unit": "Kelvin"}),
            "$.meterValue[0].sampledValue[0].unit",
        ),
        (
            "MeterValues",
            meter_values({"value": "1", "unit": "Hz"}),
            "$.meterValue[0].sampledValue[0].unit",
        ),
        (
            "MeterValues",
            meter_values({"value": "1", "unit": "wh"}),
            "$.meterValue[0].sampledValue[0].unit",
        ),
    ],
)
def test_enum(action: str, payload: dict[str, Any], path: str) -> None:
    assert_violation(REGISTRY.validate(action, REQ, payload), PROPERTY, path, "is not one of")


def test_enum_behind_a_ref_in_a_draft_06_schema() -> None:
    payload = {"status": "Maybe"}
    assert_violation(
        REGISTRY.validate("GetInstalledCertificateIds", RES, payload), PROPERTY, "$.status"
    )
    cert = {
        "hashAlgorithm": "MD5",
        "issuerNameHash": "a",
        "issuerKeyHash": "b",
        "serialNumber": "c",
    }
    listing = {"status": "Accepted", "certificateHashData": [cert]}
    assert_violation(
        REGISTRY.validate("GetInstalledCertificateIds", RES, listing),
        PROPERTY,
        "$.certificateHashData[0].hashAlgorithm",
        '"MD5"',
        '"SHA256"',
    )


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-13-40T00:00:00Z",
        "yesterday",
        "2026-02-30T10:00:00Z",
        "2025-02-29T10:00:00Z",
        "2026-01-01 10:00:00Z",
        "2026-01-01T10:00:00",
        "2026-01-01T24:00:00Z",
        "2026-01-01T10:00Z",
        "2026-01-01",
        "",
    ],
)
def test_date_time_format(stamp: str) -> None:
    payload = {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": stamp}
    assert_violation(
        REGISTRY.validate("StartTransaction", REQ, payload), PROPERTY, "$.timestamp", "date-time"
    )


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-01-01T10:00:00Z",
        "2024-02-29T10:00:00Z",
        "2026-01-01T10:00:00.123+05:30",
        "2026-01-01t10:00:00z",
        # RFC 3339 allows a leap second, at 23:59:60 UTC only; jsonschema-rs checks that.
        "2016-12-31T23:59:60Z",
    ],
)
def test_date_time_format_accepts_rfc_3339(stamp: str) -> None:
    payload = {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": stamp}
    assert REGISTRY.validate("StartTransaction", REQ, payload) is None


def test_multiple_of() -> None:
    assert_violation(
        REGISTRY.validate("SetChargingProfile", REQ, charging_profile(16.15)),
        PROPERTY,
        "$.csChargingProfiles.chargingSchedule.chargingSchedulePeriod[1].limit",
        "multiple of 0.1",
    )
    assert_violation(
        REGISTRY.validate("SetChargingProfile", REQ, charging_profile(16, 0.1 + 0.2)),
        PROPERTY,
        "$.csChargingProfiles.chargingSchedule.minChargingRate",
        "0.30000000000000004",
    )


def test_additional_properties() -> None:
    assert_violation(
        REGISTRY.validate("BootNotification", REQ, boot(vendorExtra="1")),
        FORMATION,
        "$.vendorExtra",
        "not allowed",
    )
    assert_violation(
        REGISTRY.validate("MeterValues", REQ, meter_values({"value": "1", "signed": "x"})),
        FORMATION,
        "$.meterValue[0].sampledValue[0].signed",
    )
    # An object schema with `additionalProperties: false` and no `properties` (draft-06
    # security responses): jsonschema-rs reports a false schema at the object; the
    # property is still named.
    assert_violation(
        REGISTRY.validate("SecurityEventNotification", RES, {"ok": True}),
        FORMATION,
        "$.ok",
        "unknown property",
    )
    # A name that is not an identifier is bracketed; the others are listed too.
    violation = REGISTRY.validate("Heartbeat", REQ, {"odd name": 1, "more": 2})
    assert violation is not None
    assert violation.code is FORMATION
    assert violation.path in ('$["odd name"]', "$.more")
    assert '"odd name"' in violation.message and "more" in violation.message


def bounds_registry(folder: Path) -> SchemaRegistry:
    """OCPP 1.6 has no minimum/maximum/minLength/maxItems: test them on a schema of ours."""
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {
            "percent": {"type": "integer", "minimum": 0, "maximum": 100},
            "above": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "code": {"type": "string", "minLength": 3, "pattern": "^[A-Z]+$"},
            "pair": {"type": "array", "maxItems": 2},
        },
        "additionalProperties": False,
    }
    (folder / "Probe.json").write_text(json.dumps(schema))
    (folder / "ProbeResponse.json").write_text(json.dumps({"type": "object"}))
    return SchemaRegistry.load(folder=folder)


@pytest.mark.parametrize(
    ("payload", "code", "path", "words"),
    [
        ({"percent": -1}, PROPERTY, "$.percent", ("minimum of 0",)),
        ({"percent": 101}, PROPERTY, "$.percent", ("maximum of 100",)),
        ({"above": 0}, PROPERTY, "$.above", ("minimum of 0",)),
        ({"code": "AB"}, PROPERTY, "$.code", ("minimum is 3",)),
        ({"code": "abc"}, PROPERTY, "$.code", ()),
        ({"pair": [1, 2, 3]}, OCCURENCE, "$.pair", ("at most 2",)),
    ],
)
def test_bounds(
    tmp_path: Path, payload: dict[str, Any], code: ErrorCode, path: str, words: tuple[str, ...]
) -> None:
    registry = bounds_registry(tmp_path)
    assert registry.knows("Probe")
    assert_violation(registry.validate("Probe", REQ, payload), code, path, *words)


def test_a_value_with_no_json_form_is_a_type_violation() -> None:
    payload = {"currentTime": datetime(2026, 1, 1, tzinfo=UTC)}
    assert_violation(
        REGISTRY.validate("Heartbeat", RES, payload), TYPE, "$.currentTime", "datetime"
    )
    assert_violation(REGISTRY.validate("Heartbeat", RES, {1: "x"}), TYPE, "$", "key 1")


# --- several errors: a fixed priority -----------------------------------------------------


def test_priority_type_first_then_occurence_then_formation_then_property() -> None:
    broken: dict[str, Any] = {
        "chargePointVendor": "x" * 30,  # PropertyConstraint
        "vendorExtra": 1,  # Formation
        "chargePointModel": 5,  # TypeConstraint
    }
    assert_violation(REGISTRY.validate("BootNotification", REQ, broken), TYPE, "$.chargePointModel")
    del broken["chargePointModel"]  # now missing: OccurenceConstraint
    assert_violation(
        REGISTRY.validate("BootNotification", REQ, broken), OCCURENCE, "$.chargePointModel"
    )
    broken["chargePointModel"] = "M"
    assert_violation(REGISTRY.validate("BootNotification", REQ, broken), FORMATION, "$.vendorExtra")
    del broken["vendorExtra"]
    assert_violation(
        REGISTRY.validate("BootNotification", REQ, broken), PROPERTY, "$.chargePointVendor"
    )


def test_priority_within_a_code_the_shallowest_then_the_first_reported() -> None:
    mv = meter_values({"value": 1})  # deep type error
    mv["connectorId"] = "1"  # shallow type error
    assert_violation(REGISTRY.validate("MeterValues", REQ, mv), TYPE, "$.connectorId")
    both_missing: dict[str, Any] = {}
    first = REGISTRY.validate("BootNotification", REQ, both_missing)
    # Same code, same depth: the first jsonschema-rs reports (schema's `required` order).
    assert_violation(first, OCCURENCE, "$.chargePointVendor")
    assert all(REGISTRY.validate("BootNotification", REQ, {}) == first for _ in range(20))


# --- lenient mode -------------------------------------------------------------------------


def test_strict_check_changes_nothing() -> None:
    payload = boot(chargePointSerialNumber="S" * 30)
    result = REGISTRY.check("BootNotification", REQ, payload)
    assert result.payload is payload
    assert result.deviations == ()
    assert result.violation == REGISTRY.validate("BootNotification", REQ, payload)
    valid = boot()
    assert REGISTRY.check("BootNotification", REQ, valid) == CheckResult(None, valid, ())
    assert REGISTRY.check("BootNotification", REQ, valid, lenient=True).payload is valid


def test_lenient_truncates_long_strings() -> None:
    payload = boot(chargePointSerialNumber="S" * 30, chargeBoxSerialNumber="B" * 26)
    original = copy.deepcopy(payload)
    strict = REGISTRY.check("BootNotification", REQ, payload)
    assert_violation(strict.violation, PROPERTY, "$.chargePointSerialNumber")

    result = REGISTRY.check("BootNotification", REQ, payload, lenient=True)
    assert result.violation is None
    assert result.payload == boot(chargePointSerialNumber="S" * 25, chargeBoxSerialNumber="B" * 25)
    assert [(d.kind, d.path) for d in result.deviations] == [
        ("truncated-string", "$.chargePointSerialNumber"),
        ("truncated-string", "$.chargeBoxSerialNumber"),
    ]
    assert "30 characters" in result.deviations[0].message
    assert "$.chargePointSerialNumber" in result.deviations[0].message
    assert payload == original, "the caller's payload is never modified"


@pytest.mark.parametrize(
    ("action", "unit", "path"),
    [
        ("MeterValues", "Hz", "$.meterValue[0].sampledValue[1].unit"),
        ("StopTransaction", "Hz", "$.transactionData[0].sampledValue[1].unit"),
        ("StopTransaction", "Hertz", "$.transactionData[0].sampledValue[1].unit"),
    ],
)
def test_lenient_accepts_unit_spellings_as_sent(action: str, unit: str, path: str) -> None:
    sampled = [{"value": "20", "unit": "Celcius"}, {"value": "50", "unit": unit}]
    if action == "MeterValues":
        payload: dict[str, Any] = {
            "connectorId": 1,
            "meterValue": [{"timestamp": NOW, "sampledValue": sampled}],
        }
    else:
        payload = {
            "transactionId": 7,
            "meterStop": 100,
            "timestamp": NOW,
            "transactionData": [{"timestamp": NOW, "sampledValue": sampled}],
        }
    assert_violation(REGISTRY.validate(action, REQ, payload), PROPERTY, path)
    result = REGISTRY.check(action, REQ, payload, lenient=True)
    assert result.violation is None
    assert result.payload == payload
    assert result.deviations == (Deviation("unit-spelling", path, result.deviations[0].message),)
    assert f'"{unit}"' in result.deviations[0].message


def test_units_the_schema_allows_are_no_deviation() -> None:
    # Both Celcius and Celsius are in the (errata-fixed) schemas; Hertz is in MeterValues.
    for unit in ("Celcius", "Celsius", "Hertz"):
        payload = meter_values({"value": "1", "unit": unit})
        assert REGISTRY.validate("MeterValues", REQ, payload) is None
        assert REGISTRY.check("MeterValues", REQ, payload, lenient=True).deviations == ()


@pytest.mark.parametrize("noisy", [0.1 + 0.2, 16.100000381469727, 3 * 16.1, 0.7 + 0.1])
def test_lenient_accepts_multiple_of_float_noise(noisy: float) -> None:
    payload = charging_profile(noisy)
    path = "$.csChargingProfiles.chargingSchedule.chargingSchedulePeriod[1].limit"
    assert_violation(REGISTRY.validate("SetChargingProfile", REQ, payload), PROPERTY, path)
    result = REGISTRY.check("SetChargingProfile", REQ, payload, lenient=True)
    assert result.violation is None
    assert result.payload == payload
    assert [(d.kind, d.path) for d in result.deviations] == [("multiple-of-noise", path)]


def test_lenient_rejects_a_real_multiple_of_miss() -> None:
    path = "$.csChargingProfiles.chargingSchedule.chargingSchedulePeriod[1].limit"
    for value in (16.15, 16.11, 16.0001):
        result = REGISTRY.check("SetChargingProfile", REQ, charging_profile(value), lenient=True)
        assert_violation(result.violation, PROPERTY, path)
        assert result.deviations == ()


def test_lenient_stringifies_config_values() -> None:
    keys = [
        {"key": "HeartbeatInterval", "readonly": False, "value": 300},
        {"key": "AuthorizeRemoteTxRequests", "readonly": True, "value": True},
        {"key": "MeterValueSampleIntervalRatio", "readonly": False, "value": 1.5},
        {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core"},
        {"key": "NoValue", "readonly": True},
    ]
    payload: dict[str, Any] = {"configurationKey": keys, "unknownKey": ["Foo"]}
    assert_violation(
        REGISTRY.validate("GetConfiguration", RES, payload),
        TYPE,
        "$.configurationKey[0].value",
        "expected string, got integer 300",
    )
    result = REGISTRY.check("GetConfiguration", RES, payload, lenient=True)
    assert result.violation is None
    assert [k.get("value") for k in result.payload["configurationKey"]] == [
        "300",
        "true",
        "1.5",
        "Core",
        None,
    ]
    assert [(d.kind, d.path) for d in result.deviations] == [
        ("non-string-config-value", f"$.configurationKey[{i}].value") for i in range(3)
    ]
    assert payload["configurationKey"][0]["value"] == 300, "input untouched"
    change = REGISTRY.check("ChangeConfiguration", REQ, {"key": "K", "value": 60}, lenient=True)
    assert change.violation is None and change.payload == {"key": "K", "value": "60"}


def test_lenient_repairs_compose() -> None:
    # A stringified number that is then too long is also truncated: two deviations.
    payload = {"configurationKey": [{"key": "Big", "readonly": True, "value": 10**600}]}
    result = REGISTRY.check("GetConfiguration", RES, payload, lenient=True)
    assert result.violation is None
    assert result.payload["configurationKey"][0]["value"] == "1" + "0" * 499
    assert [d.kind for d in result.deviations] == ["non-string-config-value", "truncated-string"]


@pytest.mark.parametrize(
    ("action", "direction", "payload", "code", "path"),
    [
        # a long serial number next to a missing required field
        (
            "BootNotification",
            REQ,
            {"chargePointVendor": "A", "chargePointSerialNumber": "S" * 30},
            OCCURENCE,
            "$.chargePointModel",
        ),
        # an unknown unit, not one of the known misspellings
        (
            "MeterValues",
            REQ,
            meter_values({"value": "1", "unit": "Kelvin"}),
            PROPERTY,
            "$.meterValue[0].sampledValue[0].unit",
        ),
        # a number where a string is expected, but not a configuration value
        (
            "MeterValues",
            REQ,
            meter_values({"value": 12}),
            TYPE,
            "$.meterValue[0].sampledValue[0].value",
        ),
        # a configuration value that is null or an object
        (
            "GetConfiguration",
            RES,
            {"configurationKey": [{"key": "K", "readonly": True, "value": None}]},
            TYPE,
            "$.configurationKey[0].value",
        ),
        ("ChangeConfiguration", REQ, {"key": "K", "value": {"a": 1}}, TYPE, "$.value"),
        # a bad date, an unknown property
        (
            "StatusNotification",
            REQ,
            {
                "connectorId": 1,
                "errorCode": "NoError",
                "status": "Available",
                "timestamp": "2026-02-30T00:00:00Z",
            },
            PROPERTY,
            "$.timestamp",
        ),
        ("Heartbeat", REQ, {"extra": "x" * 99}, FORMATION, "$.extra"),
    ],
)
def test_lenient_still_rejects_everything_else(
    action: str, direction: Direction, payload: dict[str, Any], code: ErrorCode, path: str
) -> None:
    result = REGISTRY.check(action, direction, payload, lenient=True)
    assert_violation(result.violation, code, path)
    assert result.payload is payload
    assert result.deviations == ()


# --- agreement with the jsonschema package (the oracle) ----------------------------------


def load_schema(action: str, direction: Direction) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(OCPP16.schema_file(action, direction).read_text())
    return schema


def _exact(number: int | float) -> Fraction:
    return Fraction(number) if isinstance(number, int) else Fraction(repr(number))


def _decimal_multiple_of(
    validator: Any, step: Any, instance: Any, schema: Any
) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "number") and _exact(instance) % _exact(step) != 0:
        yield jsonschema.ValidationError(f"{instance!r} is not a multiple of {step}")


def oracle_for(schema: dict[str, Any], *, stock: bool = False) -> Any:
    """jsonschema's own validator for the schema's draft, with format checking on.

    Stock jsonschema tests ``multipleOf`` on floats by binary division and so rejects
    0.3 as a multiple of 0.1 (0.3 / 0.1 == 2.9999999999999996) while accepting noise such
    as 2.3000000000000003. JSON numbers are decimals, and jsonschema-rs treats them so:
    the oracle gets an exact decimal ``multipleOf`` (see test_stock_oracle_multiple_of).
    """
    base = jsonschema.validators.validator_for(schema)
    cls = (
        base if stock else jsonschema.validators.extend(base, {"multipleOf": _decimal_multiple_of})
    )
    return cls(schema, format_checker=base.FORMAT_CHECKER)


def test_the_oracle_checks_date_time() -> None:
    for action, direction in (("StartTransaction", REQ), ("SignedUpdateFirmware", REQ)):
        oracle = oracle_for(load_schema(action, direction))
        assert oracle.FORMAT_CHECKER.conforms("2026-01-01T00:00:00Z", "date-time")
        for bad in ("2026-13-40T00:00:00Z", "yesterday", "2026-02-30T00:00:00Z"):
            assert not oracle.FORMAT_CHECKER.conforms(bad, "date-time")
    oracle = oracle_for(load_schema("StartTransaction", REQ))
    payload = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-13-40T00:00:00Z"}
    assert not oracle.is_valid(payload)
    assert oracle.is_valid({**payload, "timestamp": NOW})


def test_stock_oracle_multiple_of() -> None:
    schema = load_schema("SetChargingProfile", REQ)
    stock, exact = oracle_for(schema, stock=True), oracle_for(schema)
    assert not stock.is_valid(charging_profile(0.3))  # stock jsonschema's float bug
    assert stock.is_valid(charging_profile(2.3000000000000003))
    assert exact.is_valid(charging_profile(0.3))
    assert not exact.is_valid(charging_profile(2.3000000000000003))
    assert REGISTRY.validate("SetChargingProfile", REQ, charging_profile(0.3)) is None
    assert REGISTRY.validate("SetChargingProfile", REQ, charging_profile(2.3000000000000003))


def test_known_date_time_divergences_from_the_oracle() -> None:
    """RFC 3339 allows a leap second and year 0000; jsonschema's checker (via
    rfc3339-validator) rejects both. Voltaro follows jsonschema-rs, i.e. RFC 3339, and the
    generators below avoid these strings."""
    oracle = oracle_for(load_schema("Heartbeat", RES))
    for stamp in ("2016-12-31T23:59:60Z", "0000-01-01T00:00:00Z"):
        assert not oracle.is_valid({"currentTime": stamp})
        assert REGISTRY.validate("Heartbeat", RES, {"currentTime": stamp}) is None


# Strings on which the oracle is known to differ from RFC 3339 (see the test above).
ORACLE_DIVERGES = re.compile(r"^0000|\d\d:\d\d:60")
ZONES = [
    UTC,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=-8)),
    timezone(timedelta(hours=14)),
]


@st.composite
def valid_date_times(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(timezones=st.sampled_from(ZONES)))
    text = moment.isoformat(
        timespec=draw(st.sampled_from(["seconds", "milliseconds", "microseconds"]))
    )
    if text.endswith("+00:00") and draw(st.booleans()):
        text = text[:-6] + draw(st.sampled_from(["Z", "z"]))
    return text


@st.composite
def near_miss_date_times(draw: st.DrawFn) -> str:
    text = draw(valid_date_times())
    edit = draw(st.sampled_from(["digit", "delete", "insert", "separator", "zone", "words"]))
    if edit == "digit":  # e.g. month 13, day 30 in February, hour 24, minute 61
        spots = [i for i, c in enumerate(text) if c.isdigit()]
        i = draw(st.sampled_from(spots))
        text = text[:i] + draw(st.sampled_from("0123456789")) + text[i + 1 :]
    elif edit == "delete":
        i = draw(st.integers(0, len(text) - 1))
        text = text[:i] + text[i + 1 :]
    elif edit == "insert":
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.sampled_from(["0", "9", ":", "-", "T", " ", "."])) + text[i:]
    elif edit == "separator":
        text = text.replace("T", draw(st.sampled_from([" ", "_", "", "TT"])), 1)
    elif edit == "zone":
        stem = re.sub(r"(Z|z|[+-]\d\d:\d\d)$", "", text)
        text = stem + draw(
            st.sampled_from(["", "+24:00", "+0100", "+01", "UTC", "+01:60", "-00:00"])
        )
    else:
        text = draw(st.sampled_from(["yesterday", "now", "", "2026-13-40T00:00:00Z", "1700000000"]))
    return text


def date_times(*, near_miss: bool) -> st.SearchStrategy[str]:
    made = near_miss_date_times() if near_miss else valid_date_times()
    return made.filter(lambda text: not ORACLE_DIVERGES.search(text))


URIS = ["ftp://user:pw@files.example.com/diag/", "https://example.com/fw.bin", "urn:x:y", "a:b"]
NOT_URIS = ["files/diag", "", "http://x y", "ftp//example.com", "https://host/%zz"]


def resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def valid_values(root: dict[str, Any], node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for instances valid under ``node`` (the constructs OCPP 1.6 uses)."""
    node = resolve(root, node)
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", ()))
        return st.fixed_dictionaries(
            {name: valid_values(root, properties[name]) for name in properties if name in required},
            optional={
                name: valid_values(root, sub)
                for name, sub in properties.items()
                if name not in required
            },
        )
    if kind == "array":
        return st.lists(
            valid_values(root, node.get("items", {})), min_size=node.get("minItems", 0), max_size=3
        )
    if kind == "string":
        if node.get("format") == "date-time":
            return date_times(near_miss=False)
        if node.get("format") == "uri":
            return st.sampled_from(URIS)
        return st.text(max_size=min(node.get("maxLength", 30), 30))
    if kind == "integer":
        return st.integers(-(2**40), 2**40)
    if kind == "number":
        if "multipleOf" in node:
            step = _exact(node["multipleOf"])
            return st.integers(-(10**6), 10**6).map(lambda k: float(k * step))
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers()
    if kind == "boolean":
        return st.booleans()
    raise AssertionError(f"schema construct not generated: {node}")


JSON_SAMPLES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "integer": 7,
    "number": 2.5,
    "string": "7",
    "array": [],
    "object": {},
}


def sites(
    root: dict[str, Any], node: dict[str, Any], value: Any, where: tuple[Any, ...] = ()
) -> Iterator[tuple[tuple[Any, ...], dict[str, Any], Any]]:
    """Every (path, schema, value) in a valid instance."""
    node = resolve(root, node)
    yield where, node, value
    if isinstance(value, dict):
        for name, item in value.items():
            yield from sites(root, node["properties"][name], item, (*where, name))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from sites(root, node["items"], item, (*where, index))


def mutations(node: dict[str, Any], value: Any) -> list[str]:
    kind = node.get("type")
    found = ["wrong-type"]
    if kind == "object":
        if set(node.get("required", ())) & set(value):
            found.append("drop-required")
        if node.get("additionalProperties") is False:
            found.append("extra-property")
    if kind == "array" and node.get("minItems", 0) > 0:
        found.append("empty-array")
    if "enum" in node:
        found.append("bad-enum")
    if "maxLength" in node:
        found += ["too-long", "at-limit"]
    if node.get("format") == "date-time":
        found += ["bad-date-time"] * 3  # weighted: the richest source of near misses
    if node.get("format") == "uri":
        found.append("bad-uri")
    if "multipleOf" in node:
        found += ["float-noise", "off-step"]
    return found


@st.composite
def mutated(draw: st.DrawFn, root: dict[str, Any], payload: Any) -> Any:
    """``payload`` with one random mutation applied (it may or may not stay valid)."""
    choices = [
        (where, node, value, mutation)
        for where, node, value in sites(root, root, payload)
        for mutation in mutations(node, value)
    ]
    where, node, value, mutation = draw(st.sampled_from(choices))
    event(f"mutation: {mutation}")
    note(f"mutation {mutation} at {list(where)}")
    if mutation == "wrong-type":
        allowed = node.get("type")
        wrong = [
            t for t in JSON_SAMPLES if t != allowed and not (allowed == "number" and t == "integer")
        ]
        new: Any = JSON_SAMPLES[draw(st.sampled_from(wrong))]
    elif mutation == "drop-required":
        new = dict(value)
        del new[draw(st.sampled_from(sorted(set(node["required"]) & set(value))))]
    elif mutation == "extra-property":
        known = node.get("properties", {})
        name = draw(st.sampled_from(["extra", "vendorId2", "odd name", ""]) | st.text(max_size=8))
        assume(name not in known)  # else it is not an extra property
        new = dict(value)
        new[name] = draw(st.sampled_from(list(JSON_SAMPLES.values())))
    elif mutation == "empty-array":
        new = []
    elif mutation == "bad-enum":
        option = draw(st.sampled_from(node["enum"]))
        new = draw(
            st.sampled_from(
                [option.lower(), option.upper(), option + " ", option[:-1], "Hz", "Celcius"]
            )
            | st.text(max_size=12)
        )
    elif mutation in ("too-long", "at-limit"):
        limit = node["maxLength"]
        size = limit if mutation == "at-limit" else limit + draw(st.integers(1, 5))
        chunk = draw(st.text(min_size=1, max_size=8, alphabet=st.characters(codec="utf-8")))
        new = (chunk * (size // len(chunk) + 1))[:size]
    elif mutation == "bad-date-time":
        new = draw(date_times(near_miss=True))
    elif mutation == "bad-uri":
        new = draw(st.sampled_from(NOT_URIS))
    elif mutation == "float-noise":  # the step's multiple, computed in binary floating point
        new = draw(st.integers(-1000, 1000)) * node["multipleOf"]
    else:  # off-step
        new = value + draw(st.sampled_from([0.05, 0.01, 1e-9, 0.5 * node["multipleOf"]]))
    if not where:
        return new
    result = copy.deepcopy(payload)
    parent = result
    for part in where[:-1]:
        parent = parent[part]
    parent[where[-1]] = new
    return result


@st.composite
def payloads(draw: st.DrawFn, root: dict[str, Any]) -> Any:
    """Valid payloads and mutated ones, roughly half and half.

    (Hypothesis favours the first choice of a draw: st.booleans() gives ~70% False.)
    """
    payload = draw(valid_values(root, root))
    if draw(st.integers(0, 3)) > 0:
        payload = draw(mutated(root, payload))
    return payload


def oracle_outcomes(oracle: Any, payload: Any) -> set[tuple[ErrorCode, str]]:
    """The (code, path) pairs that the oracle's errors justify."""
    outcomes: set[tuple[ErrorCode, str]] = set()
    for error in oracle.iter_errors(payload):
        where = list(error.absolute_path)
        if error.validator == "required":
            missing = [p for p in error.validator_value if p not in error.instance]
            outcomes |= {(OCCURENCE, validation.json_path([*where, name])) for name in missing}
        elif error.validator == "additionalProperties":
            known = error.schema.get("properties", {})
            extra = [name for name in error.instance if name not in known]
            outcomes |= {(FORMATION, validation.json_path([*where, name])) for name in extra}
        else:
            code = {"type": TYPE, "minItems": OCCURENCE, "maxItems": OCCURENCE}.get(
                str(error.validator), PROPERTY
            )
            outcomes.add((code, validation.json_path(where)))
    return outcomes


RANK = {TYPE: 0, OCCURENCE: 1, FORMATION: 2, PROPERTY: 3}


def run_agreement(action: str, direction: Direction, max_examples: int) -> Counter[str]:
    root = load_schema(action, direction)
    oracle = oracle_for(root)
    verdicts: Counter[str] = Counter()

    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(payload=payloads(root))
    def agree(payload: Any) -> None:
        note(f"{action} {direction}: {json.dumps(payload, ensure_ascii=False)[:2000]}")
        expected = oracle.is_valid(payload)
        violation = REGISTRY.validate(action, direction, payload)
        note(f"oracle valid={expected}; voltaro: {violation}")
        assert (violation is None) == expected
        verdicts["valid" if expected else "invalid"] += 1
        event("valid" if expected else "invalid")
        if violation is not None:
            justified = oracle_outcomes(oracle, payload)
            note(f"oracle outcomes: {sorted(justified)}")
            assert (violation.code, violation.path) in justified
            # The fixed priority: no error the oracle sees has a more fundamental code.
            assert RANK[violation.code] == min(RANK[code] for code, _ in justified)
        # Lenient mode accepts at least what strict mode accepts, unchanged.
        lenient = REGISTRY.check(action, direction, payload, lenient=True)
        if violation is None:
            assert lenient == CheckResult(None, payload, ())
        elif lenient.violation is None:
            leftover = REGISTRY.validate(action, direction, lenient.payload)
            as_sent = {
                d.path
                for d in lenient.deviations
                if d.kind in ("unit-spelling", "multiple-of-noise")
            }
            assert lenient.deviations
            assert leftover is None or leftover.path in as_sent

    agree()
    return verdicts


CORE_CASES = [
    ("BootNotification", REQ),
    ("MeterValues", REQ),
    ("StartTransaction", REQ),
    ("StopTransaction", REQ),
    ("StatusNotification", REQ),
    ("GetConfiguration", RES),
    ("SetChargingProfile", REQ),
    ("GetCompositeSchedule", RES),
    ("SignedUpdateFirmware", REQ),  # draft-06, $ref, date-time
    ("GetInstalledCertificateIds", RES),  # draft-06, $ref'd enums, minItems
    ("GetLog", REQ),  # draft-06, date-time behind $ref
]


@pytest.mark.parametrize(("action", "direction"), CORE_CASES)
def test_agrees_with_the_oracle(action: str, direction: Direction) -> None:
    verdicts = run_agreement(action, direction, max_examples=120)
    # The generator must exercise both sides, or agreement proves nothing.
    assert verdicts["valid"] >= 10, verdicts
    assert verdicts["invalid"] >= 10, verdicts


def all_schemas() -> list[tuple[str, Direction]]:
    return [
        (file.stem.removesuffix("Response"), RES if file.stem.endswith("Response") else REQ)
        for file in sorted(OCPP16.schema_dir().glob("*.json"))
    ]


@pytest.mark.parametrize(("action", "direction"), all_schemas())
def test_agrees_with_the_oracle_on_every_schema(action: str, direction: Direction) -> None:
    verdicts = run_agreement(action, direction, max_examples=12)
    assert verdicts["invalid"] > 0, verdicts


def test_generated_date_times_are_what_they_claim() -> None:
    seen: Counter[str] = Counter()
    checker: Callable[[Any, str], bool] = jsonschema.Draft4Validator.FORMAT_CHECKER.conforms

    @settings(max_examples=300, deadline=None)
    @given(st.booleans().flatmap(lambda near: st.tuples(st.just(near), date_times(near_miss=near))))
    def check(case: tuple[bool, str]) -> None:
        near, text = case
        if not near:
            assert checker(text, "date-time"), text
        seen["valid" if checker(text, "date-time") else "invalid"] += 1

    check()
    assert seen["invalid"] > 50 and seen["valid"] > 50, seen
