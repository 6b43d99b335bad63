"""The application core: what a Central System does with what chargers say and operators ask.

It knows no WebSockets, no HTTP and no SQL text: the transport hands it admitted connections,
the admin layer calls its operator facade, and everything durable goes through
``voltaro.store``. Where things live:

``system.py``       :class:`CentralSystem`: lifecycle (store, housekeeping), admission, the
                    rules every charger message is served by (Accepted-only, outages).
``sessions.py``     the session registry: the one record of live connections; builds each
                    charger's RPC endpoint and hooks (message log, presence, events).
``presence.py``     presence and last-seen as recorded in the database, per instance.
``profile.py``      the plug-in seam: what a feature profile declares.
``profile_tasks.py`` the profiles' background tasks, kept running (restarted when they fail).
``profiles/``       one module per OCPP feature profile: where a message is handled and
                    where a command's effect is applied (``profiles/core.py``: Core).
``commands.py``     operator commands: sent on the session, answers' effects applied,
                    outcomes as exceptions.
``operations.py``   :class:`Operations`: the narrow, typed face the admin layer uses.
``domain.py``       the services profiles work with (store, events, authorization, state).
``domain_events.py`` what happened, as frozen dataclasses; ``events.py`` the bus.
``accounts.py``, ``sign_in.py`` operator accounts; dashboard sign-in, throttled across
                    instances. ``retention.py``: how long operator records are kept.
``admission.py``, ``authorization.py``, ``metering.py``, ``timestamps.py``, ...: the rules.

Entry points (valid once :meth:`CentralSystem.run` has reported started; call from trio code
inside ``trio_asyncio.open_loop()``):

``system = CentralSystem(settings)``; ``await nursery.start(system.run)``
    Or ``async with open_central_system(settings) as system: ...``.

``await system.admit(charge_point_id, password, address) -> Admission``
    At the WebSocket handshake (``admission.http_status``: None, 404, 401, 429, 503;
    ``retry_after``; ``lenient``). May raise ``StoreUnavailable`` (answer 503).

``await system.sessions.serve(connection)``
    Serve one admitted connection until it ends.

``system.handlers(charge_point_id) -> Mapping[action, async (payload) -> payload]``
    Every profile's charger-initiated handlers bound to the charge point (what a session's
    endpoint serves; tests call them directly).

``Operations(system)``
    What an operator can see and do (:mod:`voltaro.central.operations`).

``system.events``
    The event bus: :mod:`voltaro.central.domain_events`, published after their commit.
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
