"""Schema validation of OCPP payloads, strict by default and lenient on request.

Every request and response schema of a dialect (:mod:`voltaro.ocppj.dialect`; OCPP 1.6's
are in ``schemas/``) is compiled once, at start-up, with
jsonschema-rs. Validating a valid payload is then a single ``is_valid`` call into Rust: no
Python walks the payload on the hot path. Only when a payload is invalid does this module
ask jsonschema-rs for every error and turn one of them into a :class:`Violation`, i.e. the
OCPP-J error code, the JSON path of the offending field and a sentence a person can act on.

Error codes (OCPP-J 1.6 section 4.2.3, 1.6 spellings; see ``DESIGN.md``):

================================================  ================================
failed schema keyword                             code
================================================  ================================
``type`` (and a payload that is not an object)    ``TypeConstraintViolation``
``required``, ``minItems`` (also ``maxItems``)    ``OccurenceConstraintViolation``
``additionalProperties: false``                   ``FormationViolation``
``maxLength``, ``minLength``, ``enum``,           ``PropertyConstraintViolation``
``format``, ``minimum``, ``maximum``,
``exclusiveMinimum``/``Maximum``, ``multipleOf``,
``pattern``, ``const``
anything else                                     ``FormationViolation``
================================================  ================================

Lenient mode (:meth:`SchemaRegistry.check` with ``lenient=True``) lets through the schema
breakers that real chargers are known to send, each one reported as a :class:`Deviation`
so the caller can count and log it:

``truncated-string``
    A string longer than its ``maxLength`` (long serial numbers, vendor fields, ids):
    truncated to the limit in the returned copy.
``unit-spelling``
    ``Celcius``, ``Celsius``, ``Hertz`` or ``Hz`` in a ``sampledValue[].unit`` whose enum
    lacks that spelling: kept as sent.
``multiple-of-noise``
    A number that misses its ``multipleOf`` only by binary floating-point noise, e.g.
    ``0.30000000000000004`` for ``multipleOf: 0.1`` or the float32 value
    ``16.100000381469727``: kept as sent.
``non-string-config-value``
    A number or boolean where a configuration value string is expected (the ``value`` beside
    a ``key``, as in GetConfigurationResponse's ``configurationKey[]`` or ChangeConfiguration):
    converted to its JSON text (``true``, ``60``, ``1.5``) in the returned copy.

Anything else is still a violation in lenient mode.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import jsonschema_rs

from voltaro.ocppj.actions import Direction
from voltaro.ocppj.dialect import OCPP16, Dialect
from voltaro.ocppj.errors import ErrorCode

__all__ = ["CheckResult", "Deviation", "SchemaRegistry", "Violation"]


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a payload was rejected: the CALLERROR code, where, and a sentence saying what."""

    code: ErrorCode
    path: str
    """JSON path of the offending field: ``$`` for the root, ``$.meterValue[0].timestamp``."""
    message: str
    """A human sentence naming the field, e.g. ``$.chargePointVendor: "x..." is 30 ...``."""


