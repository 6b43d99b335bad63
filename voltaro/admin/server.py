"""The admin HTTP server: a Quart-trio app served by Hypercorn's trio worker in Voltaro's
own nursery (see ``voltaro.app.start_voltaro``).

Routes outside ``/api/v1`` (see ``voltaro.admin.api`` for those):

- ``GET /healthz``: liveness and database reachability, no token;
- ``GET /metrics``: Prometheus text format; no token unless ``VOLTARO_METRICS_TOKEN`` sets
  one of its own (else bind the admin port to loopback or a private network);
- ``GET /api/v1/openapi.json``: the OpenAPI 3.1 document (a token, or a dashboard session);
- ``GET /api/docs``: a self-contained page rendering that document (no token: it holds no
  data; it loads the document with the dashboard's session when there is one, and asks for
  a token otherwise);
- ``/`` and the other dashboard pages, ``/events`` and ``/static/``: the operator dashboard
  (``voltaro.admin.dashboard``; signed in with an account's password or the admin token,
  the session kept server-side).

Every other ``/api/`` route needs ``Authorization: Bearer <token>``: the admin token, or an
account's API token (``voltaro.admin.gate``), and the role the route declares. Every error
is ``application/problem+json`` (RFC 9457).
"""

from __future__ import annotations

import hmac
import logging
from importlib import resources
from typing import Any

import orjson
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from voltaro.admin import accounts_api
from voltaro.admin import api as admin_api
from voltaro.admin.accounts_api import ACCOUNT_SCHEMAS, AccountsApi, with_forbidden
from voltaro.admin.api import PREFIX, AdminApi, Csv, Status, all_schemas, ocpp_components
from voltaro.admin.dashboard import mount_dashboard
from voltaro.admin.gate import Gate, unauthorized
from voltaro.admin.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from voltaro.admin.metrics import VoltaroMetrics
from voltaro.admin.spec import (
    PROBLEM_MEDIA_TYPE,
    Operation,
    Problem,
    Request,
    bad_request,
    openapi_document,
)
from voltaro.admin.stats import STATS_SCHEMAS, StatsApi, stats_operations
from voltaro.admin.token import admin_token
from voltaro.central.operations import Operations
from voltaro.client_address import parse_networks
from voltaro.config import CannotStart, Settings
from voltaro.store import StoreError
from voltaro.transport.server import leaf_exceptions
from voltaro.urls import reachable

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # bytes; an OCPP payload is at most a few kB
HEALTH_TIMEOUT = 2.0  # seconds for the database check of /healthz
VERSION = "1"


def json_response(body: Any, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status=status, content_type=media_type)


