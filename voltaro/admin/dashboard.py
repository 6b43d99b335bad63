"""The operator dashboard: server-rendered pages at ``/`` on the admin app, kept live by
server-sent events (``/events``) fed from the central system's event bus.

Sign-in is with an operator account's name and password, or with the admin token (the
bootstrap admin). The session lives in the database (``operator_sessions``: revocable, by
signing out everywhere or by an admin); the cookie (HttpOnly, SameSite=Strict, signed with a
key derived from the admin token) carries only its random id and the CSRF token. Every POST
needs that CSRF token (form field ``csrf`` or header ``X-CSRF-Token``) and, when the browser
sends one, a same-origin ``Origin``. Every action goes through the API's own operations and
:meth:`voltaro.admin.gate.Gate.perform` (role check, audit record): the dashboard adds no
second path, and no second set of rules.

What the feature profiles declare is rendered by generic pages: each :class:`Listing` is a
page ``/{name}`` (``listing.html``: its filters as a form, its items as a table, a link in
the navigation), and a profile's charge point facts are a section of the charge point's page
(scalars as key and value, lists of objects as tables; ``connectorNotes`` in the connectors'
rows).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson
import trio
from quart import Response, flash, g, redirect, render_template, request, session
from quart_trio import QuartTrio

from voltaro.admin import commands
from voltaro.admin.api import (
    CHARGE_POINT_SORTING,
    ID_TAG_SORTING,
    ID_TAG_STATUSES,
    MESSAGE_SORTING,
    REFUSED_ID_TAG_SORTING,
    STATUS_HISTORY_SORTING,
    TRANSACTION_SORTING,
    AdminApi,
    Sorting,
    charge_point_json,
    listing_operation_id,
    transaction_json,
)
from voltaro.admin.chart import (
    energy_per_day_chart,
    online_chart,
    sessions_per_hour_chart,
    transaction_chart,
)
from voltaro.admin.dashboard_admin import Pages, mount_management_pages
from voltaro.admin.gate import Gate
from voltaro.admin.listing import PAGE_SIZES, ListView, input_time, utc_from_input
from voltaro.admin.spec import Operation, Problem, Request
from voltaro.admin.stats import StatsApi
from voltaro.central.accounts import BOOTSTRAP, Principal, Role
from voltaro.central.domain_events import DomainEvent, MeterValuesReceived, event_json
from voltaro.central.operations import Operations
from voltaro.central.profile import CONNECTOR_NOTES, Listing
from voltaro.central.sign_in import SignIn
from voltaro.client_address import Network, client_address
from voltaro.ocppj.dialect import OCPP16
from voltaro.store.dashboard_queries import DashboardQueries
from voltaro.store.refused_id_tags import REASONS

log = logging.getLogger(__name__)

SESSION_LIFETIME = timedelta(hours=12)
ASSET_MAX_AGE = timedelta(days=7)  # assets are linked with ?v=<content hash>
KEEPALIVE = 15.0  # seconds between SSE comments, so proxies keep the stream open
ENCODED_EVENTS = 512  # events kept encoded for the streams still to send them (> a buffer)
RECENT_MESSAGES = 15  # OCPP frames shown on a charge point's page
PAGE_SIZE = 100  # rows of a profile's listing per page
STATUS_HISTORY_SHOWN = 10  # newest status changes on a charge point's page
# The overview is rendered again for every live update (up to ~4 a second per open tab):
# its charts' numbers are read at most this often; they change every few minutes anyway.
CHARTS_MAX_AGE = 30.0  # seconds
ACCEPTED_HINT = (
    "; a charger that was Pending reports its connectors at its next boot (its page can ask"
    " for one now)"
)
FEED_ON_OPEN = 50  # events in the overview's feed when it opens (new ones come live)
REFUSED_ON_ID_TAGS = 10  # refused tags shown under the id tags (all: /id-tags/refused)
DATE_FILTERS = ("dateField", "from", "to")  # of a list with several times (the API's Dates)

View = Callable[..., Awaitable[Any]]


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site (no scheme, no host, nothing a Location header
    cannot carry), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if not target.isprintable():  # control characters, line breaks
        return default
    parts = urlsplit(target)
    return default if parts.scheme or parts.netloc else target


def int_arg(name: str) -> int:
    """A non-negative whole-number query parameter (0 when absent or not a number)."""
    try:
        return max(0, int(request.args.get(name, "0") or 0))
    except ValueError:
        return 0


def display_time(value: str | None) -> str:
    if not value:
        return "—"
    return value.replace("T", " ").split(".")[0].removesuffix("Z") + " UTC"


def energy_kwh(wh: float | None) -> str:
    if wh is None:
        return "—"
    return f"{wh / 1000:,.2f} kWh"


def frame_kind(message: Mapping[str, Any]) -> str:
    """CALL, result or error, from the direction and who may send the action (the message
    log keeps no frame type). DataTransfer goes both ways: "" (unknown)."""
    if message.get("errorCode"):
        return "error"
    action = message.get("action")
    by_charger = action in OCPP16.charge_point_initiated
    by_us = action in OCPP16.central_system_initiated
    if by_charger == by_us:
        return ""
    calls = "in" if by_charger else "out"
    return "call" if message.get("direction") == calls else "result"


def humanize(name: str) -> str:
    """A camelCase key as a heading: ``activeReservations`` -> ``Active reservations``."""
    words = re.sub(r"(?<=[a-z0-9])([A-Z])", r" \1", name).lower()
    return words[:1].upper() + words[1:]


def heading(name: str, schema: Mapping[str, Any] | None) -> str:
    """A column's or a fact's heading: its schema's ``title``, else its name humanized."""
    title = (schema or {}).get("title")
    return str(title) if title else humanize(name)


