"""Routes as data: one :class:`Operation` per route says its method, path, parameters, body
and answers. The same objects validate each request (``validate_*``) and produce the
OpenAPI 3.1 document (:func:`openapi_document`), so the documentation cannot drift from what
the server accepts.

Errors are :class:`Problem` exceptions, rendered as RFC 9457 ``application/problem+json``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jsonschema_rs

from voltaro.admin.examples import DATE_TIME_EXAMPLE, example
from voltaro.central.accounts import Principal, Role
from voltaro.central.timestamps import BadTimestamp, read_timestamp
from voltaro.ocppj.frames import MAX_NESTING, nested_deeper_than
from voltaro.ocppj.validation import json_path

JsonObject = dict[str, Any]

PROBLEM_MEDIA_TYPE = "application/problem+json"

NO_NUL = "^[^\\u0000]*$"
"""Pattern for strings that go into PostgreSQL text, which cannot hold U+0000."""


class Problem(Exception):
    """An error answer: HTTP status, a short title and a detail that says what was wrong."""

    def __init__(self, status: int, title: str, detail: str, **extensions: Any) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.extensions = extensions
        self.headers: dict[str, str] = {}

    def document(self, instance: str | None = None) -> JsonObject:
        doc: JsonObject = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            doc["instance"] = instance
        doc.update(self.extensions)
        return doc


def bad_request(detail: str, **extensions: Any) -> Problem:
    return Problem(400, "Bad Request", detail, **extensions)


def not_found(detail: str) -> Problem:
    return Problem(404, "Not Found", detail)


PROBLEM_SCHEMA: JsonObject = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "path": {"type": "string", "description": "JSON path of the offending field"},
        "code": {"type": "string", "description": "the charge point's CALLERROR code"},
        "description": {"type": "string"},
        "details": {},
    },
    "required": ["type", "title", "status", "detail"],
}


# ---- JSON schema validation with messages that name the field -------------------------


class Checker:
    """A compiled JSON Schema (2020-12, formats checked) giving one message per failure.

    The messages say what was expected in the operator's terms: every allowed value of an
    enum, a date-time with an example, a string's length against its limit. jsonschema-rs's
    own words are kept for the rest.
    """

    def __init__(self, schema: JsonObject) -> None:
        self.schema = schema
        self._validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)

    def first_error(self, instance: object) -> tuple[str, str] | None:
        """None when valid, else (JSON path, message) of the error nearest the root."""
        if self._validator.is_valid(instance):
            return None
        errors = list(self._validator.iter_errors(instance))
        if not errors:
            return ("$", "$: not valid")
        error = min(errors, key=lambda e: len(list(e.instance_path)))
        path = json_path(list(error.instance_path))
        return path, f"{path}: {_clip(self._explain(error), 300)}"

    def _explain(self, error: Any) -> str:
        keyword = str(error.kind.name)
        details: dict[str, Any] = dict(error.kind.as_dict())
        value = error.instance
        if keyword == "enum":
            options = ", ".join(show(option) for option in details.get("options", ()))
            return f"{show(value)} is not one of {options}"
        if keyword == "anyOf":
            return self._explain_any_of(error, value, details.get("context", ()))
        if keyword == "format" and details.get("format") == "date-time":
            return f"{show(value)} is not a date-time: expected one like {DATE_TIME_EXAMPLE}"
        if keyword in ("maxLength", "minLength") and isinstance(value, str):
            bound = "maximum" if keyword == "maxLength" else "minimum"
            return (
                f"{show(value)} is {len(value)} characters long, the {bound} is {details['limit']}"
            )
        if keyword == "pattern" and details.get("pattern") == NO_NUL:
            return f"{show(value)} contains the character U+0000"
        if keyword == "type":
            return f"expected {' or '.join(map(str, details.get('types', ())))}, got {show(value)}"
        return str(error.message)

    def _explain_any_of(self, error: Any, value: object, context: Sequence[Any]) -> str:
        """The one alternative that matters: a date-time's (the API's nullable times), else
        the first that is not ``null``, explained (saying ``or null`` where it matters)."""
        branches = _schema_at(self.schema, [*error.schema_path])
        branches = branches if isinstance(branches, list) else []
        nullable = any(b == {"type": "null"} for b in branches)
        or_null = " (or null)" if nullable else ""
        if any(isinstance(b, dict) and b.get("format") == "date-time" for b in branches):
            return (
                f"{show(value)} is not a date-time: expected one like {DATE_TIME_EXAMPLE}{or_null}"
            )
        for branch, errors in zip(branches, context, strict=False):
            if branch != {"type": "null"} and errors:
                explained = self._explain(errors[0])
                if nullable and str(errors[0].kind.name) == "type":
                    explained = explained.replace(", got ", " or null, got ", 1)
                return explained
        return str(error.message)


def _schema_at(schema: object, path: Sequence[object]) -> object:
    """The part of ``schema`` at a schema path (None where there is nothing)."""
    for step in path:
        if isinstance(schema, dict) and isinstance(step, str):
            schema = schema.get(step)
        elif isinstance(schema, list) and isinstance(step, int) and 0 <= step < len(schema):
            schema = schema[step]
        else:
            return None
    return schema


def show(value: object) -> str:
    """A value as JSON for a message, cut short when long."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return _clip(text, 60)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- parameters -----------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A path or query parameter with its JSON schema (type integer, number, boolean or
    string, optionally ``format: date-time``)."""

    name: str
    schema: JsonObject
    description: str = ""
    required: bool = False
    example: Any = None
    """Shown in the OpenAPI document; None: one made from the schema for a date-time (how
    one is written is not obvious), none for the rest (their schema says enough)."""

    def documented_example(self, components: Mapping[str, Any]) -> Any:
        if self.example is not None:
            return self.example
        if self.schema.get("format") == "date-time":
            return example(self.schema, components, self.name)
        return None

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` for this parameter, in the words the API answers
        with; None when it is valid. For callers outside HTTP (the CLI) that must refuse
        what the API refuses, saying the same."""
        found = self._checker.first_error(value)
        if found is None:
            return None
        path, message = found
        return message.removeprefix(path + ": ")

    @functools.cached_property
    def _checker(self) -> Checker:
        return Checker(self.schema)

    def convert(self, text: str, where: str) -> Any:
        kind = self.schema.get("type")
        if "\x00" in text:
            raise bad_request(f"{where} {self.name!r}: contains the character U+0000")
        try:
            if kind == "integer":
                if not re.fullmatch(r"[+-]?\d{1,18}", text.strip()):
                    raise ValueError
                return int(text)
            if kind == "number":
                value = float(text)
                if value != value or value in (float("inf"), float("-inf")):
                    raise ValueError
                return value
            if kind == "boolean":
                lowered = text.lower()
                if lowered not in ("true", "false"):
                    raise ValueError
                return lowered == "true"
        except ValueError:
            raise bad_request(
                f"{where} {self.name!r}: {text!r} is not a{'n' if kind == 'integer' else ''} "
                f"{kind}",
                path=self.name,
            ) from None
        return text