def problem_response(problem: Problem) -> Response:
    response = json_response(
        problem.document(request.path if request else None), problem.status, PROBLEM_MEDIA_TYPE
    )
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def create_app(
    operations: Operations, metrics: VoltaroMetrics, settings: Settings, token: str
) -> QuartTrio:
    app = QuartTrio("voltaro.admin")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    api = AdminApi(operations)
    ops = with_forbidden(
        [
            *admin_api.operations(api),
            *accounts_api.operations(AccountsApi(operations)),
            *stats_operations(StatsApi(operations)),
        ]
    )
    schemas = all_schemas(operations) | ACCOUNT_SCHEMAS | STATS_SCHEMAS
    schemas |= ocpp_components(operations.commands)
    document = openapi_document(
        ops,
        title="Voltaro admin API",
        version=VERSION,
        components={"schemas": schemas},
    )
    gate = Gate(operations, token)

    def check_bearer(expected: bytes) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            raise unauthorized("missing Authorization: Bearer <token> header")
        if scheme.lower() != "bearer" or not given.strip():
            raise unauthorized("the Authorization header must be Bearer <token>")
        if not hmac.compare_digest(given.strip().encode(), expected):
            raise unauthorized("wrong bearer token")

    async def read_body(op: Operation) -> Any:
        if op.body is None and not op.variants:
            return None
        data = await request.get_data(as_text=False)
        if not data.strip():
            raise bad_request("a JSON object body is required")
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise bad_request(f"the body is not valid JSON: {error}") from None
        return op.validate_body(body)

    def endpoint_for(op: Operation) -> Any:
        async def endpoint(**path: str) -> Response:
            who = await gate.bearer()
            values = op.validate_path(path)
            query = op.validate_query(request.args.to_dict(flat=False))
            body = await read_body(op)
            result = await gate.perform(op, Request(values, query, body), who, "api")
            if isinstance(result, Csv):
                response = Response(result.text, status=200, content_type="text/csv; charset=utf-8")
                response.headers["Content-Disposition"] = (
                    f'attachment; filename="{result.filename}"'
                )
                return response
            if isinstance(result, Status):
                if result.body is None:
                    return Response(b"", status=result.status)
                return json_response(result.body, result.status)
            return json_response(result)

        endpoint.__name__ = op.operation_id
        return endpoint

    @app.before_request
    async def read_whole_body() -> None:
        # Read every request's body before any check can answer early: a body left unread
        # on a keep-alive connection stalls the next request on it (Hypercorn, h11).
        await request.get_data(cache=True)

    for op in ops:
        app.add_url_rule(op.quart_rule, op.operation_id, endpoint_for(op), methods=[op.method])
    proxies = parse_networks(settings.trusted_proxies)
    dashboard = mount_dashboard(app, operations, api, ops, gate, token, proxies)

    @app.get(f"{PREFIX}/openapi.json")
    async def openapi_json() -> Response:
        if "Authorization" in request.headers or await dashboard.signed_in() is None:
            await gate.bearer()
        return json_response(document)

    @app.get("/api/docs")
    async def docs() -> Response:
        page = resources.files("voltaro.admin").joinpath("docs.html").read_text(encoding="utf-8")
        return Response(page, content_type="text/html; charset=utf-8")

    @app.get("/healthz")
    async def healthz() -> Response:
        try:
            with trio.fail_after(HEALTH_TIMEOUT):
                await operations.ping()
        except (StoreError, trio.TooSlowError) as error:
            raise Problem(503, "Service Unavailable", f"database unreachable: {error}") from None
        return json_response({"status": "ok", "database": "ok"})

    metrics_token = settings.metrics_token
    metrics_token_bytes = None if metrics_token is None else metrics_token.encode()

    @app.get("/metrics")
    async def metrics_page() -> Response:
        if metrics_token_bytes is not None:  # a token of its own: no admin rights with it
            check_bearer(metrics_token_bytes)
        return Response(await metrics.render(), content_type=METRICS_CONTENT_TYPE)

    @app.errorhandler(Problem)
    async def on_problem(problem: Problem) -> Response:
        return problem_response(problem)

    @app.errorhandler(HTTPException)
    async def on_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        detail = {
            404: f"no route {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the body is larger than {MAX_BODY} bytes",
        }.get(status, error.description or "")
        problem = Problem(status, error.name, detail)
        response = problem_response(problem)
        if status == 413:  # the rest of the body is still on its way: do not reuse the stream
            response.headers["Connection"] = "close"
        if status == 405:
            allowed = getattr(error, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(StoreError)
    async def on_store_error(error: StoreError) -> Response:
        log.warning("admin API: %s %s: %s", request.method, request.path, error)
        return problem_response(
            Problem(503, "Service Unavailable", "the database is unavailable; try again")
        )

    @app.errorhandler(Exception)
    async def on_error(error: Exception) -> Response:
        log.exception("admin API: %s %s failed", request.method, request.path)
        return problem_response(
            Problem(500, "Internal Server Error", "the request could not be processed")
        )

    return app


async def run_admin_server(
    operations: Operations,
    metrics: VoltaroMetrics,
    settings: Settings,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the admin API until cancelled; reports ``http://host:port`` once listening."""
    token = admin_token(settings.admin_token, settings.data_dir)
    app = create_app(operations, metrics, settings, token.value)
    config = Config()
    host = settings.admin_host
    config.bind = [
        f"[{host}]:{settings.admin_port}" if ":" in host else f"{host}:{settings.admin_port}"
    ]
    config.accesslog = None
    config.errorlog = logging.getLogger("voltaro.admin.hypercorn")
    config.graceful_timeout = 1.0
    shutdown = trio.Event()

    async def started(
        *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await serve(app, config, shutdown_trigger=shutdown.wait, task_status=task_status)

    async with trio.open_nursery() as nursery:
        listening = False
        try:
            binds: list[str] = await nursery.start(started)
            listening = True
        except* OSError as failed:
            reason = leaf_exceptions(failed)[0]
            where = config.bind[0]
            raise CannotStart(f"cannot listen for the admin API on {where}: {reason}") from None
        finally:
            if not listening:
                token.discard()
        token.announce()
        url = binds[0] if binds else f"http://{host}:{settings.admin_port}"
        log.info("admin API on %s (docs: %s/api/docs; dashboard: %s/)", url, url, url)
        log.info("%s", token.usage(reachable(url)))
        task_status.started(url)
