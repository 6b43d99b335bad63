"""The admin API's routes for who does what: operator accounts, their API tokens and
dashboard sessions (admin; an account may also see and manage its own tokens and sessions),
``/api/v1/me`` and the audit log (``GET /api/v1/audit``, newest first).

Roles and secrets: :mod:`voltaro.central.accounts`. Each route declares its role; the
check, and the audit record of every change, is :class:`voltaro.admin.gate.Gate`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from voltaro.admin.api import (
    AUTH_ANSWERS,
    BAD,
    CP_ID_SCHEMA,
    DATE_TIME,
    INTEGER,
    MISSING,
    N_DATE_TIME,
    N_STRING,
    PAGING,
    PREFIX,
    STRING,
    Status,
    date_range,
    iso,
    page_json,
    page_schema,
    problem,
    ref,
)
from voltaro.admin.spec import (
    NO_NUL,
    Answer,
    JsonObject,
    Operation,
    Param,
    Request,
    bad_request,
    not_found,
)
from voltaro.central.accounts import (
    ACCOUNT_NAME,
    MIN_PASSWORD,
    ROLES,
    Principal,
)
from voltaro.central.operations import Operations
from voltaro.store.accounts import AccountRecord, TokenRecord
from voltaro.store.admin_queries import Row
from voltaro.store.audit import AuditFilter

FORBIDDEN = problem(403, "the caller's role is not enough; the detail names the role needed")

ACCOUNT_SCHEMAS: JsonObject = {
    "Account": {
        "type": "object",
        "properties": {
            "name": STRING,
            "role": {"enum": list(ROLES)},
            "hasPassword": {"type": "boolean"},
            "createdAt": DATE_TIME,
            "updatedAt": DATE_TIME,
        },
    },
    "ApiToken": {
        "type": "object",
        "properties": {
            "id": INTEGER,
            "label": STRING,
            "createdAt": DATE_TIME,
            "lastUsedAt": N_DATE_TIME,
        },
    },
    "NewApiToken": {
        "allOf": [
            ref("ApiToken"),
            {
                "type": "object",
                "properties": {
                    "token": {
                        "type": "string",
                        "description": "the token itself: shown this once, kept only hashed",
                    }
                },
            },
        ]
    },
    "Me": {
        "type": "object",
        "properties": {
            "name": STRING,
            "role": {"enum": list(ROLES)},
            "account": N_STRING,
        },
    },
    "AuditEntry": {
        "type": "object",
        "properties": {
            "id": INTEGER,
            "at": DATE_TIME,
            "actor": {
                "type": "string",
                "description": "account name, or @admin-token; for a sign-in that failed "
                "(action signIn), the name it was tried with",
            },
            "role": {
                "enum": [*ROLES, "none"],
                "description": "none: a sign-in that failed (nobody was proven)",
            },
            "via": {"enum": ["api", "dashboard", "cli"]},
            "action": {"type": "string", "description": "the API operation, e.g. commandReset"},
            "chargePointId": N_STRING,
            "target": N_STRING,
            "request": {"description": "the request body (passwords and secret keys redacted)"},
            "status": {"type": "integer", "description": "the HTTP status it was answered"},
            "outcome": {"description": "a command's {result}, a change's {effect}, or the problem"},
        },
    },
}

NAME = Param(
    "name",
    {"type": "string", "pattern": f"^{ACCOUNT_NAME.pattern}$", "maxLength": 64},
    required=True,
)
TOKEN_ID = Param("tokenId", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}, required=True)
ACCOUNT_BODY: JsonObject = {
    "type": "object",
    "properties": {
        "role": {"enum": list(ROLES), "description": "required for a new account"},
        "password": {
            "type": "string",
            "minLength": MIN_PASSWORD,
            "maxLength": 200,
            "description": "the dashboard sign-in password (stored hashed); an account "
            "without one uses API tokens only",
        },
    },
    "additionalProperties": False,
}
TOKEN_BODY: JsonObject = {
    "type": "object",
    "properties": {
        "label": {
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "pattern": NO_NUL,
            "description": "what the token is for (e.g. billing export)",
        }
    },
    "required": ["label"],
    "additionalProperties": False,
}
AUDIT_FILTERS = (
    Param("actor", {"type": "string", "maxLength": 64, "pattern": NO_NUL}),
    Param("chargePointId", CP_ID_SCHEMA),
    Param("action", {"type": "string", "maxLength": 100, "pattern": NO_NUL}),
    Param("failed", {"type": "boolean"}, "true: refused or failed actions only"),
    *date_range(),
)


def account_json(record: AccountRecord) -> JsonObject:
    return {
        "name": record.name,
        "role": record.role,
        "hasPassword": record.password_hash is not None,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
    }


def token_json(record: TokenRecord) -> JsonObject:
    return {
        "id": record.id,
        "label": record.label,
        "createdAt": iso(record.created_at),
        "lastUsedAt": iso(record.last_used_at),
    }


def audit_json(row: Row) -> JsonObject:
    return {
        "id": row["id"],
        "at": iso(row["at"]),
        "actor": row["actor"],
        "role": row["role"],
        "via": row["via"],
        "action": row["action"],
        "chargePointId": row["charge_point_id"],
        "target": row["target"],
        "request": row["request"],
        "status": row["status"],
        "outcome": row["outcome"],
    }


def me_json(who: Principal) -> JsonObject:
    return {"name": who.name, "role": who.role, "account": who.account}


class AccountsApi:
    def __init__(self, operations: Operations) -> None:
        self.operations = operations

    async def me(self, request: Request) -> JsonObject:
        assert request.who is not None
        return me_json(request.who)

    async def list_accounts(self, request: Request) -> JsonObject:
        records = await self.operations.accounts.list_all()
        return {"items": [account_json(r) for r in records], "total": len(records)}

    async def _account(self, name: str) -> AccountRecord:
        record = await self.operations.accounts.get(name)
        if record is None:
            raise not_found(f"account {name!r} is not known")
        return record

    async def get_account(self, request: Request) -> JsonObject:
        return account_json(await self._account(request.path["name"]))

    async def put_account(self, request: Request) -> Status:
        name = request.path["name"]
        body = request.body
        accounts = self.operations.accounts
        if "role" not in body and await accounts.get(name) is None:
            raise bad_request(
                f"account {name!r} is new: give it a role ({', '.join(ROLES)})", path="role"
            )
        created = await accounts.put(name, role=body.get("role"), password=body.get("password"))
        return Status(201 if created else 200, account_json(await self._account(name)))

    async def delete_account(self, request: Request) -> Status:
        name = request.path["name"]
        if not await self.operations.accounts.remove(name):
            raise not_found(f"account {name!r} is not known")
        return Status(204)

    async def end_sessions(self, request: Request) -> JsonObject:
        record = await self._account(request.path["name"])
        ended = await self.operations.accounts.end_account_sessions(record.name)
        return {"ended": ended}

    async def list_tokens(self, request: Request) -> JsonObject:
        record = await self._account(request.path["name"])
        tokens = await self.operations.accounts.tokens(record.name)
        return {"items": [token_json(t) for t in tokens], "total": len(tokens)}

    async def create_token(self, request: Request) -> Status:
        name = request.path["name"]
        try:
            record, value = await self.operations.accounts.create_token(name, request.body["label"])
        except LookupError:
            raise not_found(f"account {name!r} is not known") from None
        return Status(201, token_json(record) | {"token": value})

    async def revoke_token(self, request: Request) -> Status:
        name, token_id = request.path["name"], request.path["tokenId"]
        if not await self.operations.accounts.revoke_token(name, token_id):
            raise not_found(f"account {name!r} has no token {token_id}")
        return Status(204)

    async def audit(self, request: Request) -> JsonObject:
        q = request.query
        filters = AuditFilter(
            actor=q.get("actor"),
            charge_point_id=q.get("chargePointId"),
            action=q.get("action"),
            start=q.get("from"),
            end=q.get("to"),
            failed=q.get("failed"),
        )
        page = await self.operations.audit.page(
            filters, limit=q.get("limit", 100), offset=q.get("offset", 0)
        )
        return page_json(page, audit_json, q)


def _list_schema(item: str) -> JsonObject:
    return {
        "type": "object",
        "properties": {"items": {"type": "array", "items": ref(item)}, "total": INTEGER},
        "required": ["items", "total"],
    }


def operations(api: AccountsApi) -> Sequence[Operation]:
    accounts = f"{PREFIX}/accounts"
    one = f"{accounts}/{{name}}"
    guarded = (*AUTH_ANSWERS, FORBIDDEN)
    ops: list[Operation] = [
        Operation(
            "GET",
            f"{PREFIX}/me",
            "getMe",
            "Who the token (or the dashboard session) belongs to, and its role",
            api.me,
            "accounts",
            answers=(Answer(200, "the caller", ref("Me")), *AUTH_ANSWERS),
        ),
        Operation(
            "GET",
            accounts,
            "listAccounts",
            "List operator accounts",
            api.list_accounts,
            "accounts",
            role="admin",
            answers=(Answer(200, "every account", _list_schema("Account")), *guarded),
        ),
        Operation(
            "GET",
            one,
            "getAccount",
            "An operator account",
            api.get_account,
            "accounts",
            path_params=(NAME,),
            role="admin",
            own_account=True,
            answers=(Answer(200, "the account", ref("Account")), *guarded, MISSING),
        ),
        Operation(
            "PUT",
            one,
            "putAccount",
            "Create an operator account (role required) or change its role or password",
            api.put_account,
            "accounts",
            path_params=(NAME,),
            body=ACCOUNT_BODY,
            role="admin",
            answers=(
                Answer(200, "updated", ref("Account")),
                Answer(201, "created", ref("Account")),
                BAD,
                *guarded,
            ),
        ),
        Operation(
            "DELETE",
            one,
            "deleteAccount",
            "Remove an operator account; its sessions and tokens end with it",
            api.delete_account,
            "accounts",
            path_params=(NAME,),
            role="admin",
            answers=(Answer(204, "removed"), *guarded, MISSING),
        ),
        Operation(
            "DELETE",
            f"{one}/sessions",
            "endAccountSessions",
            "Sign the account out of the dashboard everywhere",
            api.end_sessions,
            "accounts",
            path_params=(NAME,),
            role="admin",
            own_account=True,
            answers=(
                Answer(
                    200,
                    "how many sessions ended",
                    {"type": "object", "properties": {"ended": INTEGER}, "required": ["ended"]},
                ),
                *guarded,
                MISSING,
            ),
        ),
        Operation(
            "GET",
            f"{one}/tokens",
            "listApiTokens",
            "The account's API tokens (never their values)",
            api.list_tokens,
            "accounts",
            path_params=(NAME,),
            role="admin",
            own_account=True,
            answers=(Answer(200, "its tokens", _list_schema("ApiToken")), *guarded, MISSING),
        ),
        Operation(
            "POST",
            f"{one}/tokens",
            "createApiToken",
            "Make an API token carrying the account's role; its value is shown this once",
            api.create_token,
            "accounts",
            path_params=(NAME,),
            body=TOKEN_BODY,
            role="admin",
            own_account=True,
            answers=(Answer(201, "made", ref("NewApiToken")), BAD, *guarded, MISSING),
        ),
        Operation(
            "DELETE",
            f"{one}/tokens/{{tokenId}}",
            "revokeApiToken",
            "Revoke an API token",
            api.revoke_token,
            "accounts",
            path_params=(NAME, TOKEN_ID),
            role="admin",
            own_account=True,
            answers=(Answer(204, "revoked"), *guarded, MISSING),
        ),
        Operation(
            "GET",
            f"{PREFIX}/audit",
            "listAudit",
            "The audit log of operator actions, newest first",
            api.audit,
            "audit",
            query=(*AUDIT_FILTERS, *PAGING),
            answers=(
                Answer(200, "one page of results", page_schema("AuditEntry")),
                BAD,
                *AUTH_ANSWERS,
            ),
        ),
    ]
    for op in ops:
        if (op.path_params or op.query) and all(a.status != 400 for a in op.answers):
            op.answers = (*op.answers, BAD)
    return ops


def with_forbidden(ops: Sequence[Operation]) -> Sequence[Operation]:
    """``ops`` with a 403 answer documented on each that needs more than the viewer role."""
    for op in ops:
        if op.role != "viewer" and all(a.status != 403 for a in op.answers):
            op.answers = (*op.answers, FORBIDDEN)
            for variant in op.variants:
                variant.answers = (*variant.answers, FORBIDDEN)
    return ops