@dataclass(frozen=True)
class FactSection:
    """A list of objects among a charge point's facts, shown as a table."""

    title: str
    items: list[dict[str, Any]]
    columns: list[tuple[str, dict[str, Any]]]  # (key, its schema)


def fact_sections(
    facts: Mapping[str, Any], schemas: Mapping[str, Any]
) -> tuple[list[tuple[str, str, Any, dict[str, Any]]], list[FactSection]]:
    """The profiles' facts as the charge point page shows them: scalars (and objects) as
    ``(key, heading, value, schema)``, lists as tables whose columns are the item schema's
    properties (else the first item's keys). A fact that is None is left out."""
    scalars: list[tuple[str, str, Any, dict[str, Any]]] = []
    tables: list[FactSection] = []
    for key, value in facts.items():
        schema = dict(schemas.get(key) or {})
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            properties = dict((schema.get("items") or {}).get("properties") or {})
            if not properties and value:
                properties = {name: {} for name in value[0]}
            tables.append(FactSection(heading(key, schema), value, list(properties.items())))
        elif value is not None:  # nothing known: nothing to show
            scalars.append((key, heading(key, schema), value, schema))
    return scalars, tables


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def asset_versions() -> dict[str, str]:
    folder = resources.files("voltaro.admin").joinpath("static")
    return {
        entry.name: hashlib.sha256(entry.read_bytes()).hexdigest()[:12]
        for entry in folder.iterdir()
        if entry.is_file()
    }


class DashboardSessions:
    """The dashboard's signed-in operator, for the admin app's other routes (the API's
    OpenAPI document is served to a signed-in browser without a token)."""

    def __init__(self, operations: Operations) -> None:
        self._operations = operations

    async def signed_in(self) -> Principal | None:
        """Who this request's session cookie belongs to; None when signed out, expired or
        revoked."""
        session_id = session.get("sid")
        if not isinstance(session_id, str) or not session_id:
            return None
        return await self._operations.accounts.session(session_id)


