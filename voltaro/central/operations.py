"""What an operator can see and do: the one face the central system shows the admin layer.

The admin API, the dashboard and their tests depend on :class:`Operations` alone, never on
the store's repositories or the sessions behind it: writes go through the methods below
(which keep the live sessions in step: a registration change applies to a connected
charger at once, a removed charge point is disconnected), reads through the typed report
queries (:attr:`Operations.queries`, :attr:`Operations.dashboard_queries`), the profiles'
listings and charge point facts (:meth:`Operations.list_items`,
:meth:`Operations.charge_point_facts`), commands through :meth:`Operations.send_command`
(outcomes: :mod:`voltaro.central.commands`), and live events through
:attr:`Operations.events`.

Every method needs the central system running; before it has started (or after it stopped)
they raise :class:`~voltaro.store.StoreUnavailable`, which the admin layer answers 503.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import trio

from voltaro.central.accounts import Accounts
from voltaro.central.commands import CommandCatalog
from voltaro.central.events import EventBus
from voltaro.central.instances_listing import INSTANCES
from voltaro.central.passwords import hash_password
from voltaro.central.profile import CONNECTOR_NOTES, Listing, Payload
from voltaro.central.sessions import CLOSE_POLICY_VIOLATION
from voltaro.central.sign_in import SignIns
from voltaro.central.system import CentralSystem
from voltaro.store import Store, StoreUnavailable
from voltaro.store.admin_queries import AdminQueries
from voltaro.store.audit import AuditRepository
from voltaro.store.dashboard_queries import DashboardQueries
from voltaro.store.records import ChargePointRecord, IdTagRecord


class Operations:
    """The operator's view of one central system (see the module doc)."""

    def __init__(self, central: CentralSystem) -> None:
        self._central = central

    @property
    def commands(self) -> CommandCatalog:
        """The commands the served profiles offer (known before the system starts)."""
        return self._central.catalog

    @property
    def listings(self) -> tuple[Listing, ...]:
        """The records operators can list (known before the start): the installation's
        instances, then what the served profiles let them list."""
        profiles = self._central.profiles
        return (INSTANCES, *(listing for profile in profiles for listing in profile.listings))

    @property
    def facts_schema(self) -> dict[str, Any]:
        """The JSON schemas of the keys the profiles add to a charge point's detail."""
        schema: dict[str, Any] = {}
        for profile in self._central.profiles:
            schema |= dict(profile.facts_schema or {})
        return schema

    @property
    def events(self) -> EventBus:
        return self._central.events

    @property
    def call_timeout(self) -> float:
        return self._central.settings.call_timeout

    def _store(self) -> Store:
        try:
            return self._central.store
        except RuntimeError:
            raise StoreUnavailable("the central system is not running") from None

    @property
    def queries(self) -> AdminQueries:
        """Read-only reports: lists and details of charge points, id tags, transactions, the
        message log and status history."""
        return self._store().admin

    @property
    def dashboard_queries(self) -> DashboardQueries:
        return DashboardQueries(self._store().database)

    @property
    def accounts(self) -> Accounts:
        """Operator accounts, their dashboard sessions and API tokens."""
        return Accounts(self._store().accounts)

    @property
    def sign_ins(self) -> SignIns:
        """Dashboard sign-ins, throttled across instances (:mod:`voltaro.central.sign_in`)."""
        store = self._store()
        return SignIns(Accounts(store.accounts), store.sign_in_attempts, self._central.settings)

    @property
    def audit(self) -> AuditRepository:
        """The audit log of operator actions: written by the admin layer, read by it."""
        return self._store().audit

    async def ping(self) -> None:
        """Raises StoreError unless the database answers."""
        await self.queries.ping()

    def is_connected(self, charge_point_id: str) -> bool:
        """Whether the charger has a live session on this instance."""
        try:
            return charge_point_id in self._central.sessions
        except RuntimeError:
            return False

    # ---- charge points ---------------------------------------------------------------

    async def charge_point(self, charge_point_id: str) -> ChargePointRecord | None:
        return await self._store().charge_points.get(charge_point_id)

    async def put_charge_point(
        self,
        charge_point_id: str,
        *,
        registration_status: str | None = None,
        password: str | None = None,
        lenient: bool | None = None,
    ) -> bool:
        """Add the charge point or change the given fields; True when it was added. A
        password is stored hashed (scrypt, off the event loop); a new registration status
        applies to its live session at once."""
        password_hash = None
        if password is not None:
            password_hash = await trio.to_thread.run_sync(hash_password, password)
        created = await self._store().charge_points.upsert(
            charge_point_id,
            status=registration_status,
            password_hash=password_hash,
            lenient=lenient,
        )
        if registration_status is not None:
            self._central.registration_changed(charge_point_id, registration_status)
        return created

    async def remove_charge_point(self, charge_point_id: str) -> bool:
        """Remove the charge point (its history stays); its live connection is closed with
        1008. False when it was not known."""
        if not await self._store().charge_points.remove(charge_point_id):
            return False
        await self._central.sessions.close(
            charge_point_id, CLOSE_POLICY_VIOLATION, "charge point removed"
        )
        return True

    async def charge_point_facts(self, charge_point_id: str) -> Payload:
        """What every profile adds to the charge point's detail, merged; the connector notes
        of several profiles are joined per connector. Two profiles giving the same other key
        is a bug in them: ValueError."""
        self._store()
        domain = self._central.domain
        merged: Payload = {}
        notes: dict[str, str] = {}
        for profile in self._central.profiles:
            if profile.charge_point_facts is None:
                continue
            facts = await profile.charge_point_facts(domain, charge_point_id)
            for connector, note in (facts.pop(CONNECTOR_NOTES, None) or {}).items():
                key = str(connector)
                notes[key] = f"{notes[key]}; {note}" if key in notes else note
            clash = merged.keys() & facts.keys()
            if clash:
                raise ValueError(f"{profile.name} gives charge point facts {sorted(clash)} again")
            merged |= facts
        if notes:
            merged[CONNECTOR_NOTES] = notes
        return merged

    # ---- id tags ---------------------------------------------------------------------

    async def id_tag(self, id_tag: str) -> IdTagRecord | None:
        return await self._store().id_tags.get(id_tag)

    async def put_id_tag(
        self,
        id_tag: str,
        *,
        status: str,
        expiry_date: datetime | None,
        parent_id_tag: str | None,
    ) -> bool:
        """Add the id tag or replace its fields; True when it was added. Every instance's
        cache follows (LISTEN/NOTIFY)."""
        return await self._store().id_tags.upsert(
            id_tag, status=status, expiry_date=expiry_date, parent_id_tag=parent_id_tag
        )

    async def remove_id_tag(self, id_tag: str) -> bool:
        return await self._store().id_tags.remove(id_tag)

    # ---- the profiles' listings ------------------------------------------------------

    async def list_items(
        self, listing: Listing, filters: Mapping[str, Any], limit: int, offset: int
    ) -> tuple[list[Payload], int]:
        """One page of ``listing``: its items and how many match in all."""
        self._store()
        return await listing.query(self._central.domain, filters, limit, offset)

    # ---- commands --------------------------------------------------------------------

    async def send_command(
        self, charge_point_id: str, action: str, payload: object, timeout: float | None = None
    ) -> tuple[Payload, Payload]:
        """Send an operator command and apply its effect: the request as sent (with what
        Voltaro allocated in it) and the charger's result; raises a
        :class:`~voltaro.central.commands.CommandFailed` for every other outcome."""
        self._store()
        return await self._central.commands.send_request(charge_point_id, action, payload, timeout)
