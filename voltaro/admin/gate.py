"""Who is asking, whether they may, and the record of what they did: the one path every
operator action takes, from the API and from the dashboard alike.

- :meth:`Gate.bearer`: the caller of an API request, from ``Authorization: Bearer``: the
  admin token (the bootstrap admin) or an account's API token (``vlt_...``).
- :meth:`Gate.record_sign_in`: the audit record of a dashboard sign-in (one that succeeded,
  failed, or was refused at the start of a block of :mod:`voltaro.central.sign_in`).
- :meth:`Gate.perform`: run an :class:`~voltaro.admin.spec.Operation` for a caller: its
  declared role is checked first (403 names the role needed), then the handler runs; an
  operation that changes something (every method but GET) is written to the audit log with
  its outcome (the command's result or error, the PUT's or DELETE's effect, or the 403 of
  an attempt the role did not allow) and logged at INFO, before the caller is answered.

Error handling: an audit record that cannot be written (the database went away after the
action was done) is logged as a warning and the caller still gets the action's answer:
the action happened, and saying otherwise would invite a second one.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from quart import request

from voltaro.admin.spec import Operation, Problem, Request
from voltaro.central.accounts import BOOTSTRAP, TOKEN_PREFIX, Principal
from voltaro.central.operations import Operations
from voltaro.central.redaction import redacted
from voltaro.store import StoreError
from voltaro.store.audit import AuditEntry

log = logging.getLogger("voltaro.audit")

SECRET_FIELDS = frozenset({"password"})
EFFECTS = {200: "updated", 201: "created", 204: "removed"}
MAX_ACTOR = 100  # characters of a name given at a failed sign-in that the audit log keeps


def unauthorized(detail: str) -> Problem:
    problem = Problem(401, "Unauthorized", detail)
    problem.headers["WWW-Authenticate"] = 'Bearer realm="voltaro"'
    return problem


def forbidden(who: Principal, op: Operation, path: dict[str, Any]) -> Problem:
    own = " (or to be that account)" if op.own_account else ""
    return Problem(
        403,
        "Forbidden",
        f"{action_name(op, path)} needs the role {op.role}{own}; {who.name} has the role "
        f"{who.role}",
        requiredRole=op.role,
    )


def allowed(who: Principal, op: Operation, path: dict[str, Any]) -> bool:
    if who.may(op.role):
        return True
    return op.own_account and who.account is not None and path.get("name") == who.account


def action_name(op: Operation, path: dict[str, Any]) -> str:
    """The audit log's name of the action: the operation id, or for a command the id of
    its documented variant (``commandReset``)."""
    if op.variants and "action" in path:
        return f"command{path['action']}"
    return op.operation_id


def recorded_request(op: Operation, path: dict[str, Any], body: Any) -> Any:
    """The request as the audit log keeps it: no password, no secret configuration value."""
    if not isinstance(body, dict):
        return body
    if op.variants and "action" in path:
        return redacted(str(path["action"]), body)
    return {k: ("(redacted)" if k in SECRET_FIELDS else v) for k, v in body.items()}


class Gate:
    def __init__(self, operations: Operations, admin_token: str) -> None:
        self._operations = operations
        self._admin_token = admin_token.encode()

    async def bearer(self) -> Principal:
        """The caller of this API request; 401 without a known token."""
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        given = given.strip()
        if not header:
            raise unauthorized("missing Authorization: Bearer <token> header")
        if scheme.lower() != "bearer" or not given:
            raise unauthorized("the Authorization header must be Bearer <token>")
        if hmac.compare_digest(given.encode(), self._admin_token):
            return BOOTSTRAP
        if given.startswith(TOKEN_PREFIX):
            who = await self._operations.accounts.token(given)
            if who is not None:
                return who
        raise unauthorized("wrong bearer token")

    async def perform(self, op: Operation, call: Request, who: Principal, via: str) -> Any:
        """Run ``op`` for ``who`` (see the module doc); ``via``: api or dashboard."""
        if not allowed(who, op, call.path):
            refusal = forbidden(who, op, call.path)
            if op.method != "GET":  # who tried to change what they may not: worth keeping
                await self._record(op, call, who, via, 403, refusal.document())
            raise refusal
        call.who = who
        if op.method == "GET":
            return await op.handler(call)
        try:
            result = await op.handler(call)
        except Problem as problem:
            await self._record(op, call, who, via, problem.status, problem.document())
            raise
        status = getattr(result, "status", 200)
        if op.variants:
            outcome: Any = result
        else:
            outcome = {"effect": EFFECTS.get(status, str(status))}
            body = getattr(result, "body", None)
            if isinstance(body, dict) and "id" in body:  # a made thing's id (a token's)
                outcome["id"] = body["id"]
        await self._record(op, call, who, via, status, outcome)
        return result

    async def record_sign_in(
        self, actor: str, role: str, address: str | None, status: int, outcome: Any
    ) -> None:
        """Log and record a sign-in as ``actor`` (the name given, for one that failed: who
        tried is not known) from ``address``, answered ``status`` with ``outcome``."""
        actor = actor[:MAX_ACTOR]
        if status >= 400:  # a success is logged where the session starts
            log.info(
                "sign-in as %s from %s: %s",
                actor,
                address or "an unknown address",
                _summary(status, outcome),
            )
        entry = AuditEntry(
            actor=actor,
            role=role,
            via="dashboard",
            action="signIn",
            charge_point_id=None,
            target=None,
            request={"remoteAddress": address},
            status=status,
            outcome=outcome,
        )
        try:
            await self._operations.audit.record(entry)
        except StoreError as error:
            log.warning("audit record of a sign-in as %s lost: %s", actor, error)

    async def _record(
        self, op: Operation, call: Request, who: Principal, via: str, status: int, outcome: Any
    ) -> None:
        path = call.path
        action = action_name(op, path)
        charge_point_id = path.get("chargePointId")
        target = "/".join(str(v) for k, v in path.items() if k not in ("chargePointId", "action"))
        log.info(
            "operator %s (%s, %s): %s%s%s: %s",
            who.name,
            who.role,
            via,
            action,
            f" on {charge_point_id}" if charge_point_id is not None else "",
            f" {target}" if target else "",
            _summary(status, outcome),
        )
        entry = AuditEntry(
            actor=who.name,
            role=who.role,
            via=via,
            action=action,
            charge_point_id=charge_point_id,
            target=target or None,
            request=recorded_request(op, path, call.body),
            status=status,
            outcome=outcome,
        )
        try:
            await self._operations.audit.record(entry)
        except StoreError as error:
            log.warning("audit record of %s by %s lost: %s", action, who.name, error)


def _summary(status: int, outcome: Any) -> str:
    if isinstance(outcome, dict):
        if "detail" in outcome:
            return f"refused ({status}): {outcome['detail']}"
        result = outcome.get("result")
        if isinstance(result, dict) and "status" in result:
            return f"answered {result['status']}"
        if "result" in outcome:
            return "answered"
        if "effect" in outcome:
            return str(outcome["effect"])
    return str(status)
