"""Operator accounts over real HTTP: accounts and their API tokens, each role's boundary
(403 naming the role needed), role changes and removals taking effect at once, the
audit log of what operators did, dashboard sessions revoked, and ``voltaro account add``."""

from __future__ import annotations

import argparse
import io
import logging
import re
from typing import Any

import httpx
import pytest

from tests.admin.conftest import Live
from tests.admin.test_resources import assert_problem
from voltaro import cli_admin

PASSWORD = "correct horse battery"


def make_account(api: httpx.Client, name: str, role: str, password: str | None = None) -> str:
    """The account (made or changed) and a new API token of it."""
    body: dict[str, Any] = {"role": role}
    if password is not None:
        body["password"] = password
    response = api.put(f"/api/v1/accounts/{name}", json=body)
    assert response.status_code in (200, 201), response.text
    made = api.post(f"/api/v1/accounts/{name}/tokens", json={"label": "tests"})
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return token


def test_accounts_and_tokens_are_made_listed_and_revoked(live: Live, api: httpx.Client) -> None:
    created = api.put("/api/v1/accounts/ann", json={"role": "operator", "password": PASSWORD})
    assert created.status_code == 201
    assert created.json() | {"createdAt": None, "updatedAt": None} == {
        "name": "ann",
        "role": "operator",
        "hasPassword": True,
        "createdAt": None,
        "updatedAt": None,
    }
    assert PASSWORD not in created.text
    assert api.put("/api/v1/accounts/ann", json={"role": "viewer"}).status_code == 200
    assert api.get("/api/v1/accounts/ann").json()["role"] == "viewer"
    assert_problem(api.put("/api/v1/accounts/newbie", json={}), 400, "give it a role")
    assert_problem(api.put("/api/v1/accounts/-bad", json={"role": "viewer"}), 400, "name")
    assert_problem(
        api.put("/api/v1/accounts/ann", json={"role": "root"}), 400, "viewer", "operator", "admin"
    )
    assert_problem(api.put("/api/v1/accounts/ann", json={"password": "short"}), 400, "password")
    assert "ann" in [a["name"] for a in api.get("/api/v1/accounts").json()["items"]]

    made = api.post("/api/v1/accounts/ann/tokens", json={"label": "billing export"})
    assert made.status_code == 201
    token = made.json()["token"]
    assert token.startswith("vlt_") and len(token) > 40
    listed = api.get("/api/v1/accounts/ann/tokens").json()["items"]
    assert [t["label"] for t in listed] == ["billing export"]
    assert token not in str(listed)
    with live.client(token) as ann:
        me = ann.get("/api/v1/me").json()
        assert me == {"name": "ann", "role": "viewer", "account": "ann"}
    assert api.get("/api/v1/accounts/ann/tokens").json()["items"][0]["lastUsedAt"] is not None
    assert api.delete(f"/api/v1/accounts/ann/tokens/{made.json()['id']}").status_code == 204
    with live.client(token) as ann:
        assert_problem(ann.get("/api/v1/me"), 401, "wrong bearer token")
    assert_problem(api.delete(f"/api/v1/accounts/ann/tokens/{made.json()['id']}"), 404)
    assert_problem(api.post("/api/v1/accounts/nobody/tokens", json={"label": "x"}), 404)
    with live.client() as admin:
        assert admin.get("/api/v1/me").json() == {
            "name": "@admin-token",
            "role": "admin",
            "account": None,
        }


