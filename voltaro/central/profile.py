"""The seam between the application core and an OCPP feature profile.

A feature profile (Core, Remote Trigger; later Reservation, Local Auth List Management,
Firmware Management, Smart Charging, the security extensions) is one module under
``voltaro/central/profiles/`` that exports one :class:`Profile` value. It declares

- ``inbound``: the charger-initiated messages it handles, each an async function
  ``(charger: Charger, payload) -> payload`` (:class:`~voltaro.central.domain.Charger` is the
  charge point's slice of the domain: its id, its in-memory state, the store, the event bus);
- ``accepted_only``: which of those a charge point may send only once Accepted;
- ``commands``: the CALLs it lets operators send, each a :class:`Command` with the inputs an
  operator fills in (:class:`Field`: the dashboard's form, the CLI's options; the API takes
  the OCPP payload itself) and the ``effect`` its answer has on the domain;
- ``migrations``: the SQL files (``voltaro/store/migrations/``) that create its tables;
- ``tasks``: what it runs in the background on every instance (:data:`ProfileTask`: expire
  reservations, keep local lists in sync), each given a :class:`ProfileContext`;
- ``listings``: the records it lets operators list (:class:`Listing`: ``GET
  /api/v1/{name}`` and a dashboard page ``/{name}``);
- ``charge_point_facts``: what it adds to a charge point's detail (the API's ``GET
  /api/v1/charge-points/{id}`` and the dashboard's charge point page), with
  ``facts_schema`` documenting those keys.

The central system serves every profile's handlers and commands and runs its tasks; the
admin API's command list and listings, the OpenAPI variants, the dashboard's command forms,
list pages and charge point facts, and ``voltaro command`` are generated from the
declarations. Nothing outside the profile's module names its actions.

Tasks and events
----------------
A task runs on every instance (a node, each worker of ``voltaro serve --workers N``, the
admin-only parent), from the central system's start to its stop. One that raises is logged
and started again after a back-off (:mod:`voltaro.central.profile_tasks`); it never takes
the server down. A task that returns is done.

A task follows what happens through ``ctx.domain.events``: ``listening(pick)`` for a
synchronous callback that picks the few events it wants into a channel of its own (nothing
wakes up for the rest: meter values come many per second), ``subscribe()`` for all.
Every instance's bus also carries the events of the other instances' chargers, relayed,
with ``event.origin`` set to the instance they happened at; events published on this
instance have ``origin`` None. The rule: **a task acts only on events whose origin is
None**, so that exactly one instance (the one that holds the charger and published the
event) acts on each. Work that is not driven by an event
(expiring what is past its time) must be idempotent SQL, since every instance runs it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from voltaro.central.domain import Charger, Domain

Payload = dict[str, Any]
Handler = Callable[[Payload], Awaitable[Payload]]
"""A handler bound to one charge point: request payload in, CALLRESULT payload out."""

InboundHandler = Callable[["Charger", Payload], Awaitable[Payload]]
"""A profile's handler of a charger-initiated message (bound to a charger when served).
It returns only after what it stores is committed; it raises
:class:`~voltaro.ocppj.errors.OcppError` to answer a CALLERROR."""

Effect = Callable[["Domain", str, Payload, Payload], Awaitable[None]]
"""What a command's CALLRESULT changes: ``(domain, charge_point_id, request, result)``; run
after a valid answer, before the operator is told the result."""

Prepare = Callable[["Domain", str, Payload], Awaitable[Payload]]
"""``(domain, charge_point_id, request) -> request``: runs before a command is sent, once its
payload passed the schema and the charge point is known (on the instance the operator
asked): allocates what Voltaro allocates (the command's ``allocates``; its ``fills`` that
the operator left out are missing from ``request``) and records the request; returns the
payload to send."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a command got no valid answer, as a command's ``failed`` is told."""

    message: str
    """What happened, in the operator's words."""
    outcome: str
    """The failure's kind: ``timeout``, ``error`` (a CALLERROR), ``invalid`` (an invalid
    CALLRESULT), ``disconnected``, ``not connected``, ..."""
    code: str | None = None
    """The CALLERROR's error code, when the charger answered one."""