@dataclass(frozen=True, slots=True)
class Deviation:
    """A known real-charger schema breaker that lenient mode let through."""

    kind: str
    """Stable identifier: ``truncated-string``, ``unit-spelling``, ``multiple-of-noise`` or
    ``non-string-config-value``."""
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of :meth:`SchemaRegistry.check`.

    ``payload`` is what a handler should get: the input itself when it is valid or was
    rejected, a repaired copy when lenient mode let deviations through. ``deviations`` is
    empty unless lenient mode accepted a payload that strict mode would have rejected.
    """

    violation: Violation | None
    payload: Any
    deviations: tuple[Deviation, ...]


# --- error classification -------------------------------------------------------------

_CODE_BY_KEYWORD: Final[Mapping[str, ErrorCode]] = {
    "type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "required": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "minItems": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "additionalProperties": ErrorCode.FORMATION_VIOLATION,
    "maxLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "enum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "const": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "format": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "pattern": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMinimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMaximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
}

# When a payload breaks several rules, the most fundamental one is reported: a field of the
# wrong type or a missing one makes the message unusable before an unknown extra field
# does, and that before a value that is merely out of range.
_CODE_RANK: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.TYPE_CONSTRAINT_VIOLATION: 0,
    ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION: 1,
    ErrorCode.FORMATION_VIOLATION: 2,
    ErrorCode.PROPERTY_CONSTRAINT_VIOLATION: 3,
}

# --- lenient mode ---------------------------------------------------------------------

TRUNCATED_STRING: Final = "truncated-string"
UNIT_SPELLING: Final = "unit-spelling"
MULTIPLE_OF_NOISE: Final = "multiple-of-noise"
NON_STRING_CONFIG_VALUE: Final = "non-string-config-value"

# Unit spellings real chargers send for temperature and frequency.
_UNIT_SPELLINGS: Final = frozenset({"Celcius", "Celsius", "Hertz", "Hz"})

# How far (relative) a number may sit from a true multiple and still count as binary
# floating-point noise. Double arithmetic is off by ~1e-16; a float32 printed as a double
# (a common charger firmware habit: 16.1f -> 16.100000381469727) by up to ~6e-8.
_NOISE_TOLERANCE: Final = 1e-6

# Repairs can expose new errors (a number turned into a string may then be too long), so a
# lenient check re-validates after repairing. Every repair is final after two rounds; the
# bound only guards against a loop nobody foresaw.
_MAX_REPAIR_ROUNDS: Final = 5

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_DRAFT_VALIDATORS: Final[Mapping[str, Any]] = {
    "http://json-schema.org/draft-04/schema": jsonschema_rs.Draft4Validator,
    "http://json-schema.org/draft-06/schema": jsonschema_rs.Draft6Validator,
    "http://json-schema.org/draft-07/schema": jsonschema_rs.Draft7Validator,
}

PathSegment = str | int


class _Entry:
    """One compiled schema, with the raw document kept to interpret error locations."""

    __slots__ = ("schema", "validator")

    def __init__(self, schema: dict[str, Any], validator: Any) -> None:
        self.schema = schema
        self.validator = validator


class SchemaRegistry:
    """Every OCPP 1.6 request and response schema, compiled once.

    Build one with :meth:`load` at start-up and share it: it is immutable and holds no
    per-connection state.

    When a payload breaks several rules, the one reported is chosen by a fixed priority,
    so the same payload always yields the same :class:`Violation`:

    1. by error code: ``TypeConstraintViolation`` first, then
       ``OccurenceConstraintViolation``, then ``FormationViolation``, then
       ``PropertyConstraintViolation``;
    2. among errors with the same code, the one nearest the root (shortest instance path);
    3. among those, the first that jsonschema-rs reports (it walks the compiled schema in a
       fixed order, so this too is stable).
    """

    __slots__ = ("_entries", "_known", "_validators", "dialect")

    def __init__(
        self, entries: Mapping[tuple[str, Direction], _Entry], dialect: Dialect = OCPP16
    ) -> None:
        self.dialect = dialect
        """The dialect whose schemas these are (their file names were read its way)."""
        self._entries: dict[tuple[str, Direction], _Entry] = dict(entries)
        # The hot path looks the compiled validator up directly, one dict access.
        self._validators: dict[tuple[str, Direction], Any] = {
            key: entry.validator for key, entry in entries.items()
        }
        requests = {action for action, direction in entries if direction is Direction.REQUEST}
        responses = {action for action, direction in entries if direction is Direction.RESPONSE}
        self._known: frozenset[str] = frozenset(requests & responses)

    @classmethod
    def load(cls, dialect: Dialect = OCPP16, *, folder: Path | None = None) -> SchemaRegistry:
        """Compile every ``*.json`` schema of ``dialect`` (default: OCPP 1.6's official 78
        files), or every one in ``folder`` when given, named as ``dialect`` names them.

        For OCPP 1.6 ``X.json`` is the payload of a CALL of action X, ``XResponse.json`` that
        of its CALLRESULT. Formats (``date-time``, ``uri``) are validated, whatever the draft,
        and an unknown format is an error rather than silently ignored.

        Raises ``FileNotFoundError`` when the dialect's own folder lacks a schema of one of
        its actions, and ``ValueError`` naming the file when a schema is not JSON or not a
        valid JSON Schema.
        """
        official = folder is None
        root = dialect.schema_dir() if folder is None else folder
        entries: dict[tuple[str, Direction], _Entry] = {}
        for file in sorted(root.glob("*.json")):
            action, direction = dialect.action_of(file.stem)
            entries[(action, direction)] = _compile(file)
        if official:
            missing = sorted(
                dialect.schema_name(action, direction)
                for action in dialect.actions
                for direction in Direction
                if (action, direction) not in entries
            )
            if missing:
                raise FileNotFoundError(f"{dialect.name} schemas missing in {root}: {missing}")
        return cls(entries, dialect)

    def knows(self, action: str) -> bool:
        """Whether both the request and the response schema of ``action`` are loaded."""
        return action in self._known

    def validate(self, action: str, direction: Direction, payload: object) -> Violation | None:
        """Strictly validate ``payload``: None when valid, else the :class:`Violation`.

        Raises ``KeyError`` for an action whose schema is not loaded (check :meth:`knows`
        first: an unknown action is answered with ``NotImplemented``, not validated).
        """
        try:
            if self._validators[(action, direction)].is_valid(payload):
                return None
        except KeyError:
            self._entry(action, direction)  # raises a KeyError that says what is missing
            raise
        except ValueError:
            # jsonschema-rs refuses values that have no JSON form (a datetime object, a
            # dict with int keys): only a payload built by our own code can hold one.
            return _not_json(payload)
        return _explain(self._entries[(action, direction)], payload)

    def check(
        self, action: str, direction: Direction, payload: object, *, lenient: bool = False
    ) -> CheckResult:
        """Validate ``payload``, letting known real-charger breakers through if ``lenient``.

        Strict (the default): same verdict as :meth:`validate`, the payload returned as is
        and no deviations. Lenient: a payload whose only faults are the known breakers (see
        the module docstring) is accepted; the result carries a repaired copy of it and one
        :class:`Deviation` per fault. A payload with any other fault is rejected with its
        :class:`Violation` (chosen as in strict mode, among the faults that are not known
        breakers), the payload returned as received and no deviations.
        """
        violation = self.validate(action, direction, payload)
        if violation is None:
            return CheckResult(None, payload, ())
        if lenient and isinstance(payload, dict):
            try:
                return _check_leniently(self._entries[(action, direction)], payload)
            except ValueError:  # a value with no JSON form: nothing a charger sends
                pass
        return CheckResult(violation, payload, ())

    def _entry(self, action: str, direction: Direction) -> _Entry:
        try:
            return self._entries[(action, direction)]
        except KeyError:
            raise KeyError(f"no {direction} schema loaded for action {action!r}") from None


# --- loading --------------------------------------------------------------------------


def _compile(file: Path) -> _Entry:
    try:
        schema = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file.name}: cannot read a JSON schema: {exc}") from exc
    if not isinstance(schema, dict):
        raise ValueError(f"{file.name}: a schema must be a JSON object")
    draft = str(schema.get("$schema", "")).rstrip("#")
    factory = _DRAFT_VALIDATORS.get(draft, jsonschema_rs.validator_for)
    try:
        validator = factory(
            schema, validate_formats=True, ignore_unknown_formats=False, offline=True
        )
    except ValueError as exc:
        raise ValueError(f"{file.name}: not a valid JSON Schema: {exc}") from exc
    return _Entry(schema, validator)


# --- explaining a failure -------------------------------------------------------------


def _explain(entry: _Entry, payload: object) -> Violation:
    """The Violation to report for an invalid payload (priority in SchemaRegistry's doc)."""
    if not isinstance(payload, dict):
        return Violation(
            ErrorCode.TYPE_CONSTRAINT_VIOLATION,
            "$",
            f"$: the payload must be a JSON object, got {_described(payload)}",
        )
    errors = list(entry.validator.iter_errors(payload))
    if not errors:  # is_valid and iter_errors disagree: never seen, but do not crash
        return Violation(ErrorCode.FORMATION_VIOLATION, "$", "$: payload is not valid")
    return _violation(entry, _pick(errors), payload)


def _code(error: Any) -> ErrorCode:
    return _CODE_BY_KEYWORD.get(str(error.kind.name), ErrorCode.FORMATION_VIOLATION)


def _pick(errors: Sequence[Any]) -> Any:
    def rank(item: tuple[int, Any]) -> tuple[int, int, int]:
        index, error = item
        return (_CODE_RANK[_code(error)], len(error.instance_path), index)

    return min(enumerate(errors), key=rank)[1]


def _violation(entry: _Entry, error: Any, payload: object) -> Violation:
    keyword = str(error.kind.name)
    details: dict[str, Any] = dict(error.kind.as_dict())
    where: list[PathSegment] = list(error.instance_path)
    value = _lookup(payload, where)
    path = json_path(where)
    if keyword == "falseSchema" and list(error.schema_path)[-1:] == ["additionalProperties"]:
        # jsonschema-rs reports `additionalProperties: false` in an object schema without
        # `properties` as a false schema, located at the object, not naming the property.
        keyword = "additionalProperties"
        node = _lookup(entry.schema, list(error.schema_path)[:-1])
        known = node.get("properties", {}) if isinstance(node, dict) else {}
        names = value if isinstance(value, dict) else {}
        details = {"unexpected": [name for name in names if name not in known]}
    if keyword == "type":
        expected = " or ".join(str(t) for t in details.get("types", ()))
        message = f"{path}: expected {expected}, got {_json_type(value)} {_show(value)}"
    elif keyword == "required":
        path = json_path([*where, str(details["property"])])
        message = f"{path}: required property is missing"
    elif keyword == "additionalProperties":
        unexpected = [str(name) for name in details.get("unexpected", ())]
        path = json_path([*where, unexpected[0]]) if unexpected else path
        message = f"{path}: unknown property, not allowed by the schema"
        if len(unexpected) > 1:
            others = ", ".join(json.dumps(name) for name in unexpected[1:])
            message += f" (nor are {others})"
    elif keyword in ("minItems", "maxItems"):
        bound = "at least" if keyword == "minItems" else "at most"
        count = len(value) if isinstance(value, list | tuple) else "?"
        message = f"{path}: array has {count} item(s), {bound} {details['limit']} required"
    elif keyword in ("maxLength", "minLength"):
        bound = "maximum" if keyword == "maxLength" else "minimum"
        size = len(value) if isinstance(value, str) else "?"
        message = (
            f"{path}: {_show(value)} is {size} characters long, the {bound} is {details['limit']}"
        )
    elif keyword == "enum":
        options = ", ".join(_show(option) for option in details.get("options", ()))
        message = f"{path}: {_show(value)} is not one of {options}"
    elif keyword == "format":
        fmt = str(details.get("format"))
        hint = " (RFC 3339, e.g. 2026-01-31T12:00:00Z)" if fmt == "date-time" else ""
        message = f"{path}: {_show(value)} is not a valid {fmt}{hint}"
    elif keyword == "multipleOf":
        message = f"{path}: {_show(value)} is not a multiple of {details['multiple_of']}"
    else:
        message = f"{path}: {_clip(str(error.message), 200)}"
    return Violation(_CODE_BY_KEYWORD.get(keyword, ErrorCode.FORMATION_VIOLATION), path, message)


def _not_json(payload: object) -> Violation:
    found = _find_non_json(payload, [])
    if found is None:
        return Violation(ErrorCode.FORMATION_VIOLATION, "$", "$: payload cannot be validated")
    where, what = found
    path = json_path(where)
    return Violation(ErrorCode.TYPE_CONSTRAINT_VIOLATION, path, f"{path}: {what}")


def _find_non_json(value: object, where: list[PathSegment]) -> tuple[list[PathSegment], str] | None:
    if value is None or isinstance(value, str | bool | int | float):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return where, f"object key {key!r} is not a string"
            found = _find_non_json(item, [*where, key])
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _find_non_json(item, [*where, index])
            if found is not None:
                return found
        return None
    return where, f"a {type(value).__name__} is not a JSON value"


# --- lenient mode ---------------------------------------------------------------------


def _check_leniently(entry: _Entry, payload: dict[str, Any]) -> CheckResult:
    repaired = _json_copy(payload)
    deviations: dict[tuple[str, str], Deviation] = {}
    for _ in range(_MAX_REPAIR_ROUNDS):
        fatal: list[Any] = []
        changed = False
        for error in entry.validator.iter_errors(repaired):
            outcome = _tolerate(entry, error, repaired)
            if outcome is None:
                fatal.append(error)
                continue
            deviation, repaired_now = outcome
            deviations.setdefault((deviation.kind, deviation.path), deviation)
            changed = changed or repaired_now
        if fatal:
            return CheckResult(_violation(entry, _pick(fatal), repaired), payload, ())
        if not changed:
            return CheckResult(None, repaired, tuple(deviations.values()))
    errors = list(entry.validator.iter_errors(repaired))
    if not errors:
        return CheckResult(None, repaired, tuple(deviations.values()))
    return CheckResult(_violation(entry, _pick(errors), repaired), payload, ())


def _tolerate(entry: _Entry, error: Any, repaired: object) -> tuple[Deviation, bool] | None:
    """The Deviation for an error that is a known real-charger breaker, else None.

    The flag says whether ``repaired`` was changed (truncated, stringified) to fix the
    error, rather than the value accepted as sent.
    """
    keyword = str(error.kind.name)
    where: list[PathSegment] = list(error.instance_path)
    if not where:
        return None
    value = _lookup(repaired, where)
    path = json_path(where)
    if keyword == "maxLength" and isinstance(value, str):
        limit = int(error.kind.as_dict()["limit"])
        _assign(repaired, where, value[:limit])
        message = (
            f"{path}: {_show(value)} is {len(value)} characters long, more than the maximum "
            f"of {limit}; truncated to {_show(value[:limit])}"
        )
        return Deviation(TRUNCATED_STRING, path, message), True
    if (
        keyword == "enum"
        and isinstance(value, str)
        and value in _UNIT_SPELLINGS
        and where[-1] == "unit"
        and len(where) >= 3
        and where[-3] == "sampledValue"
    ):
        message = f"{path}: unit {_show(value)} is not among the schema's units; accepted as sent"
        return Deviation(UNIT_SPELLING, path, message), False
    if keyword == "multipleOf" and _is_float_noise(value, error.kind.as_dict()["multiple_of"]):
        step = error.kind.as_dict()["multiple_of"]
        message = (
            f"{path}: {_show(value)} is a multiple of {step} but for binary floating-point "
            "noise; accepted as sent"
        )
        return Deviation(MULTIPLE_OF_NOISE, path, message), False
    if (
        keyword == "type"
        and isinstance(value, bool | int | float)
        and not (isinstance(value, float) and not math.isfinite(value))
        and _is_config_value(entry.schema, list(error.schema_path))
    ):
        try:
            text = json.dumps(value)
        except ValueError:  # an int too long for str() (over 4300 digits): no repair
            return None
        _assign(repaired, where, text)
        message = (
            f"{path}: configuration value {_show(value)} ({_json_type(value)}) is not a "
            f"string; converted to {_show(text)}"
        )
        return Deviation(NON_STRING_CONFIG_VALUE, path, message), True
    return None


def _is_float_noise(value: object, step: object) -> bool:
    """Whether ``value`` misses a multiple of ``step`` only by binary float rounding.

    Both numbers are read as the decimals they print as (``0.1`` is exactly 1/10, as the
    schema's author meant), which is also how jsonschema-rs judges ``multipleOf``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(step, bool) or not isinstance(step, int | float) or not step > 0:
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    exact_value, exact_step = _decimal(value), _decimal(step)
    nearest = round(exact_value / exact_step) * exact_step
    slack = Fraction(_NOISE_TOLERANCE) * max(abs(nearest), exact_step)
    return abs(exact_value - nearest) <= slack


def _decimal(number: int | float) -> Fraction:
    """The exact value of the shortest decimal that prints as ``number``."""
    return Fraction(number) if isinstance(number, int) else Fraction(repr(number))


def _is_config_value(schema: Mapping[str, Any], schema_path: Sequence[PathSegment]) -> bool:
    """Whether a failed ``type`` keyword is that of a configuration key's string value.

    That is: its schema path ends in ``properties/value/type``, the expected type is a
    string, and the same object also has a ``key`` property.
    """
    if len(schema_path) < 3 or list(schema_path[-3:]) != ["properties", "value", "type"]:
        return False
    properties = _lookup(schema, schema_path[:-2])
    if not isinstance(properties, dict) or "key" not in properties:
        return False
    value_schema = properties.get("value")
    return isinstance(value_schema, dict) and value_schema.get("type") == "string"


# --- small helpers --------------------------------------------------------------------


def json_path(where: Sequence[PathSegment]) -> str:
    """``$.a[0].b`` for the segments ``a, 0, b`` (quoted where a name is not an identifier)."""
    parts = ["$"]
    for segment in where:
        if isinstance(segment, int):
            parts.append(f"[{segment}]")
        elif _IDENTIFIER.fullmatch(segment):
            parts.append(f".{segment}")
        else:
            parts.append(f"[{json.dumps(segment, ensure_ascii=False)}]")
    return "".join(parts)


def _lookup(document: object, where: Sequence[PathSegment]) -> object:
    node: Any = document
    for segment in where:
        try:
            node = node[segment]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _assign(document: object, where: Sequence[PathSegment], value: object) -> None:
    parent: Any = _lookup(document, where[:-1])
    parent[where[-1]] = value


def _json_copy(value: Any) -> Any:
    """A deep copy of a JSON document (dicts and lists copied, tuples become lists)."""
    if isinstance(value, dict):
        return {key: _json_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_copy(item) for item in value]
    return value


# JSON type names of Python values; bool before int, as a bool is an int to Python.
_JSON_TYPES: Final[tuple[tuple[type, str], ...]] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (dict, "object"),
    (list, "array"),
    (tuple, "array"),
)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    for kind, name in _JSON_TYPES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _described(value: object) -> str:
    """``null``, ``true``, ``an array [1,2]``: the value once, with its type where it helps."""
    if value is None or isinstance(value, bool):
        return _show(value)
    return f"{_json_type(value)} {_show(value)}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: object) -> str:
    """A short JSON rendering of a value for a message (long strings are cut)."""
    if isinstance(value, str):
        return json.dumps(_clip(value, 40), ensure_ascii=False)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):  # not JSON, or an int too long to print
        try:
            text = repr(value)
        except ValueError:
            text = f"<{_json_type(value)}>"
    return _clip(text, 60)
