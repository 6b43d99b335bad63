"""The domain's services, as feature profiles see them.

:class:`Domain` is built once by the central system when its store is up and handed to every
profile handler (through :class:`Charger`) and every command effect. It holds no logic of its
own: the parts live in their modules (authorization, events, the store's repositories); this
is where a profile finds them, so that profiles depend on this module and never on the
central system that serves them.

What is kept in memory here and how it stays right with other writers (other instances on the
same database, the CLI, SQL by hand):

- ``open_transactions`` (ConcurrentTx) and the id tag cache (``store.id_tag_cache``) follow
  every change by LISTEN/NOTIFY, whoever made it (another instance, the CLI, SQL by hand),
  and reload after their LISTEN connection was lost (:mod:`voltaro.store.open_transactions`,
  :mod:`voltaro.store.id_tags`); this instance's handlers also apply their own changes at
  once.
- ``ChargerState`` (connector statuses, registration status) concerns a charger whose session
  this instance holds; it is reloaded from the store whenever it is missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trio

from voltaro.central.authorization import Authorizer
from voltaro.central.datatransfer import DataTransferRegistry
from voltaro.central.events import EventBus
from voltaro.config import Settings
from voltaro.store import Store
from voltaro.store.open_transactions import OpenTransactions

log = logging.getLogger(__name__)


@dataclass
class ChargerState:
    """What the central system remembers in memory about one charge point."""

    connectors: dict[int, str] | None = None  # current status per connector, loaded lazily
    lock: trio.Lock = field(default_factory=trio.Lock)
    unexpected_transitions: int = 0
    registration_status: str | None = None
    """Accepted, Pending or Rejected: as read at its last handshake, then as answered to its
    last BootNotification or set by an operator since; None until one of those happened."""


@dataclass
class Counters:
    """Domain counters, read by ``/metrics``."""

    unexpected_transitions: int = 0
    refused_for_outage: int = 0  # charger messages answered InternalError: no database


@dataclass
class Domain:
    """The services a profile's handlers and command effects use (see the module doc)."""

    settings: Settings
    store: Store
    events: EventBus
    authorizer: Authorizer
    open_transactions: OpenTransactions
    data_transfer: DataTransferRegistry
    counters: Counters = field(default_factory=Counters)
    chargers: dict[str, ChargerState] = field(default_factory=dict)

    def charger_state(self, charge_point_id: str) -> ChargerState:
        state = self.chargers.get(charge_point_id)
        if state is None:
            state = self.chargers[charge_point_id] = ChargerState()
        return state


@dataclass(frozen=True, slots=True)
class Charger:
    """One charge point's slice of the domain: what a profile handler is bound to."""

    id: str
    domain: Domain
    state: ChargerState

    @property
    def store(self) -> Store:
        return self.domain.store

    @property
    def events(self) -> EventBus:
        return self.domain.events