Failed = Callable[["Domain", str, Payload, Failure], Awaitable[None]]
"""``(domain, charge_point_id, request, failure)``: what a command that got no valid answer
changes (a timeout, a CALLERROR, no connection)."""

FieldKind = Literal["text", "int", "select", "list", "bool"]


@dataclass(frozen=True, slots=True)
class Field:
    """One operator input of a command: a form field in the dashboard, an option of
    ``voltaro command``. ``kind``: text, int (a whole number), select (one of ``options``)
    or list (comma-separated). ``suggest``: what a form may offer as the value, from the
    charge point's page: ``activeTransaction`` (its first active transaction's id) or
    ``configurationKey`` (its known configuration keys). ``confirm``: (value, question)
    pairs: the dashboard asks the question before sending the command with that value
    (ChangeAvailability asks before Inoperative, not before Operative)."""

    name: str
    label: str
    kind: FieldKind = "text"
    options: tuple[str, ...] = ()
    required: bool = False
    default: str = ""
    suggest: Literal["", "activeTransaction", "configurationKey"] = ""
    confirm: tuple[tuple[str, str], ...] = ()

    def parse(self, raw: str) -> Any:
        """The payload value of the operator's text; ValueError says what is wrong."""
        if self.kind == "int":
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"{self.label} must be a whole number") from None
        if self.kind == "list":
            return [part.strip() for part in raw.split(",") if part.strip()]
        if self.kind == "bool":
            if raw.lower() not in ("true", "false"):
                raise ValueError(f"{self.label} must be true or false")
            return raw.lower() == "true"
        if self.kind == "select" and self.options and raw not in self.options:
            raise ValueError(f"{self.label} must be one of {', '.join(self.options)}")
        return raw


@dataclass(frozen=True, slots=True)
class Command:
    """An operator command: the CALL ``action`` sent to one charge point.

    ``confirm``: the question the dashboard asks before sending it (a command that disrupts
    charging: a reset, a stop, an unlock); empty: sent at once.

    ``allocates``: the payload fields Voltaro fills in (e.g. ReserveNow's ``reservationId``),
    each with a stand-in value the action's schema accepts: the operator leaves them out (a
    value given is replaced), the schema check runs with the stand-ins, then ``prepare``
    puts in the real values. The API's answer names them (``allocated``).

    ``fills``: the payload fields Voltaro fills in *when the operator leaves them out* (a
    value given is sent as given; e.g. SendLocalList's ``listVersion``: left out, Voltaro
    sends its own list), each with a stand-in the schema accepts: the schema check runs with
    the stand-ins of those left out, then ``prepare`` (which such a command must have) gets
    the payload without them and puts them in. The API's answer names those filled in
    (``allocated``).
    """

    action: str
    summary: str
    fields: tuple[Field, ...] = ()
    effect: Effect | None = None
    confirm: str = ""
    prepare: Prepare | None = None
    failed: Failed | None = None
    allocates: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    fills: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fills and self.prepare is None:
            raise ValueError(f"{self.action}: a command that fills fields needs a prepare")

    def filled(self, payload: object) -> tuple[str, ...]:
        """The fields of ``fills`` that ``payload`` (the operator's) leaves out."""
        given = payload if isinstance(payload, dict) else {}
        return tuple(name for name in self.fills if name not in given)

    def payload(self, inputs: Mapping[str, str]) -> Payload:
        """The OCPP payload from an operator's text inputs (blank optional inputs left out;
        the schema check comes when the command is sent). ValueError: ``(message, field)``."""
        payload: Payload = {}
        for field in self.fields:
            raw = (inputs.get(field.name) or "").strip()
            if not raw:
                continue
            try:
                payload[field.name] = field.parse(raw)
            except ValueError as error:
                raise ValueError(str(error), field.name) from None
        return payload