def parse_datetime(value: str, name: str) -> datetime:
    """``value`` as an aware UTC datetime, by the rules chargers' times follow (RFC 3339
    with a zone, within the range Voltaro accepts: see ``voltaro.central.timestamps``)."""
    try:
        if not _HAS_ZONE.search(value):
            raise BadTimestamp("not an RFC 3339 date-time with a zone (Z or an offset)")
        return read_timestamp(value)
    except BadTimestamp as why:
        raise bad_request(
            f"{name!r}: {value!r}: {why}; e.g. {DATE_TIME_EXAMPLE}", path=name
        ) from None


_HAS_ZONE = re.compile(r"(?:[Zz]|[+-]\d{2}:\d{2})$")


# ---- operations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One documented response: status, description, and the JSON body schema (or media)."""

    status: int
    description: str
    schema: JsonObject | None = None
    media_type: str = "application/json"


@dataclass
class Request:
    """What a handler gets: validated path and query values, the validated body, and who
    asks (None only where no caller is known: a handler called by the server itself)."""

    path: dict[str, Any]
    query: dict[str, Any]
    body: Any
    who: Principal | None = None


Handler = Callable[[Request], Awaitable[Any]]


@dataclass
class Variant:
    """One documented concrete path of a generic route (e.g. a command per action)."""

    path: str
    operation_id: str
    summary: str
    body: JsonObject | None
    answers: Sequence[Answer]


@dataclass
class Operation:
    method: str
    path: str  # OpenAPI form: /api/v1/charge-points/{chargePointId}
    operation_id: str
    summary: str
    handler: Handler
    tag: str
    path_params: Sequence[Param] = ()
    query: Sequence[Param] = ()
    body: JsonObject | None = None
    answers: Sequence[Answer] = ()
    auth: bool = True
    description: str = ""
    variants: Sequence[Variant] = ()
    role: Role = "viewer"
    """The least role that may call it (see :mod:`voltaro.central.accounts`)."""
    own_account: bool = False
    """Also allowed to the account its ``name`` path parameter names (its own tokens)."""
    _query_checker: Checker | None = field(default=None, init=False, repr=False)
    _path_checker: Checker | None = field(default=None, init=False, repr=False)
    _body_checker: Checker | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.query:
            self._query_checker = Checker(_object_schema(self.query))
        if self.path_params:
            self._path_checker = Checker(_object_schema(self.path_params))
        if self.body is not None:
            self._body_checker = Checker(self.body)

    @property
    def quart_rule(self) -> str:
        return re.sub(r"\{(\w+)\}", r"<\1>", self.path)

    def validate_path(self, raw: Mapping[str, str]) -> dict[str, Any]:
        values = {
            p.name: p.convert(raw[p.name], "path parameter")
            for p in self.path_params
            if p.name in raw
        }
        if self._path_checker is not None:
            _raise_first(self._path_checker, values, "path parameter")
        return values

    def validate_query(self, raw: Mapping[str, Sequence[str]]) -> dict[str, Any]:
        known = {p.name: p for p in self.query}
        unknown = [name for name in raw if name not in known]
        if unknown:
            allowed = ", ".join(known) or "none"
            raise bad_request(
                f"unknown query parameter {unknown[0]!r} (allowed: {allowed})", path=unknown[0]
            )
        values: dict[str, Any] = {}
        for name, texts in raw.items():
            if len(texts) != 1:
                raise bad_request(f"query parameter {name!r} given {len(texts)} times", path=name)
            values[name] = known[name].convert(texts[0], "query parameter")
            _check_enum(known[name], values[name])
        if self._query_checker is not None:
            _raise_first(self._query_checker, values, "query parameter")
        for name, value in values.items():
            if known[name].schema.get("format") == "date-time":
                values[name] = parse_datetime(value, name)
        return values

    def validate_body(self, body: object) -> Any:
        if nested_deeper_than(body, MAX_NESTING):
            raise bad_request(f"the body nests arrays and objects more than {MAX_NESTING} levels")
        if self._body_checker is not None:
            found = self._body_checker.first_error(body)
            if found is not None:
                path, message = found
                raise bad_request(f"request body {message}", path=path)
        return body


