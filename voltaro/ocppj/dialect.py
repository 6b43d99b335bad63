"""What is particular to one OCPP version on the OCPP-J core: one :class:`Dialect` value.

The OCPP-J rules (frames, message ids, one outstanding CALL, which frame gets which answer)
are the same for every OCPP version and live in :mod:`voltaro.ocppj.rpc_state`. What a
version decides is data, gathered here:

- its ``name`` and the WebSocket ``subprotocol`` a charger must offer
  (:class:`voltaro.transport.server.OcppServer` selects it);
- its actions and which side sends each as a CALL (``charge_point_initiated``,
  ``central_system_initiated``; an action outside both is answered ``NotImplemented``);
- where its JSON schemas are and how their files are named (:meth:`Dialect.schema_dir`,
  :meth:`Dialect.schema_file`; :meth:`voltaro.ocppj.validation.SchemaRegistry.load`
  compiles them);
- how error codes are spelled: :class:`~voltaro.ocppj.errors.ErrorCode` names the meaning,
  :meth:`Dialect.spelling` is what goes on the wire, :meth:`Dialect.parse_error_code` reads
  what a peer sent (OCPP 1.6 sends its errata-frozen spellings and accepts the two that
  OCPP 2.0.1 renamed).

:data:`OCPP16` is the only dialect today; every part that needs one takes it as a keyword
defaulting to it, so a second (OCPP 2.0.1) is a second value here plus its schema folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from voltaro.ocppj.actions import Direction
from voltaro.ocppj.errors import ErrorCode

__all__ = ["OCPP16", "Dialect"]

# Where schema folders are looked for: inside an installed wheel (``voltaro/_schemas``),
# then a source checkout's top-level ``schemas/`` (editable install, tests).
_PACKAGE = Path(__file__).resolve().parent.parent
_SCHEMA_ROOTS = (_PACKAGE / "_schemas", _PACKAGE.parent / "schemas")


@dataclass(frozen=True)
class Dialect:
    """One OCPP version as spoken over OCPP-J. Immutable; compare and hash by value."""

    name: str
    """Human name, e.g. ``OCPP 1.6``."""
    subprotocol: str
    """The ``Sec-WebSocket-Protocol`` value that selects this dialect, e.g. ``ocpp1.6``."""
    charge_point_initiated: frozenset[str]
    """Actions a charge point sends as a CALL."""
    central_system_initiated: frozenset[str]
    """Actions the Central System sends as a CALL (an action may be in both sets)."""
    schema_folder: str = ""
    """The schema files' folder below the schema root (``""``: the root itself)."""
    request_schema_suffix: str = ""
    """File name of a CALL's schema: ``<Action><suffix>.json`` (2.0.1 uses ``Request``)."""
    response_schema_suffix: str = "Response"
    """File name of a CALLRESULT's schema: ``<Action><suffix>.json``."""
    received_error_aliases: Mapping[str, ErrorCode] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    """Error-code spellings a peer may send that mean one of ours besides our own."""
    sent_error_spellings: Mapping[ErrorCode, str] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    """Spellings we send where they differ from the :class:`ErrorCode` value."""

    @cached_property
    def actions(self) -> frozenset[str]:
        """Every action of the dialect, sent by either side (computed once: the endpoint
        looks every inbound CALL up in it)."""
        return self.charge_point_initiated | self.central_system_initiated

    def schema_dir(self) -> Path:
        """The folder holding this dialect's schema files.

        Raises ``FileNotFoundError`` when neither an installed wheel nor a source checkout
        has it.
        """
        probe = self.schema_name(min(self.charge_point_initiated), Direction.REQUEST)
        for root in _SCHEMA_ROOTS:
            candidate = root / self.schema_folder if self.schema_folder else root
            if (candidate / probe).is_file():
                return candidate
        raise FileNotFoundError(f"{self.name} schemas not found next to {_PACKAGE}")

    def schema_name(self, action: str, direction: Direction) -> str:
        """The file name (no folder) of ``action``'s schema for ``direction``."""
        if direction is Direction.RESPONSE:
            return f"{action}{self.response_schema_suffix}.json"
        return f"{action}{self.request_schema_suffix}.json"

    def schema_file(self, action: str, direction: Direction) -> Path:
        """The schema file of ``action``'s payload in ``direction`` (not checked to exist)."""
        return self.schema_dir() / self.schema_name(action, direction)

    def action_of(self, stem: str) -> tuple[str, Direction]:
        """The action and direction a schema file describes, from its name without
        ``.json``: the inverse of :meth:`schema_name`."""
        response = self.response_schema_suffix
        if stem.endswith(response) and stem != response:
            return stem.removesuffix(response), Direction.RESPONSE
        request = self.request_schema_suffix
        if request and stem.endswith(request) and stem != request:
            return stem.removesuffix(request), Direction.REQUEST
        return stem, Direction.REQUEST

    def spelling(self, code: ErrorCode) -> str:
        """How ``code`` is written in a CALLERROR we send."""
        return self.sent_error_spellings.get(code, code)

    def parse_error_code(self, text: str) -> ErrorCode | None:
        """The ErrorCode a received CALLERROR names, or None when it names none we know."""
        try:
            return ErrorCode(text)
        except ValueError:
            return self.received_error_aliases.get(text)


OCPP16 = Dialect(
    name="OCPP 1.6",
    subprotocol="ocpp1.6",
    # OCPP 1.6 and its Security Whitepaper.
    charge_point_initiated=frozenset(
        {
            "Authorize",
            "BootNotification",
            "DataTransfer",
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
            "Heartbeat",
            "LogStatusNotification",
            "MeterValues",
            "SecurityEventNotification",
            "SignCertificate",
            "SignedFirmwareStatusNotification",
            "StartTransaction",
            "StatusNotification",
            "StopTransaction",
        }
    ),
    central_system_initiated=frozenset(
        {
            "CancelReservation",
            "CertificateSigned",
            "ChangeAvailability",
            "ChangeConfiguration",
            "ClearCache",
            "ClearChargingProfile",
            "DataTransfer",
            "DeleteCertificate",
            "ExtendedTriggerMessage",
            "GetCompositeSchedule",
            "GetConfiguration",
            "GetDiagnostics",
            "GetInstalledCertificateIds",
            "GetLocalListVersion",
            "GetLog",
            "InstallCertificate",
            "RemoteStartTransaction",
            "RemoteStopTransaction",
            "ReserveNow",
            "Reset",
            "SendLocalList",
            "SetChargingProfile",
            "SignedUpdateFirmware",
            "TriggerMessage",
            "UnlockConnector",
            "UpdateFirmware",
        }
    ),
    # The 1.6 errata keep 1.6's own spellings for what we send (ErrorCode's values) and
    # accept on receipt the two that OCPP 2.0.1 renamed.
    received_error_aliases=MappingProxyType(
        {
            "FormatViolation": ErrorCode.FORMATION_VIOLATION,
            "OccurrenceConstraintViolation": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
        }
    ),
)
"""OCPP 1.6-J (with the Security Whitepaper's messages): subprotocol ``ocpp1.6``, the
official 78 schema files in ``schemas/``."""