class CommandSender(Protocol):
    """How a profile's task sends a command: :meth:`voltaro.central.commands.Commands.send`
    (routed to whichever instance holds the charger; the command's effect applied; raises
    the :class:`~voltaro.central.commands.CommandFailed` subclasses)."""

    def __call__(
        self,
        charge_point_id: str,
        action: str,
        payload: Payload,
        timeout: float | None = None,
    ) -> Awaitable[Payload]: ...


@dataclass(frozen=True, slots=True)
class ProfileContext:
    """What a profile's task works with on one instance."""

    domain: Domain
    send: CommandSender
    holds: Callable[[str], bool]
    """Whether this instance holds the charger's session (its CALLs go out from here)."""
    instance_id: str
    behind: Callable[[], bool] = lambda: False
    """Whether this instance is behind on the chargers' own messages (a storm of
    connections: see :mod:`voltaro.central.overload`); background work that can wait
    (updating many chargers' lists, say) waits while it is."""
    busy: Callable[[], bool] = lambda: False
    """Whether this instance is busy enough that background work should give way to the
    chargers' own messages (most of a core or of the machine used, its event loop late, its
    writes waiting; see :mod:`voltaro.central.overload`). Behind implies busy. Work that must
    progress nevertheless waits for a while at most (the local-list sync:
    ``BUSY_WAIT_LIMIT``)."""


ProfileTask = Callable[[ProfileContext], Awaitable[None]]
"""A profile's background task: runs until cancelled (see "Tasks and events" above)."""

ListingQuery = Callable[
    ["Domain", Mapping[str, Any], int, int], Awaitable[tuple[list[Payload], int]]
]
"""``(domain, filters, limit, offset) -> (items, total)``: one page of a listing, newest or
most relevant first as the listing decides; ``filters`` holds only the filters given, as
parsed values (an int filter an int, a bool filter a bool)."""

LISTING_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


@dataclass(frozen=True, slots=True)
class Listing:
    """Records a profile lets operators list: served as ``GET /api/v1/{name}`` (``filters``
    as query parameters, ``limit``/``offset`` paging, the API's page shape ``{items, total,
    limit, offset}``, in the OpenAPI document) and as the dashboard page ``/{name}`` (a
    table of the items' ``item_schema`` properties, in their order, under a form of the
    filters; a link in the navigation). A property's ``title`` in ``item_schema`` is its
    column heading; a ``format: date-time`` property is shown as a time;
    ``chargePointId`` links to the charge point."""

    name: str
    title: str
    filters: tuple[Field, ...]
    query: ListingQuery
    item_schema: dict[str, Any]

    def __post_init__(self) -> None:
        if not LISTING_NAME.fullmatch(self.name):
            raise ValueError(f"listing name {self.name!r}: lower-case letters, digits and -")


FactsQuery = Callable[["Domain", str], Awaitable[Payload]]
"""``(domain, charge_point_id) -> facts``: keys merged into the charge point's detail."""

CONNECTOR_NOTES = "connectorNotes"
"""The fact key that annotates connectors: ``{"<connectorId>": "text"}``; the dashboard
shows each note in that connector's row (several profiles' notes are joined)."""


@dataclass(frozen=True)
class Profile:
    """One OCPP feature profile, as the application core sees it (see the module doc)."""

    name: str
    inbound: Mapping[str, InboundHandler]
    commands: tuple[Command, ...] = ()
    accepted_only: frozenset[str] = frozenset()
    migrations: tuple[str, ...] = ()
    tasks: tuple[ProfileTask, ...] = ()
    listings: tuple[Listing, ...] = ()
    charge_point_facts: FactsQuery | None = None
    facts_schema: Mapping[str, Any] | None = None
    """The JSON schemas of the keys ``charge_point_facts`` adds (``{key: schema}``), for the
    OpenAPI document; a schema's ``title`` is the key's heading on the dashboard."""

    def __post_init__(self) -> None:
        stray = self.accepted_only - set(self.inbound)
        if stray:
            raise ValueError(f"{self.name}: accepted_only names unhandled {sorted(stray)}")
