"""How long operator records are kept: the audit log, dashboard sessions and the counters
of failed sign-ins.

- The audit log keeps ``VOLTARO_AUDIT_RETENTION_DAYS`` days (0: for ever); older rows are
  deleted once an hour.
- A dashboard session is deleted within a minute of its expiry (it stopped working at its
  expiry already; a revoked one is deleted when it is revoked).
- A counter of failed sign-ins (:mod:`voltaro.store.sign_in_attempts`) is deleted within a
  minute of its block being over: it no longer blocks anything.

:func:`keep_operator_records` is a task of the Core profile, so every instance runs it
(each node, each worker, the admin-only parent). That is harmless: every purge is a DELETE
of what is past its time, so instances purging at once share the work, and none relies on
another having run.

Error handling
--------------
A round that meets a database outage is skipped (the housekeeping loop says the database is
away); the next round tries again. Anything else propagates, and the profile tasks'
supervisor logs it and starts the task again after a back-off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import trio

from voltaro.central.profile import ProfileContext
from voltaro.central.timestamps import utc_now
from voltaro.config import Settings
from voltaro.store import Store, StoreError

log = logging.getLogger(__name__)

EXPIRED_PERIOD = 60.0  # seconds between purges of expired sessions and sign-in counters
AUDIT_PERIOD = 3600.0  # seconds between purges of the audit log (its rows age by days)


@dataclass(frozen=True)
class Purged:
    sessions: int = 0
    sign_in_counters: int = 0
    audit_entries: int = 0


async def purge_expired(store: Store, settings: Settings) -> Purged:
    """Delete the expired dashboard sessions and the sign-in counters whose block is over."""
    sessions = await store.accounts.purge_expired_sessions()
    counters = await store.sign_in_attempts.purge_older_than(settings.sign_in_block)
    return Purged(sessions=sessions, sign_in_counters=counters)


async def purge_audit(store: Store, settings: Settings) -> int:
    """Delete the audit entries older than the retention (none when it is 0)."""
    if settings.audit_retention_days == 0:
        return 0
    cutoff = utc_now() - timedelta(days=settings.audit_retention_days)
    purged = await store.audit.purge_before(cutoff)
    if purged:
        log.info("audit log: purged %d entries older than %s", purged, cutoff)
    return purged


async def keep_operator_records(ctx: ProfileContext) -> None:
    """The periodic purges (see the module doc), the first round at once."""
    store, settings = ctx.domain.store, ctx.domain.settings
    next_audit = trio.current_time()
    while True:
        try:
            await purge_expired(store, settings)
            if trio.current_time() >= next_audit:
                await purge_audit(store, settings)
                next_audit = trio.current_time() + AUDIT_PERIOD
        except StoreError as error:
            log.debug("operator records' purge postponed: %s", error)
        await trio.sleep(EXPIRED_PERIOD)
