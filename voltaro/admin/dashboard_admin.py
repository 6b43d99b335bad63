"""The dashboard's management pages: charge points added, given a password and removed;
operator accounts with their tokens and sessions (admins); the audit log.

Every action is an API operation run through :meth:`voltaro.admin.gate.Gate.perform` (its
role, its audit record), so a page can offer only what the API allows, to whom it allows it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from quart import redirect, render_template, request, session
from quart_trio import QuartTrio

from voltaro.admin.accounts_api import audit_json
from voltaro.admin.api import REGISTRATION_STATUSES
from voltaro.admin.listing import utc_from_input
from voltaro.admin.spec import Problem, parse_datetime
from voltaro.central.accounts import ROLES, Principal
from voltaro.central.operations import Operations
from voltaro.store.audit import AuditFilter

AUDIT_PER_PAGE = 50
HANDOFFS = 100  # new tokens waiting to be shown (one per session that just made one)


@dataclass(frozen=True)
class Pages:
    """What the dashboard's core lends these pages (see :func:`voltaro.admin.dashboard`)."""

    page: Callable[[Any], Any]
    perform: Callable[..., Awaitable[Any]]
    try_action: Callable[[Callable[[], Awaitable[Any]], str], Awaitable[None]]
    who: Callable[[], Principal]


def _form_text(form: Any, name: str) -> str:
    return str(form.get(name) or "").strip()


