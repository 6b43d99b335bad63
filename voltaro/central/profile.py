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
- ``migrations``: the SQL files (``voltaro/store/migrations/``) that create its tables.

The central system serves every profile's handlers and commands; the admin API's command
list, the OpenAPI variants, the dashboard's command forms and ``voltaro command`` are
generated from the declarations. Nothing outside the profile's module names its actions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

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

FieldKind = Literal["text", "int", "select", "list"]


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
        if self.kind == "select" and self.options and raw not in self.options:
            raise ValueError(f"{self.label} must be one of {', '.join(self.options)}")
        return raw


@dataclass(frozen=True, slots=True)
class Command:
    """An operator command: the CALL ``action`` sent to one charge point. ``confirm``: the
    question the dashboard asks before sending it (a command that disrupts charging: a
    reset, a stop, an unlock); empty: sent at once."""

    action: str
    summary: str
    fields: tuple[Field, ...] = ()
    effect: Effect | None = None
    confirm: str = ""

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


@dataclass(frozen=True)
class Profile:
    """One OCPP feature profile, as the application core sees it (see the module doc)."""

    name: str
    inbound: Mapping[str, InboundHandler]
    commands: tuple[Command, ...] = ()
    accepted_only: frozenset[str] = frozenset()
    migrations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        stray = self.accepted_only - set(self.inbound)
        if stray:
            raise ValueError(f"{self.name}: accepted_only names unhandled {sorted(stray)}")