def test_each_role_is_held_to_its_boundary(live: Live, api: httpx.Client) -> None:
    tokens = {role: make_account(api, f"role-{role}", role) for role in ("viewer", "operator")}
    tokens["admin"] = make_account(api, "role-admin", "admin")
    assert api.put("/api/v1/charge-points/ROLE-CP", json={}).status_code in (200, 201)

    def call(role: str, method: str, path: str, body: Any = None) -> httpx.Response:
        with live.client(tokens[role]) as client:
            return client.request(method, path, json=body)

    reads = [
        "/api/v1/charge-points",
        "/api/v1/charge-points/ROLE-CP",
        "/api/v1/id-tags",
        "/api/v1/transactions",
        "/api/v1/audit",
        "/api/v1/openapi.json",
    ]
    for role in tokens:
        for path in reads:
            assert call(role, "GET", path).status_code == 200, (role, path)

    tag = ("PUT", "/api/v1/id-tags/ROLE-TAG", {"status": "Accepted"})
    reset = ("POST", "/api/v1/charge-points/ROLE-CP/commands/Reset", {"type": "Soft"})
    charge_point = ("PUT", "/api/v1/charge-points/ROLE-CP2", {})
    accounts = ("GET", "/api/v1/accounts", None)
    for action, needed in (
        (tag, "operator"),
        (reset, "operator"),
        (charge_point, "admin"),
        (accounts, "admin"),
    ):
        problem = assert_problem(
            call("viewer", *action),
            403,
            f"needs the role {needed}",
            "role-viewer has the role viewer",
        )
        assert problem["requiredRole"] == needed
    assert call("operator", *tag).status_code in (200, 201)
    assert_problem(call("operator", *reset), 409, "not connected")  # past the role check
    assert_problem(call("operator", *charge_point), 403, "needs the role admin")
    assert_problem(call("operator", *accounts), 403, "needs the role admin")
    assert call("operator", "DELETE", "/api/v1/id-tags/ROLE-TAG").status_code == 204
    assert call("admin", *charge_point).status_code == 201
    assert call("admin", *accounts).status_code == 200
    assert call("admin", "DELETE", "/api/v1/charge-points/ROLE-CP2").status_code == 204

    # An account manages its own tokens and sessions, and nobody else's.
    own = call("viewer", "POST", "/api/v1/accounts/role-viewer/tokens", {"label": "mine"})
    assert own.status_code == 201
    assert call("viewer", "GET", "/api/v1/accounts/role-viewer/tokens").status_code == 200
    assert call("viewer", "DELETE", "/api/v1/accounts/role-viewer/sessions").json() == {"ended": 0}
    assert_problem(
        call("viewer", "GET", "/api/v1/accounts/role-operator/tokens"), 403, "or to be that account"
    )
    assert_problem(
        call("operator", "POST", "/api/v1/accounts/role-admin/tokens", {"label": "steal"}), 403
    )
    assert_problem(call("viewer", "PUT", "/api/v1/accounts/role-viewer", {"role": "admin"}), 403)

    # A role change applies to the account's tokens at once; a removed account's are void.
    assert api.put("/api/v1/accounts/role-operator", json={"role": "viewer"}).status_code == 200
    assert_problem(call("operator", *tag), 403, "needs the role operator")
    assert api.delete("/api/v1/accounts/role-operator").status_code == 204
    assert_problem(call("operator", "GET", "/api/v1/charge-points"), 401, "wrong bearer token")


