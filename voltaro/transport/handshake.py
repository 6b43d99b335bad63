"""What a WebSocket handshake asks for: the charge point id from the path, Basic credentials.

Pure functions over the request line and headers, so the rules are easy to test.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

OCPP_PATH_PREFIX = "/ocpp/"

# chargeBoxIdentity is a CiString48 in OCPP 1.6. Control characters and '/' can only come
# from a malformed or hostile URL; no real charge point id contains them. "." and ".." are
# path segments every URL resolver removes: a charger could never be addressed by them.
MAX_CHARGE_POINT_ID_LENGTH = 48
_FORBIDDEN_IN_ID = re.compile(r"[\x00-\x1f\x7f/]")
_DOT_SEGMENTS = frozenset({".", ".."})
_NOT_PLAIN = "?#\t\r\n"  # what makes urlsplit's path differ from a path that starts with /


def charge_point_id_problem(charge_point_id: str) -> str | None:
    """Why ``charge_point_id`` can never connect, or None when it is a valid id. The one
    rule for ids, at the handshake and wherever an operator creates a charge point."""
    if not charge_point_id:
        return "a charge point id must not be empty"
    if len(charge_point_id) > MAX_CHARGE_POINT_ID_LENGTH:
        return f"a charge point id has at most {MAX_CHARGE_POINT_ID_LENGTH} characters"
    if _FORBIDDEN_IN_ID.search(charge_point_id):
        return "a charge point id must not contain '/' or control characters"
    if charge_point_id in _DOT_SEGMENTS:
        return "'.' and '..' cannot be charge point ids (URLs drop them as path segments)"
    return None


def charge_point_id_from_path(path: str) -> str | None:
    """The percent-decoded charge point id of ``/ocpp/{id}``, or None when the path is not one."""
    # a charger's path is plain: only another form (absolute, a query, what urlsplit drops)
    # needs splitting
    plain = path.startswith(OCPP_PATH_PREFIX) and not any(c in path for c in _NOT_PLAIN)
    try:
        raw = path if plain else urlsplit(path).path
    except ValueError:  # "//[x": not a URL at all
        return None
    if not raw.startswith(OCPP_PATH_PREFIX):
        return None
    encoded = raw[len(OCPP_PATH_PREFIX) :]
    if not encoded or "/" in encoded:
        return None
    try:
        charge_point_id = unquote(encoded, errors="strict") if "%" in encoded else encoded
    except UnicodeDecodeError:
        return None
    if charge_point_id_problem(charge_point_id) is not None:
        return None
    return charge_point_id


def basic_credentials(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """(username, password) of an ``Authorization: Basic`` header, or None if absent or broken."""
    for name, value in headers:
        if name.lower() != b"authorization":
            continue
        scheme, _, encoded = value.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, separator, password = decoded.partition(":")
        return (username, password) if separator else None
    return None


def password_for(charge_point_id: str, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The Basic-auth password, only when the username is this charge point's id (OCPP 1.6 security
    profile 1: username = chargeBoxIdentity, password = AuthorizationKey)."""
    credentials = basic_credentials(headers)
    if credentials is None or credentials[0] != charge_point_id:
        return None
    return credentials[1]
