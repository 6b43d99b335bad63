"""A simulated OCPP 1.6-J charge point that behaves like a real one.

It boots (and boots again at the given interval while the Central System answers Pending or
Rejected), reports the status of every connector, sends Heartbeats at the interval it was
given, and charges: Authorize -> StartTransaction -> MeterValues every
``MeterValueSampleInterval`` with the energy register rising at the session's power ->
StopTransaction, each step with its StatusNotification. It answers every Central-System
initiated call of the Core, Reservation, Local Auth List Management and Remote Trigger
profiles as a charger would, from a real configuration key store.

Transaction messages (StartTransaction, MeterValues of a transaction, StopTransaction) go
through a queue that survives the connection: while offline they wait, and after the next
accepted boot they are sent in order, each with a new message id, the transaction id the
Central System gave replacing the charger's local one. A transaction message answered with a
CALLERROR is retried ``TransactionMessageAttempts`` times. Connections that fail or drop are
retried with exponential back-off and jitter.

What a charger does after answering a call (a triggered message, the StatusNotification of a
reservation or an availability change, a remote start) starts once the answer has been sent
(:attr:`RpcHooks.on_handled`), never before it: the Central System always reads the
CALLRESULT first.

Authorization. A tag is authorized with Authorize, or without asking when
``LocalPreAuthorize`` is true and the local list (or the cache) holds it as Accepted. Offline,
with ``LocalAuthorizeOffline``, a tag the local list (or else the cache) holds as Accepted and
unexpired may charge, one it holds otherwise may not, and an unknown tag only with
``AllowOfflineTxForUnknownId``; the transaction messages wait in the queue.

Profiles a charger supports, per charger (:class:`ChargerOptions`): ``reservations`` (False:
every ReserveNow is Rejected, as a charger configured not to take reservations),
``reserve_connector_zero`` (the ``ReserveConnectorZeroSupported`` key), ``local_auth_list``
(False: SendLocalList NotSupported, GetLocalListVersion -1), the list's limits
``local_list_max_length`` and ``send_local_list_max_length`` (the ``LocalAuthListMaxLength`` and
``SendLocalListMaxLength`` keys), and ``trigger_messages`` (the messages TriggerMessage may ask
for; others are NotImplemented). ``SupportedFeatureProfiles`` says the same.

State other code and tests may read (plain attributes of :class:`SimulatedChargePoint`; change
them only through OCPP or the methods below):

- ``local_list``: the :class:`~voltaro.sim.local_list.LocalAuthList` (``version``, and
  ``entries``: id tag -> idTagInfo); ``auth_cache``: the Authorization Cache, likewise;
- ``reservations``: reservation id -> :class:`~voltaro.sim.reservations.Reservation`
  (``connector_id``, 0 for any connector, ``id_tag``, ``parent_id_tag``, ``expiry``);
- ``connectors``: connector id -> :class:`Connector` (``status``, ``fault``, ``session``);
- ``config``: the configuration keys; ``queue``: the transaction messages not yet answered.

Reservations (OCPP 1.6 section 5.13): ReserveNow answers Faulted, Unavailable or Occupied
after the connector (connector 0: after every connector, one must stay free for each
connector-0 reservation), Rejected for a connector that does not exist, for connector 0
without ``ReserveConnectorZeroSupported``, or an expiry already past; a reservation id the
charger holds is replaced. A reserved connector reports Reserved and refuses every tag but the
reserved one or one of the same parent id tag (looked up in the list or cache, else asked with
Authorize); the StartTransaction of the tag that uses it carries its ``reservationId`` and ends
it. It also ends at its ``expiryDate`` (wall-clock time, as the Central System reads it, not
compressed by the profile's time scale), by CancelReservation, or when its connector becomes
Unavailable or Faulted; the connector then reports what it is (Available, ...). A connector-0
reservation holds no connector in particular, but while no more connectors are free than
connector-0 reservations, the free ones admit only their tags and report Reserved (what OCA's
test case TC_049 expects), and Available when that ends. :meth:`SimulatedChargePoint.fault` and
:meth:`~SimulatedChargePoint.repair` break and mend a connector.

TriggerMessage (section 5.17): the connector id matters for MeterValues and StatusNotification
only (a connector that does not exist: Rejected; none: every connector, and for
StatusNotification the charger itself; 0: the charger itself, its meter the sum of the
connectors'); for other messages it is ignored, as the specification says. A triggered
MeterValues carries the running transaction's id, with context ``Trigger``. A triggered
BootNotification answered Accepted registers a Pending or Rejected charger then and there
(an operator who accepts a charger and asks for its boot sees it come up at once).

The charger speaks through :class:`voltaro.ocppj.endpoint.RpcEndpoint`, the same endpoint the
server uses: inbound CALLs are schema-checked and answered in order, and our CALLs wait for
their answer one at a time, as OCPP-J requires.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import random
import ssl
import time
import urllib.parse
from base64 import b64encode
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from voltaro.ocppj.dialect import OCPP16
from voltaro.ocppj.endpoint import (
    CallErrorReceived,
    CallFailed,
    CallTimeout,
    ChannelClosed,
    ConnectionLost,
    InvalidResponse,
    RpcEndpoint,
    RpcHooks,
)
from voltaro.ocppj.frames import Payload
from voltaro.ocppj.validation import SchemaRegistry
from voltaro.sim import reservations
from voltaro.sim.local_list import AuthorizationCache, LocalAuthList, usable
from voltaro.sim.profiles import Profile
from voltaro.sim.reservations import Reservation
from voltaro.sim.stats import FleetStats
from voltaro.transport.websocket import HandshakeFailed, WebSocket, open_client

log = logging.getLogger("voltaro.sim")

TRANSACTION_ACTIONS = frozenset({"StartTransaction", "MeterValues", "StopTransaction"})
# What a charger does while the server has not given an interval (Pending with interval 0).
DEFAULT_BOOT_RETRY = 30.0
# A connection attempt that failed (HandshakeFailed, a refused handshake, is counted apart).
CONNECT_FAILURES = (OSError, trio.TooSlowError, trio.BrokenResourceError, ChannelClosed)
# Every requestedMessage of TriggerMessage in OCPP 1.6.
TRIGGER_MESSAGES = frozenset(
    {
        "BootNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StatusNotification",
    }
)


class Offline(Exception):
    """There is no accepted connection to send on right now."""


@functools.cache
def client_tls(ca_file: str | None) -> ssl.SSLContext:
    """The TLS context of ``wss://`` connections: trusting ``ca_file`` (PEM), or the system's
    certificate authorities. One per process, whatever the number of chargers."""
    return ssl.create_default_context(cafile=ca_file)


async def connect_websocket(
    url: str,
    *,
    source_address: str | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    timeout: float = 30.0,
    tls: ssl.SSLContext | None = None,
) -> tuple[WebSocket, trio.SocketStream]:
    """Open a ``ws://`` or ``wss://`` connection (``tls``: default, the system's trust),
    from ``source_address`` when given (any of 127.0.0.0/8 works on Linux, so that many
    chargers do not share one address's ephemeral ports). Returns the WebSocket and the TCP
    stream under it, for its owner to close."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ValueError(f"the simulator connects to ws:// or wss:// URLs, not {url!r}")
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    with trio.fail_after(timeout):
        if source_address is None:
            stream: trio.SocketStream = await trio.open_tcp_stream(host, port)
        else:
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
            try:
                # the port is chosen at connect, per 4-tuple, not reserved by bind
                no_port = getattr(trio.socket, "IP_BIND_ADDRESS_NO_PORT", 24)
                with contextlib.suppress(OSError):
                    sock.setsockopt(trio.socket.IPPROTO_IP, no_port, 1)
                await sock.bind((source_address, 0))
                await sock.connect((host, port))
            except BaseException:
                sock.close()
                raise
            stream = trio.SocketStream(sock)
        try:
            secured: trio.abc.Stream = stream
            if parts.scheme == "wss":
                secured = trio.SSLStream(stream, tls or client_tls(None), server_hostname=host)
                await secured.do_handshake()
            websocket = await open_client(
                secured,
                f"{host}:{port}",
                resource,
                subprotocols=[OCPP16.subprotocol],
                extra_headers=extra_headers,
            )
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
    return websocket, stream


# -- configuration keys -------------------------------------------------------------------


@dataclass
class ConfigKey:
    value: str
    readonly: bool = False
    kind: str = "string"  # "int", "bool", "csl" (comma separated list) or "string"


def default_configuration(options: ChargerOptions) -> dict[str, ConfigKey]:
    """The configuration keys of a charger with ``options`` (its profiles' keys only when it
    supports them), in name order."""
    connectors, profile = options.connectors, options.profile
    heartbeat = profile.heartbeat_interval
    config = {
        "AllowOfflineTxForUnknownId": ConfigKey("false", kind="bool"),
        "AuthorizationCacheEnabled": ConfigKey("true", kind="bool"),
        "AuthorizeRemoteTxRequests": ConfigKey("false", kind="bool"),
        "ClockAlignedDataInterval": ConfigKey("0", kind="int"),
        "ConnectionTimeOut": ConfigKey("60", kind="int"),
        "ConnectorPhaseRotation": ConfigKey("NotApplicable", kind="csl"),
        "GetConfigurationMaxKeys": ConfigKey("64", readonly=True, kind="int"),
        "HeartbeatInterval": ConfigKey(str(int(heartbeat or 300)), kind="int"),
        "LocalAuthorizeOffline": ConfigKey("true", kind="bool"),
        "LocalPreAuthorize": ConfigKey("false", kind="bool"),
        "MeterValuesAlignedData": ConfigKey("Energy.Active.Import.Register", kind="csl"),
        "MeterValuesSampledData": ConfigKey(
            "Energy.Active.Import.Register,Power.Active.Import", kind="csl"
        ),
        "MeterValueSampleInterval": ConfigKey(str(int(profile.meter_interval)), kind="int"),
        "NumberOfConnectors": ConfigKey(str(connectors), readonly=True, kind="int"),
        "ResetRetries": ConfigKey("3", kind="int"),
        "StopTransactionOnEVSideDisconnect": ConfigKey("true", kind="bool"),
        "StopTransactionOnInvalidId": ConfigKey("true", kind="bool"),
        "StopTxnAlignedData": ConfigKey("", kind="csl"),
        "StopTxnSampledData": ConfigKey("Energy.Active.Import.Register", kind="csl"),
        "TransactionMessageAttempts": ConfigKey("3", kind="int"),
        "TransactionMessageRetryInterval": ConfigKey("10", kind="int"),
        "UnlockConnectorOnEVSideDisconnect": ConfigKey("true", kind="bool"),
        "WebSocketPingInterval": ConfigKey("0", kind="int"),
    }
    profiles = ["Core"]
    if options.local_auth_list:
        profiles.append("LocalAuthListManagement")
        config["LocalAuthListEnabled"] = ConfigKey("true", kind="bool")
        config["LocalAuthListMaxLength"] = ConfigKey(
            str(options.local_list_max_length), readonly=True, kind="int"
        )
        config["SendLocalListMaxLength"] = ConfigKey(
            str(options.send_local_list_max_length), readonly=True, kind="int"
        )
    if options.reservations:
        profiles.append("Reservation")
        config["ReserveConnectorZeroSupported"] = ConfigKey(
            "true" if options.reserve_connector_zero else "false", readonly=True, kind="bool"
        )
    if options.trigger_messages:
        profiles.append("RemoteTrigger")
    config["SupportedFeatureProfiles"] = ConfigKey(",".join(profiles), readonly=True, kind="csl")
    return dict(sorted(config.items()))


# -- state ----------------------------------------------------------------------------------


@dataclass
class Session:
    id_tag: str
    local_id: int
    power_w: float = 0.0
    stop_reason: str | None = None
    stopped: trio.Event = field(default_factory=trio.Event)
    done: trio.Event = field(default_factory=trio.Event)

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stopped.set()


@dataclass
class Connector:
    connector_id: int
    status: str = "Available"
    operative: bool = True
    scheduled_operative: bool | None = None
    energy_wh: float = 0.0
    session: Session | None = None
    busy: bool = False
    fault: str | None = None
    """The errorCode of the fault it has (see :meth:`SimulatedChargePoint.fault`)."""


@dataclass
class QueuedMessage:
    action: str
    payload: Payload
    local_id: int
    queued_offline: bool
    attempts: int = 0


@dataclass
class ChargerOptions:
    charge_point_id: str
    url: str
    """The Central System's base URL (``ws://host:port/ocpp``); the id is appended."""
    profile: Profile
    connectors: int = 2
    password: str | None = None
    id_tags: Sequence[str] = ()
    """Tags to charge with; empty means one tag per connector (``{id}-{n}`` shortened)."""
    source_address: str | None = None
    ca_file: str | None = None
    """For ``wss://``: the certificate authority to trust (PEM); None, the system's."""
    call_timeout: float = 30.0
    backoff_min: float = 1.0
    backoff_max: float = 60.0
    vendor: str = "Voltaro"
    model: str = "Simulator"
    seed: int | None = None
    reservations: bool = True
    """Takes reservations (False: every ReserveNow is answered Rejected)."""
    reserve_connector_zero: bool = True
    """``ReserveConnectorZeroSupported``: a reservation may be for any connector."""
    local_auth_list: bool = True
    """Supports Local Auth List Management (False: SendLocalList NotSupported,
    GetLocalListVersion -1)."""
    local_list_max_length: int = 1000
    """``LocalAuthListMaxLength``: the most tags the list may hold."""
    send_local_list_max_length: int = 100
    """``SendLocalListMaxLength``: the most entries one SendLocalList may carry."""
    trigger_messages: frozenset[str] = TRIGGER_MESSAGES
    """What TriggerMessage may ask for; other requested messages are NotImplemented."""


# The flood's other nine sampled values never change: built once, shared by every message
# (nothing downstream modifies a payload).
_FLOOD_VALUES: tuple[Payload, ...] = (
    {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
    {"value": "50.0", "measurand": "Frequency"},
    *({"value": "10.4", "measurand": "Current.Import", "phase": p} for p in ("L1", "L2", "L3")),
    *(
        {"value": "230.1", "measurand": "Voltage", "phase": p, "unit": "V"}
        for p in ("L1-N", "L2-N", "L3-N")
    ),
    {"value": "64", "measurand": "SoC", "unit": "Percent", "location": "EV"},
)


class _Clock:
    """UTC timestamps as OCPP text, millisecond precision. Formatting a datetime each time
    was 3% of a flooding simulator's CPU; the date and time part changes once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        milliseconds = int(time.time() * 1000)
        second, millisecond = divmod(milliseconds, 1000)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{millisecond:03d}Z"


_now = _Clock().now


def charger_url(base: str, charge_point_id: str) -> str:
    return base.rstrip("/") + "/" + urllib.parse.quote(charge_point_id, safe="")


class SimulatedChargePoint:
    """One simulated charger. ``await run()`` until cancelled."""

    def __init__(
        self, options: ChargerOptions, registry: SchemaRegistry, stats: FleetStats | None = None
    ) -> None:
        self.options = options
        self.id = options.charge_point_id
        self.profile = options.profile
        self.registry = registry
        self.stats = stats or FleetStats()
        self.random = random.Random(options.seed if options.seed is not None else self.id)
        self.config = default_configuration(options)
        self.connectors = {n: Connector(n) for n in range(1, options.connectors + 1)}
        self.status_zero = "Available"
        self.endpoint: RpcEndpoint | None = None
        self.registered = False
        self.ever_registered = False
        self.boots = 0
        self._boot_accepted = trio.Event()
        """Set by an Accepted answer to a BootNotification of this connection."""
        self.online = trio.Event()
        self.queue: deque[QueuedMessage] = deque()
        self._queue_changed = trio.Event()
        self._local_ids = itertools.count(1)
        self.transaction_ids: dict[int, int] = {}
        """local id -> the Central System's transactionId."""
        self._deauthorized: set[int] = set()
        self._config_changed = trio.Event()
        self._connection_scope: trio.CancelScope | None = None
        self._reconnect_now = False
        self._nursery: trio.Nursery | None = None
        self._network = trio.Event()
        self._network.set()
        self.answered: list[str] = []
        """Actions of the CALLs the Central System made to us, in order."""
        self.local_list = LocalAuthList()
        self.auth_cache = AuthorizationCache()
        self.reservations: dict[int, Reservation] = {}
        self._after_answer: list[Callable[[], Awaitable[None]]] = []
        """Work of the call being answered, to start once its answer is sent."""

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.stats.chargers += 1
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for connector in self.connectors.values():
                    nursery.start_soon(self._connector_life, connector)
                task_status.started()
                await self._connection_loop()
        finally:
            self.stats.chargers -= 1

    async def wait_registered(self) -> None:
        await self.online.wait()

    def disconnect(self) -> None:
        """Drop the connection now (as a network failure would); it is re-established with
        back-off."""
        if self._connection_scope is not None:
            self._connection_scope.cancel()

    def reconnect(self) -> None:
        """Drop the connection and connect again at once, without back-off (what a server
        restart or a network blip does to a whole fleet)."""
        self._reconnect_now = True
        self.disconnect()

    def network_down(self) -> None:
        """Lose the network: drop the connection and stay offline until :meth:`network_up`
        (sessions go on; their transaction messages queue up)."""
        if self._network.is_set():
            self._network = trio.Event()
        self.disconnect()

    def network_up(self) -> None:
        self._network.set()

    async def _connection_loop(self) -> None:
        window = self.profile.connect_window
        if window > 0:
            await trio.sleep(self.random.uniform(0, window))
        delay = self.options.backoff_min
        while True:
            self._reconnect_now = False
            await self._network.wait()
            try:
                await self._connection()
            except HandshakeFailed as error:
                self.stats.connect_failures += 1
                kind = f"handshake:{_handshake_reason(error)}"
                self.stats.protocol_errors[kind] += 1
                _log_refusal(self.id, error, self.stats.protocol_errors[kind])
            except CONNECT_FAILURES as error:
                self.stats.connect_failures += 1
                log.debug("%s: connect failed: %r", self.id, error)
            if self.ever_registered and self._registered_this_time:
                delay = self.options.backoff_min
            if self._reconnect_now:
                continue
            await trio.sleep(delay * self.random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.options.backoff_max)

    _registered_this_time = False

    async def _connection(self) -> None:
        self._registered_this_time = False
        headers = None
        if self.options.password is not None:
            token = b64encode(f"{self.id}:{self.options.password}".encode()).decode()
            headers = [(b"Authorization", f"Basic {token}".encode())]
        self.stats.connects += 1
        websocket, stream = await connect_websocket(
            charger_url(self.options.url, self.id),
            source_address=self.options.source_address,
            extra_headers=headers,
            timeout=self.options.call_timeout,
            tls=client_tls(self.options.ca_file),
        )
        try:
            await self._connected(websocket)
        finally:
            await trio.aclose_forcefully(stream)

    async def _connected(self, websocket: WebSocket) -> None:
        self.stats.connected += 1
        try:
            with trio.CancelScope() as scope:
                self._connection_scope = scope
                await self._talk(websocket)
        finally:
            self._connection_scope = None
            self.stats.connected -= 1
            if self.registered:
                self.stats.accepted -= 1
            self.registered = False
            self.endpoint = None
            if self.online.is_set():
                self.online = trio.Event()
            if trio.current_effective_deadline() != -math.inf:
                # not when cancelled from outside (the fleet stops): then the caller just
                # drops the TCP connection
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await websocket.aclose()
        self.stats.disconnects += 1

    async def _talk(self, websocket: WebSocket) -> None:
        self._after_answer = []  # what an answer cut off by the last connection would start
        endpoint = RpcEndpoint(
            websocket,
            self.registry,
            self._handlers(),
            name=f"sim:{self.id}",
            call_timeout=self.options.call_timeout,
            hooks=RpcHooks(on_handled=self._answered),
        )
        async with trio.open_nursery() as nursery:

            async def serve() -> None:
                await endpoint.serve()
                nursery.cancel_scope.cancel()

            nursery.start_soon(serve)
            self.endpoint = endpoint
            nursery.start_soon(self._guarded, self._after_connect, nursery)

    async def _guarded(self, work: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run a task of the connection; when the connection fails under it, drop it."""
        try:
            await work(*args)
        except (Offline, CallFailed):
            self.disconnect()

    async def _after_connect(self, nursery: trio.Nursery) -> None:
        await self._boot()
        self.registered = self._registered_this_time = self.ever_registered = True
        self.stats.accepted += 1
        await self._send_status(0, self.status_zero)
        for connector in self.connectors.values():
            await self._send_status(connector.connector_id, connector.status)
        self.online.set()
        nursery.start_soon(self._guarded, self._heartbeats)
        nursery.start_soon(self._guarded, self._send_queue)
        if self.profile.flood:
            nursery.start_soon(self._guarded, self._flood)

    async def _boot(self) -> None:
        """BootNotification until Accepted, every ``interval`` while Pending or Rejected. A
        BootNotification the Central System triggers meanwhile (TriggerMessage) and has
        answered Accepted ends the wait: the charger is registered by that answer."""
        self._boot_accepted = trio.Event()
        while True:
            answer = await self.call("BootNotification", self._boot_payload())
            self.boots += 1
            if self._take_boot_answer(answer):
                return
            interval = float(answer["interval"])
            with trio.move_on_after(self._real(interval if interval > 0 else DEFAULT_BOOT_RETRY)):
                await self._boot_accepted.wait()
            if self._boot_accepted.is_set():
                return

    def _take_boot_answer(self, answer: Payload) -> bool:
        """Apply a BootNotification's answer; True when it is Accepted."""
        if answer["status"] != "Accepted":
            return False
        interval = int(answer["interval"])
        if interval > 0 and self.profile.heartbeat_interval is None:
            self.config["HeartbeatInterval"].value = str(interval)
            self._changed_config()
        self._boot_accepted.set()
        return True

    def _boot_payload(self) -> Payload:
        return {
            "chargePointVendor": self.options.vendor,
            "chargePointModel": self.options.model,
            "chargePointSerialNumber": self.id[-25:],
            "firmwareVersion": "sim-1.0",
        }

    def _real(self, seconds: float) -> float:
        return self.profile.scaled(seconds)

    def _int_key(self, key: str) -> int:
        try:
            return int(self.config[key].value)
        except ValueError:
            return 0

    # -- calls ----------------------------------------------------------------------------

    async def call(self, action: str, payload: Payload) -> Payload:
        """Send a CALL; count its latency or its failure. Raises :class:`Offline` when there
        is no connection, :class:`CallFailed` when it failed."""
        endpoint = self.endpoint
        if endpoint is None:
            raise Offline
        started = time.perf_counter()
        try:
            answer = await endpoint.call(action, payload)
        except ConnectionLost:
            raise Offline from None
        except CallErrorReceived as error:
            self.stats.call_errors[f"{action}:{error.code}"] += 1
            log.warning("%s: %s", self.id, error)
            raise
        except CallTimeout:
            self.stats.protocol_errors[f"{action}:timeout"] += 1
            raise
        except InvalidResponse as error:
            self.stats.protocol_errors[f"{action}:invalid-response"] += 1
            log.warning("%s: %s", self.id, error)
            raise
        self.stats.record_latency(action, time.perf_counter() - started)
        return answer

    async def _send_status(self, connector_id: int, status: str) -> None:
        error = "NoError"
        if connector_id == 0:
            self.status_zero = status
        else:
            connector = self.connectors[connector_id]
            connector.status = status
            if status == "Faulted":
                error = connector.fault or "OtherError"
        if not self.registered:
            return  # every status is sent again after the next accepted boot
        payload = {
            "connectorId": connector_id,
            "errorCode": error,
            "status": status,
            "timestamp": _now(),
        }
        with contextlib.suppress(Offline, CallFailed):
            await self.call("StatusNotification", payload)

    async def _heartbeats(self) -> None:
        while True:
            interval = self._int_key("HeartbeatInterval")
            changed = self._config_changed
            wait = self._real(interval) if interval > 0 else math.inf
            with trio.move_on_after(wait) as timer:
                await changed.wait()
            if timer.cancelled_caught:
                await self.call("Heartbeat", {})

    def _changed_config(self) -> None:
        self._config_changed.set()
        self._config_changed = trio.Event()

    async def _flood(self) -> None:
        """Benchmark workload: MeterValues (ten sampled values) and Heartbeats back to back."""
        connector = self.connectors[1]
        for n in itertools.count():
            if n % 10 == 9:
                await self.call("Heartbeat", {})
            else:
                connector.energy_wh += 15.0
                await self.call(
                    "MeterValues",
                    {"connectorId": 1, "meterValue": [self._flood_sample(connector.energy_wh)]},
                )

    def _flood_sample(self, energy_wh: float) -> Payload:
        energy = {"value": f"{energy_wh:.0f}", "measurand": "Energy.Active.Import.Register"}
        return {"timestamp": _now(), "sampledValue": [energy, *_FLOOD_VALUES]}

    # -- transaction message queue ------------------------------------------------------------

    def _enqueue(self, action: str, payload: Payload, local_id: int) -> None:
        self.queue.append(QueuedMessage(action, payload, local_id, not self.registered))
        self._queue_changed.set()
        self._queue_changed = trio.Event()

    async def _send_queue(self) -> None:
        while True:
            while not self.queue:
                await self._queue_changed.wait()
            item = self.queue[0]
            payload = self._resolve(item)
            if payload is None:
                self.queue.popleft()
                continue
            try:
                answer = await self.call(item.action, payload)
            except (CallErrorReceived, CallTimeout, InvalidResponse):
                item.attempts += 1
                if item.attempts >= max(1, self._int_key("TransactionMessageAttempts")):
                    log.warning("%s: gave up on %s after %d attempts", self.id, item.action, 3)
                    self.queue.popleft()
                else:
                    retry = self._int_key("TransactionMessageRetryInterval") * item.attempts
                    await trio.sleep(self._real(retry))
                continue
            self.queue.popleft()
            if item.queued_offline:
                self.stats.queued_replayed += 1
            if item.action == "StartTransaction":
                self.transaction_ids[item.local_id] = int(answer["transactionId"])
                self._remember(payload["idTag"], answer["idTagInfo"])
                if answer["idTagInfo"]["status"] != "Accepted":
                    self._deauthorized.add(item.local_id)
                    for connector in self.connectors.values():
                        session = connector.session
                        if session is not None and session.local_id == item.local_id:
                            session.stop("DeAuthorized")

    def _resolve(self, item: QueuedMessage) -> Payload | None:
        if item.action == "StartTransaction":
            return item.payload
        transaction_id = self.transaction_ids.get(item.local_id)
        if transaction_id is None:
            # its StartTransaction was given up: nothing to attach this to
            log.warning("%s: dropped %s of a transaction never started", self.id, item.action)
            return None
        return {**item.payload, "transactionId": transaction_id}

    # -- sessions -------------------------------------------------------------------------

    async def _connector_life(self, connector: Connector) -> None:
        rate = self.profile.sessions_per_day
        if rate <= 0 or self.profile.flood:
            return
        # Start in the steady state: a connector is busy this share of the time, so as many
        # sessions are already under way when the fleet starts as there will be later.
        busy_share = min(1.0, rate * self.profile.session_seconds / 86_400.0)
        if self.random.random() < busy_share:
            await self.online.wait()
            meter_interval = max(self._int_key("MeterValueSampleInterval"), 1)
            await trio.sleep(self.random.uniform(0, self._real(meter_interval)))
            if not connector.busy and connector.status == "Available":
                await self.charge(connector.connector_id, self._tag_for(connector.connector_id))
        while True:
            gap = self.random.expovariate(rate / 86_400.0)
            await trio.sleep(self._real(gap))
            if not self.ever_registered or connector.busy or connector.status != "Available":
                continue  # a driver goes elsewhere when the connector is not free
            await self.charge(connector.connector_id, self._tag_for(connector.connector_id))

    def _tag_for(self, connector_id: int) -> str:
        if self.options.id_tags:
            return self.random.choice(list(self.options.id_tags))
        return default_id_tag(self.id, connector_id)

    async def charge(
        self,
        connector_id: int,
        id_tag: str,
        *,
        remote: bool = False,
        seconds: float | None = None,
    ) -> bool:
        """Run one charging session on a connector (``seconds`` of simulated time, default
        drawn from the profile). Returns False when it could not start: the connector is busy,
        faulted or unavailable, the tag is not authorized, or a reservation holds the
        connector (or the last free one) for another tag."""
        connector = self.connectors[connector_id]
        if connector.busy or connector.fault is not None or not connector.operative:
            return False
        connector.busy = True
        try:
            started = await self._charge(connector, id_tag, remote, seconds)
        finally:
            connector.busy = False
            connector.session = None
        await self._show_idle(0)  # this connector is free again: others may not be kept now
        return started

    async def _charge(
        self, connector: Connector, id_tag: str, remote: bool, seconds: float | None
    ) -> bool:
        number = connector.connector_id
        # At a reserved connector the tag is read before the connector is taken: a refused tag
        # leaves it Reserved (Preparing -> Reserved is no transition of section 4.9).
        if self._idle_status(connector) != "Reserved":
            await self._send_status(number, "Preparing")
        admitted, reservation = await self._admit(connector, id_tag, remote)
        if not admitted:
            self.stats.sessions_refused += 1
            idle = self._idle_status(connector)
            if connector.status != idle:
                await self._send_status(number, idle)
            return False
        if reservation is not None:
            self._end_reservation(reservation)  # used: now, before it could expire meanwhile
        if connector.status != "Preparing":
            await self._send_status(number, "Preparing")
        power_w = 1000 * self.random.uniform(*self.profile.power_kw)
        session = Session(id_tag, next(self._local_ids), power_w)
        connector.session = session
        meter_start = int(connector.energy_wh)
        start: Payload = {
            "connectorId": number,
            "idTag": id_tag,
            "meterStart": meter_start,
            "timestamp": _now(),
        }
        if reservation is not None:
            start["reservationId"] = reservation.reservation_id
        self._enqueue("StartTransaction", start, session.local_id)
        self.stats.sessions_started += 1
        await self._send_status(number, "Charging")
        await self._show_idle(0)  # one free connector fewer: others may be kept now
        if seconds is None:
            seconds = max(60.0, self.random.expovariate(1 / max(self.profile.session_seconds, 1)))
        deadline = trio.current_time() + self._real(seconds)
        last = next_sample = trio.current_time()
        while True:
            # samples on a fixed schedule: a slow answer does not push the next one later
            interval = self._int_key("MeterValueSampleInterval")
            next_sample = next_sample + self._real(interval) if interval > 0 else math.inf
            with trio.move_on_at(min(deadline, next_sample)):
                await session.stopped.wait()
            now = trio.current_time()
            # simulated hours times power: the register rises as fast as the session's power
            connector.energy_wh += power_w * (now - last) * self.profile.time_scale / 3600
            last = now
            if session.stopped.is_set() or now >= deadline:
                break
            self._enqueue(
                "MeterValues",
                {
                    "connectorId": number,
                    "transactionId": 0,
                    "meterValue": [self._sample(connector.energy_wh, power_w)],
                },
                session.local_id,
            )
        reason = session.stop_reason or "EVDisconnected"
        stop: Payload = {
            "transactionId": 0,
            "idTag": id_tag,
            "meterStop": int(connector.energy_wh),
            "timestamp": _now(),
        }
        if reason != "Local":
            stop["reason"] = reason
        self._enqueue("StopTransaction", stop, session.local_id)
        self.stats.sessions_completed += 1
        session.done.set()
        await self._send_status(number, "Finishing")
        if connector.scheduled_operative is not None:
            connector.operative = connector.scheduled_operative
            connector.scheduled_operative = None
        await self._send_status(number, self._idle_status(connector))
        return True

    # -- authorization --------------------------------------------------------------------

    async def _admit(
        self, connector: Connector, id_tag: str, remote: bool
    ) -> tuple[bool, Reservation | None]:
        """Whether ``id_tag`` may start on ``connector``, and the reservation it uses."""
        held = self._reservation_on(connector.connector_id)
        if held is not None and held.parent_id_tag is None and id_tag != held.id_tag:
            return False, None  # no answer about the tag could change that
        asked = not remote or self._flag("AuthorizeRemoteTxRequests")
        info = await self._authorize(id_tag) if asked else {"status": "Accepted"}
        if info is None:
            return False, None
        parent = info.get("parentIdTag") or self._parent_of(id_tag)
        if parent is None and not asked and reservations.needs_parent(self.reservations, id_tag):
            # a reservation for a parent: a tag's parent comes from the Central System
            info = await self._authorize(id_tag)
            if info is None:
                return False, None
            parent = info.get("parentIdTag")
        # read now: a reservation may have ended while the tag was being authorized
        return reservations.admission(self.reservations, self.connectors, connector, id_tag, parent)

    async def _authorize(self, id_tag: str) -> Payload | None:
        """The tag's idTagInfo when it may charge, else None."""
        local = self._local_info(id_tag)
        if self._flag("LocalPreAuthorize") and usable(local):
            return local
        try:
            answer = await self.call("Authorize", {"idTag": id_tag})
        except Offline:
            return self._offline_authorization(id_tag)
        except CallFailed:
            return None
        info: Payload = answer["idTagInfo"]
        self._remember(id_tag, info)
        return info if info["status"] == "Accepted" else None

    def _offline_authorization(self, id_tag: str) -> Payload | None:
        local = self._local_info(id_tag)
        if local is not None:
            return local if self._flag("LocalAuthorizeOffline") and usable(local) else None
        return {"status": "Accepted"} if self._flag("AllowOfflineTxForUnknownId") else None

    def _local_info(self, id_tag: str) -> Payload | None:
        """What the local list (it takes precedence) or else the cache holds of ``id_tag``."""
        if self._local_list_enabled():
            info = self.local_list.lookup(id_tag)
            if info is not None:
                return info
        if self._flag("AuthorizationCacheEnabled"):
            return self.auth_cache.lookup(id_tag)
        return None

    def _parent_of(self, id_tag: str) -> str | None:
        info = self._local_info(id_tag)
        return None if info is None else info.get("parentIdTag")

    def _remember(self, id_tag: str, info: Payload) -> None:
        """Keep the Central System's answer about a tag in the cache (not a listed tag's)."""
        listed = self._local_list_enabled() and self.local_list.lookup(id_tag) is not None
        if self._flag("AuthorizationCacheEnabled") and not listed:
            self.auth_cache.remember(id_tag, info)

    def _local_list_enabled(self) -> bool:
        return self.options.local_auth_list and self._flag("LocalAuthListEnabled")

    def _flag(self, key: str) -> bool:
        config = self.config.get(key)
        return config is not None and config.value == "true"

    # -- reservations ---------------------------------------------------------------------

    def _reservation_on(self, connector_id: int) -> Reservation | None:
        return reservations.held(self.reservations, connector_id)

    def _idle_status(self, connector: Connector) -> str:
        if connector.fault is not None:
            return "Faulted"
        if not connector.operative:
            return "Unavailable"
        if self._reservation_on(connector.connector_id) is not None:
            return "Reserved"
        if reservations.kept_for_anyone(self.reservations, self.connectors, connector):
            return "Reserved"
        return "Available"

    def _end_reservation(self, reservation: Reservation) -> None:
        """Forget a reservation (used, cancelled, replaced or expired); its connector's status
        is the caller's to report."""
        if self.reservations.get(reservation.reservation_id) is reservation:
            del self.reservations[reservation.reservation_id]
        if reservation.timer is not None:
            reservation.timer.cancel()

    async def _expire(self, reservation: Reservation) -> None:
        assert reservation.timer is not None
        with reservation.timer:
            await trio.sleep(max(0.0, reservation.seconds_left()))
        if reservation.timer.cancelled_caught:
            return  # it ended otherwise
        self._end_reservation(reservation)
        await self._show_idle(reservation.connector_id)

    async def _show_idle(self, connector_id: int) -> None:
        """Report an idle connector's status when it changed (a session reports its own);
        connector 0: every connector's (a connector-0 reservation, or a connector that is
        taken or freed, changes which connectors are kept for such reservations)."""
        if connector_id == 0:
            for number in self.connectors:
                await self._show_idle(number)
            return
        connector = self.connectors[connector_id]
        idle = self._idle_status(connector)
        if not connector.busy and connector.status != idle:
            await self._send_status(connector_id, idle)

    async def fault(self, connector_id: int, error_code: str = "GroundFailure") -> None:
        """Break a connector (``error_code``: a ChargePointErrorCode): it reports Faulted, its
        reservation ends, and a session on it stops (reason Other)."""
        connector = self.connectors[connector_id]
        connector.fault = error_code
        held = self._reservation_on(connector_id)
        if held is not None:
            self._end_reservation(held)
        if connector.session is not None:
            connector.session.stop("Other")  # the session reports Faulted as it ends
        elif not connector.busy:
            await self._send_status(connector_id, "Faulted")
        await self._show_idle(0)

    async def repair(self, connector_id: int) -> None:
        """Mend a connector broken by :meth:`fault`."""
        self.connectors[connector_id].fault = None
        await self._show_idle(0)

    def _sample(self, energy_wh: float, power_w: float) -> Payload:
        values: list[Payload] = []
        measurands = self.config["MeterValuesSampledData"].value.split(",")
        if not {"Energy.Active.Import.Register", "Power.Active.Import"} & set(measurands):
            # only these two are simulated, and a MeterValues needs at least one value
            measurands = ["Energy.Active.Import.Register"]
        for measurand in measurands:
            if measurand == "Energy.Active.Import.Register":
                values.append(
                    {
                        "value": str(int(energy_wh)),
                        "context": "Sample.Periodic",
                        "measurand": measurand,
                        "unit": "Wh",
                    }
                )
            elif measurand == "Power.Active.Import":
                jitter = power_w * self.random.uniform(0.97, 1.0)
                values.append(
                    {
                        "value": f"{jitter:.0f}",
                        "context": "Sample.Periodic",
                        "measurand": measurand,
                        "unit": "W",
                    }
                )
        return {"timestamp": _now(), "sampledValue": values}

    def session_of(self, transaction_id: int) -> Session | None:
        for connector in self.connectors.values():
            session = connector.session
            if session and self.transaction_ids.get(session.local_id) == transaction_id:
                return session
        return None

    def _later(self, work: Callable[[], Awaitable[None]]) -> None:
        """Do ``work`` once the answer to the CALL being handled has been sent (as a charger
        does: the Central System reads the answer before what follows from it)."""
        self._after_answer.append(work)

    def _answered(self, action: str, outcome: str, seconds: float) -> None:
        """The endpoint sent an answer (the endpoint answers one CALL at a time, so the work
        waiting is that CALL's): start its work, in the charger's nursery, so that work that
        reconnects (a Reset) does not cancel itself."""
        work, self._after_answer = self._after_answer, []
        assert self._nursery is not None
        for item in work:
            self._nursery.start_soon(self._run_later, item)

    async def _run_later(self, work: Callable[[], Awaitable[None]]) -> None:
        with contextlib.suppress(Offline, CallFailed):
            await work()

    # -- Central-System-initiated calls -------------------------------------------------------

    def _handlers(self) -> dict[str, Callable[[Payload], Awaitable[Payload]]]:
        handlers: dict[str, Callable[[Payload], Awaitable[Payload]]] = {
            "CancelReservation": self._cancel_reservation,
            "ChangeAvailability": self._change_availability,
            "ChangeConfiguration": self._change_configuration,
            "ClearCache": self._clear_cache,
            "DataTransfer": self._data_transfer,
            "GetConfiguration": self._get_configuration,
            "GetLocalListVersion": self._get_local_list_version,
            "RemoteStartTransaction": self._remote_start,
            "RemoteStopTransaction": self._remote_stop,
            "ReserveNow": self._reserve_now,
            "Reset": self._reset,
            "SendLocalList": self._send_local_list,
            "TriggerMessage": self._trigger_message,
            "UnlockConnector": self._unlock_connector,
        }

        def counted(
            action: str, handler: Callable[[Payload], Awaitable[Payload]]
        ) -> Callable[[Payload], Awaitable[Payload]]:
            async def answer(payload: Payload) -> Payload:
                self.stats.answered_calls += 1
                self.answered.append(action)
                return await handler(payload)

            return answer

        return {action: counted(action, handler) for action, handler in handlers.items()}

    async def _change_availability(self, payload: Payload) -> Payload:
        connector_id = int(payload["connectorId"])
        operative = payload["type"] == "Operative"
        if connector_id == 0:
            targets = list(self.connectors.values())
        elif connector_id in self.connectors:
            targets = [self.connectors[connector_id]]
        else:
            return {"status": "Rejected"}
        scheduled = False
        changed: list[int] = []
        for connector in targets:
            if connector.session is not None:
                connector.scheduled_operative = operative
                scheduled = True
            elif connector.operative != operative:
                connector.operative = operative
                changed.append(connector.connector_id)
        if not operative:
            # a connector out of service holds no reservation; nor does a charger
            for reservation in list(self.reservations.values()):
                if reservation.connector_id in changed or connector_id == 0:
                    self._end_reservation(reservation)

        async def report() -> None:
            if connector_id == 0:
                await self._send_status(0, "Available" if operative else "Unavailable")
            await self._show_idle(0)

        self._later(report)
        return {"status": "Scheduled" if scheduled else "Accepted"}

    async def _change_configuration(self, payload: Payload) -> Payload:
        key = self.config.get(payload["key"])
        value: str = payload["value"]
        if key is None:
            return {"status": "NotSupported"}
        if key.readonly:
            return {"status": "Rejected"}
        if key.kind == "int" and not (value.isdigit() and len(value) < 10):
            return {"status": "Rejected"}
        if key.kind == "bool" and value.lower() not in ("true", "false"):
            return {"status": "Rejected"}
        key.value = value.lower() if key.kind == "bool" else value
        self._changed_config()
        return {"status": "Accepted"}

    async def _clear_cache(self, payload: Payload) -> Payload:
        self.auth_cache.clear()
        return {"status": "Accepted"}

    async def _data_transfer(self, payload: Payload) -> Payload:
        return {"status": "UnknownVendorId"}

    async def _get_local_list_version(self, payload: Payload) -> Payload:
        if not self._local_list_enabled():
            return {"listVersion": -1}
        return {"listVersion": self.local_list.reported_version()}

    async def _send_local_list(self, payload: Payload) -> Payload:
        if not self._local_list_enabled():
            return {"status": "NotSupported"}
        status = self.local_list.update(
            payload,
            max_send=self._int_key("SendLocalListMaxLength"),
            max_length=self._int_key("LocalAuthListMaxLength"),
        )
        if status == "Accepted":
            for id_tag in self.local_list.entries:  # the list takes precedence over the cache
                self.auth_cache.entries.pop(id_tag, None)
        return {"status": status}

    async def _reserve_now(self, payload: Payload) -> Payload:
        connector_id: int = payload["connectorId"]
        if not self.options.reservations:
            return {"status": "Rejected"}
        if connector_id == 0 and not self._flag("ReserveConnectorZeroSupported"):
            return {"status": "Rejected"}
        if connector_id != 0 and connector_id not in self.connectors:
            return {"status": "Rejected"}
        try:
            reservation = Reservation.from_request(payload)
        except ValueError:
            return {"status": "Rejected"}
        if reservation.seconds_left() <= 0:
            return {"status": "Rejected"}
        previous = self.reservations.get(reservation.reservation_id)
        status = reservations.reserve_now_status(
            self.reservations, self.connectors, connector_id, previous
        )
        if status != "Accepted":
            return {"status": status}
        if previous is not None:  # the same id: the new reservation replaces it
            self._end_reservation(previous)
        self.reservations[reservation.reservation_id] = reservation
        reservation.timer = trio.CancelScope()  # so that ending it before its wait starts counts
        assert self._nursery is not None
        self._nursery.start_soon(self._expire, reservation)

        async def report() -> None:
            if previous is not None and previous.connector_id != connector_id:
                await self._show_idle(previous.connector_id)
            if self.reservations.get(reservation.reservation_id) is reservation:
                await self._show_idle(connector_id)

        self._later(report)
        return {"status": "Accepted"}

    async def _cancel_reservation(self, payload: Payload) -> Payload:
        reservation = self.reservations.get(payload["reservationId"])
        if reservation is None:
            return {"status": "Rejected"}
        self._end_reservation(reservation)

        async def report() -> None:
            await self._show_idle(reservation.connector_id)

        self._later(report)
        return {"status": "Accepted"}

    async def _get_configuration(self, payload: Payload) -> Payload:
        wanted: list[str] | None = payload.get("key")
        names = wanted if wanted else list(self.config)
        known = [
            {"key": name, "readonly": self.config[name].readonly, "value": self.config[name].value}
            for name in names
            if name in self.config
        ]
        answer: Payload = {"configurationKey": known}
        unknown = [name for name in names if name not in self.config]
        if unknown:
            answer["unknownKey"] = unknown
        return answer

    async def _remote_start(self, payload: Payload) -> Payload:
        wanted = payload.get("connectorId")
        id_tag: str = payload["idTag"]
        candidates = (
            [self.connectors.get(int(wanted))] if wanted is not None else self.connectors.values()
        )

        def fits(connector: Connector) -> bool:
            if connector.busy or connector.fault is not None:
                return False
            held = self._reservation_on(connector.connector_id)
            # a tag of the reservation's parent is only known to fit once authorized
            others = held is not None and held.parent_id_tag is None and held.id_tag != id_tag
            return connector.operative and not others

        def preference(connector: Connector) -> int:
            held = self._reservation_on(connector.connector_id)
            if held is None:
                return 1
            return 0 if held.id_tag == id_tag else 2  # for a parent's tags: maybe not this one

        # the connector reserved for this tag first, then one nobody reserved
        fitting = sorted((c for c in candidates if c is not None and fits(c)), key=preference)
        if not fitting:
            return {"status": "Rejected"}
        connector = fitting[0]
        connector.busy = True  # taken now: a second RemoteStart gets Rejected

        async def start() -> None:
            connector.busy = False
            await self.charge(connector.connector_id, id_tag, remote=True)

        self._later(start)
        return {"status": "Accepted"}

    async def _remote_stop(self, payload: Payload) -> Payload:
        session = self.session_of(int(payload["transactionId"]))
        if session is None:
            return {"status": "Rejected"}
        session.stop("Remote")
        return {"status": "Accepted"}

    async def _reset(self, payload: Payload) -> Payload:
        kind: str = payload["type"]

        async def reboot() -> None:
            sessions = [c.session for c in self.connectors.values() if c.session is not None]
            for session in sessions:
                session.stop(f"{kind}Reset")
            for session in sessions:
                await session.done.wait()
            if kind == "Soft":
                # a soft reset lets the stop messages out first
                with trio.move_on_after(5):
                    while self.queue and self.registered:
                        await trio.sleep(0.02)
            self.reconnect()

        self._later(reboot)
        return {"status": "Accepted"}

    async def _trigger_message(self, payload: Payload) -> Payload:
        requested: str = payload["requestedMessage"]
        if requested not in self.options.trigger_messages:
            return {"status": "NotImplemented"}
        connector_id: int | None = payload.get("connectorId")
        # the connector id matters to these two only; for the others it is ignored (5.17)
        relevant = requested in ("MeterValues", "StatusNotification")
        if relevant and connector_id not in (None, 0, *self.connectors):
            return {"status": "Rejected"}
        everyone = [0, *self.connectors]
        numbers = everyone if connector_id is None else [connector_id]
        work: Callable[[], Awaitable[None]]
        if requested == "BootNotification":

            async def work() -> None:
                self._take_boot_answer(await self.call("BootNotification", self._boot_payload()))

        elif requested == "Heartbeat":

            async def work() -> None:
                await self.call("Heartbeat", {})

        elif requested == "StatusNotification":

            async def work() -> None:
                for number in numbers:
                    status = self.status_zero if number == 0 else self.connectors[number].status
                    await self._send_status(number, status)

        elif requested == "MeterValues":
            if connector_id is None:
                numbers = list(self.connectors)

            async def work() -> None:
                for number in numbers:
                    await self.call("MeterValues", self._triggered_meter_values(number))

        elif requested == "DiagnosticsStatusNotification":

            async def work() -> None:
                await self.call("DiagnosticsStatusNotification", {"status": "Idle"})

        else:  # FirmwareStatusNotification: no update is under way

            async def work() -> None:
                await self.call("FirmwareStatusNotification", {"status": "Idle"})

        self._later(work)
        return {"status": "Accepted"}

    def _triggered_meter_values(self, connector_id: int) -> Payload:
        """A connector's meter now (connector 0: the charger's, the sum of its connectors'),
        with the transaction id of a session running there when the Central System gave one."""
        if connector_id == 0:
            connectors = list(self.connectors.values())
        else:
            connectors = [self.connectors[connector_id]]
        energy = sum(c.energy_wh for c in connectors)
        power = sum(c.session.power_w for c in connectors if c.session is not None)
        sample = self._sample(energy, power)
        sample["sampledValue"] = [{**v, "context": "Trigger"} for v in sample["sampledValue"]]
        payload: Payload = {"connectorId": connector_id, "meterValue": [sample]}
        session = connectors[0].session if connector_id != 0 else None
        if session is not None and session.local_id in self.transaction_ids:
            payload["transactionId"] = self.transaction_ids[session.local_id]
        return payload

    async def _unlock_connector(self, payload: Payload) -> Payload:
        connector = self.connectors.get(int(payload["connectorId"]))
        if connector is None:
            return {"status": "NotSupported"}
        if connector.session is not None:
            connector.session.stop("UnlockCommand")
        return {"status": "Unlocked"}


def default_id_tag(charge_point_id: str, connector_id: int) -> str:
    """One tag per connector, at most 20 characters (the idTag limit)."""
    suffix = f"-{connector_id}"
    return charge_point_id[-(20 - len(suffix)) :] + suffix


def _handshake_reason(error: HandshakeFailed) -> str:
    return f"HTTP {error.status_code}" if error.status_code is not None else "broken"


REFUSALS_LOGGED = 5  # refused handshakes of one kind logged at WARNING per process; then DEBUG


def _log_refusal(charge_point_id: str, error: HandshakeFailed, nth: int) -> None:
    """A refused handshake, with what the server answered: the first few of each kind are
    warnings, the rest (a whole fleet refused, retrying) debug lines."""
    level = logging.WARNING if nth <= REFUSALS_LOGGED else logging.DEBUG
    more = " (more refusals like it: DEBUG)" if nth == REFUSALS_LOGGED else ""
    log.log(level, "%s: connect failed: %s %.200r%s", charge_point_id, error, error.body, more)