def test_every_action_is_audited_newest_first(
    live: Live, api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voltaro.audit")
    token = make_account(api, "auditor", "operator")
    with live.client(token) as client:
        assert client.put("/api/v1/id-tags/AUDIT-TAG", json={}).status_code == 201
        assert (
            client.put("/api/v1/id-tags/AUDIT-TAG", json={"status": "Blocked"}).status_code == 200
        )
        refused = client.post(
            "/api/v1/charge-points/AUDIT-NOPE/commands/ChangeConfiguration",
            json={"key": "AuthorizationKey", "value": "s3cret-key-value"},
        )
        assert refused.status_code == 404
        assert client.put("/api/v1/charge-points/AUDIT-CP", json={}).status_code == 403
    assert (
        api.put("/api/v1/charge-points/AUDIT-CP", json={"password": "cp-password-1"}).status_code
        == 201
    )

    page = api.get("/api/v1/audit", params={"limit": 3}).json()
    assert page["total"] >= 4 and len(page["items"]) == 3
    newest = page["items"][0]
    assert newest["actor"] == "@admin-token" and newest["via"] == "api"
    assert (newest["action"], newest["chargePointId"], newest["status"]) == (
        "putChargePoint",
        "AUDIT-CP",
        201,
    )
    assert newest["outcome"] == {"effect": "created"}
    assert newest["request"] == {"password": "(redacted)"}

    mine = api.get("/api/v1/audit", params={"actor": "auditor"}).json()["items"]
    assert [(e["action"], e["status"]) for e in mine] == [
        ("putChargePoint", 403),  # tried, not allowed: kept, and it never ran
        ("commandChangeConfiguration", 404),
        ("putIdTag", 200),
        ("putIdTag", 201),
    ]
    assert "needs the role admin" in mine[0]["outcome"]["detail"]
    mine = mine[1:]
    command = mine[0]
    assert command["chargePointId"] == "AUDIT-NOPE"
    assert command["request"] == {"key": "AuthorizationKey", "value": "(redacted)"}
    assert "not known" in command["outcome"]["detail"]
    assert mine[1]["target"] == "AUDIT-TAG" and mine[1]["outcome"] == {"effect": "updated"}
    assert mine[1]["request"] == {"status": "Blocked"} and mine[1]["role"] == "operator"
    by_cp = api.get("/api/v1/audit", params={"chargePointId": "AUDIT-NOPE"}).json()["items"]
    assert [e["action"] for e in by_cp] == ["commandChangeConfiguration"]
    failed = api.get("/api/v1/audit", params={"actor": "auditor", "failed": "true"}).json()
    assert failed["total"] == 2
    second = api.get("/api/v1/audit", params={"actor": "auditor", "limit": 1, "offset": 2})
    assert second.json()["items"][0]["status"] == 200
    assert_problem(api.get("/api/v1/audit", params={"from": "yesterday"}), 400, "from")

    lines = [r.getMessage() for r in caplog.records if r.name == "voltaro.audit"]
    assert any(
        line.startswith("operator auditor (operator, api): putIdTag AUDIT-TAG: updated")
        for line in lines
    ), lines
    assert any("commandChangeConfiguration on AUDIT-NOPE: refused (404)" in line for line in lines)
    assert not any("s3cret-key-value" in line or "cp-password-1" in line for line in lines)


def run_cli(live: Live, stdin: str, *argv: str, monkeypatch: pytest.MonkeyPatch) -> int:
    parser = argparse.ArgumentParser(prog="voltaro")
    cli_admin.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code: int = args.func(args, live.voltaro.settings)
    return code


def sign_in(live: Live, name: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=live.base, timeout=30)
    response = client.post("/login", data={"name": name, "password": password, "next": "/"})
    assert response.status_code == 302, response.text
    return client


def test_cli_account_add_then_sessions_are_revocable(
    live: Live,
    api: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ("account", "add", "first-admin", "--role", "admin", "--password", "-")
    assert run_cli(live, PASSWORD + "\n", *argv, monkeypatch=monkeypatch) == 0
    assert "added account first-admin (admin)" in capsys.readouterr().out
    assert run_cli(live, "", "account", "add", "nobody-yet", monkeypatch=monkeypatch) == 1
    assert "give it a --role" in capsys.readouterr().err
    assert run_cli(live, "short\n", *argv, monkeypatch=monkeypatch) == 1
    assert run_cli(live, "", "account", "list", monkeypatch=monkeypatch) == 0
    assert re.search(r"first-admin\s+admin\s+yes", capsys.readouterr().out)

    wrong = httpx.post(live.base + "/login", data={"name": "first-admin", "password": "nope1234"})
    assert wrong.status_code == 401 and "Wrong name or password." in wrong.text
    unknown = httpx.post(live.base + "/login", data={"name": "ghost", "password": PASSWORD})
    assert unknown.status_code == 401 and "Wrong name or password." in unknown.text

    laptop, phone = sign_in(live, "first-admin", PASSWORD), sign_in(live, "first-admin", PASSWORD)
    try:
        assert laptop.get("/accounts").status_code == 200
        assert phone.get("/").status_code == 200
        # The OpenAPI document is the signed-in browser's without a token (/api/docs).
        assert phone.get("/api/v1/openapi.json").status_code == 200
        ended = api.delete("/api/v1/accounts/first-admin/sessions")
        assert ended.json() == {"ended": 2}
        assert laptop.get("/accounts").status_code == 302
        assert phone.get("/api/v1/openapi.json").status_code == 401
    finally:
        laptop.close()
        phone.close()
    assert httpx.get(live.base + "/api/v1/openapi.json").status_code == 401
    assert run_cli(live, "", "account", "remove", "first-admin", monkeypatch=monkeypatch) == 0
    assert api.get("/api/v1/accounts/first-admin").status_code == 404
    by_cli = api.get("/api/v1/audit", params={"action": "putAccount"}).json()["items"]
    cli_entry = next(e for e in by_cli if e["target"] == "first-admin")
    assert cli_entry["actor"].startswith("cli") and cli_entry["via"] == "cli"
    assert cli_entry["request"] == {"role": "admin", "password": "(redacted)"}
    assert cli_entry["outcome"] == {"effect": "created"}
    removed = api.get("/api/v1/audit", params={"action": "deleteAccount"}).json()["items"]
    assert removed[0]["target"] == "first-admin" and removed[0]["via"] == "cli"


def test_every_operation_declares_its_role_in_the_document(api: httpx.Client) -> None:
    paths = api.get("/api/v1/openapi.json").json()["paths"]
    roles = {
        (method.upper(), path): op["x-required-role"]
        for path, item in paths.items()
        for method, op in item.items()
    }
    assert set(roles.values()) == {"viewer", "operator", "admin"}
    assert all(
        role == "viewer"
        for (method, path), role in roles.items()
        if method == "GET" and "/accounts" not in path
    )
    assert roles[("PUT", "/api/v1/charge-points/{chargePointId}")] == "admin"
    assert roles[("POST", "/api/v1/charge-points/{chargePointId}/commands/Reset")] == "operator"
    assert roles[("DELETE", "/api/v1/id-tags/{idTag}")] == "operator"
    assert roles[("POST", "/api/v1/accounts/{name}/tokens")] == "admin"
    for path, item in paths.items():
        for method, op in item.items():
            needed = op["x-required-role"]
            assert f"Requires the role {needed}" in op["description"], (method, path)
            assert ("403" in op["responses"]) == (needed != "viewer"), (method, path)