def _check_enum(param: Param, value: Any) -> None:
    """A value outside the parameter's ``enum`` is refused naming every allowed value (the
    schema's own message names two and counts the rest)."""
    allowed = param.schema.get("enum")
    if allowed is not None and value not in allowed:
        raise bad_request(
            f"query parameter {param.name!r}: {show(value)} is not one of "
            + ", ".join(show(item) for item in allowed),
            path=param.name,
        )


def _object_schema(params: Sequence[Param]) -> JsonObject:
    return {
        "type": "object",
        "properties": {p.name: p.schema for p in params},
        "required": [p.name for p in params if p.required],
    }


def _raise_first(checker: Checker, values: JsonObject, where: str) -> None:
    found = checker.first_error(values)
    if found is None:
        return
    path, message = found
    name = path[2:] if path.startswith("$.") else path
    text = message[len(path) + 2 :] if message.startswith(path + ": ") else message
    raise bad_request(f"{where} {name!r}: {text}", path=name)


# ---- OpenAPI ------------------------------------------------------------------------------


def openapi_document(
    operations: Sequence[Operation], *, title: str, version: str, components: JsonObject
) -> JsonObject:
    """The OpenAPI document of ``operations``; each request body with an example made from
    its schema (``components["schemas"]`` resolves its refs)."""
    paths: dict[str, JsonObject] = {}
    schemas = components.get("schemas", {})
    for op in operations:
        if op.variants:
            for variant in op.variants:
                paths.setdefault(variant.path, {})[op.method.lower()] = _operation_object(
                    op,
                    operation_id=variant.operation_id,
                    summary=variant.summary,
                    path_params=[p for p in op.path_params if "{" + p.name + "}" in variant.path],
                    body=variant.body,
                    answers=variant.answers,
                    schemas=schemas,
                )
        else:
            paths.setdefault(op.path, {})[op.method.lower()] = _operation_object(
                op,
                operation_id=op.operation_id,
                summary=op.summary,
                path_params=op.path_params,
                body=op.body,
                answers=op.answers,
                schemas=schemas,
            )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            **components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _parameter_object(param: Param, where: str, schemas: Mapping[str, Any]) -> JsonObject:
    obj: JsonObject = {
        "name": param.name,
        "in": where,
        "required": param.required,
        "schema": param.schema,
    }
    if param.description:
        obj["description"] = param.description
    shown = param.documented_example(schemas)
    if shown is not None:
        obj["example"] = shown
    return obj


def _operation_object(
    op: Operation,
    *,
    operation_id: str,
    summary: str,
    path_params: Sequence[Param],
    body: JsonObject | None,
    answers: Sequence[Answer],
    schemas: Mapping[str, Any],
) -> JsonObject:
    parameters = [
        _parameter_object(p, "path", schemas) | {"required": True} for p in path_params
    ] + [_parameter_object(p, "query", schemas) for p in op.query]
    responses: JsonObject = {}
    for answer in answers:
        entry: JsonObject = {"description": answer.description}
        if answer.schema is not None:
            entry["content"] = {answer.media_type: {"schema": answer.schema}}
        responses[str(answer.status)] = entry
    obj: JsonObject = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [op.tag],
        "parameters": parameters,
        "responses": responses,
    }
    own = " (or to be the account itself)" if op.own_account else ""
    needed = f"Requires the role {op.role}{own}."
    obj["description"] = f"{op.description} {needed}" if op.description else needed
    obj["x-required-role"] = op.role
    if body is not None:
        obj["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body, "example": example(body, schemas)}},
        }
    obj["security"] = [{"bearer": []}] if op.auth else []
    return obj
