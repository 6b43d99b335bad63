"""The charging domain: what a Central System does with what chargers say.

It knows no WebSockets and no SQL text: the transport and the RPC endpoint call the entry
points below, and everything durable goes through ``voltaro.store``.

Entry points (all on :class:`CentralSystem`, valid once :meth:`CentralSystem.run` has
reported started; call from trio code inside ``trio_asyncio.open_loop()``):

``system = CentralSystem(settings)``; ``await nursery.start(system.run)``
    Starts the store (embedded PostgreSQL when ``settings.database_url`` is None),
    migrations, the group-commit writer, the id tag cache and housekeeping; runs until
    cancelled. Or: ``async with open_central_system(settings) as system: ...``.

``await system.admit(charge_point_id, password, address) -> Admission``
    At the WebSocket handshake. ``password`` is the Basic-auth password, or None when the
    request had none; ``address`` the client's (failed logins are throttled per id and per
    address). ``admission.accepted``; ``admission.http_status`` (None, 404 unknown charge
    point under policy ``reject``, 401 missing/wrong password, 429 throttled, 503 too many
    passwords waiting to be checked) with ``admission.retry_after``; ``admission.lenient``
    for the schema validator. May raise ``StoreUnavailable`` (answer 503).

``system.handlers(charge_point_id) -> Mapping[action, async (payload) -> payload]``
    The charger-initiated Core Profile actions bound to the charge point. Each returns the
    CALLRESULT payload after its data is committed; raises ``OcppError`` to answer a
    CALLERROR (invalid dates: PropertyConstraintViolation; a transaction or id tag message
    from a charge point that is not Accepted: SecurityError; a database outage:
    InternalError); anything else means InternalError with the traceback logged.

``await system.connected(charge_point_id)`` / ``await system.disconnected(charge_point_id,
reason)``
    Presence, once per connection (counted, so a replacing connection keeps the charger
    online). ``system.seen(charge_point_id)``: a frame or a pong arrived (the handlers call
    it themselves for every CALL).

``system.log_frame(charge_point_id, "in" | "out", message_id, action, payload,
error_code=None)``
    Non-blocking; the frame goes into the message log with the next batch.

``system.events``
    The event bus (``voltaro.central.events``): connects, disconnects, boots, status
    changes, transactions, meter values and CALLERRORs, published after their commit.

``system.count_deviation(charge_point_id, deviation)``
    A deviation lenient mode let through: counted per charge point (memory and database)
    and logged.
"""

from voltaro.central.admission import Admission, AdmissionDecision
from voltaro.central.datatransfer import DataTransferRegistry, VendorHandler
from voltaro.central.system import CentralSystem, open_central_system

__all__ = [
    "Admission",
    "AdmissionDecision",
    "CentralSystem",
    "DataTransferRegistry",
    "VendorHandler",
    "open_central_system",
]