def mount_management_pages(app: QuartTrio, pages: Pages, operations: Operations) -> None:
    page, perform, try_action, who = pages.page, pages.perform, pages.try_action, pages.who
    # A new token goes from the POST that made it to the page it redirects to, in memory,
    # once: never in a cookie, a flash message or a URL, and a reload does not make another.
    handoff: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def session_key() -> str:
        return str(session.get("sid", ""))

    # ---- charge points: add, password, remove -----------------------------------------

    @app.get("/add-charge-point")
    @page
    async def add_charge_point_form() -> Any:
        return await render_template("charge_point_add.html", statuses=REGISTRATION_STATUSES)

    @app.post("/add-charge-point")
    @page
    async def add_charge_point() -> Any:
        form = await request.form
        charge_point_id = _form_text(form, "chargePointId")
        body: dict[str, Any] = {"registrationStatus": form.get("registrationStatus", "Accepted")}
        password = form.get("password") or ""
        if password:
            body["password"] = password
        done = False

        async def add() -> None:
            nonlocal done
            await perform("putChargePoint", {"chargePointId": charge_point_id}, body)
            done = True

        await try_action(add, f"charge point {charge_point_id} saved")
        if done:
            return redirect(f"/charge-points/{_quoted(charge_point_id)}")
        return redirect("/add-charge-point")

    @app.post("/charge-points/<charge_point_id>/password")
    @page
    async def set_password(charge_point_id: str) -> Any:
        form = await request.form
        await try_action(
            lambda: perform(
                "putChargePoint",
                {"chargePointId": charge_point_id},
                {"password": form.get("password") or ""},
            ),
            f"{charge_point_id}: password set (the charger uses it at its next connection)",
        )
        return redirect(f"/charge-points/{_quoted(charge_point_id)}")

    @app.post("/charge-points/<charge_point_id>/delete")
    @page
    async def remove_charge_point(charge_point_id: str) -> Any:
        removed = False

        async def remove() -> None:
            nonlocal removed
            await perform("deleteChargePoint", {"chargePointId": charge_point_id})
            removed = True

        await try_action(remove, f"charge point {charge_point_id} removed")
        where = "/charge-points" if removed else f"/charge-points/{_quoted(charge_point_id)}"
        return redirect(where)

    # ---- accounts (admins; anyone for their own tokens) --------------------------------

    async def accounts_page(new_token: dict[str, Any] | None = None) -> Any:
        me = who()
        if me.may("admin"):
            listed = await perform("listAccounts", {})
            accounts = listed["items"]
        elif me.account is not None:
            accounts = [await perform("getAccount", {"name": me.account})]
        else:
            accounts = []
        tokens = {}
        for account in accounts:
            listed_tokens = await perform("listApiTokens", {"name": account["name"]})
            tokens[account["name"]] = listed_tokens["items"]
        return await render_template(
            "accounts.html",
            accounts=accounts,
            tokens=tokens,
            roles=ROLES,
            new_token=new_token,
        )

    @app.get("/accounts")
    @page
    async def accounts() -> Any:
        return await accounts_page(handoff.pop(session_key(), None))

    @app.post("/accounts")
    @page
    async def save_account() -> Any:
        form = await request.form
        name = _form_text(form, "name")
        body: dict[str, Any] = {}
        if form.get("role"):
            body["role"] = form["role"]
        if form.get("password"):
            body["password"] = form["password"]
        await try_action(
            lambda: perform("putAccount", {"name": name}, body), f"account {name} saved"
        )
        return redirect("/accounts")

    @app.post("/accounts/<name>/delete")
    @page
    async def delete_account(name: str) -> Any:
        await try_action(
            lambda: perform("deleteAccount", {"name": name}), f"account {name} removed"
        )
        return redirect("/accounts")

    @app.post("/accounts/<name>/sessions/delete")
    @page
    async def end_sessions(name: str) -> Any:
        async def end() -> None:
            await perform("endAccountSessions", {"name": name})

        await try_action(end, f"{name} is signed out everywhere")
        return redirect("/login" if name == who().account else "/accounts")

    @app.post("/accounts/<name>/tokens")
    @page
    async def create_token(name: str) -> Any:
        form = await request.form
        try:
            made = await perform(
                "createApiToken", {"name": name}, {"label": _form_text(form, "label")}
            )
        except Problem as problem:
            await try_action(_raise(problem), "")
            return redirect("/accounts")
        handoff[session_key()] = {"account": name, **made.body}
        while len(handoff) > HANDOFFS:
            handoff.popitem(last=False)
        return redirect("/accounts")

    @app.post("/accounts/<name>/tokens/<int:token_id>/delete")
    @page
    async def revoke_token(name: str, token_id: int) -> Any:
        await try_action(
            lambda: perform("revokeApiToken", {"name": name, "tokenId": token_id}),
            f"token {token_id} of {name} revoked",
        )
        return redirect("/accounts")

    # ---- the audit log ---------------------------------------------------------------

    @app.get("/audit")
    @page
    async def audit() -> Any:
        names = ("actor", "chargePointId", "action", "from", "to")
        raw = {name: [request.args[name]] for name in names if request.args.get(name, "")}
        try:
            page_number = max(0, int(request.args.get("page", "0") or 0))
        except ValueError:
            page_number = 0
        filters = _audit_filter(raw)
        listed = await operations.audit.page(
            filters, limit=AUDIT_PER_PAGE, offset=page_number * AUDIT_PER_PAGE
        )
        args = {k: v[0] for k, v in raw.items()}
        return await render_template(
            "audit.html",
            entries=[audit_json(row) for row in listed.items],
            total=listed.total,
            page_number=page_number,
            more=(page_number + 1) * AUDIT_PER_PAGE < listed.total,
            args=args,
            query=lambda **extra: urlencode({**args, **extra}),
        )


def _audit_filter(raw: dict[str, list[str]]) -> AuditFilter:
    def one(name: str) -> str | None:
        values = raw.get(name)
        return values[0][:255] if values else None

    def time(name: str) -> datetime | None:
        """A ``datetime-local`` input (UTC) or a date-time; a bad one is a 400 in the API's
        words."""
        values = raw.get(name)
        given = utc_from_input(values[0]) if values else None
        return None if given is None else parse_datetime(given, name)

    return AuditFilter(
        actor=one("actor"),
        charge_point_id=one("chargePointId"),
        action=one("action"),
        start=time("from"),
        end=time("to"),
    )


def _raise(problem: Problem) -> Callable[[], Awaitable[None]]:
    async def fail() -> None:
        raise problem

    return fail


def _quoted(charge_point_id: str) -> str:
    return quote(charge_point_id, safe="")