def mount_dashboard(
    app: QuartTrio,
    operations: Operations,
    api: AdminApi,
    ops: Sequence[Operation],
    gate: Gate,
    token: str,
    proxies: Sequence[Network] = (),
) -> DashboardSessions:
    """Add the dashboard's pages, actions, event stream and assets to the admin app;
    ``proxies``: those whose ``X-Forwarded-For`` names the client (``VOLTARO_TRUSTED_PROXIES``)."""
    app.secret_key = hmac.new(token.encode(), b"voltaro dashboard session", "sha256").hexdigest()
    app.config.update(
        SESSION_COOKIE_NAME="voltaro_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        SEND_FILE_MAX_AGE_DEFAULT=ASSET_MAX_AGE,
    )
    app.jinja_env.globals["input_time"] = input_time  # for macros, imported without context
    by_id = {op.operation_id: op for op in ops}
    versions = asset_versions()
    bus = operations.events
    # The overview's feed as it opens: the latest events it shows live, which leaves out
    # meter values (several a minute per charging connector, they would be all of it).
    feed: deque[DomainEvent] = deque(maxlen=FEED_ON_OPEN)
    bus.add_listener(lambda e: None if isinstance(e, MeterValuesReceived) else feed.append(e))
    sessions = DashboardSessions(operations)
    stats = StatsApi(operations)
    charts_cache: dict[int, tuple[float, dict[str, Any]]] = {}

    def queries() -> DashboardQueries:
        return operations.dashboard_queries

    def who() -> Principal:
        """The signed-in operator of this request (set by :func:`page`)."""
        principal: Principal = g.who
        return principal

    async def perform(operation_id: str, path: dict[str, Any], body: Any = None) -> Any:
        """Run an API operation for the signed-in operator: its validation, its role check,
        its audit record."""
        op = by_id[operation_id]
        values = op.validate_path(path)
        if body is not None:
            body = op.validate_body(body)
        return await gate.perform(op, Request(values, {}, body), who(), "dashboard")

    def may(role: Role) -> bool:
        principal: Principal | None = g.get("who")
        return principal is not None and principal.may(role)

    def check_origin() -> None:
        """Refuse a POST that the browser says comes from another site."""
        origin = request.headers.get("Origin")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != request.host):
            raise Problem(403, "Forbidden", "cross-origin request refused")

    async def check_csrf_token() -> None:
        check_origin()
        form = await request.form
        given = request.headers.get("X-CSRF-Token") or form.get("csrf") or ""
        expected = session.get("csrf") or ""
        if not (expected and hmac.compare_digest(str(given), str(expected))):
            raise Problem(403, "Forbidden", "missing or wrong CSRF token; reload the page")

    def page(view: View) -> View:
        """A signed-in page (GET) or action (POST, CSRF-checked)."""

        @wraps(view)
        async def wrapper(**kwargs: Any) -> Any:
            g.who = await sessions.signed_in()
            if g.who is None:
                wants_json = request.headers.get("Accept", "").startswith("application/json")
                if request.path == "/events" or wants_json:
                    raise Problem(401, "Unauthorized", "sign in first")
                target = request.full_path.rstrip("?") if request.method == "GET" else "/"
                return redirect("/login?" + urlencode({"next": target}))
            if request.method == "POST":
                await check_csrf_token()
            return await view(**kwargs)

        wrapper.__name__ = f"dashboard_{view.__name__}"  # apart from the API's endpoints
        return wrapper

    def list_view(
        operation_id: str, names: Sequence[str], sorting: Sorting
    ) -> tuple[ListView, dict[str, Any]]:
        """The list page's view (its query parameters ``names`` plus ``q``, ``sort`` and
        ``order``) and the API query for its page, checked by the API operation's own
        validation (a ``datetime-local`` ``from``/``to`` is taken as UTC). A bad value is
        answered 400 naming it, as the API answers."""
        view = ListView.from_request(
            request.path,
            request.args,
            [*names, "q", "sort", "order"],
            sort=sorting.default,
            order="desc" if sorting.descending else "asc",
        )
        operation = by_id[operation_id]
        known = {param.name for param in operation.query}
        raw = {
            name: [(utc_from_input(value) or value) if name in ("from", "to") else value]
            for name, value in view.args.items()
            if name in known  # the page's own (e.g. presence) are the handler's to map
        }
        query = operation.validate_query(raw)
        return view, query | {"limit": view.limit, "offset": view.offset}

    def validated_query(operation_id: str, fields: Sequence[str]) -> dict[str, Any]:
        """A profile listing's filters, checked by the API operation's own validation."""
        raw = {name: [request.args[name]] for name in fields if request.args.get(name, "")}
        return by_id[operation_id].validate_query(raw)

    async def try_action(action: Callable[[], Awaitable[Any]], done: str) -> None:
        try:
            await action()
        except Problem as problem:
            await flash(problem.detail, "error")
        else:
            await flash(done, "ok")

    @app.context_processor
    async def template_globals() -> dict[str, Any]:
        principal: Principal | None = g.get("who")
        return {
            "csrf_token": session.get("csrf", ""),
            "signed_in": principal is not None,
            "who": principal,
            "may": may,
            "asset": lambda name: f"/static/{name}?v={versions.get(name, '0')}",
            "display_time": display_time,
            "energy_kwh": energy_kwh,
            "pretty_json": pretty_json,
            "frame_kind": frame_kind,
            "heading": heading,
            "listings": operations.listings,
            "page_sizes": PAGE_SIZES,
        }

    @app.after_request
    async def page_headers(response: Response) -> Response:
        if response.content_type.startswith("text/html") and not request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "frame-ancestors 'none'; form-action 'self'",
            )
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    # ---- sign-in -------------------------------------------------------------------------

    @app.get("/login")
    async def dashboard_login_form() -> Any:
        if await sessions.signed_in() is not None:
            return redirect(local_path(request.args.get("next")))
        return await render_template("login.html", next=request.args.get("next", "/"))

    def remote_address() -> str | None:
        """The client's address, through a trusted proxy's X-Forwarded-For."""
        forwarded = request.headers.getlist("X-Forwarded-For")
        return client_address(request.remote_addr, forwarded, proxies)

    async def sign_in_as(form: Mapping[str, str]) -> tuple[SignIn, str]:
        """What the form's credentials prove (throttled: :mod:`voltaro.central.sign_in`),
        and the name they were given as (for the audit log)."""
        address = remote_address()
        given = (form.get("token") or "").strip()
        if given:
            matches = hmac.compare_digest(given.encode(), token.encode())
            return await operations.sign_ins.with_token(matches, address), BOOTSTRAP.name
        name = (form.get("name") or "").strip()
        password = form.get("password") or ""
        if not name or not password:
            return SignIn(None, "Give an account's name and password, or the admin token."), ""
        return await operations.sign_ins.with_password(name, password, address), name

    async def audit_sign_in(attempt: SignIn, name: str) -> None:
        """Record every sign-in but those refused during a block after its first refusal
        (a guesser hammering a blocked account would otherwise write a row per request)."""
        address = remote_address()
        outcome: dict[str, Any]
        if attempt.principal is not None:
            outcome = {"effect": "signed in"}
            who = attempt.principal
            await gate.record_sign_in(who.name, who.role, address, 200, outcome)
        elif attempt.retry_after:
            if attempt.first_refusal:
                outcome = {"detail": attempt.why, "retryAfter": attempt.retry_after}
                await gate.record_sign_in(name, "none", address, 429, outcome)
        elif name:
            outcome = {"detail": attempt.why, "blocked": attempt.blocked_now}
            await gate.record_sign_in(name, "none", address, 401, outcome)

    @app.post("/login")
    async def dashboard_login() -> Any:
        check_origin()
        form = await request.form
        target = local_path(form.get("next"))
        attempt, name = await sign_in_as(form)
        await audit_sign_in(attempt, name)
        principal = attempt.principal
        if principal is None:
            status = 429 if attempt.retry_after else 401
            if request.headers.get("Accept", "").startswith("application/json"):
                title = "Too Many Requests" if attempt.retry_after else "Unauthorized"
                problem = Problem(status, title, attempt.why)
                if attempt.retry_after:
                    problem.headers["Retry-After"] = str(attempt.retry_after)
                raise problem
            if not attempt.retry_after:
                await trio.sleep(0.2)  # a little friction for guessing
            body = await render_template(
                "login.html", next=target, error=attempt.why, name=form.get("name", "")
            )
            response = Response(body, status=status, content_type="text/html; charset=utf-8")
            if attempt.retry_after:
                response.headers["Retry-After"] = str(attempt.retry_after)
            return response
        session.clear()
        session.permanent = True
        session["sid"] = await operations.accounts.start_session(principal, SESSION_LIFETIME)
        session["csrf"] = secrets.token_urlsafe(24)
        log.info("operator %s (%s) signed in to the dashboard", principal.name, principal.role)
        return redirect(target)

    @app.post("/logout")
    @page
    async def logout() -> Any:
        await operations.accounts.end_session(session["sid"])
        session.clear()
        return redirect("/login")

    @app.post("/logout-everywhere")
    @page
    async def logout_everywhere() -> Any:
        ended = await operations.accounts.end_sessions(who())
        log.info("operator %s signed out of %d dashboard sessions", who().name, ended)
        session.clear()
        return redirect("/login")

    # ---- pages ---------------------------------------------------------------------------

    @app.get("/")
    @page
    async def overview() -> Any:
        now = datetime.now(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        summary = await queries().overview(day, day.replace(day=1))
        session_hours = 24 * 7 if request.args.get("sessions") == "7d" else 24
        return await render_template(
            "overview.html",
            summary=summary,
            faulted=summary.faulted,
            charging=summary.charging,
            events=[event_json(event) for event in reversed(feed)],
            charts=await overview_charts(session_hours),
            session_hours=session_hours,
        )

    async def overview_charts(session_hours: int) -> dict[str, Any]:
        """The overview's charts and their numbers, read at most every CHARTS_MAX_AGE."""
        cached = charts_cache.get(session_hours)
        if cached is not None and cached[0] > trio.current_time():
            return cached[1]
        now = datetime.now(UTC)
        energy = await stats.energy_per_day(Request({}, {"days": 30}, None))
        online = await stats.online(Request({}, {"hours": 24}, None))
        sessions = await stats.sessions_per_hour(Request({}, {"hours": session_hours}, None))
        charts = {
            "energy": energy_per_day_chart(energy["items"], "Energy per day, last 30 days"),
            "energy_days": list(reversed(energy["items"])),
            "online": online_chart(online, now),
            "online_latest": online["items"][-1] if online["items"] else None,
            "sessions": sessions_per_hour_chart(sessions["items"]),
            "sessions_total": sum(h["sessions"] for h in sessions["items"]),
        }
        charts_cache[session_hours] = (trio.current_time() + CHARTS_MAX_AGE, charts)
        return charts

    @app.get("/charge-points")
    @page
    async def charge_points() -> Any:
        presence = request.args.get("presence", "")
        online = {"online": True, "offline": False}.get(presence)
        view, query = list_view(
            "listChargePoints",
            ["registrationStatus", "presence", *DATE_FILTERS],
            CHARGE_POINT_SORTING,
        )
        if online is not None:  # the page's word for the API's ``online``
            query["online"] = online
        listed = await api.list_charge_points(Request({}, query, None))
        return await render_template(
            "charge_points.html",
            items=listed["items"],
            connectors=await connectors_of(listed["items"]),
            view=view.showing(listed),
            back=request.full_path,
            presence=presence,
            registration=view.args.get("registrationStatus", ""),
        )

    async def connectors_of(items: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        connectors: dict[str, list[dict[str, Any]]] = {}
        for row in await queries().connectors([cp["chargePointId"] for cp in items]):
            connectors.setdefault(row["charge_point_id"], []).append(row)
        return connectors

    @app.get("/charge-points/<charge_point_id>/row")
    @page
    async def charge_point_row(charge_point_id: str) -> Any:
        """One charge point's row of the list, for a live update of that row alone (its
        row and connectors: two short reads, not the detail page's)."""
        row = await operations.queries.charge_point(charge_point_id)
        if row is None:
            raise Problem(404, "Not Found", f"charge point {charge_point_id!r} is not known")
        cp = charge_point_json(row)
        return await render_template(
            "_cp_row.html",
            cp=cp,
            connectors=await connectors_of([cp]),
            back=local_path(request.args.get("back"), "/charge-points"),
        )

    @app.post("/charge-points/<charge_point_id>/registration")
    @page
    async def set_registration(charge_point_id: str) -> Any:
        form = await request.form
        status = form.get("registrationStatus", "")
        await try_action(
            lambda: perform(
                "putChargePoint", {"chargePointId": charge_point_id}, {"registrationStatus": status}
            ),
            f"{charge_point_id}: registration {status}"
            + (ACCEPTED_HINT if status == "Accepted" else ""),
        )
        return redirect(local_path(form.get("next"), "/charge-points"))

    async def charge_point_page(charge_point_id: str, answer: Any = None) -> str:
        detail, facts = await api.charge_point_detail(charge_point_id)
        notes: dict[str, str] = facts.pop(CONNECTOR_NOTES, {})
        shown = {str(c["connectorId"]) for c in detail["connectors"]}
        path = {"chargePointId": charge_point_id}
        recent = await api.messages(Request(path, {"limit": RECENT_MESSAGES}, None))
        history = await api.status_history(
            Request(path, {"limit": STATUS_HISTORY_SHOWN, "offset": 0}, None)
        )
        energy = await stats.charge_point_energy(charge_point_id, 30)
        return await render_template(
            "charge_point.html",
            cp=detail,
            messages=recent["items"],
            commands=list(operations.commands),
            confirm_of={c.action: c.confirm for c in operations.commands if c.confirm},
            answer=answer,
            facts=fact_sections(facts, operations.facts_schema),
            notes=notes,
            other_notes={k: v for k, v in notes.items() if k not in shown},
            history=history,
            use={
                "week": await stats.utilisation(charge_point_id, 7),
                "month": await stats.utilisation(charge_point_id, 30),
                "energy": energy_per_day_chart(energy, "Energy per day, last 30 days"),
                "energy_total_wh": sum(d["energyWh"] for d in energy),
                "sessions": sum(d["sessions"] for d in energy),
            },
        )

    @app.get("/charge-points/<charge_point_id>")
    @page
    async def charge_point(charge_point_id: str) -> Any:
        return await charge_point_page(charge_point_id)

    @app.post("/charge-points/<charge_point_id>/commands/<action>")
    @page
    async def command(charge_point_id: str, action: str) -> Any:
        form = await request.form
        wants_json = request.headers.get("Accept", "").startswith("application/json")
        try:
            payload = commands.command_payload(operations, action, dict(form))
            answer: dict[str, Any] = await perform(
                "command", {"chargePointId": charge_point_id, "action": action}, payload
            )
        except Problem as problem:
            if wants_json:
                raise
            answer = {"action": action, "problem": problem.document(request.path)}
        else:
            if wants_json:
                return Response(orjson.dumps(answer), content_type="application/json")
            answer = {"action": action, **answer}
        return await charge_point_page(charge_point_id, answer)

    @app.get("/charge-points/<charge_point_id>/status-history")
    @page
    async def status_history(charge_point_id: str) -> Any:
        view, query = list_view("getStatusHistory", ["from", "to"], STATUS_HISTORY_SORTING)
        path = {"chargePointId": charge_point_id}
        listed = await api.status_history(Request(path, query, None))
        return await render_template(
            "status_history.html",
            charge_point_id=charge_point_id,
            history=listed["items"],
            view=view.showing(listed),
        )

    MESSAGE_FILTERS = ["action", "direction", "from", "to"]

    @app.get("/charge-points/<charge_point_id>/messages")
    @page
    async def message_log(charge_point_id: str) -> Any:
        view, query = list_view("getMessages", MESSAGE_FILTERS, MESSAGE_SORTING)
        path = {"chargePointId": charge_point_id}
        listed = await api.messages(Request(path, query, None))
        return await render_template(
            "messages.html",
            charge_point_id=charge_point_id,
            messages=listed["items"],
            view=view.showing(listed),
            tail_url=message_tail_url(charge_point_id, view),
        )

    def message_tail_url(charge_point_id: str, view: ListView) -> str | None:
        """Where a charger's message log page gets its new rows (the page adds ``from``, the
        newest time it shows), when new rows belong on it: its first page, newest first,
        without an end time. None: the page stays as it is."""
        newest_first = view.sort == "loggedAt" and view.order == "desc"
        if view.page != 0 or not newest_first or "to" in view.args:
            return None
        kept = {k: v for k, v in view.args.items() if k in ("action", "direction", "from", "q")}
        rows = f"/charge-points/{quote(charge_point_id, safe='')}/messages/rows"
        return rows + ("?" + urlencode(kept) if kept else "")

    @app.get("/charge-points/<charge_point_id>/messages/rows")
    @page
    async def message_rows(charge_point_id: str) -> Any:
        """The newest rows of a charger's message log (its page's filters, ``from`` the
        newest time the page shows, ``limit`` its size), for a live page to add at the top
        the ones it lacks: one indexed range read (message_log_cp), never the whole page."""
        _, query = list_view("getMessages", MESSAGE_FILTERS, MESSAGE_SORTING)
        listed = await api.messages(Request({"chargePointId": charge_point_id}, query, None))
        return await render_template("_message_rows.html", messages=listed["items"])

    @app.get("/messages")
    @page
    async def all_messages() -> Any:
        view, query = list_view(
            "listMessages", ["chargePointId", *MESSAGE_FILTERS], MESSAGE_SORTING
        )
        listed = await api.all_messages(Request({}, query, None))
        return await render_template(
            "messages.html",
            charge_point_id=None,
            messages=listed["items"],
            view=view.showing(listed),
            show_cp=True,
        )

    # ---- transactions --------------------------------------------------------------------

    TRANSACTION_FILTERS = ["chargePointId", "idTag", "active", "from", "to"]

    @app.get("/transactions")
    @page
    async def transactions() -> Any:
        view, query = list_view("listTransactions", TRANSACTION_FILTERS, TRANSACTION_SORTING)
        listed = await api.list_transactions(Request({}, query, None))
        filters = {k: v for k, v in view.args.items() if k not in ("sort", "order")}
        return await render_template(
            "transactions.html",
            listed=listed,
            view=view.showing(listed),
            csv_url="/transactions.csv" + ("?" + urlencode(filters) if filters else ""),
        )

    @app.get("/transactions/rows")
    @page
    async def transaction_rows() -> Any:
        """Some transactions' rows of the list (``?ids=1,2,3``, at most a page's), for the
        live update of those rows alone: one that stopped, or the running energies of those
        still active on the page, every few seconds in one request."""
        try:
            ids = [int(n) for n in request.args.get("ids", "").split(",") if n.strip()]
        except ValueError:
            raise Problem(400, "Bad Request", "ids: transaction ids, comma-separated") from None
        if not ids or len(ids) > max(PAGE_SIZES) or not all(0 <= n < 2**31 for n in ids):
            raise Problem(400, "Bad Request", f"ids: 1 to {max(PAGE_SIZES)} transaction ids")
        rows = await operations.queries.transactions_by_id(ids)
        return await render_template(
            "_tx_rows.html", transactions=[transaction_json(row) for row in rows]
        )

    @app.get("/transactions.csv")
    @page
    async def transactions_csv() -> Any:
        _, query = list_view("exportTransactions", TRANSACTION_FILTERS, TRANSACTION_SORTING)
        for name in ("sort", "order", "limit", "offset"):
            query.pop(name, None)
        result = await api.transactions_csv(Request({}, query, None))
        response = Response(result.text, content_type="text/csv; charset=utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="{result.filename}"'
        return response

    @app.get("/transactions/<int:transaction_id>")
    @page
    async def transaction(transaction_id: int) -> Any:
        detail = await api.get_transaction(Request({"transactionId": transaction_id}, {}, None))
        return await render_template("transaction.html", t=detail, chart=transaction_chart(detail))

    # ---- id tags -------------------------------------------------------------------------

    @app.get("/id-tags")
    @page
    async def id_tags() -> Any:
        view, query = list_view("listIdTags", ["status", *DATE_FILTERS], ID_TAG_SORTING)
        listed = await api.list_id_tags(Request({}, query, None))
        refused_view = ListView.from_request(
            "/id-tags/refused", {}, [], sort="lastSeen", order="desc"
        )
        refused_view.limit = REFUSED_ON_ID_TAGS
        refused = await api.refused_id_tags(Request({}, {"limit": REFUSED_ON_ID_TAGS}, None))
        return await render_template(
            "id_tags.html",
            listed=listed,
            view=view.showing(listed),
            refused=refused,
            refused_view=refused_view.showing(refused),
            reasons=REASONS,
            statuses=ID_TAG_STATUSES,
            status=view.args.get("status", ""),
            adding=request.args.get("add", "")[:20],
        )

    @app.get("/id-tags/refused")
    @page
    async def refused_id_tags() -> Any:
        view, query = list_view(
            "listRefusedIdTags", ["reason", "from", "to"], REFUSED_ID_TAG_SORTING
        )
        refused = await api.refused_id_tags(Request({}, query, None))
        return await render_template(
            "refused_id_tags.html",
            refused=refused,
            refused_view=view.showing(refused),
            reasons=REASONS,
        )

    async def put_id_tag(id_tag: str, body: dict[str, Any]) -> None:
        await perform("putIdTag", {"idTag": id_tag}, body)

    @app.post("/id-tags")
    @page
    async def add_id_tag() -> Any:
        form = await request.form
        id_tag = (form.get("idTag") or "").strip()
        body: dict[str, Any] = {"status": form.get("status") or "Accepted"}
        expiry = utc_from_input(form.get("expiryDate") or "")
        if expiry:
            body["expiryDate"] = expiry
        parent = (form.get("parentIdTag") or "").strip()
        if parent:
            body["parentIdTag"] = parent
        await try_action(lambda: put_id_tag(id_tag, body), f"id tag {id_tag} saved")
        return redirect("/id-tags")

    @app.post("/id-tags/<id_tag>/status")
    @page
    async def id_tag_status(id_tag: str) -> Any:
        form = await request.form
        status = form.get("status", "")

        async def change() -> None:
            current = await api.get_id_tag(Request({"idTag": id_tag}, {}, None))
            body = {k: current[k] for k in ("expiryDate", "parentIdTag") if current[k]}
            body["status"] = status
            if status == "Expired":
                body["expiryDate"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            await put_id_tag(current["idTag"], body)

        await try_action(change, f"id tag {id_tag}: {status}")
        return redirect("/id-tags")

    @app.post("/id-tags/<id_tag>/delete")
    @page
    async def delete_id_tag(id_tag: str) -> Any:
        await try_action(
            lambda: perform("deleteIdTag", {"idTag": id_tag}),
            f"id tag {id_tag} deleted",
        )
        return redirect("/id-tags")

    mount_management_pages(
        app, Pages(page=page, perform=perform, try_action=try_action, who=who), operations
    )

    # ---- the profiles' listings ----------------------------------------------------------

    def mount_listing(listing: Listing, op: Operation) -> None:
        names = [f.name for f in listing.filters]

        async def listing_page() -> Any:
            filters = validated_query(op.operation_id, names)
            offset = int_arg("offset")
            items, total = await operations.list_items(listing, filters, PAGE_SIZE, offset)
            args = {k: request.args[k] for k in names if request.args.get(k)}
            return await render_template(
                "listing.html",
                listing=listing,
                columns=list(listing.item_schema.get("properties", {}).items()),
                items=items,
                total=total,
                args=args,
                offset=offset,
                page_size=PAGE_SIZE,
            )

        path = f"/{listing.name}"
        if any(rule.rule == path for rule in app.url_map.iter_rules()):
            raise ValueError(f"listing {listing.name!r}: {path} is a dashboard page already")
        listing_page.__name__ = f"listing_{listing.name.replace('-', '_')}"
        app.add_url_rule(path, view_func=page(listing_page), methods=["GET"])

    for listing in operations.listings:
        mount_listing(listing, by_id[listing_operation_id(listing)])

    @app.get("/favicon.ico")
    async def favicon() -> Any:
        """For what asks the conventional place (a page without a link, a bookmark)."""
        return redirect(f"/static/favicon.svg?v={versions.get('favicon.svg', '0')}")

    # ---- live events ---------------------------------------------------------------------

    @app.get("/events")
    @page
    async def events() -> Any:
        """Server-sent events; ``?types=status,boot,...`` keeps only those kinds (a list page
        asks for the few that change its rows), ``?chargePointId=`` only that charger's (its
        pages: a fleet's events are not sent to a browser that would drop them). The stream
        ends when its session does (signed out elsewhere, revoked), checked at each
        keepalive."""
        session_id = str(session["sid"])  # the stream outlives the request's context
        wanted = frozenset(filter(None, request.args.get("types", "").split(","))) or None
        of_charger = request.args.get("chargePointId") or None

        def wants(event: DomainEvent) -> bool:
            if wanted is not None and event.kind not in wanted:
                return False
            return of_charger is None or event.charge_point_id == of_charger

        async def stream() -> AsyncIterator[bytes]:
            with bus.subscribe() as channel:
                yield b"retry: 1000\n\n"
                sent_at = trio.current_time()
                while True:
                    event = None
                    with trio.move_on_at(sent_at + KEEPALIVE):
                        try:
                            event = await channel.receive()
                        except (trio.EndOfChannel, trio.ClosedResourceError):
                            return  # dropped for lagging: the browser reconnects
                    if event is None:
                        if await operations.accounts.session(session_id) is None:
                            return  # signed out elsewhere, or revoked: stop streaming
                    elif not wants(event):
                        continue
                    sent_at = trio.current_time()
                    yield b": keepalive\n\n" if event is None else encoded(event)

        response = Response(stream(), content_type="text/event-stream")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"
        response.timeout = None
        return response

    encoded_events: dict[int, bytes] = {}

    def encoded(event: DomainEvent) -> bytes:
        """The event's SSE message, encoded once for all the streams that send it."""
        message = encoded_events.get(event.id)
        if message is None:
            message = b"data: " + orjson.dumps(event_json(event)) + b"\n\n"
            if len(encoded_events) >= ENCODED_EVENTS:
                del encoded_events[next(iter(encoded_events))]  # the oldest
            encoded_events[event.id] = message
        return message

    return sessions
